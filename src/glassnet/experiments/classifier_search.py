"""Searches over classifiers: the study's grid (lr x dropout x epoch budgets, each pair trained
once) and Optuna's TPE with pruning by validation accuracy. Both resume: the grid per pair from
the run's checkpoint, TPE from its study."""

from __future__ import annotations

import itertools
import time
from dataclasses import replace
from typing import Any

from optuna.trial import TrialState
from skorch.history import History

from glassnet.checkpoints import resume_fit
from glassnet.errors import DivergedError, NoModelError
from glassnet.estimators.classification import ClassificationConfig, make_classifier
from glassnet.training import best_of

__all__ = ["grid_search", "tpe_search", "tpe_space"]


def grid_search(cfg, n_classes, train, valid, progress, run, state):
    """Grid over (lr, dropout) x epoch budgets; each pair trains once, budgets are read off it.

    Resumable per pair: finished pairs are recorded in the checkpoint and not trained again,
    and the pair in progress continues from its last epoch.
    """
    budgets = tuple(sorted(set(cfg.grid_epochs)))
    pairs = list(itertools.product(cfg.grid_lr, cfg.grid_dropout))
    t0 = time.perf_counter()  # a resumed grid times its own pairs from its own start
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
        snaps = best_of(net).snapshots_
        for e in budgets:
            s = snaps[e]
            row = {"lr": lr, "dropout": dropout, "epochs": e, "valid_acc": s["valid_acc"],
                   "valid_loss": s["valid_loss"], "best_epoch": s["epoch"],
                   "seconds": round(time.perf_counter() - t0, 2)}  # fmt: skip
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
    cb = best_of(net)
    cb.best_key_, cb.best_epoch_ = (snap["valid_acc"], -snap["valid_loss"]), snap["epoch"]
    return net


def tpe_space(cfg: ClassificationConfig) -> dict[str, tuple]:
    """--search tpe: Adam's peak rate and dropout around the preset's, the batch size, and the
    epochs (up to the preset's; the cosine schedule spans whatever a trial is given)."""
    return {
        "lr": ("float", cfg.lr / 10, min(cfg.lr * 3, 0.1), True),
        "dropout": ("float", 0.0, 0.5, False),
        "batch_size": ("categorical", (64, 128, 256)),
        "epochs": ("int", max(1, cfg.epochs // 4), cfg.epochs, False),
    }


def tpe_search(cfg, n_classes, train, valid, progress, run, resumed: bool):
    """Optuna proposes (lr, dropout, batch size, epochs); each trial trains one net, reports
    its validation accuracy every epoch, and the pruner stops the hopeless. The study (the
    run's optuna.log unless --storage) is the record: a resumed run keeps its finished trials.
    The best trial's net is kept in memory; one trained elsewhere (another worker, an earlier
    process, --n-trials 0) is trained again from its parameters."""
    import optuna

    from glassnet.search.storage import run_study, storage_faults
    from glassnet.search.studies import make_pruner, open_study

    space = tpe_space(cfg)
    sampler = optuna.samplers.TPESampler(seed=cfg.seed, n_startup_trials=4)
    pruner = make_pruner(cfg.pruner, 1, cfg.epochs, 4)
    storage = cfg.storage or run_study(run.file)
    name = cfg.study_name or f"glassnet-classify-{cfg.model}"
    study = open_study(storage, name, "maximize", space, sampler, pruner)
    with storage_faults(storage):
        return _tpe_trials(cfg, n_classes, train, valid, progress, run, resumed, study, space)


def _tpe_trials(cfg, n_classes, train, valid, progress, run, resumed, study, space):
    """tpe_search's trials and its best net, with the study open."""
    import optuna

    from glassnet.search.storage import ask, fail_stale, heartbeats
    from glassnet.search.studies import RUN_TAG, ReportToTrial, optuna_space, trials_left

    n_trials, name = cfg.n_trials, study.study_name
    if resumed:  # the study is the record: its finished trials of this run are kept
        n_trials = trials_left(study, n_trials, None if cfg.storage is None else run.run_id)
    dists, nets, pruned = optuna_space(space), {}, 0
    progress.start(n_trials, f"TPE search: {cfg.n_trials} trials")
    for _ in range(n_trials):
        fail_stale(study)  # a dead worker's trials: failed, and asked again here
        trial = ask(study, dists)
        sub = replace(cfg, **trial.params)
        report = (("optuna", ReportToTrial(trial)),)
        net = make_classifier(sub, n_classes, len(train[1]), valid, None, (), None,
                              run.file(f"tensorboard/trial-{trial.number}"), report)  # fmt: skip
        try:
            with heartbeats(study, [trial]):
                trial.set_user_attr(RUN_TAG, run.run_id)
                net.fit(*train)
        except optuna.TrialPruned:
            study.tell(trial, state=TrialState.PRUNED)
            pruned += 1
        except DivergedError:  # told as failed, and the search goes on
            study.tell(trial, state=TrialState.FAIL)
        else:
            best = float(best_of(net).best_key_[0])
            study.tell(trial, best)
            nets[trial.number] = net
        progress.advance()
        progress.note(f"best val acc {_best_value(study):.4f}, {pruned} pruned")
    progress.close()
    done = [t for t in study.trials if t.state == TrialState.COMPLETE]
    if not done:
        raise NoModelError(f"study {name!r} has no finished trial (every one diverged or was "
                           "pruned, or none was run)")  # fmt: skip
    best = max(done, key=lambda t: (t.value, -t.number))
    params = {**best.params}
    net = nets.get(best.number)
    if net is None:  # trained by another process: train it again here
        net = make_classifier(replace(cfg, **params), n_classes, len(train[1]), valid, progress)
        progress.start(params["epochs"], f"training trial {best.number}'s settings")
        net.fit(*train)
        progress.close()
    return net, params, _trial_rows(study)


def _trial_rows(study) -> list[dict]:
    """trials.csv: every finished trial, best first: its validation accuracy (a pruned trial's
    best before it was stopped), the epochs it ran and when it ended (seconds after the first
    trial began)."""
    trials = [t for t in study.trials if t.state.is_finished()]
    t0 = min((t.datetime_start for t in trials if t.datetime_start), default=None)
    rows = []
    for t in trials:
        reached = max(t.intermediate_values.values(), default=None)
        ended = t.datetime_complete
        rows.append({
            "trial": t.number, "state": t.state.name.lower(), **t.params,
            "valid_acc": t.value if t.state == TrialState.COMPLETE else reached,
            "epochs_run": max(t.intermediate_values, default=0),
            "seconds": round((ended - t0).total_seconds(), 2) if ended and t0 else None,
        })  # fmt: skip
    # best first, as the grid's table (a pruned trial ranks by what it reached; failed last)
    return sorted(rows, key=lambda r: (r["valid_acc"] is None, -(r["valid_acc"] or 0)))


def _best_value(study) -> float:
    done = [t.value for t in study.trials if t.state == TrialState.COMPLETE]
    return max(done) if done else float("nan")
