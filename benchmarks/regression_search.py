"""The study's regression search (skorch + RandomizedSearchCV) vs PopulationSearchCV, one run.

Both search the same 20 candidates (same distributions, same seed) on the same 5 shuffled folds
of the study's training data, with the same skorch estimator settings (1-512-256-1 tanh MLP,
SGD + momentum, MSE, full batch). The baseline is the study's pipeline: skorch's default
DataLoader iterators, one fit after another, ``n_jobs=2``. Printed and written as JSON: wall
seconds, speed-up, best CV MSE, test MSE (best candidate refit, test scored once), member-by-member
agreement of the CV scores, and the arithmetic rate achieved against this machine's float32
matmul rate measured in the same run.

Usage: python benchmarks/regression_search.py [--data-dir DIR] [--repeats 2] [--out JSON]
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from sklearn.base import clone
from sklearn.model_selection import KFold, RandomizedSearchCV
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import data_dir, table, write_json  # noqa: E402

from glassnet.data.sources import load_regression  # noqa: E402
from glassnet.errors import DivergedError  # noqa: E402
from glassnet.estimators import RegressionConfig, make_regressor  # noqa: E402
from glassnet.search.population import PopulationSearchCV  # noqa: E402
from glassnet.search.spaces import regression_distributions  # noqa: E402


def matmul_gflops(n: int = 2048, reps: int = 10) -> float:
    """float32 GEMM rate of this machine, all torch threads."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        a @ b
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n**3 * reps / (time.perf_counter() - t) / 1e9


def mlp_flops_per_sample(widths: list[int]) -> float:
    """Forward + backward FLOPs of one sample: 2·in·out forward, 2·in·out for the weight
    gradient, 2·in·out for the input gradient (not needed for the first layer)."""
    total = 0.0
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        total += (6 if i > 0 else 4) * a * b
    return total


def _rerun(est, params, folds, k, X, y) -> float | None:
    """The noise floor: the same member, trained sequentially again with an equivalent batch
    order (in-memory batches instead of the DataLoader). Float rounding differs, nothing else."""
    tr, te = list(folds.split(X))[k]
    try:
        net = clone(est).set_params(**params).fit(X[tr], y[tr])
    except DivergedError:
        return None
    return float(np.mean((net.predict(X[te]).ravel() - y[te]) ** 2))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir")
    p.add_argument("--n-iter", type=int, default=20)
    p.add_argument("--cv", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-jobs", type=int, default=2, help="baseline's parallel fits")
    p.add_argument("--skip-baseline", action="store_true")
    p.add_argument("--repeats", type=int, default=2, help="alternating runs of each search")
    p.add_argument("--out", default="runs/benchmarks/regression_search.json")
    p.add_argument("--smoke", action="store_true", help="tiny sizes, seconds (the test suite)")
    args = p.parse_args(argv)
    tiny = {}
    if args.smoke:  # every code path, a tiny net
        tiny = {"hidden": (16, 8), "epoch_choices": (5, 10)}
        args.n_iter, args.cv, args.repeats, args.n_jobs = 3, 2, 1, 1

    data = load_regression(data_dir=data_dir(args.data_dir))
    X = data.x_train.astype(np.float32).reshape(-1, 1)
    y = data.y_train.astype(np.float32)
    Xt = data.x_test.astype(np.float32).reshape(-1, 1)
    cfg = RegressionConfig(seed=args.seed, device="cpu", **tiny)
    space = regression_distributions(cfg.epoch_choices)
    folds = KFold(args.cv, shuffle=True, random_state=args.seed)
    print(
        f"data: {data.source}; {args.n_iter} candidates x {args.cv} folds; "
        f"torch threads {torch.get_num_threads()}"
    )
    peak = matmul_gflops(256 if args.smoke else 2048)
    print(f"float32 matmul (2048^3): {peak:.1f} GFLOP/s")

    rows, searches, runs = [], {}, {}
    # The study's pipeline: plain skorch iterators (DataLoader), one fit after another.
    base_est = make_regressor(cfg).set_params(
        iterator_train=DataLoader, iterator_valid=DataLoader, callbacks=[]
    )
    est = make_regressor(replace(cfg))

    def run_base():
        return RandomizedSearchCV(
            base_est,
            space,
            n_iter=args.n_iter,
            cv=folds,
            random_state=args.seed,
            scoring="neg_mean_squared_error",
            n_jobs=args.n_jobs,
            error_score=np.nan,
        ).fit(X, y)

    def run_pop():
        return PopulationSearchCV(
            est,
            space,
            n_iter=args.n_iter,
            cv=folds,
            random_state=args.seed,
            scoring="neg_mean_squared_error",
        ).fit(X, y)

    todo = [("PopulationSearchCV", run_pop)]
    if not args.skip_baseline:
        todo.insert(0, ("skorch + RandomizedSearchCV", run_base))
    # Alternate the two (B P B P ...): the neighbours' load changes by the minute, so each
    # gets the same mix of quiet and busy periods; the table reports the median.
    for rep in range(args.repeats):
        for name, fn in todo:
            t = time.perf_counter()
            fitted = fn()
            runs.setdefault(name, []).append(round(time.perf_counter() - t, 2))
            print(f"  {name}: {runs[name][-1]} s (repeat {rep + 1})", flush=True)
            searches[name] = (fitted, float(np.median(runs[name])))
    base = searches.get("skorch + RandomizedSearchCV", (None, None))[0]
    pop = searches["PopulationSearchCV"][0]

    n_train = np.array([len(tr) for tr, _ in folds.split(X)], dtype=float)
    member_flops = (pop.member_epochs_ * n_train[None, :]).sum() * mlp_flops_per_sample(
        [1, *cfg.hidden, 1]
    )
    refit_flops = (
        pop.best_params_["max_epochs"] * len(y) * mlp_flops_per_sample([1, *cfg.hidden, 1])
    )
    base_time = None
    for name, (s, sec) in searches.items():
        base_time = base_time or sec
        test_mse = float(np.mean((s.best_estimator_.predict(Xt).ravel() - data.y_test) ** 2))
        row = {
            "search": name,
            "seconds": round(sec, 2),
            "runs_s": runs[name],
            "speedup": round(base_time / sec, 2),
            "best_cv_mse": round(-s.best_score_, 4),
            "test_mse": round(test_mse, 4),
            "n_failed": int(np.isnan(s.cv_results_["mean_test_score"]).sum()),
            "best_params": {
                k: (round(v, 6) if isinstance(v, float) else v) for k, v in s.best_params_.items()
            },
        }
        if name == "PopulationSearchCV":
            row["gflops"] = round((member_flops + refit_flops) / sec / 1e9, 1)
            row["fraction_of_matmul_peak"] = round(row["gflops"] / peak, 3)
        rows.append(row)

    agreement = {}
    if len(searches) == 2:
        a = np.stack([base.cv_results_[f"split{k}_test_score"] for k in range(args.cv)], 1)
        b = np.stack([pop.cv_results_[f"split{k}_test_score"] for k in range(args.cv)], 1)
        both = np.isfinite(a) & np.isfinite(b)
        rel = np.abs(a[both] - b[both]) / np.abs(a[both])
        agreement = {
            "members": int(a.size),
            "both_finite": int(both.sum()),
            "failed_in_both": int((~np.isfinite(a) & ~np.isfinite(b)).sum()),
            "failed_in_one_only": int((np.isfinite(a) != np.isfinite(b)).sum()),
            "within_1pct": int((rel < 0.01).sum()),
            "within_0.1pct": int((rel < 0.001).sum()),
            "max_rel_diff": float(rel.max()),
            "median_rel_diff": float(np.median(rel)),
            "same_best_params": base.best_params_ == pop.best_params_,
            "same_ranking": bool(
                (base.cv_results_["rank_test_score"] == pop.cv_results_["rank_test_score"]).all()
            ),
        }
        # The members that disagree most, with their settings: near-unstable runs (large
        # lr x momentum) amplify float rounding differences over hundreds of epochs.
        rel_full = np.full(a.shape, -1.0)
        rel_full[both] = rel
        worst = np.argsort(rel_full.ravel())[::-1][:3]
        agreement["largest_differences"] = [
            {
                "params": {
                    k: (round(v, 5) if isinstance(v, float) else v)
                    for k, v in base.cv_results_["params"][i // args.cv].items()
                },
                "fold": int(i % args.cv),
                "mse_sequential": float(-a.ravel()[i]),
                "mse_population": float(-b.ravel()[i]),
                "mse_sequential_rerun": _rerun(
                    est, base.cv_results_["params"][i // args.cv], folds, i % args.cv, X, y
                ),
            }
            for i in worst
        ]
    cols = [
        "search",
        "seconds",
        "speedup",
        "best_cv_mse",
        "test_mse",
        "n_failed",
        "gflops",
        "fraction_of_matmul_peak",
    ]
    print()
    print(table(rows, cols))
    if agreement:
        print(f"\nmember-by-member CV scores: {agreement}")
    path = write_json(
        args.out,
        {
            "benchmark": "regression_search",
            "smoke": args.smoke,
            "data": data.source,
            "n_iter": args.n_iter,
            "cv": args.cv,
            "seed": args.seed,
            "matmul_gflops": round(peak, 1),
            "rows": rows,
            "agreement": agreement,
            "population_train_seconds": round(pop.train_seconds_, 2),
            "population_refit_seconds": round(pop.refit_time_, 2),
        },
    )
    print(f"\nwritten {path}")


if __name__ == "__main__":
    main()
