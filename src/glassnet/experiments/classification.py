"""The study's MNIST classifiers: the dense net and LeNet-5, and the dense net's grid search.

Orchestration only: the configuration and nets come from ``glassnet.estimators``, the scores
from ``glassnet.metrics``, the pictures from ``glassnet.plots``, loading from ``glassnet.runs``.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.model_selection import train_test_split

from glassnet.data.images import ImageData, load_images
from glassnet.errors import DivergedError, UserError
from glassnet.estimators.classification import ClassificationConfig, make_classifier
from glassnet.metrics import classification_scores
from glassnet.preprocessing import to_inputs
from glassnet.progress import Progress
from glassnet.results import ClassificationMetrics, DataSummary
from glassnet.rng import seeded
from glassnet.runs import RunWriter, default_run_dir

__all__ = ["ClassificationResult", "run_classification"]

_HISTORY_KEYS = ("epoch", "train_loss", "valid_loss", "train_acc", "valid_acc", "dur")


@dataclass
class ClassificationResult:
    """What a run produced: its folder, metrics and the fitted net."""

    run_dir: Path
    metrics: ClassificationMetrics
    net: Any = field(repr=False)
    data: ImageData = field(repr=False)


def run_classification(
    cfg: ClassificationConfig, out: str | Path | None = None, progress: Progress | None = None
) -> ClassificationResult:
    """Train (or grid-search) a classifier, test once with the best weights, write a run folder."""
    from glassnet.plots.classification_run import classification_figures

    progress = progress or Progress()
    cfg.validate()
    data = load_images(cfg.data_dir, cfg.class_names, seed=cfg.seed)
    if data.x_train.shape[1:] != (28, 28):
        raise UserError(f"{data.source}: images are {data.x_train.shape[1:]}; expected 28x28")
    out = Path(out) if out is not None else default_run_dir(cfg.model)
    t0 = time.perf_counter()
    with RunWriter(out) as run, seeded(cfg.seed):  # the caller's generators untouched
        x_tr, x_val, y_tr, y_val = _split(data, cfg)
        net, best, grid_rows = _fit(cfg, len(data.classes), (x_tr, y_tr), (x_val, y_val), progress)
        t_train = time.perf_counter() - t0
        # The test set is used here, once, with the weights chosen on the validation split.
        pred = net.predict_proba(to_inputs(data.x_test, *data.input_scale())).argmax(1)
        metrics = _metrics(cfg, net, best, data, pred, (len(y_tr), len(y_val)), t_train)
        run.json("config.json", _saved_config(cfg, data))
        run.json("history.json", [{k: r.get(k) for k in _HISTORY_KEYS} for r in net.history])
        if grid_rows:
            run.csv("grid_results.csv", grid_rows)
        run.weights(net.module_)
        best_epoch = dict(net.callbacks_)["best"].best_epoch_
        classification_figures(run.figure, net, data, pred, metrics.confusion_matrix, best_epoch)
        metrics.seconds = round(time.perf_counter() - t0, 2)
        run.json("metrics.json", metrics.to_json())  # last: its presence marks a complete run
    return ClassificationResult(out, metrics, net, data)


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


def _fit(cfg: ClassificationConfig, n_classes: int, train, valid, progress: Progress):
    """The fitted net, the parameters it was chosen with, and the grid's rows (if any)."""
    try:
        if cfg.search == "grid":
            return _grid(cfg, n_classes, train, valid, progress)
        net = make_classifier(cfg, n_classes, len(train[1]), valid, progress)
        progress.start(cfg.epochs, f"training {cfg.model}")
        net.fit(*train)
        return net, {"lr": cfg.lr, "dropout": cfg.dropout, "epochs": cfg.epochs}, []
    except DivergedError as e:
        raise UserError(f"training diverged ({e}); lower --lr") from None
    finally:
        progress.close()


def _metrics(
    cfg, net, best: dict, data: ImageData, pred, sizes, t_train: float
) -> ClassificationMetrics:
    cb = dict(net.callbacks_)["best"]
    scores = classification_scores(data.y_test, pred, data.classes)
    return ClassificationMetrics(
        model=cfg.model,
        data=DataSummary(**data.describe(), n_fit=sizes[0], n_val=sizes[1]),
        val_accuracy=float(cb.best_key_[0]),
        best_epoch=int(cb.best_epoch_),
        epochs_run=len(net.history),
        best_params=best,
        preset=cfg.preset,
        precision=cfg.precision,
        notes=list(data.notes),
        train_seconds=round(t_train, 2),
        seconds_per_epoch=round(float(np.mean(net.history[:, "dur"])), 3),
        device=str(net.device),
        **scores,
    )


def _saved_config(cfg: ClassificationConfig, data: ImageData) -> dict[str, Any]:
    """config.json: every setting that applied, and what loading the weights needs."""
    mean, std = data.input_scale()
    return {
        **asdict(cfg),
        "kind": "classification",
        "n_classes": len(data.classes),
        "classes": data.classes,
        "input_mean": mean,
        "input_std": std,
    }


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
