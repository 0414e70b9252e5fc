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
from skorch.history import History

from glassnet.checkpoints import resume_fit
from glassnet.data.images import ImageData, load_images
from glassnet.errors import DivergedError, UserError
from glassnet.estimators.classification import ClassificationConfig, make_classifier
from glassnet.metrics import classification_scores
from glassnet.preprocessing import to_inputs
from glassnet.progress import Progress
from glassnet.results import ClassificationMetrics, DataSummary
from glassnet.rng import seeded
from glassnet.runs import RunWriter, default_run_dir, read_json, to_jsonable

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
    from glassnet.plots.classification_run import classification_figures

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
        run.json("config.json", config)  # first: the partial folder can be resumed from here
        x_tr, x_val, y_tr, y_val = _split(data, cfg)
        train, valid = (x_tr, y_tr), (x_val, y_val)
        net, best, grid_rows = _fit(cfg, len(data.classes), train, valid, progress, run, state)
        t_train = time.perf_counter() - t0
        # The test set is used here, once, with the weights chosen on the validation split.
        pred = net.predict_proba(to_inputs(data.x_test, *data.input_scale())).argmax(1)
        metrics = _metrics(cfg, net, best, data, pred, (len(y_tr), len(y_val)), t_train)
        run.json("history.json", [{k: r.get(k) for k in _HISTORY_KEYS} for r in net.history])
        if grid_rows:
            run.csv("grid_results.csv" if cfg.search == "grid" else "trials.csv", grid_rows)
        run.weights(net.module_)
        best_epoch = dict(net.callbacks_)["best"].best_epoch_
        classification_figures(run.figure, net, data, pred, metrics.confusion_matrix, best_epoch)
        metrics.seconds = round(time.perf_counter() - t0, 2)
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


def _fit(cfg: ClassificationConfig, n_classes: int, train, valid, progress: Progress, run, state):
    """The fitted net, the parameters it was chosen with, and the grid's rows (if any).
    Checkpoints go to ``run``; ``state`` is the checkpoint to continue from (or None)."""
    try:
        if cfg.search == "grid":
            return _grid(cfg, n_classes, train, valid, progress, run, state)
        if cfg.search == "tpe":
            return _tpe(cfg, n_classes, train, valid, progress, run, state is not None)

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


def _grid(cfg, n_classes, train, valid, progress, run, state):
    """Grid over (lr, dropout) x epoch budgets; each pair trains once, budgets are read off it.

    Resumable per pair: finished pairs are recorded in the checkpoint and not trained again,
    and the pair in progress continues from its last epoch.
    """
    budgets = tuple(sorted(set(cfg.grid_epochs)))
    pairs = list(itertools.product(cfg.grid_lr, cfg.grid_dropout))
    done = {"pair": 0, "rows": [], "best": None}  # what the checkpoint records of the grid
    if state is not None:
        done = state["grid"]
    progress.start(len(pairs) * budgets[-1], f"grid search ({len(pairs)} runs)")
    progress.advance(done["pair"] * budgets[-1])
    for i in range(done["pair"], len(pairs)):
        lr, dropout = pairs[i]
        sub = replace(cfg, lr=lr, dropout=dropout, epochs=budgets[-1])

        def save(net_state: dict[str, Any], grid: dict[str, Any] = done) -> None:
            run.checkpoint({"net": net_state, "grid": grid})  # grid: the pairs before this

        logs = run.file(f"tensorboard/lr={lr:g},dropout={dropout:g}")
        net = make_classifier(sub, n_classes, len(train[1]), valid, progress, budgets, save, logs)
        if state is not None and state.get("net") is not None and i == done["pair"]:
            progress.advance(len(state["net"]["history"]))
            resume_fit(net, *train, state["net"])
        else:
            net.fit(*train)
        snaps = dict(net.callbacks_)["best"].snapshots_
        for e in budgets:
            s = snaps[e]
            row = {"lr": lr, "dropout": dropout, "epochs": e, "valid_acc": s["valid_acc"],
                   "valid_loss": s["valid_loss"], "best_epoch": s["epoch"]}  # fmt: skip
            done["rows"].append(row)
            key = [s["valid_acc"], -s["valid_loss"], -e]  # ties: fewer epochs
            if done["best"] is None or key > done["best"]["key"]:
                history = [dict(r) for r in net.history]
                params = {"lr": lr, "dropout": dropout, "epochs": e}
                done["best"] = {"key": key, "params": params, "snap": s, "history": history}
        done = {**done, "pair": i + 1}
        run.checkpoint({"net": None, "grid": done})
    best = done["best"]
    ranked = sorted(done["rows"], key=lambda r: (-r["valid_acc"], r["valid_loss"]))
    for i, r in enumerate(ranked, 1):
        r["rank"] = i
    return _best_net(cfg, n_classes, len(train[1]), valid, best), best["params"], ranked


def _best_net(cfg, n_classes: int, n_train: int, valid, best: dict[str, Any]):
    """The grid's winner rebuilt from what the checkpoint keeps of it: its chosen weights,
    its history (for the curves) and its best epoch."""
    sub = replace(cfg, **best["params"])
    net = make_classifier(sub, n_classes, n_train, valid).initialize()
    snap = best["snap"]
    net.module_.load_state_dict(snap["state"])
    net.history = History(best["history"])
    cb = dict(net.callbacks_)["best"]
    cb.best_key_, cb.best_epoch_ = (snap["valid_acc"], -snap["valid_loss"]), snap["epoch"]
    return net


def _tpe_space(cfg: ClassificationConfig) -> dict[str, tuple]:
    """--search tpe: Adam's peak rate and dropout around the preset's, the batch size, and the
    epochs (up to the preset's; the cosine schedule spans whatever a trial is given)."""
    return {
        "lr": ("float", cfg.lr / 10, min(cfg.lr * 3, 0.1), True),
        "dropout": ("float", 0.0, 0.5, False),
        "batch_size": ("categorical", (64, 128, 256)),
        "epochs": ("int", max(1, cfg.epochs // 4), cfg.epochs, False),
    }


def _tpe(cfg, n_classes, train, valid, progress, run, resumed: bool):
    """Optuna proposes (lr, dropout, batch size, epochs); each trial trains one net, reports
    its validation accuracy every epoch, and the pruner stops the hopeless. The study (the
    run's optuna.db unless --storage) is the record: a resumed run keeps its finished trials.
    The best trial's net is kept in memory; one trained elsewhere (another worker, an earlier
    process, --n-trials 0) is trained again from its parameters."""
    import optuna

    from glassnet.search.studies import (
        ReportToTrial,
        make_pruner,
        open_study,
        optuna_space,
        stale_trials_failed,
    )

    space = _tpe_space(cfg)
    sampler = optuna.samplers.TPESampler(seed=cfg.seed, n_startup_trials=4)
    pruner = make_pruner(cfg.pruner, 1, cfg.epochs, 4)
    storage = cfg.storage or f"sqlite:///{run.file('optuna.db')}"
    name = cfg.study_name or f"glassnet-classify-{cfg.model}"
    study = open_study(storage, name, "maximize", space, sampler, pruner)
    n_trials = cfg.n_trials
    if resumed and cfg.storage is None:  # our own study: its finished trials are this run's
        stale_trials_failed(study)
        n_trials -= sum(t.state.name in ("COMPLETE", "PRUNED") for t in study.trials)
    dists, nets, pruned = optuna_space(space), {}, 0
    progress.start(max(n_trials, 0), f"TPE search: {cfg.n_trials} trials")
    for _ in range(max(n_trials, 0)):
        trial = study.ask(dists)
        sub = replace(cfg, **trial.params)
        report = (("optuna", ReportToTrial(trial)),)
        net = make_classifier(sub, n_classes, len(train[1]), valid, None, (), None,
                              run.file(f"tensorboard/trial-{trial.number}"), report)  # fmt: skip
        try:
            net.fit(*train)
        except optuna.TrialPruned:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            pruned += 1
        else:
            best = float(dict(net.callbacks_)["best"].best_key_[0])
            study.tell(trial, best)
            nets[trial.number] = net
        progress.advance()
        progress.note(f"best val acc {_best_value(study):.4f}, {pruned} pruned")
    progress.close()
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    if not done:
        raise UserError(f"the study {name!r} has no finished trial; run some with --n-trials")
    best = max(done, key=lambda t: (t.value, -t.number))
    params = {**best.params}
    net = nets.get(best.number)
    if net is None:  # trained by another process: train it again here
        net = make_classifier(replace(cfg, **params), n_classes, len(train[1]), valid, progress)
        progress.start(params["epochs"], f"training trial {best.number}'s settings")
        net.fit(*train)
        progress.close()
    rows = [{"trial": t.number, "state": t.state.name.lower(), **t.params,
             "valid_acc": t.value if t.state.name == "COMPLETE" else None,
             "epochs_run": max(t.intermediate_values, default=0)} for t in study.trials
            if t.state.name in ("COMPLETE", "PRUNED")]  # fmt: skip
    return net, params, rows


def _best_value(study) -> float:
    done = [t.value for t in study.trials if t.state.name == "COMPLETE"]
    return max(done) if done else float("nan")
