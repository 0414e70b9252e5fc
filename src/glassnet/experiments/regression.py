"""The study's regression experiment: an MLP on noisy 1-D data, tuned by cross-validated search."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from glassnet.baselines import fit_gaussian_process
from glassnet.data.regression import RegressionData, find_gaps, input_grid
from glassnet.data.sources import load_regression
from glassnet.errors import UserError
from glassnet.estimators import (
    SEARCHES,
    RegressionConfig,
)
from glassnet.events import write_curves, write_hparams
from glassnet.experiments.regression_fits import RUNNERS, Fit
from glassnet.introspection import fold_band
from glassnet.limits import MAX_REGRESSION_ROWS
from glassnet.metrics import regression_scores
from glassnet.progress import Progress
from glassnet.redact import public_settings
from glassnet.results import DataSummary, RegressionMetrics
from glassnet.rng import seeded
from glassnet.runs import RunWriter, default_run_dir
from glassnet.search.adapter import NotBatchableError
from glassnet.search.trials import (
    as_study,
)

__all__ = ["RegressionResult", "run_regression"]


@dataclass
class RegressionResult:
    """What a run produced: its folder, metrics and the fitted model (x -> y, data units)."""

    run_dir: Path
    metrics: RegressionMetrics
    model: torch.nn.Module = field(repr=False)
    data: RegressionData = field(repr=False)


def run_regression(
    cfg: RegressionConfig,
    out: str | Path | None = None,
    progress: Progress | None = None,
    data: RegressionData | None = None,
    resume: bool = False,
) -> RegressionResult:
    """Load data (or take ``data``), search or train, evaluate once on the test set, and write
    a run folder.

    ``resume=True`` finishes an interrupted run bound for ``out`` in its partial folder. A
    regression run is short (seconds to a minute or two), so it starts its search again, with
    the same seed and the same results; it keeps no per-epoch checkpoints.
    """
    progress = progress or Progress()
    cfg.validate()
    data = data or load_regression(cfg.train, cfg.test, cfg.data_dir)
    _check_size(cfg, data)  # refused before any work, not after
    out = Path(out) if out is not None else default_run_dir("regression")
    t0 = time.perf_counter()
    with RunWriter(out, resume=resume) as run, seeded(cfg.seed):  # caller's generators untouched
        # first: resumable; the storage URL without its password (resume reads libpq's own)
        run.settings(public_settings({**asdict(cfg), "kind": "regression"}))
        try:
            fit = RUNNERS[cfg.search](cfg, data, progress, run, resume)
        except NotBatchableError as e:
            raise UserError(f"`search` {cfg.search}: {e}; use `search` random") from None
        finally:
            progress.close()
        metrics = _evaluate_and_draw(cfg, data, fit, run)
        metrics.seconds = round(time.perf_counter() - t0, 2)  # figures included
        given = {k: v for k, v in asdict(cfg).items() if k not in cfg.unused(set(asdict(cfg)))}
        settings = public_settings({**given, "kind": "regression"})
        write_hparams(run.file("tensorboard"), settings, metrics.to_json())
        run.json("metrics.json", metrics.to_json())  # last: its presence marks a complete run
    return RegressionResult(run_dir=out, metrics=metrics, model=fit.model, data=data)


def _check_size(cfg: RegressionConfig, data: RegressionData) -> None:
    if len(data.x_train) > MAX_REGRESSION_ROWS:
        raise UserError(
            f"training data ({data.source}) has {len(data.x_train):,} rows; a regression run "
            f"holds at most {MAX_REGRESSION_ROWS:,} (subsample it first)"
        )
    if "cv" in SEARCHES[cfg.search].fields and len(data.x_train) < cfg.cv:
        raise UserError(
            f"training data ({data.source}) has {len(data.x_train)} rows, "
            f"fewer than `cv` {cfg.cv} folds"
        )


def _evaluate_and_draw(cfg: RegressionConfig, data: RegressionData, fit: Fit,
                       run: RunWriter) -> RegressionMetrics:  # fmt: skip
    """The test set's one use, the Gaussian-process baseline, and everything the run folder
    holds but metrics.json: history, curves, the search table, weights and figures."""
    gp = fit_gaussian_process(data.x_train, data.y_train, cfg.seed)  # the baseline
    grid = input_grid(data)
    band = fold_band(fit.members, grid) if fit.members is not None else None
    scores = regression_scores(fit.model, fit.members, data, gp, grid, band)
    kind = "generated" if data.generated else "files"
    summary = DataSummary(data.source, kind, len(data.x_train), len(data.x_test))
    metrics = RegressionMetrics(search=cfg.search, data=summary, **fit.metrics, **scores)
    history = _history(fit)
    run.json("history.json", history)
    lr = next((v for k, v in fit.metrics["best_params"].items() if k.endswith("lr")), None)
    write_curves(run.file("tensorboard"), history, lr, fit.model)
    run.csv("cv_results.csv", fit.cv_rows)
    run.weights(fit.model)
    if not cfg.figures:
        return metrics
    from glassnet.plots.regression_run import regression_figures  # matplotlib: only to draw

    regression_figures(run.figure, fit.model, data, grid, band, gp.predict(grid)[:2],
                       fit.curves, fit.curve_epochs, find_gaps(data.x_train), cfg.probe_x,
                       fit.band_label)  # fmt: skip
    if fit.trials:
        from glassnet.plots.search import search_figures

        study = as_study(fit.trials, "minimize", fit.space)
        search_figures(run.figure, study, "CV MSE", True, fit.side_by_side)
    return metrics


def _history(fit: Fit) -> list[dict[str, Any]]:
    epochs = fit.curve_epochs or list(range(1, len(next(iter(fit.curves.values()))) + 1))
    keys = {"train MSE (fold mean)": "train_loss", "fold-validation MSE": "valid_loss",
            "train loss (MSE)": "train_loss", "train MSE (member mean)": "train_loss"}  # fmt: skip
    return [
        {"epoch": e, **{keys[k]: v[i] for k, v in fit.curves.items()}} for i, e in enumerate(epochs)
    ]
