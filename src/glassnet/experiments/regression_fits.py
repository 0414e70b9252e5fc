"""How each regression search runs and what it hands back (``Fit``): the model, the members
behind its band, its metrics, curves and trials. ``RUNNERS`` maps every registered search
(``estimators.SEARCHES``) to its runner; ``experiments.regression`` evaluates and writes."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.exceptions import FitFailedWarning

from glassnet.data.regression import RegressionData
from glassnet.errors import NoModelError
from glassnet.estimators import (
    RegressionConfig,
    make_deep_ensemble,
    make_ensemble_search,
    make_regressor,
    make_tpe_search,
)
from glassnet.progress import Progress
from glassnet.redact import mask_url
from glassnet.search.adapter import fold_models
from glassnet.search.cv import cv_rows, make_search, search_summary
from glassnet.search.spaces import regression_distributions, regression_grid
from glassnet.search.storage import run_study
from glassnet.search.tpe import trial_mse
from glassnet.search.trials import (
    TrialRecord,
    records_from_cv_results,
    records_from_study,
    space_from_sklearn,
    study_space,
)

__all__ = ["Fit", "RUNNERS"]


@dataclass
class Fit:
    """What a search (or a single fit) hands to evaluation and figures."""

    model: torch.nn.Module  # x (n, 1) -> y (n, 1) in data units
    members: Any  # RegressionEnsemble or fold models: the uncertainty band
    band_label: str
    metrics: dict[str, Any]
    curves: dict[str, list[float]]
    curve_epochs: list[int] | None = None
    cv_rows: list[dict[str, Any]] = field(default_factory=list)
    trials: list[TrialRecord] = field(default_factory=list)  # the search's candidates, in order
    side_by_side: bool = False  # they trained together (a batched search): no per-trial times
    space: dict[str, Any] | None = None  # an Optuna study's distributions (else inferred)


def _as_column(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float32).reshape(-1, 1)


def _deep_ensemble(cfg: RegressionConfig, data: RegressionData, progress: Progress, *_) -> Fit:
    """The default: nets from different seeds on all the data (Adam), averaged."""
    est = make_deep_ensemble(cfg, progress)
    est.fit(_as_column(data.x_train), data.y_train)
    metrics = {
        "best_params": {"optimizer": "adam", "lr": cfg.adam_lr, "penalty": est.penalties_,
                        "max_epochs": cfg.ensemble_epochs},  # fmt: skip
        "ensemble_members": len(est.ensemble_.members),
        "member_evidence": [None if np.isnan(v) else round(float(v), 3) for v in est.evidence_],
        "kept_members": est.kept_,
        "n_failed": int(est.failed_.sum()),
        "member_epochs": est.member_epochs_,
        "epochs_run": cfg.ensemble_epochs,
    }
    curves = {"train MSE (member mean)": est.curves_["train_mse"]}
    model = est.ensemble_
    return Fit(model, model, "members (seeds)", metrics, curves, est.curves_["epoch"])


def _ensemble(cfg: RegressionConfig, data: RegressionData, progress: Progress, *_) -> Fit:
    """SGD candidates x blocked folds: the fold models of the best (candidate, epoch)."""
    search = make_ensemble_search(cfg, len(data.x_train), progress)
    search.fit(_as_column(data.x_train), data.y_train)
    rows = cv_rows(search.cv_results_)
    metrics = {
        "n_candidates": len(rows),
        "n_failed": int(search.failed_.sum()),
        "cv_mse": -search.best_score_,
        "failed": [r["params"] for r in rows if r["mean_cv_mse"] is None],
        "best_params": search.best_params_,
        "ensemble_members": len(search.ensemble_.members),
        "member_epochs": search.member_epochs_,
        "epochs_run": search.best_epoch_,
    }
    curves = {"train MSE (fold mean)": search.curves_["train_mse"]}
    curves["fold-validation MSE"] = search.curves_["valid_mse"]
    model = search.ensemble_
    trials = records_from_cv_results(search.cv_results_, cfg.cv, search.train_seconds_)
    return Fit(model, model, "fold models", metrics, curves, search.curves_["epoch"], rows,
                trials, True, space_from_sklearn(search.param_distributions))  # fmt: skip


def _tpe(cfg: RegressionConfig, data: RegressionData, progress: Progress, run, resume) -> Fit:
    """--search tpe: Optuna's study is the search's record (optuna.log in the run folder unless
    --storage names another); a resumed run keeps its finished trials and runs the rest."""
    X, y = _as_column(data.x_train), data.y_train.astype(np.float32)
    storage = cfg.storage or run_study(run.file)
    search = make_tpe_search(cfg, storage, progress)
    search.set_params(run_tag=run.run_id)  # this run's trials, even in a shared study
    if resume:  # the study is the record: run only the trials still missing
        from glassnet.search.storage import load_study, storage_faults
        from glassnet.search.studies import trials_left

        with storage_faults(storage):
            study = load_study(storage, cfg.study_name)
            # the run's own study holds its trials alone; a shared one, its tagged trials
            tag = None if cfg.storage is None else run.run_id
            search.set_params(n_trials=trials_left(study, cfg.n_trials, tag))
    search.fit(X, y)
    rows = cv_rows(search.cv_results_)
    metrics = {
        "n_candidates": len(rows),
        "n_failed": sum(r["mean_cv_mse"] is None for r in rows),
        "n_pruned": int(sum(r["state"] == "pruned" for r in rows)),
        "cv_mse": -search.best_score_,
        "failed": [r["params"] for r in rows if r["mean_cv_mse"] is None],
        "best_params": search.best_params_,
        "member_epochs": search.member_epochs_,
        "epochs_run": search.best_params_["max_epochs"],
        "study": {"storage": mask_url(cfg.storage) or Path(storage.split("///")[-1]).name,
                  "name": cfg.study_name},
    }
    net = search.best_estimator_
    best = search.best_params_
    fit = _with_fold_band(cfg, net, best, X, y, search.cv, metrics, rows, progress)
    fit.trials = records_from_study(search.study_, trial_mse)
    fit.space = study_space(search.study_)
    return fit


def _single_net(cfg: RegressionConfig, data: RegressionData, progress: Progress, *_) -> Fit:
    """The study's way: one search (or one fit), the best refit, fold models for the band."""
    X, y = _as_column(data.x_train), data.y_train.astype(np.float32)
    net = make_regressor(cfg, progress)
    splitter = cfg.shuffled_folds()  # built once: the search's folds and the band's
    metrics: dict[str, Any] = {}
    table: list[dict[str, Any]] = []
    trials: list[TrialRecord] = []
    if cfg.search == "none":
        progress.start(1, "training")
        net.fit(X, y)
        best = {k: v for k, v in cfg.study_params().items()}
    else:
        grid = cfg.search == "grid"
        space = (regression_grid if grid else regression_distributions)(cfg.epoch_choices)
        search = make_search(
            net, cfg.search, space, cv=splitter, n_iter=cfg.candidates(), seed=cfg.seed,
            n_jobs=cfg.n_jobs, progress=progress,
        )  # fmt: skip
        n_cand = int(np.prod([len(v) for v in space.values()])) if grid else cfg.candidates()
        if cfg.search != "population":  # scikit-learn's searches report fits; ours its epochs
            progress.start(n_cand * cfg.cv + 1, f"{cfg.search} search, {cfg.cv}-fold CV")
        with warnings.catch_warnings():  # failed candidates are reported in metrics
            warnings.filterwarnings("ignore", category=FitFailedWarning)
            warnings.filterwarnings("ignore", message=".*test scores are non-finite")
            search.fit(X, y)
        summary = search_summary(search.cv_results_)
        if summary["n_failed"] == summary["n_candidates"]:
            raise NoModelError("every search candidate diverged (NaN/inf loss)")
        net, best = search.best_estimator_, search.best_params_
        table = cv_rows(search.cv_results_)
        metrics.update(summary, cv_mse=-float(search.best_score_))
        metrics["failed"] = [r["params"] for r in table if r["mean_cv_mse"] is None]
        batch = getattr(search, "train_seconds_", None)  # the population's one batch
        trials = records_from_cv_results(search.cv_results_, cfg.cv, batch)
    metrics.update(best_params=best, epochs_run=len(net.history))
    fit = _with_fold_band(cfg, net, best, X, y, splitter, metrics, table, progress)
    fit.trials, fit.side_by_side = trials, cfg.search == "population"
    fit.space = space_from_sklearn(space) if cfg.search != "none" else None
    return fit


# How each registered search (estimators.SEARCHES) runs: (cfg, data, progress, run, resume).
RUNNERS = {"deep-ensemble": _deep_ensemble, "ensemble": _ensemble, "tpe": _tpe,
           "population": _single_net, "random": _single_net, "grid": _single_net,
           "none": _single_net}  # fmt: skip


def _with_fold_band(cfg, net, best, X, y, splitter, metrics, rows, progress) -> Fit:
    """A refit net as the model, and ``best`` trained on the training rows of each of the
    search's own folds (``splitter``) for the band; the learning curve is the refit's."""
    folds = [tr for tr, _ in splitter.split(X)]
    members = fold_models(make_regressor(cfg), best, X, y, folds, progress)
    members = [m for m in members if m is not None]
    module = net.module_.cpu().eval()
    curves = {"train loss (MSE)": list(net.history[:, "train_loss"])}
    return Fit(module, members or None, "CV fold models", metrics, curves, cv_rows=rows)
