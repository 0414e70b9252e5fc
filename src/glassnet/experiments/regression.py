"""The study's regression experiment: an MLP on noisy 1-D data, tuned by cross-validated search."""

from __future__ import annotations

import copy
import math
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.exceptions import FitFailedWarning
from skorch.callbacks import PrintLog

from glassnet.data.regression import RegressionData, find_gaps
from glassnet.data.sources import load_regression
from glassnet.errors import DivergedError, UserError, require
from glassnet.introspection import hidden_activation_layers, layer_activations, layer_weights
from glassnet.models import ACTIVATIONS, MLP
from glassnet.progress import Progress
from glassnet.runs import RunWriter, default_run_dir, load_state_dict, read_json
from glassnet.search.cv import make_search, search_summary
from glassnet.search.population import NotBatchableError
from glassnet.search.spaces import regression_distributions, regression_grid
from glassnet.training import (
    EpochProgress,
    GlassRegressor,
    InMemoryLoader,
    StopOnDivergence,
    check_device,
    choose_device,
    seed_everything,
)

__all__ = [
    "RegressionConfig",
    "RegressionResult",
    "run_regression",
    "make_regressor",
    "load_regression_model",
    "SEARCHES",
]

SEARCHES = ("random", "population", "grid", "none")


@dataclass
class RegressionConfig:
    """Everything a regression run depends on; stored as config.json in the run folder."""

    train: str | None = None  # CSV with header input,label (needs test too)
    test: str | None = None
    data_dir: str | None = None  # folder holding regression/{train,test}_data.csv
    hidden: tuple[int, ...] = (512, 256)  # hidden layer widths: the study's 1-512-256-1
    activation: str = "tanh"
    # population (default): RandomizedSearchCV's candidates and folds, all trained at once;
    # random: RandomizedSearchCV itself; grid: GridSearchCV; none: one fit
    search: str = "population"
    n_iter: int = 20  # candidates drawn by the random search
    cv: int = 5  # folds (shuffled, seeded)
    lr: float = 0.01  # used by --search none (the study's choice)
    momentum: float = 0.9
    epochs: int = 1000
    weight_decay: float = 0.001
    batch_size: int = 128  # skorch's default; >= 100 points means full-batch gradient descent
    seed: int = 0  # one seed for weights, batch order, folds and the sampler
    n_jobs: int = 1  # parallel search fits (1 keeps progress bars and exact reproducibility)
    device: str = "auto"  # auto | cpu | cuda
    epoch_choices: tuple[int, ...] = (
        100,
        250,
        500,
        1000,
    )  # epochs the search draws from (random) or tries (grid)
    probe_x: tuple[float, ...] = (-4.0, -3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0, 4.0)

    def validate(self) -> None:
        """Raise UserError naming the first option outside its valid range."""
        checks = [
            (self.search in SEARCHES, f"--search must be one of {', '.join(SEARCHES)}"),
            (math.isfinite(self.lr) and self.lr > 0, f"--lr must be > 0, got {self.lr}"),
            (0.0 <= self.momentum < 1.0, f"--momentum must be in [0, 1), got {self.momentum}"),
            (self.epochs >= 1, f"--epochs must be >= 1, got {self.epochs}"),
            (self.weight_decay >= 0, f"--weight-decay must be >= 0, got {self.weight_decay}"),
            (self.cv >= 2, f"--cv must be >= 2, got {self.cv}"),
            (
                len(self.epoch_choices) >= 1 and all(e >= 1 for e in self.epoch_choices),
                f"--epoch-choices must be positive integers, got {self.epoch_choices}",
            ),
            (self.n_iter >= 1, f"--n-iter must be >= 1, got {self.n_iter}"),
            (self.batch_size >= 1, f"--batch-size must be >= 1, got {self.batch_size}"),
            (
                len(self.hidden) >= 1 and all(h >= 1 for h in self.hidden),
                f"--hidden must be one or more positive widths, got {self.hidden}",
            ),
            (
                self.activation in ACTIVATIONS,
                f"--activation must be one of {', '.join(ACTIVATIONS)}",
            ),
        ]
        require(checks)
        check_device(self.device)


@dataclass
class RegressionResult:
    """What a run produced: its folder, metrics and the fitted net."""

    run_dir: Path
    metrics: dict[str, Any]
    net: Any = field(repr=False)
    data: RegressionData = field(repr=False)


def make_regressor(
    cfg: RegressionConfig, progress: Progress | None = None, tick_fits: bool = True
) -> GlassRegressor:
    """Return the study's skorch regressor: MLP, MSE, SGD with momentum, no internal split."""
    device = choose_device(cfg.device)
    return GlassRegressor(
        MLP,
        module__in_features=1,
        module__hidden=tuple(cfg.hidden),
        module__out_features=1,
        module__activation=cfg.activation,
        criterion=torch.nn.MSELoss,
        optimizer=torch.optim.SGD,
        lr=cfg.lr,
        optimizer__momentum=cfg.momentum,
        optimizer__weight_decay=cfg.weight_decay,
        max_epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        train_split=None,  # cross-validation does the validating
        iterator_train=InMemoryLoader,
        iterator_train__shuffle=True,
        iterator_valid=InMemoryLoader,
        callbacks=[StopOnDivergence(), EpochProgress(progress, tick_fits)],
        callbacks__print_log=PrintLog(sink=lambda *_: None),  # library code stays silent
        device=device,
        random_state=cfg.seed,
    )


def _as_column(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float32).reshape(-1, 1)


def run_regression(
    cfg: RegressionConfig, out: str | Path | None = None, progress: Progress | None = None
) -> RegressionResult:
    """Load data, search or train, evaluate once on the test set, and write a run folder."""
    progress = progress or Progress()
    cfg.validate()
    data = load_regression(cfg.train, cfg.test, cfg.data_dir)
    if cfg.search != "none" and len(data.x_train) < cfg.cv:
        raise UserError(
            f"training data ({data.source}) has {len(data.x_train)} rows, "
            f"fewer than --cv {cfg.cv} folds"
        )
    out = Path(out) if out is not None else default_run_dir("regression")
    t0 = time.perf_counter()
    with RunWriter(out) as run:
        seed_everything(cfg.seed)
        X, y = _as_column(data.x_train), data.y_train.astype(np.float32)
        net = make_regressor(cfg, progress)
        metrics: dict[str, Any] = {"search": cfg.search}
        cv_rows: list[dict[str, Any]] = []
        try:
            if cfg.search == "none":
                progress.start(1, "training")
                net.fit(X, y)
                best_params = {
                    "lr": cfg.lr,
                    "optimizer__momentum": cfg.momentum,
                    "max_epochs": cfg.epochs,
                    "optimizer__weight_decay": cfg.weight_decay,
                }
            else:
                grid = cfg.search == "grid"
                space = (regression_grid if grid else regression_distributions)(cfg.epoch_choices)
                search = make_search(
                    net,
                    cfg.search,
                    space,
                    cv=cfg.cv,
                    n_iter=cfg.n_iter,
                    seed=cfg.seed,
                    n_jobs=cfg.n_jobs,
                    progress=progress,
                )
                n_cand = _grid_size(space) if grid else cfg.n_iter
                progress.start(n_cand * cfg.cv + 1, f"{cfg.search} search, {cfg.cv}-fold CV")
                with warnings.catch_warnings():  # failed candidates are reported in metrics
                    warnings.filterwarnings("ignore", category=FitFailedWarning)
                    warnings.filterwarnings("ignore", message=".*test scores are non-finite")
                    search.fit(X, y)
                summary = search_summary(search.cv_results_)
                if summary["n_failed"] == summary["n_candidates"]:
                    raise UserError(
                        "every search candidate diverged; try a smaller learning rate range"
                    )
                net, best_params = search.best_estimator_, search.best_params_
                cv_rows = _cv_rows(search.cv_results_)
                metrics.update(
                    summary,
                    cv_mse=-float(search.best_score_),
                    failed=[r["params"] for r in cv_rows if r["mean_cv_mse"] is None],
                )
        except NotBatchableError as e:
            raise UserError(f"--search population: {e}; use --search random") from None
        except DivergedError as e:
            raise UserError(f"training diverged ({e}); lower --lr or --momentum") from None
        finally:
            progress.close()

        # The test set is used here, once, after every choice has been made on training data.
        pred_train = net.predict(X).ravel()
        pred_test = net.predict(_as_column(data.x_test)).ravel()
        metrics.update(
            train_mse=float(np.mean((pred_train - data.y_train) ** 2)),
            test_mse=float(np.mean((pred_test - data.y_test) ** 2)),
            best_params=best_params,
            n_train=len(data.x_train),
            n_test=len(data.x_test),
            data=data.source,
            generated_data=data.generated,
            epochs_run=len(net.history),
        )
        metrics["seconds"] = round(time.perf_counter() - t0, 2)

        cfg_dict = asdict(cfg)
        cfg_dict["kind"] = "regression"
        run.json("config.json", cfg_dict)
        run.json("history.json", _history_rows(net))
        run.csv("cv_results.csv", cv_rows)
        run.weights(net.module_)
        _figures(run, net, data, cfg)
        metrics.update(_fold_figures(run, net, data, cfg, best_params, progress))
        run.json("metrics.json", metrics)  # written last: its presence marks a complete run
    return RegressionResult(run_dir=out, metrics=metrics, net=net, data=data)


def _grid_size(space: dict) -> int:
    return int(np.prod([len(v) for v in space.values()]))


def _history_rows(net: Any) -> list[dict[str, Any]]:
    keep = ("epoch", "train_loss", "valid_loss", "train_acc", "valid_acc", "dur")
    return [{k: row[k] for k in keep if k in row} for row in net.history]


def _cv_rows(cv_results: dict) -> list[dict[str, Any]]:
    """Flatten cv_results_ into CSV rows, with the score turned back into an MSE."""
    rows = []
    n = len(cv_results["params"])
    split_keys = sorted(k for k in cv_results if k.startswith("split") and k.endswith("test_score"))
    for i in range(n):
        score = float(cv_results["mean_test_score"][i])
        row = {
            "rank": int(cv_results["rank_test_score"][i]),
            "mean_cv_mse": None if math.isnan(score) else -score,
            "std_cv_mse": float(cv_results["std_test_score"][i]),
            "mean_fit_seconds": float(cv_results["mean_fit_time"][i]),
        }
        row.update(
            {k.replace("optimizer__", ""): _plain(v) for k, v in cv_results["params"][i].items()}
        )
        for k in split_keys:
            s = float(cv_results[k][i])
            row[k.replace("_test_score", "_mse")] = None if math.isnan(s) else -s
        row["params"] = {k: _plain(v) for k, v in cv_results["params"][i].items()}
        rows.append(row)
    rows.sort(key=lambda r: r["rank"])
    return rows


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def _figures(run: RunWriter, net: Any, data: RegressionData, cfg: RegressionConfig) -> None:
    from glassnet import plots

    fig, _ = _fit_figure(net, data, "Training data, test data and the fitted net")
    run.figure("fit.png", fig)
    fig, _ = plots.plot_learning_curve(
        {"train loss (MSE)": net.history[:, "train_loss"]},
        title="Learning curve of the final model",
    )
    run.figure("learning_curve.png", fig)
    module = copy.deepcopy(net.module_).cpu()  # a CPU copy: the net itself stays put
    fig, _ = plots.plot_weight_histograms(layer_weights(module))
    run.figure("weight_histograms.png", fig)
    probes = torch.tensor(cfg.probe_x, dtype=torch.float32).reshape(-1, 1)
    layers = hidden_activation_layers(module)
    acts = layer_activations(module, probes, layers)
    names = {
        layer: f"hidden layer {i + 1} ({acts[layer].shape[1]} units)"
        for i, layer in enumerate(layers)
    }
    fig, _ = plots.plot_activation_heatmap(
        {names[k]: v.numpy() for k, v in acts.items()}, cfg.probe_x, max_units=512
    )
    run.figure("activations.png", fig)


def _input_grid(data: RegressionData, n: int = 400) -> np.ndarray:
    """Evenly spaced inputs over the range of all the data."""
    lo = min(data.x_train.min(), data.x_test.min())
    hi = max(data.x_train.max(), data.x_test.max())
    return np.linspace(lo, hi, n)


def _fit_figure(net: Any, data: RegressionData, title: str, band=None):
    """Data, fitted curve and gaps (and the fold band when given)."""
    from glassnet import plots

    grid = _input_grid(data)
    curve = net.predict(_as_column(grid)).ravel()
    return plots.plot_regression_fit(
        data.x_train,
        data.y_train,
        data.x_test,
        data.y_test,
        grid,
        curve,
        gaps=find_gaps(data.x_train),
        band=band,
        title=title,
    )


def _fold_figures(
    run, net, data: RegressionData, cfg: RegressionConfig, best_params: dict, progress: Progress
) -> dict[str, Any]:
    """Uncertainty from the CV folds: the best parameters trained on each fold's 80% slice.

    Returns the fold models' spread inside and outside the gaps of the training data.
    """
    from sklearn.base import clone
    from sklearn.model_selection import KFold

    from glassnet import plots
    from glassnet.introspection import activation_map, fold_band
    from glassnet.search.population import NotBatchableError, train_members

    X, y = _as_column(data.x_train), data.y_train.astype(np.float32)
    folds = [tr for tr, _ in KFold(cfg.cv, shuffle=True, random_state=cfg.seed).split(X)]
    try:
        models = train_members(make_regressor(cfg), best_params, X, y, folds, progress)
    except NotBatchableError:  # e.g. an activation the population cannot stack: one by one
        models = []
        for tr in folds:
            fold_net = clone(make_regressor(cfg)).set_params(**best_params)
            try:
                models.append(fold_net.fit(X[tr], y[tr]).module_.cpu())
            except DivergedError:
                models.append(None)
    models = [m for m in models if m is not None]
    gaps = find_gaps(data.x_train)
    grid = _input_grid(data)
    out: dict[str, Any] = {"fold_models": len(models)}
    if models:
        band = fold_band(models, grid)
        fig, ax = _fit_figure(
            net,
            data,
            f"Fitted net with the range of its {len(models)} cross-validation fold models",
            band=(band["lo"], band["hi"]),
        )
        for pred in band["all"]:
            ax.plot(grid, pred, color="gray", lw=0.6, alpha=0.6)
        run.figure("fit_band.png", fig)
        in_gap = np.zeros_like(grid, dtype=bool)
        for g_lo, g_hi in gaps:
            in_gap |= (grid >= g_lo) & (grid <= g_hi)
        if in_gap.any() and (~in_gap).any():
            out["fold_std_in_gaps"] = float(band["std"][in_gap].mean())
            out["fold_std_elsewhere"] = float(band["std"][~in_gap].mean())
    maps = activation_map(copy.deepcopy(net.module_).cpu(), grid)
    names = {k: f"hidden layer {i + 1}" for i, k in enumerate(maps)}
    fig, _ = plots.plot_activation_map({names[k]: v for k, v in maps.items()}, grid, gaps)
    run.figure("activation_map.png", fig)
    return out


def load_regression_model(run_dir: str | Path) -> MLP:
    """Rebuild the MLP of a finished regression run from its config and weights."""
    run_dir = Path(run_dir)
    cfg = read_json(run_dir / "config.json")
    if cfg.get("kind") != "regression":
        raise UserError(f"{run_dir}: not a regression run (kind {cfg.get('kind')!r})")
    model = MLP(1, tuple(cfg["hidden"]), 1, cfg["activation"])
    model.load_state_dict(load_state_dict(run_dir / "weights.pt"))
    return model.eval()
