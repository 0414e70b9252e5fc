"""The study's MNIST classifiers: the dense net and LeNet-5, and the dense net's grid search."""

from __future__ import annotations

import copy
import itertools
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support
from sklearn.model_selection import train_test_split
from skorch.callbacks import EpochScoring, LRScheduler, PrintLog
from skorch.dataset import Dataset
from skorch.helper import predefined_split
from torch.optim.lr_scheduler import CosineAnnealingLR

from glassnet.data.images import ImageData, load_images
from glassnet.errors import DivergedError, UserError, require
from glassnet.models import MLP, LeNet5
from glassnet.preprocessing import MNIST_MEAN, MNIST_STD, to_inputs
from glassnet.progress import Progress
from glassnet.runs import RunWriter, default_run_dir, load_state_dict, read_json
from glassnet.training import (
    BestWeights,
    EpochProgress,
    GlassClassifier,
    InMemoryLoader,
    ShiftAugmentLoader,
    StopOnDivergence,
    check_device,
    check_precision,
    choose_device,
    seed_everything,
)

__all__ = [
    "ClassificationConfig",
    "ClassificationResult",
    "run_classification",
    "make_classifier",
    "build_module",
    "load_classifier",
    "MODELS",
]

MODELS = ("mlp", "lenet5")


@dataclass
class ClassificationConfig:
    """Everything a classification run depends on; stored as config.json in the run folder."""

    model: str = "mlp"  # mlp (784-256-512-256-10) | lenet5
    data_dir: str | None = None  # IDX folder (default: $GLASSNET_DATA, cache, embedded sample)
    class_names: tuple[str, ...] | None = None  # default: classes.txt beside the data, or 0..n-1
    hidden: tuple[int, ...] = (256, 512, 256)  # mlp only: the study's widths
    dropout: float = 0.2  # after each hidden layer (mlp) / dense layer (lenet5)
    lr: float = 1e-3  # Adam
    epochs: int = 20
    augment: int = 0  # shift training images by up to this many pixels (0: the study's setup)
    lr_schedule: str = "cosine"  # cosine (anneal to 0 over the epochs) | none; grid uses none
    batch_size: int = 256  # big enough to keep the CPU busy, small enough to generalise well
    precision: str = "float32"  # float32 | bfloat16 (training arithmetic; needs native bf16)
    val_fraction: float = 0.2  # the study's fixed, stratified 80/20 train/validation split
    search: str = "none"  # none | grid (grid: mlp only)
    grid_lr: tuple[float, ...] = (1e-3, 3e-4)
    grid_dropout: tuple[float, ...] = (0.1, 0.3)
    grid_epochs: tuple[int, ...] = (10, 20, 30)  # read off one run per (lr, dropout)
    max_train: int | None = None  # use only this many training images (quick runs)
    seed: int = 0
    device: str = "auto"

    def validate(self) -> None:
        """Raise UserError naming the first option outside its valid range."""
        checks = [
            (self.model in MODELS, f"--model must be one of {', '.join(MODELS)}"),
            (self.search in ("none", "grid"), "--search must be none or grid"),
            (self.lr_schedule in ("none", "cosine"), "--lr-schedule must be none or cosine"),
            (self.search == "none" or self.model == "mlp", "--search grid is for --model mlp"),
            (0.0 <= self.dropout < 1.0, f"--dropout must be in [0, 1), got {self.dropout}"),
            (
                all(0.0 <= d < 1.0 for d in self.grid_dropout),
                f"--grid-dropout values must be in [0, 1), got {self.grid_dropout}",
            ),
            (math.isfinite(self.lr) and self.lr > 0, f"--lr must be > 0, got {self.lr}"),
            (all(v > 0 for v in self.grid_lr), f"--grid-lr values must be > 0, got {self.grid_lr}"),
            (self.epochs >= 1, f"--epochs must be >= 1, got {self.epochs}"),
            (
                all(e >= 1 for e in self.grid_epochs),
                f"--grid-epochs values must be >= 1, got {self.grid_epochs}",
            ),
            (0 <= self.augment <= 8, f"--augment must be 0 to 8 pixels, got {self.augment}"),
            (self.batch_size >= 1, f"--batch-size must be >= 1, got {self.batch_size}"),
            (
                0.0 < self.val_fraction < 1.0,
                f"--val-fraction must be in (0, 1), got {self.val_fraction}",
            ),
            (
                self.max_train is None or self.max_train >= 20,
                f"--max-train must be >= 20, got {self.max_train}",
            ),
        ]
        require(checks)
        check_device(self.device)
        check_precision(self.precision, self.device)


@dataclass
class ClassificationResult:
    """What a run produced: its folder, metrics and the fitted net."""

    run_dir: Path
    metrics: dict[str, Any]
    net: Any = field(repr=False)
    data: ImageData = field(repr=False)


def build_module(
    model: str, n_classes: int, hidden=(256, 512, 256), dropout=0.2
) -> torch.nn.Module:
    """Return an untrained module of the named kind."""
    if model == "mlp":
        return MLP(784, tuple(hidden), n_classes, "relu", dropout)
    return LeNet5(n_classes, dropout)


def make_classifier(
    cfg: ClassificationConfig,
    n_classes: int,
    valid: tuple[np.ndarray, np.ndarray],
    progress: Progress | None = None,
    budgets: tuple[int, ...] = (),
) -> GlassClassifier:
    """Return the skorch classifier: cross-entropy, Adam, fixed validation split, best epoch."""
    device = choose_device(cfg.device)
    epochs = max((cfg.epochs, *budgets))
    schedule = []
    if cfg.lr_schedule == "cosine" and not budgets:  # budgets read off one run need a flat lr
        schedule = [("lr_schedule", LRScheduler(CosineAnnealingLR, T_max=epochs))]
    module_kwargs: dict[str, Any] = {"n_classes": n_classes, "dropout": cfg.dropout}
    module = LeNet5
    if cfg.model == "mlp":
        module = MLP
        module_kwargs = {
            "in_features": 784,
            "hidden": tuple(cfg.hidden),
            "out_features": n_classes,
            "activation": "relu",
            "dropout": cfg.dropout,
        }
    return GlassClassifier(
        module,
        **{f"module__{k}": v for k, v in module_kwargs.items()},
        criterion=torch.nn.CrossEntropyLoss,
        optimizer=torch.optim.Adam,
        lr=cfg.lr,
        max_epochs=epochs,
        batch_size=cfg.batch_size,
        classes=list(range(n_classes)),
        train_split=predefined_split(Dataset(*valid)),
        iterator_train=ShiftAugmentLoader if cfg.augment else InMemoryLoader,
        **({"iterator_train__max_shift": cfg.augment} if cfg.augment else {}),
        iterator_train__shuffle=True,
        iterator_train__device=device,
        iterator_valid=InMemoryLoader,
        iterator_valid__device=device,
        iterator_valid__batch_size=1024,  # no gradients: larger batches are simply faster
        callbacks=[
            (
                "train_acc",
                EpochScoring("accuracy", on_train=True, name="train_acc", lower_is_better=False),
            ),
            ("best", BestWeights(budgets)),
            ("diverge", StopOnDivergence()),
            ("progress", EpochProgress(progress, tick_fits=False, tick_epochs=True)),
            *schedule,
        ],
        callbacks__print_log=PrintLog(sink=lambda *_: None),
        device=device,
        random_state=cfg.seed,
        precision=cfg.precision,
    )


def _split(data: ImageData, cfg: ClassificationConfig):
    """Fixed, seeded, stratified train/validation split of the training images."""
    x, y = data.x_train, data.y_train
    if cfg.max_train is not None and cfg.max_train < len(y):
        x, _, y, _ = train_test_split(
            x, y, train_size=cfg.max_train, stratify=y, random_state=cfg.seed
        )
    counts = np.bincount(y)
    if (counts[counts > 0] < 2).any():
        raise UserError("every class needs at least 2 training images for a stratified split")
    return train_test_split(
        to_inputs(x), y, test_size=cfg.val_fraction, stratify=y, random_state=cfg.seed
    )


def run_classification(
    cfg: ClassificationConfig, out: str | Path | None = None, progress: Progress | None = None
) -> ClassificationResult:
    """Train (or grid-search) a classifier, test once with the best weights, write a run folder."""
    progress = progress or Progress()
    cfg.validate()
    data = load_images(cfg.data_dir, cfg.class_names, seed=cfg.seed)
    if data.x_train.shape[1:] != (28, 28):
        raise UserError(f"{data.source}: images are {data.x_train.shape[1:]}; expected 28x28")
    n_classes = len(data.classes)
    out = Path(out) if out is not None else default_run_dir(cfg.model)
    t0 = time.perf_counter()
    with RunWriter(out) as run:
        seed_everything(cfg.seed)
        x_tr, x_val, y_tr, y_val = _split(data, cfg)
        grid_rows: list[dict[str, Any]] = []
        try:
            if cfg.search == "grid":
                net, best, grid_rows = _grid(cfg, n_classes, (x_tr, y_tr), (x_val, y_val), progress)
            else:
                net = make_classifier(cfg, n_classes, (x_val, y_val), progress)
                progress.start(cfg.epochs, f"training {cfg.model}")
                net.fit(x_tr, y_tr)
                best = {"lr": cfg.lr, "dropout": cfg.dropout, "epochs": cfg.epochs}
        except DivergedError as e:
            raise UserError(f"training diverged ({e}); lower --lr") from None
        finally:
            progress.close()
        cb = dict(net.callbacks_)["best"]
        t_train = time.perf_counter() - t0

        # The test set is used here, once, with the weights chosen on the validation split.
        x_te = to_inputs(data.x_test)
        proba = net.predict_proba(x_te)
        pred = proba.argmax(1)
        labels = list(range(n_classes))
        cm = confusion_matrix(data.y_test, pred, labels=labels)
        prec, rec, f1, support = precision_recall_fscore_support(
            data.y_test, pred, labels=labels, zero_division=0
        )
        metrics: dict[str, Any] = {
            "model": cfg.model,
            "test_accuracy": float((pred == data.y_test).mean()),
            "val_accuracy": float(cb.best_key_[0]),
            "best_epoch": int(cb.best_epoch_),
            "epochs_run": len(net.history),
            "best_params": best,
            "precision": cfg.precision,  # of the fit; the test was scored in float32
            "confusion_matrix": cm,
            "per_class": {
                data.classes[i]: {
                    "precision": float(prec[i]),
                    "recall": float(rec[i]),
                    "f1": float(f1[i]),
                    "support": int(support[i]),
                }
                for i in labels
            },
            "most_confused": _most_confused(cm, data.classes),
            "data": {**data.describe(), "n_fit": len(y_tr), "n_val": len(y_val)},
            "notes": data.notes,
            "train_seconds": round(t_train, 2),
            "seconds_per_epoch": round(float(np.mean(net.history[:, "dur"])), 3),
            "device": str(net.device),
        }
        cfg_dict = asdict(cfg)
        cfg_dict.update(
            kind="classification",
            n_classes=n_classes,
            classes=data.classes,
            input_mean=MNIST_MEAN,
            input_std=MNIST_STD,
        )
        run.json("config.json", cfg_dict)
        run.json(
            "history.json",
            [
                {
                    k: r.get(k)
                    for k in ("epoch", "train_loss", "valid_loss", "train_acc", "valid_acc", "dur")
                }
                for r in net.history
            ],
        )
        if grid_rows:
            run.csv("grid_results.csv", grid_rows)
        run.weights(net.module_)
        _figures(run, net, data, pred, cm, cb.best_epoch_)
        metrics["seconds"] = round(time.perf_counter() - t0, 2)
        run.json("metrics.json", metrics)  # written last: its presence marks a complete run
    return ClassificationResult(out, metrics, net, data)


def _grid(cfg, n_classes, train, valid, progress):
    """Grid over (lr, dropout) x epoch budgets; each pair trains once, budgets are read off it."""
    budgets = tuple(sorted(set(cfg.grid_epochs)))
    pairs = list(itertools.product(cfg.grid_lr, cfg.grid_dropout))
    progress.start(len(pairs) * budgets[-1], f"grid search ({len(pairs)} runs)")
    rows, best, best_net = [], None, None
    for lr, dropout in pairs:
        sub = replace(cfg, lr=lr, dropout=dropout, epochs=budgets[-1])
        net = make_classifier(sub, n_classes, valid, progress, budgets=budgets)
        net.fit(*train)
        snaps = dict(net.callbacks_)["best"].snapshots_
        for e in budgets:
            s = snaps[e]
            rows.append(
                {
                    "lr": lr,
                    "dropout": dropout,
                    "epochs": e,
                    "valid_acc": s["valid_acc"],
                    "valid_loss": s["valid_loss"],
                    "best_epoch": s["epoch"],
                }
            )
            key = (s["valid_acc"], -s["valid_loss"], -e)  # ties: fewer epochs
            if best is None or key > best[0]:
                best, best_net = (key, {"lr": lr, "dropout": dropout, "epochs": e}, s), net
    _, params, snap = best
    best_net.module_.load_state_dict(snap["state"])
    cb = dict(best_net.callbacks_)["best"]
    cb.best_key_, cb.best_epoch_ = (snap["valid_acc"], -snap["valid_loss"]), snap["epoch"]
    ranked = sorted(rows, key=lambda r: (-r["valid_acc"], r["valid_loss"]))
    for i, r in enumerate(ranked, 1):
        r["rank"] = i
    return best_net, params, ranked


def _most_confused(cm: np.ndarray, classes: list[str], k: int = 5) -> list[dict[str, Any]]:
    off = cm.copy()
    np.fill_diagonal(off, 0)
    order = np.argsort(off, axis=None)[::-1][:k]
    return [
        {"true": classes[i], "predicted": classes[j], "count": int(off[i, j])}
        for i, j in (np.unravel_index(o, cm.shape) for o in order)
        if off[i, j] > 0
    ]


def _figures(run, net, data: ImageData, pred, cm, best_epoch: int) -> None:
    from glassnet import plots

    h = net.history
    fig, _ = plots.plot_training_curves(
        {"train": h[:, "train_loss"], "validation": h[:, "valid_loss"]},
        {"train": h[:, "train_acc"], "validation": h[:, "valid_acc"]},
        best_epoch=best_epoch,
    )
    run.figure("curves.png", fig)
    fig, _ = plots.plot_confusion_matrix(cm, data.classes)
    run.figure("confusion_matrix.png", fig)
    fig, _ = plots.plot_confused_examples(data.x_test, data.y_test, pred, data.classes)
    run.figure("confused_examples.png", fig)
    _introspection_figures(run, net.module_, data, pred)


def _introspection_figures(run, module: torch.nn.Module, data: ImageData, pred) -> None:
    """Look inside the trained net: weights, last hidden layer, kernels, receptive fields."""
    from glassnet import introspection as insp
    from glassnet import plots

    module = copy.deepcopy(module).cpu().eval()  # a CPU copy: the net itself stays put
    n_classes = len(data.classes)
    rng = np.random.default_rng(0)
    # A fixed, class-balanced handful of test digits for the per-digit pictures.
    per_class = [rng.permutation(np.flatnonzero(data.y_test == k))[:20] for k in range(n_classes)]
    sample = np.concatenate(per_class)
    x_s = torch.from_numpy(to_inputs(data.x_test[sample]))  # (n, 1, 28, 28)
    y_s = torch.from_numpy(data.y_test[sample])

    fig, _ = plots.plot_weight_histograms(insp.layer_weights(module))
    run.figure("weight_histograms.png", fig)
    last = insp.hidden_activation_layers(module)[-1]
    acts = insp.layer_activations(module, x_s, [last])[last].numpy()
    fig, _ = plots.plot_hidden_units(acts, data.y_test[sample], data.classes, last)
    run.figure("hidden_activations.png", fig)

    if insp.conv_layers(module):
        for name, k in insp.conv_kernels(module).items():
            fig, _ = plots.plot_conv_kernels(
                k.numpy(),
                f"{name} kernels {tuple(k.shape[2:])}: "
                f"{k.shape[0]} outputs x {k.shape[1]} inputs (red +, blue -)",
            )
            run.figure(f"{name}_kernels.png", fig)
        first = x_s[0]
        maps = {k: v.numpy() for k, v in insp.feature_maps(module, first).items()}
        fig, _ = plots.plot_feature_maps(data.x_test[sample[0]], maps)
        run.figure("feature_maps.png", fig)
        # Receptive fields as the study drew them: saliency of the predicted class, for real
        # digits and an all-white image; then Integrated Gradients and SmoothGrad (Captum).
        show = np.array([p[0] for p in per_class[: min(8, n_classes)]])
        ones = np.full((1, 28, 28), 255, np.uint8)
        images = np.concatenate([data.x_test[show], ones])
        x = torch.from_numpy(to_inputs(images))
        with torch.no_grad():
            predicted = module(x).argmax(1)
        rows = {
            "input gradient": insp.InputGradient(module).attribute(x, predicted).numpy(),
            "Integrated\nGradients": insp.IntegratedGradients(module)
            .attribute(
                x, predicted, baselines=float(to_inputs(np.zeros((1, 28, 28), np.uint8)).min())
            )
            .numpy(),
            "SmoothGrad": insp.SmoothGrad(module).attribute(x, predicted).numpy(),
        }
        titles = [f"true {data.classes[data.y_test[i]]}" for i in show] + ["all-ones image"]
        titles = [f"{t}\npred {data.classes[int(c)]}" for t, c in zip(titles, predicted)]
        fig, _ = plots.plot_saliency_grid(images, rows, titles)
        run.figure("saliency.png", fig)
    else:
        prod = insp.weight_product(module).numpy()  # (classes, 784)
        fig, _ = plots.plot_class_maps(
            prod,
            data.classes,
            "Receptive fields as the study computed them: the product of "
            "the weight matrices (biases and ReLUs ignored)",
        )
        run.figure("receptive_fields.png", fig)
        means = insp.ClassMeanGradient(module).class_means(x_s, y_s, n_classes).numpy()
        fig, _ = plots.plot_class_maps(
            means,
            data.classes,
            "Activation-aware receptive fields: input gradient of each "
            "class score, averaged over test digits of that class",
        )
        run.figure("class_gradients.png", fig)


def load_classifier(run_dir: str | Path) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Rebuild the module of a finished classification run; return it (eval mode) and its config."""
    run_dir = Path(run_dir)
    cfg = read_json(run_dir / "config.json")
    if cfg.get("kind") != "classification":
        raise UserError(f"{run_dir}: not a classification run (kind {cfg.get('kind')!r})")
    module = build_module(cfg["model"], cfg["n_classes"], cfg["hidden"], cfg["dropout"])
    module.load_state_dict(load_state_dict(run_dir / "weights.pt"))
    return module.eval(), cfg
