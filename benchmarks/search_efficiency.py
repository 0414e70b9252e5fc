"""Regression searches, like with like: time until each returns its model, and how good it is.

Arms, each on the study's data with the same 5 shuffled folds (per seed), the same net
(1-512-256-1 tanh, SGD + momentum, MSE, full batch) and the study's ranges:
  1. the study's pipeline: skorch (DataLoader iterators) + RandomizedSearchCV, 20 candidates,
     n_jobs=2, no divergence stopping (as the study ran it);
  2. the careful sequential baseline, the headline's: the same candidates and folds, one skorch
     fit after another (n_jobs=2, both cores), glassnet's divergence stopping and in-memory
     batches; its member-epochs measured (each fold fit's own epoch count);
  3. PopulationSearchCV: the same candidates trained as one batched computation;
  4. --search tpe (TPESearchCV, the CLI's defaults: trials 6 at a time, successive halving,
     epochs up to 1000 with the best kept, a trial ending after 15 checks without improving,
     study in a SQLite file as the CLI does) at 12, 24, 30 (the CLI's default, the headline)
     and 36 trials, read off one 36-trial run: the same seed asks the same trials, so
     --n-trials N returns when that run's round holding trial N ends.
Every arm's seconds run until it returns its model: the search and the refit of its choice
on all training data. Every arm's choice (parameters and epochs) is then re-scored on one
basis: the same 5 folds at the chosen epoch count (a careful skorch fit per fold), so a
search's own CV score, read at its best checkpoint, flatters it no more than another's. The
returned model's test MSE is scored once per row. The population's arithmetic rate is
set against the float32 matmul peak read just before and just after that arm (the best of
four reads of a 2048^3 GEMM). Headline, median over seeds:
speedup_vs_sequential and speedup_vs_pipeline of TPE at 30 trials, and whether its re-scored
CV MSE is at least as good as the sequential arm's.

Usage: python benchmarks/search_efficiency.py [--seeds 0 1 2 3 4 5] [--json PATH] [--smoke]
(--smoke: a tiny net, few candidates and epochs, seconds; the test suite runs it)
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from sklearn.model_selection import KFold, RandomizedSearchCV, cross_val_score
from skorch.callbacks import Callback
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import data_dir, table, write_json  # noqa: E402
from regression_search import matmul_gflops, mlp_flops_per_sample  # noqa: E402

from glassnet.data.sources import load_regression  # noqa: E402
from glassnet.estimators import (  # noqa: E402
    RegressionConfig,
    make_regressor,
    make_tpe_search,
)
from glassnet.progress import Progress  # noqa: E402
from glassnet.search.adapter import refit_best  # noqa: E402
from glassnet.search.population import PopulationSearchCV  # noqa: E402
from glassnet.search.spaces import regression_distributions  # noqa: E402
from glassnet.search.storage import run_study  # noqa: E402
from glassnet.search.tpe import best_trial, trial_params  # noqa: E402
from glassnet.training import StopOnDivergence  # noqa: E402

# The sizes of a full run; --smoke shrinks every one of them (and the net) to run in seconds.
FULL = {"n_iter": 20, "folds": 5, "budgets": (12, 24, 30, 36), "headline": 30, "cfg": {}}
SMOKE = {"n_iter": 3, "folds": 2, "budgets": (2, 4), "headline": 4,
         "cfg": {"hidden": (16, 8), "epoch_choices": (5, 10), "max_epochs": 20,
                 "trial_batch": 2}}  # fmt: skip
TARGETS = {"speedup_vs_sequential": 5.0, "speedup_vs_pipeline": 10.0, "population_peak": 0.6}


class CountEpochs(Callback):
    """Append each fold fit's epoch count to a file (fits run in worker processes): at the
    end of training, or, for a net with divergence stopping, at the epoch whose loss diverged
    (StopOnDivergence raises there, and this callback runs before it). A net without it (the
    study's pipeline) trains on through NaN losses to its last epoch, counted at the end."""

    def __init__(self, path: str) -> None:
        self.path = path

    def _write(self, n: int) -> None:
        with open(self.path, "a") as f:
            f.write(f"{n}\n")

    def on_epoch_end(self, net, **kwargs) -> None:
        stops = any(isinstance(cb, StopOnDivergence) for _, cb in net.callbacks_)
        if stops and not math.isfinite(net.history[-1, "train_loss"]):
            self._write(len(net.history))

    def on_train_end(self, net, **kwargs) -> None:
        self._write(len(net.history))


def _test_mse(model, data) -> float:
    p = model.predict(data.x_test.astype(np.float32).reshape(-1, 1)).ravel()
    return float(np.mean((p - data.y_test) ** 2))


def _counted(est, path: str):
    """``est`` with CountEpochs first among its callbacks."""
    return est.set_params(callbacks=[("count_epochs", CountEpochs(path)), *est.callbacks])


def _sklearn_arm(name, est, space, folds, seed, X, y, data, n_iter):
    """A RandomizedSearchCV arm; its member-epochs counted fit by fit (the refit's excluded)."""
    with tempfile.TemporaryDirectory() as tmp:
        count = f"{tmp}/epochs"
        t = time.perf_counter()
        s = RandomizedSearchCV(_counted(est, count), space, n_iter=n_iter, cv=folds,
                               random_state=seed, n_jobs=2, scoring="neg_mean_squared_error",
                               error_score=np.nan).fit(X, y)  # fmt: skip
        sec = time.perf_counter() - t
        epochs = [int(v) for v in Path(count).read_text().split()]
    refit = len(s.best_estimator_.history)
    return {
        "arm": name,
        "seconds": sec,
        "member_epochs": sum(epochs) - refit,
        "fits_counted": len(epochs) - 1,
        "search_cv_mse": -s.best_score_,
        "params": _plain(s.best_params_),
        "test_mse": _test_mse(s.best_estimator_, data),
    }


def _plain(params: dict) -> dict:
    return {k: (v.item() if hasattr(v, "item") else v) for k, v in params.items()}


def _tpe_rows(cfg, X, y, data, flops_per_row_epoch, budgets):
    """One TPE run of the largest budget, built as the CLI builds it (``make_tpe_search`` from
    ``cfg``, search tpe); a row per budget: when --n-trials N would return (its round's end,
    plus the refit of its best trial) and what it returns."""
    with tempfile.TemporaryDirectory() as tmp:
        url = run_study(lambda name: Path(tmp) / name)  # the study a CLI run keeps
        s = make_tpe_search(replace(cfg, n_trials=max(budgets)), url).set_params(refit=False)
        t0 = time.perf_counter()
        s.fit(X, y)
        total = time.perf_counter() - t0
        trials = sorted(s.study_.trials, key=lambda t: t.number)
        rows = []
        for budget in budgets:
            seconds, member_epochs, best, done = next(r for r in s.rounds_ if r[3] >= budget)
            params = trial_params(best_trial(trials[:done]))
            t1 = time.perf_counter()
            net = refit_best(make_regressor(cfg), params, X, y, Progress())
            refit = time.perf_counter() - t1
            rows.append({"arm": f"tpe, {budget} trials", "seconds": seconds + refit,
                         "member_epochs": member_epochs, "search_cv_mse": best,
                         "params": _plain(params), "test_mse": _test_mse(net, data)})  # fmt: skip
        rate = s.member_epochs_ * flops_per_row_epoch / total / 1e9
        # the whole largest-budget run (its search only): not `tpe_seconds`, the headline's
        return rows, {"tpe_gflops": rate, "tpe_pruned": s.n_pruned_, "tpe_run_seconds": total}


def _rescore(cfg, params: dict, folds, X, y, cache: dict) -> float:
    """CV MSE of ``params`` (epochs included) on the arms' own folds: one careful skorch fit
    per fold, all at the chosen epoch count. A diverging fold scores inf."""
    key = tuple(sorted(params.items()))
    if key not in cache:
        net = make_regressor(cfg).set_params(**params)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scores = cross_val_score(net, X, y, cv=folds, scoring="neg_mean_squared_error",
                                     error_score=-np.inf)  # fmt: skip
        cache[key] = float(-np.mean(scores))
    return cache[key]


def _peak(n: int) -> float:
    """The float32 matmul peak: the best of two reads (a read only errs low, when other work
    takes the cores for a moment)."""
    return max(matmul_gflops(n), matmul_gflops(n))


def run_seed(seed: int, data, peak_n: int, sizes: dict = FULL) -> tuple[list[dict], dict]:
    X = data.x_train.astype(np.float32).reshape(-1, 1)
    y = data.y_train.astype(np.float32)
    cfg = RegressionConfig(seed=seed, device="cpu", **sizes["cfg"])
    space = regression_distributions(cfg.epoch_choices)
    folds = KFold(sizes["folds"], shuffle=True, random_state=seed)
    n_iter = sizes["n_iter"]
    rows_per_fold = np.mean([len(tr) for tr, _ in folds.split(X)])
    flops = rows_per_fold * mlp_flops_per_sample([1, *cfg.hidden, 1])  # per member-epoch
    study = make_regressor(cfg).set_params(
        iterator_train=DataLoader, iterator_valid=DataLoader, callbacks=[]
    )
    rows = [_sklearn_arm("study pipeline (skorch + RandomizedSearchCV)", study, space, folds,
                         seed, X, y, data, n_iter)]  # fmt: skip
    print(f"  seed {seed}: pipeline {rows[0]['seconds']:.1f} s", flush=True)
    rows.append(_sklearn_arm("sequential, divergence stopping", make_regressor(cfg), space,
                             folds, seed, X, y, data, n_iter))  # fmt: skip
    print(f"  seed {seed}: sequential {rows[1]['seconds']:.1f} s", flush=True)
    peak = _peak(peak_n)  # read beside the population arm, before and after it
    t = time.perf_counter()
    pop = PopulationSearchCV(make_regressor(cfg), space, n_iter=n_iter, cv=folds,
                             random_state=seed, scoring="neg_mean_squared_error").fit(X, y)
    rows.append({"arm": "PopulationSearchCV (random)", "seconds": time.perf_counter() - t,
                 "member_epochs": int(pop.member_epochs_.sum()),
                 "search_cv_mse": -pop.best_score_, "params": _plain(pop.best_params_),
                 "test_mse": _test_mse(pop.best_estimator_, data)})  # fmt: skip
    peak = max(peak, _peak(peak_n))
    # the arms' folds: cfg.shuffled_folds() of this cv and seed is `folds`
    tcfg = replace(cfg, search="tpe", cv=sizes["folds"])
    tpe, extra = _tpe_rows(tcfg, X, y, data, flops, sizes["budgets"])
    rows += tpe
    cache: dict = {}
    for r in rows:
        r["seed"] = seed
        r["rescored_cv_mse"] = _rescore(cfg, r["params"], folds, X, y, cache)
    seq = rows[1]
    head = next(r for r in rows if r["arm"] == f"tpe, {sizes['headline']} trials")
    summary = {
        "seed": seed,
        "sequential_seconds": seq["seconds"],
        "pipeline_seconds": rows[0]["seconds"],
        "tpe_seconds": head["seconds"],
        "speedup_vs_sequential": seq["seconds"] / head["seconds"],
        "speedup_vs_pipeline": rows[0]["seconds"] / head["seconds"],
        "sequential_rescored_cv_mse": seq["rescored_cv_mse"],
        "tpe_rescored_cv_mse": head["rescored_cv_mse"],
        "tpe_as_good": head["rescored_cv_mse"] <= seq["rescored_cv_mse"],
        "population_gflops": pop.member_epochs_.sum() * flops / pop.train_seconds_ / 1e9,
        "matmul_peak_gflops": peak,
        **extra,
    }
    summary["population_peak_fraction"] = summary["population_gflops"] / peak
    print(f"  seed {seed}: tpe ({sizes['headline']} trials) {head['seconds']:.1f} s: "
          f"{summary['speedup_vs_sequential']:.1f}x the sequential arm, "
          f"{summary['speedup_vs_pipeline']:.1f}x the pipeline", flush=True)  # fmt: skip
    return rows, summary


def _median(summaries: list[dict], key: str) -> float:
    return float(np.median([s[key] for s in summaries]))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5])
    p.add_argument("--json", default="runs/benchmarks/search_efficiency.json")
    p.add_argument("--smoke", action="store_true", help="tiny sizes, seconds (the test suite)")
    args = p.parse_args(argv)
    sizes = SMOKE if args.smoke else FULL
    # Diverged candidates of the scikit-learn arms warn per fold; they are counted, not shown.
    warnings.filterwarnings("ignore")
    data = load_regression(data_dir=data_dir(args.data_dir))
    print(f"data: {data.source}; torch threads {torch.get_num_threads()}", flush=True)
    rows, summaries = [], []
    for seed in args.seeds:
        r, s = run_seed(seed, data, 256 if args.smoke else 2048, sizes)
        rows += r
        summaries.append(s)
    for r in rows:
        r["seconds"] = round(r["seconds"], 2)
        for k in ("search_cv_mse", "rescored_cv_mse", "test_mse"):
            r[k] = round(float(r[k]), 4) if math.isfinite(r[k]) else None
    cols = ["seed", "arm", "seconds", "member_epochs", "search_cv_mse", "rescored_cv_mse",
            "test_mse"]  # fmt: skip
    print()
    print(table(rows, cols))
    headline = {k: round(_median(summaries, k), 2) for k in
                ("speedup_vs_sequential", "speedup_vs_pipeline")}  # fmt: skip
    medians = {
        "sequential_rescored_cv_mse": round(_median(summaries, "sequential_rescored_cv_mse"), 4),
        "tpe_rescored_cv_mse": round(_median(summaries, "tpe_rescored_cv_mse"), 4),
        "population_peak_fraction": round(_median(summaries, "population_peak_fraction"), 3),
    }
    print(f"\nmedians over seeds {args.seeds}: {headline}, {medians}")
    path = write_json(
        args.json,
        {
            "benchmark": "search_efficiency",
            "smoke": args.smoke,
            "data": data.source,
            "command": "python benchmarks/search_efficiency.py"
            + (" --smoke" if args.smoke else "") + f" --seeds {' '.join(map(str, args.seeds))}",
            "headline_trials": sizes["headline"],
            "targets": TARGETS,
            **headline,
            **medians,
            "seeds": summaries,
            "rows": rows,
        },
    )
    print(f"written {path}")


if __name__ == "__main__":
    main()
