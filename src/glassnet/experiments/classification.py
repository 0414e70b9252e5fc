"""The study's MNIST classifiers: the dense net and LeNet-5, trained once or searched
(``experiments.classifier_search``: the study's grid, Optuna's TPE).

Orchestration only: the configuration and nets come from ``glassnet.estimators``, the scores
from ``glassnet.metrics``, the pictures from ``glassnet.plots``, loading from ``glassnet.runs``.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.model_selection import train_test_split

from glassnet.checkpoints import resume_fit
from glassnet.data.images import ImageData, load_images
from glassnet.errors import DivergedError, UserError
from glassnet.estimators.classification import ClassificationConfig, make_classifier
from glassnet.events import write_hparams
from glassnet.experiments.classifier_search import grid_search, tpe_search, tpe_space
from glassnet.metrics import classification_scores
from glassnet.preprocessing import to_inputs
from glassnet.progress import Progress
from glassnet.redact import public_settings
from glassnet.results import ClassificationMetrics, DataSummary
from glassnet.rng import seeded
from glassnet.runs import RunWriter, default_run_dir, read_json, to_jsonable
from glassnet.training import best_of

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
    cfg: ClassificationConfig,
    out: str | Path | None = None,
    progress: Progress | None = None,
    resume: bool = False,
) -> ClassificationResult:
    """Train (or grid-search) a classifier, test once with the best weights, write a run folder.

    Every epoch leaves a checkpoint in the partial folder; ``resume=True`` continues the
    interrupted run bound for ``out`` from its last one and ends as the uninterrupted run would.
    """
    progress = progress or Progress()
    cfg.validate()
    data = load_images(cfg.data_dir, cfg.class_names, seed=cfg.seed)
    if data.x_train.shape[1:] != (28, 28):
        raise UserError(f"{data.source}: images are {data.x_train.shape[1:]}; expected 28x28")
    out = Path(out) if out is not None else default_run_dir(cfg.model)
    t0 = time.perf_counter()
    with RunWriter(out, resume=resume) as run, seeded(cfg.seed):  # caller's generators untouched
        config = _saved_config(cfg, data)
        state = _resume_state(run, config) if resume else None
        run.settings(config)  # first: the partial folder can be resumed from here
        x_tr, x_val, y_tr, y_val = _split(data, cfg)
        train, valid = (x_tr, y_tr), (x_val, y_val)
        fitted = _fit(cfg, len(data.classes), train, valid, progress, run, state, resume)
        net, best, grid_rows = fitted
        t_train = time.perf_counter() - t0
        # The test set is used here, once, with the weights chosen on the validation split.
        pred = net.predict_proba(to_inputs(data.x_test, *data.input_scale())).argmax(1)
        metrics = _metrics(cfg, net, best, data, pred, (len(y_tr), len(y_val)), t_train)
        run.json("history.json", [{k: r.get(k) for k in _HISTORY_KEYS} for r in net.history])
        if grid_rows:  # the table without the times: the same run writes the same file
            table = [{k: v for k, v in r.items() if k != "seconds"} for r in grid_rows]
            run.csv("grid_results.csv" if cfg.search == "grid" else "trials.csv", table)
        run.weights(net.module_)
        best_epoch = best_of(net).best_epoch_
        if cfg.figures:
            from glassnet.plots.classification_run import classification_figures

            classification_figures(run.figure, net, data, pred, metrics.confusion_matrix,
                                   best_epoch)  # fmt: skip
            if grid_rows:
                _search_figures(run, cfg, grid_rows)
        metrics.seconds = round(time.perf_counter() - t0, 2)
        write_hparams(run.file("tensorboard"), config, metrics.to_json())
        run.json("metrics.json", metrics.to_json())  # last: its presence marks a complete run
    return ClassificationResult(out, metrics, net, data)


def _resume_state(run: RunWriter, config: dict[str, Any]) -> dict[str, Any] | None:
    """The interrupted run's last checkpoint, once its data is checked to be the same."""
    before = read_json(run.file("config.json"))
    for key in ("classes", "input_mean", "input_std"):
        if before.get(key) != to_jsonable(config[key]):
            raise UserError(
                f"{run.final}: the data differs from the interrupted run's ({key} changed); "
                "it cannot be resumed on this data"
            )
    return run.load_checkpoint()


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


def _fit(cfg: ClassificationConfig, n_classes: int, train, valid, progress: Progress, run, state,
         resume: bool):  # fmt: skip
    """The fitted net, the parameters it was chosen with, and the grid's rows (if any).
    Checkpoints go to ``run``; ``state`` is the checkpoint to continue from (or None)."""
    try:
        if cfg.search == "grid":
            return grid_search(cfg, n_classes, train, valid, progress, run, state)
        if cfg.search == "tpe":
            return tpe_search(cfg, n_classes, train, valid, progress, run, resume)

        def save(net_state: dict[str, Any]) -> None:
            run.checkpoint({"net": net_state})

        logs = run.file("tensorboard")
        net = make_classifier(cfg, n_classes, len(train[1]), valid, progress, (), save, logs)
        progress.start(cfg.epochs, f"training {cfg.model}")
        if state is not None and state.get("net") is not None:
            progress.advance(len(state["net"]["history"]))
            resume_fit(net, *train, state["net"])
        else:
            net.fit(*train)
        return net, {"lr": cfg.lr, "dropout": cfg.dropout, "epochs": cfg.epochs}, []
    except DivergedError as e:
        raise UserError(f"training diverged ({e}); lower `lr`") from None
    finally:
        progress.close()


def _search_figures(run: RunWriter, cfg: ClassificationConfig, rows: list[dict]) -> None:
    """The grid's or the study's trials, drawn as every search is (``plots.search``)."""
    from glassnet.plots.search import search_figures
    from glassnet.search.studies import optuna_space
    from glassnet.search.trials import as_study, records_from_rows

    ordered = sorted(rows, key=lambda r: (r.get("trial", 0), r.get("seconds") or 0))
    names = ["lr", "dropout", "epochs"] + (["batch_size"] if cfg.search == "tpe" else [])
    records = records_from_rows(ordered, "valid_acc", names, "seconds")
    space = optuna_space(tpe_space(cfg)) if cfg.search == "tpe" else None
    search_figures(run.figure, as_study(records, "maximize", space), "validation accuracy")


def _metrics(
    cfg, net, best: dict, data: ImageData, pred, sizes, t_train: float
) -> ClassificationMetrics:
    cb = best_of(net)
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
    """config.json: every setting that applied, and what loading the weights needs (the storage
    URL without its password)."""
    mean, std = data.input_scale()
    return {
        **public_settings(asdict(cfg)),
        "kind": "classification",
        "n_classes": len(data.classes),
        "classes": data.classes,
        "input_mean": mean,
        "input_std": std,
    }
