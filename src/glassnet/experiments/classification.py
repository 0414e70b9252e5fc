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
from torch.optim.lr_scheduler import LambdaLR

from glassnet.data.images import ImageData, load_images
from glassnet.errors import DivergedError, UserError, require
from glassnet.models import MLP, LeNet5
from glassnet.preprocessing import to_inputs
from glassnet.progress import Progress
from glassnet.runs import RunWriter, default_run_dir, load_state_dict, read_json
from glassnet.training import (
    AugmentLoader,
    BestWeights,
    EpochProgress,
    GlassClassifier,
    InMemoryLoader,
    StopOnDivergence,
    WarmupCosine,
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
    "PRESETS",
]

MODELS = ("mlp", "lenet5")

# The settings in which the models and presets differ: the one place the CLI, `reproduce` and
# the Python API take them from (a field given explicitly wins). "default" learns fast: a good
# model after a few epochs, from a high peak learning rate, a short warm-up, a cosine, and
# validation of the weights' moving average. "best" trains longer on moved digits (shifted,
# rotated, zoomed) for the last tenths of a percent, in under 10 minutes on two cores.
# Chosen on the validation split of seed 100, never on the test set (benchmarks/RESULTS.md).
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "mlp": {
        "default": {"lr": 2e-3, "dropout": 0.1, "epochs": 10},
        "best": {
            "lr": 2e-3,
            "dropout": 0.1,
            "epochs": 60,
            "augment": 2,
            "rotate": 10.0,
            "zoom": 0.1,
        },
    },
    "lenet5": {
        "default": {"lr": 1.2e-2, "dropout": 0.1, "epochs": 10},
        "best": {
            "lr": 1.2e-2,
            "dropout": 0.1,
            "epochs": 60,
            "augment": 2,
            "rotate": 10.0,
            "zoom": 0.1,
        },
    },
}
# What every model and preset shares, unless the preset says otherwise.
COMMON = {"batch_size": 128, "augment": 0, "rotate": 0.0, "zoom": 0.0, "average": 0.99}


@dataclass
class ClassificationConfig:
    """Everything a classification run depends on; stored as config.json in the run folder.

    Fields marked (preset) left as None take the value of ``PRESETS[model][preset]`` (or
    ``COMMON``), so ``ClassificationConfig(model="lenet5")`` is LeNet-5 with its defaults, and
    config.json always records the values that applied.
    """

    model: str = "mlp"  # mlp (784-256-512-256-10) | lenet5
    preset: str = "default"  # default (learns fast) | best (longer, augmented)
    data_dir: str | None = None  # IDX folder (default: $GLASSNET_DATA, cache, embedded sample)
    class_names: tuple[str, ...] | None = None  # default: classes.txt beside the data, or 0..n-1
    hidden: tuple[int, ...] = (256, 512, 256)  # mlp only: the study's widths
    dropout: float | None = None  # (preset) after each hidden layer (mlp) / dense layer (lenet5)
    lr: float | None = None  # (preset) Adam's peak learning rate
    epochs: int | None = None  # (preset)
    augment: int | None = None  # (preset) shift training images by up to this many pixels
    rotate: float | None = None  # (preset) ... and rotate them by up to this many degrees
    zoom: float | None = None  # (preset) ... and scale them by 1 +- this fraction
    lr_schedule: str = "cosine"  # cosine (warm-up, then to 0 over the run) | none; grid uses none
    warmup: float = 0.03  # fraction of the steps spent warming the learning rate up
    average: float | None = None  # (preset) decay of the weights' moving average; 0: off
    batch_size: int | None = None  # (preset) many steps per epoch, yet whole cores busy
    precision: str = "float32"  # float32 | bfloat16 (training arithmetic; needs native bf16)
    val_fraction: float = 0.2  # the study's fixed, stratified 80/20 train/validation split
    search: str = "none"  # none | grid (grid: mlp only)
    grid_lr: tuple[float, ...] = (1e-3, 3e-4)
    grid_dropout: tuple[float, ...] = (0.1, 0.3)
    grid_epochs: tuple[int, ...] = (10, 20, 30)  # read off one run per (lr, dropout)
    max_train: int | None = None  # use only this many training images (quick runs)
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        preset = {**COMMON, **PRESETS.get(self.model, {}).get(self.preset, {})}
        for name, value in preset.items():
            if getattr(self, name) is None:
                setattr(self, name, value)

    def validate(self) -> None:
        """Raise UserError naming the first option outside its valid range."""
        require(
            [
                (self.model in MODELS, f"--model must be one of {', '.join(MODELS)}"),
                (
                    self.preset in PRESETS["mlp"],
                    f"--preset must be one of {', '.join(PRESETS['mlp'])}, got {self.preset}",
                ),
            ]
        )
        checks = [
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
            (0 <= self.rotate <= 45, f"--rotate must be 0 to 45 degrees, got {self.rotate}"),
            (0 <= self.zoom < 0.5, f"--zoom must be in [0, 0.5), got {self.zoom}"),
            (0 <= self.warmup < 1, f"--warmup must be in [0, 1), got {self.warmup}"),
            (0 <= self.average < 1, f"--average must be in [0, 1), got {self.average}"),
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


def module_class(model: str) -> type[torch.nn.Module]:
    """The module class of a model name."""
    return MLP if model == "mlp" else LeNet5


def module_kwargs(cfg: ClassificationConfig | dict[str, Any], n_classes: int) -> dict[str, Any]:
    """The module's constructor arguments, from a config or a run's config.json."""
    get = cfg.get if isinstance(cfg, dict) else lambda k: getattr(cfg, k)
    if get("model") == "mlp":
        return {
            "in_features": 784,
            "hidden": tuple(get("hidden")),
            "out_features": n_classes,
            "activation": "relu",
            "dropout": get("dropout"),
        }
    return {"n_classes": n_classes, "dropout": get("dropout")}


def build_module(cfg: ClassificationConfig | dict[str, Any], n_classes: int) -> torch.nn.Module:
    """An untrained module as a run builds it: the one factory for training and loading."""
    model = cfg["model"] if isinstance(cfg, dict) else cfg.model
    return module_class(model)(**module_kwargs(cfg, n_classes))


def make_classifier(
    cfg: ClassificationConfig,
    n_classes: int,
    n_train: int,
    valid: tuple[np.ndarray, np.ndarray],
    progress: Progress | None = None,
    budgets: tuple[int, ...] = (),
) -> GlassClassifier:
    """Return the skorch classifier: cross-entropy, Adam, fixed validation split, best epoch.

    ``n_train`` (the number of training images) sets the schedule's length in steps.
    """
    device = choose_device(cfg.device)
    epochs = max((cfg.epochs, *budgets))
    schedule = []
    if cfg.lr_schedule == "cosine" and not budgets:  # budgets read off one run need a flat lr
        steps = epochs * math.ceil(n_train / cfg.batch_size)
        scheduler = LRScheduler(
            LambdaLR, lr_lambda=WarmupCosine(steps, cfg.warmup), step_every="batch"
        )
        schedule = [("lr_schedule", scheduler)]
    moved = cfg.augment or cfg.rotate or cfg.zoom
    augment = {"max_shift": cfg.augment, "max_rotate": cfg.rotate, "max_zoom": cfg.zoom}
    return GlassClassifier(
        module_class(cfg.model),
        **{f"module__{k}": v for k, v in module_kwargs(cfg, n_classes).items()},
        criterion=torch.nn.CrossEntropyLoss,
        optimizer=torch.optim.Adam,
        lr=cfg.lr,
        max_epochs=epochs,
        batch_size=cfg.batch_size,
        classes=list(range(n_classes)),
        train_split=predefined_split(Dataset(*valid)),
        iterator_train=AugmentLoader if moved else InMemoryLoader,
        **({f"iterator_train__{k}": v for k, v in augment.items()} if moved else {}),
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
        average=cfg.average,
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
    x = to_inputs(x, *data.input_scale())
    return train_test_split(x, y, test_size=cfg.val_fraction, stratify=y, random_state=cfg.seed)


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
                net = make_classifier(cfg, n_classes, len(y_tr), (x_val, y_val), progress)
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
        x_te = to_inputs(data.x_test, *data.input_scale())
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
            "preset": cfg.preset,
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
            input_mean=data.input_scale()[0],
            input_std=data.input_scale()[1],
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
        net = make_classifier(sub, n_classes, len(train[1]), valid, progress, budgets=budgets)
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
    scale = data.input_scale()
    x_s = torch.from_numpy(to_inputs(data.x_test[sample], *scale))  # (n, 1, 28, 28)
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
        x = torch.from_numpy(to_inputs(images, *scale))
        with torch.no_grad():
            predicted = module(x).argmax(1)
        black = float(to_inputs(np.zeros((1, 28, 28), np.uint8), *scale).min())
        rows = {
            "input gradient": insp.InputGradient(module).attribute(x, predicted).numpy(),
            "Integrated\nGradients": insp.IntegratedGradients(module)
            .attribute(x, predicted, baselines=black)
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
    module = build_module(cfg, cfg["n_classes"])
    module.load_state_dict(load_state_dict(run_dir / "weights.pt"))
    return module.eval(), cfg
