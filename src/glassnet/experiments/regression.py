"""The study's regression experiment: an MLP on noisy 1-D data, tuned by cross-validated search."""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.exceptions import FitFailedWarning

from glassnet.baselines import GaussianProcessBaseline, fit_gaussian_process
from glassnet.data.regression import RegressionData, find_gaps
from glassnet.data.sources import load_regression
from glassnet.errors import DivergedError, UserError
from glassnet.estimators import (
    SEARCHES,
    RegressionConfig,
    build_regression_module,
    make_ensemble_search,
    make_regressor,
)
from glassnet.introspection import band_coverage, fold_band, spread_inside_gaps
from glassnet.progress import Progress
from glassnet.runs import RunWriter, default_run_dir, load_state_dict, read_json
from glassnet.search.cv import make_search, search_summary
from glassnet.search.population import NotBatchableError, train_members
from glassnet.search.spaces import regression_distributions, regression_grid
from glassnet.training import seed_everything

__all__ = [
    "RegressionConfig",
    "RegressionResult",
    "run_regression",
    "make_regressor",
    "load_regression_model",
    "SEARCHES",
]


@dataclass
class RegressionResult:
    """What a run produced: its folder, metrics and the fitted model (x -> y, data units)."""

    run_dir: Path
    metrics: dict[str, Any]
    model: torch.nn.Module = field(repr=False)
    data: RegressionData = field(repr=False)


@dataclass
class _Fit:
    """What a search (or a single fit) hands to evaluation and figures."""

    model: torch.nn.Module  # x (n, 1) -> y (n, 1) in data units
    members: Any  # RegressionEnsemble or fold models: the uncertainty band
    band_label: str
    metrics: dict[str, Any]
    curves: dict[str, list[float]]
    curve_epochs: list[int] | None = None
    cv_rows: list[dict[str, Any]] = field(default_factory=list)


def _as_column(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float32).reshape(-1, 1)


def run_regression(
    cfg: RegressionConfig,
    out: str | Path | None = None,
    progress: Progress | None = None,
    data: RegressionData | None = None,
) -> RegressionResult:
    """Load data (or take ``data``), search or train, evaluate once on the test set, and write
    a run folder."""
    progress = progress or Progress()
    cfg.validate()
    data = data or load_regression(cfg.train, cfg.test, cfg.data_dir)
    if cfg.search != "none" and len(data.x_train) < cfg.cv:
        raise UserError(
            f"training data ({data.source}) has {len(data.x_train)} rows, "
            f"fewer than --cv {cfg.cv} folds"
        )
    out = Path(out) if out is not None else default_run_dir("regression")
    t0 = time.perf_counter()
    with RunWriter(out) as run:
        seed_everything(cfg.seed)
        try:
            if cfg.search == "ensemble":
                fit = _ensemble(cfg, data, progress)
            else:
                fit = _single_net(cfg, data, progress)
        except NotBatchableError as e:
            raise UserError(f"--search {cfg.search}: {e}; use --search random") from None
        except DivergedError as e:
            raise UserError(f"training diverged ({e}); lower --lr or --momentum") from None
        finally:
            progress.close()
        gp = fit_gaussian_process(data.x_train, data.y_train, cfg.seed)  # the baseline
        grid = _input_grid(data)
        band = fold_band(fit.members, grid) if fit.members is not None else None
        metrics = {"search": cfg.search, **fit.metrics, **_evaluate(fit, data, gp, grid, band)}
        run.json("config.json", {**asdict(cfg), "kind": "regression"})
        run.json("history.json", _history(fit))
        run.csv("cv_results.csv", fit.cv_rows)
        run.weights(fit.model)
        _figures(run, fit, data, cfg, gp, grid, band)
        metrics["seconds"] = round(time.perf_counter() - t0, 2)  # figures included
        run.json("metrics.json", metrics)  # written last: its presence marks a complete run
    return RegressionResult(run_dir=out, metrics=metrics, model=fit.model, data=data)


def _ensemble(cfg: RegressionConfig, data: RegressionData, progress: Progress) -> _Fit:
    """The default: the fold-model ensemble of the best (candidate, epoch) by fold loss."""
    search = make_ensemble_search(cfg, len(data.x_train), progress)
    try:
        search.fit(_as_column(data.x_train), data.y_train)
    except FloatingPointError as e:
        raise UserError(f"--search ensemble: {e}") from None
    rows = _cv_rows(search.cv_results_)
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
    return _Fit(model, model, "fold models", metrics, curves, search.curves_["epoch"], rows)


def _single_net(cfg: RegressionConfig, data: RegressionData, progress: Progress) -> _Fit:
    """The study's way: one search (or one fit), the best refit, fold models for the band."""
    X, y = _as_column(data.x_train), data.y_train.astype(np.float32)
    net = make_regressor(cfg, progress)
    metrics: dict[str, Any] = {}
    cv_rows: list[dict[str, Any]] = []
    if cfg.search == "none":
        progress.start(1, "training")
        net.fit(X, y)
        best = {k: v for k, v in cfg.study_params().items()}
    else:
        grid = cfg.search == "grid"
        space = (regression_grid if grid else regression_distributions)(cfg.epoch_choices)
        search = make_search(
            net, cfg.search, space, cv=cfg.cv, n_iter=cfg.candidates(), seed=cfg.seed,
            n_jobs=cfg.n_jobs, progress=progress,
        )  # fmt: skip
        n_cand = int(np.prod([len(v) for v in space.values()])) if grid else cfg.candidates()
        progress.start(n_cand * cfg.cv + 1, f"{cfg.search} search, {cfg.cv}-fold CV")
        with warnings.catch_warnings():  # failed candidates are reported in metrics
            warnings.filterwarnings("ignore", category=FitFailedWarning)
            warnings.filterwarnings("ignore", message=".*test scores are non-finite")
            search.fit(X, y)
        summary = search_summary(search.cv_results_)
        if summary["n_failed"] == summary["n_candidates"]:
            raise UserError("every search candidate diverged; try a smaller learning rate range")
        net, best = search.best_estimator_, search.best_params_
        cv_rows = _cv_rows(search.cv_results_)
        metrics.update(summary, cv_mse=-float(search.best_score_))
        metrics["failed"] = [r["params"] for r in cv_rows if r["mean_cv_mse"] is None]
    metrics.update(best_params=best, epochs_run=len(net.history))
    folds = [tr for tr, _ in cfg.shuffled_folds().split(X)]
    members = [m for m in _fold_models(cfg, best, X, y, folds, progress) if m is not None]
    module = net.module_.cpu().eval()
    curves = {"train loss (MSE)": list(net.history[:, "train_loss"])}
    return _Fit(module, members or None, "CV fold models", metrics, curves, cv_rows=cv_rows)


def _fold_models(cfg, best: dict, X, y, folds, progress) -> list:
    """The best parameters trained on each fold's training slice (the band of the study's way)."""
    from sklearn.base import clone

    try:
        return train_members(make_regressor(cfg), best, X, y, folds, progress)
    except NotBatchableError:  # e.g. an activation the population cannot stack: one by one
        models = []
        for tr in folds:
            try:
                fold_net = clone(make_regressor(cfg)).set_params(**best).fit(X[tr], y[tr])
                models.append(fold_net.module_.cpu())
            except DivergedError:
                models.append(None)
        return models


def _evaluate(
    fit: _Fit,
    data: RegressionData,
    gp: GaussianProcessBaseline,
    grid: np.ndarray,
    band: dict[str, np.ndarray] | None,
) -> dict[str, Any]:
    """Train and test MSE (the test set's one use), band coverage, and the GP baseline."""
    with torch.no_grad():
        pred = {
            split: fit.model.eval()(torch.as_tensor(_as_column(x))).ravel().numpy()
            for split, x in (("train", data.x_train), ("test", data.x_test))
        }
    gp_mean, gp_latent, _ = gp.predict(data.x_test)
    out = {
        "train_mse": float(np.mean((pred["train"] - data.y_train) ** 2)),
        "test_mse": float(np.mean((pred["test"] - data.y_test) ** 2)),
        "baseline_gp_test_mse": float(np.mean((gp_mean - data.y_test) ** 2)),
        "baseline_gp_kernel": gp.describe(),
        "baseline_gp_band_coverage": band_coverage(data.y_test, gp_mean, gp_latent),
        "n_train": len(data.x_train),
        "n_test": len(data.x_test),
        "data": data.source,
        "generated_data": data.generated,
    }
    if band is not None:
        at_test = fold_band(fit.members, data.x_test)
        out["band_coverage"] = band_coverage(data.y_test, at_test["mean"], at_test["std"])
        spread = spread_inside_gaps(grid, band["std"], find_gaps(data.x_train))
        if spread:
            out["fold_std_in_gaps"], out["fold_std_elsewhere"] = spread.values()
    return out


def _history(fit: _Fit) -> list[dict[str, Any]]:
    epochs = fit.curve_epochs or list(range(1, len(next(iter(fit.curves.values()))) + 1))
    keys = {"train MSE (fold mean)": "train_loss", "fold-validation MSE": "valid_loss",
            "train loss (MSE)": "train_loss"}  # fmt: skip
    return [
        {"epoch": e, **{keys[k]: v[i] for k, v in fit.curves.items()}} for i, e in enumerate(epochs)
    ]


def _cv_rows(cv_results: dict) -> list[dict[str, Any]]:
    """Flatten cv_results_ into CSV rows, with the score turned back into an MSE."""
    rows = []
    split_keys = sorted(k for k in cv_results if k.startswith("split") and k.endswith("test_score"))
    for i, params in enumerate(cv_results["params"]):
        score = float(cv_results["mean_test_score"][i])
        row = {
            "rank": int(cv_results["rank_test_score"][i]),
            "mean_cv_mse": None if math.isnan(score) else -score,
            "std_cv_mse": float(cv_results["std_test_score"][i]),
        }
        # per search: fit seconds (sklearn's searches), chosen and trained epochs (ensemble)
        for key, col in (("mean_fit_time", "mean_fit_seconds"), ("best_epoch", "best_epoch"),
                         ("epochs_trained", "epochs_trained")):  # fmt: skip
            if key in cv_results:
                row[col] = cv_results[key][i].item()
        plain = {k: v.item() if isinstance(v, np.generic) else v for k, v in params.items()}
        row.update({k.replace("optimizer__", ""): v for k, v in plain.items()})
        for k in split_keys:
            s = float(cv_results[k][i])
            row[k.replace("_test_score", "_mse")] = None if math.isnan(s) else -s
        row["params"] = plain
        rows.append(row)
    rows.sort(key=lambda r: r["rank"])
    return rows


def _input_grid(data: RegressionData, n: int = 400) -> np.ndarray:
    """Evenly spaced inputs over the range of all the data."""
    lo = min(data.x_train.min(), data.x_test.min())
    hi = max(data.x_train.max(), data.x_test.max())
    return np.linspace(lo, hi, n)


def _figures(
    run: RunWriter,
    fit: _Fit,
    data: RegressionData,
    cfg: RegressionConfig,
    gp_fit: GaussianProcessBaseline,
    grid: np.ndarray,
    band: dict[str, np.ndarray] | None,
) -> None:
    from glassnet.plots.regression_run import regression_figures

    gp = gp_fit.predict(grid)
    regression_figures(
        run.figure,
        fit.model,
        data,
        grid,
        band,
        (gp[0], gp[1]),
        fit.curves,
        fit.curve_epochs,
        find_gaps(data.x_train),
        cfg.probe_x,
        fit.band_label,
    )


def load_regression_model(run_dir: str | Path) -> torch.nn.Module:
    """Rebuild the model of a finished regression run (x -> y, data units) from its folder."""
    run_dir = Path(run_dir)
    cfg = read_json(run_dir / "config.json")
    if cfg.get("kind") != "regression":
        raise UserError(f"{run_dir}: not a regression run (kind {cfg.get('kind')!r})")
    state = load_state_dict(run_dir / "weights.pt")
    model = build_regression_module(cfg, state)
    try:
        model.load_state_dict(state)
    except RuntimeError:
        raise UserError(
            f"{run_dir / 'weights.pt'}: weights do not match the architecture in config.json"
        ) from None
    return model.eval()
