"""How soon each regression search reaches the study pipeline's best CV MSE (issue 10).

Arms, each on the study's data with the same 5 shuffled folds (per seed), the same net
(1-512-256-1 tanh, SGD + momentum, MSE, full batch) and the study's ranges:
  1. the study's pipeline: skorch (DataLoader iterators) + RandomizedSearchCV, 20 candidates,
     n_jobs=2, no divergence stopping (as the study ran it);
  2. the same candidates, one skorch fit after another (n_jobs=2) with glassnet's divergence
     stopping and in-memory batches: the sequential baseline a careful user would run;
  3. PopulationSearchCV: the same candidates trained as one batched computation;
  4. --search tpe (TPESearchCV, its defaults: trials 6 at a time, successive halving, epochs up
     to 1000 with the best kept, study in a SQLite file as the CLI does) at 12, 24 and 36
     trials, read off one 36-trial run (the same seed asks the same trials).
Every arm's seconds include the refit of its best candidate on all training data; the test set
is scored once per row. The headline: seconds for --search tpe to reach a best CV MSE at least
as good as the pipeline's (plus the refit of that trial), as a ratio to the pipeline's seconds,
median of seeds 0-2; a seed where it is never reached counts as ratio 0.

Usage: python benchmarks/search_efficiency.py [--seeds 0 1 2] [--json PATH] [--smoke]
(--smoke: a tiny net, few candidates and epochs, seconds; the test suite runs it)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from sklearn.model_selection import KFold, RandomizedSearchCV
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import data_dir, table, write_json  # noqa: E402
from regression_search import matmul_gflops, mlp_flops_per_sample  # noqa: E402

from glassnet.data.sources import load_regression  # noqa: E402
from glassnet.estimators import RegressionConfig, make_regressor  # noqa: E402
from glassnet.progress import Progress  # noqa: E402
from glassnet.search.adapter import refit_best  # noqa: E402
from glassnet.search.population import PopulationSearchCV  # noqa: E402
from glassnet.search.spaces import regression_distributions  # noqa: E402
from glassnet.search.tpe import TPESearchCV, best_trial, trial_mse, trial_params  # noqa: E402

# The sizes of a full run; --smoke shrinks every one of them (and the net) to run in seconds.
FULL = {"n_iter": 20, "folds": 5, "budgets": (12, 24, 36), "cfg": {}}
SMOKE = {"n_iter": 3, "folds": 2, "budgets": (2, 4),
         "cfg": {"hidden": (16, 8), "epoch_choices": (5, 10), "max_epochs": 20,
                 "trial_batch": 2}}  # fmt: skip


def _test_mse(model, data) -> float:
    p = model.predict(data.x_test.astype(np.float32).reshape(-1, 1)).ravel()
    return float(np.mean((p - data.y_test) ** 2))


def _sklearn_arm(name, est, space, folds, seed, X, y, data, n_iter):
    t = time.perf_counter()
    s = RandomizedSearchCV(
        est,
        space,
        n_iter=n_iter,
        cv=folds,
        random_state=seed,
        n_jobs=2,
        scoring="neg_mean_squared_error",
        error_score=np.nan,
    ).fit(X, y)
    sec = time.perf_counter() - t
    epochs = np.array([c["max_epochs"] for c in s.cv_results_["params"]])
    return {
        "arm": name,
        "seconds": sec,
        "member_epochs": int(epochs.sum() * folds.n_splits),
        "best_cv_mse": -s.best_score_,
        "test_mse": _test_mse(s.best_estimator_, data),
    }


def _tpe_rows(cfg, folds, X, y, data, target, flops_per_row_epoch, budgets):
    """One TPE run of the largest budget; rows at each budget; the time to reach ``target``."""
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/optuna.db"  # what the CLI uses by default
        s = TPESearchCV(
            make_regressor(cfg),
            n_trials=max(budgets),
            batch=cfg.trial_batch,
            max_epochs=cfg.max_epochs,
            cv=folds,
            random_state=cfg.seed,
            storage=url,
            study_name="bench",
            refit=False,
        )
        t0 = time.perf_counter()
        s.fit(X, y)
        total = time.perf_counter() - t0
        trials = sorted(s.study_.trials, key=lambda t: t.number)
        rows = []
        for budget in budgets:
            seconds, member_epochs, best, _ = next(r for r in s.rounds_ if r[3] >= budget)
            params = trial_params(best_trial(trials[:budget]))
            t1 = time.perf_counter()
            net = refit_best(make_regressor(cfg), params, X, y, Progress())
            refit = time.perf_counter() - t1
            rows.append(
                {
                    "arm": f"tpe, {budget} trials",
                    "seconds": seconds + refit,
                    "member_epochs": member_epochs,
                    "best_cv_mse": best,
                    "test_mse": _test_mse(net, data),
                }
            )
        hit = next(((sec, me) for sec, me, mse in s.trace_ if mse <= target), None)
        reach = None
        if hit is not None:  # the trial that got there, refit, so the user has a model
            first = next(t for t in trials if trial_mse(t) <= target)
            t1 = time.perf_counter()
            refit_best(make_regressor(cfg), trial_params(first), X, y, Progress())
            reach = {"seconds": hit[0] + time.perf_counter() - t1, "member_epochs": hit[1]}
        rate = s.member_epochs_ * flops_per_row_epoch / total / 1e9
        return rows, reach, {"tpe_gflops": rate, "tpe_pruned": s.n_pruned_, "tpe_seconds": total}


def run_seed(seed: int, data, peak: float, sizes: dict = FULL) -> tuple[list[dict], dict]:
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
    rows = [
        _sklearn_arm(
            "study pipeline (skorch + RandomizedSearchCV)", study, space, folds, seed, X, y, data,
            n_iter,
        )
    ]
    print(f"  seed {seed}: pipeline {rows[0]['seconds']:.1f} s", flush=True)
    seq = _sklearn_arm(
        "sequential, divergence stopping", make_regressor(cfg), space, folds, seed, X, y, data,
        n_iter,
    )
    rows.append(seq)
    t = time.perf_counter()
    pop = PopulationSearchCV(
        make_regressor(cfg),
        space,
        n_iter=n_iter,
        cv=folds,
        random_state=seed,
        scoring="neg_mean_squared_error",
    ).fit(X, y)
    pop_sec = time.perf_counter() - t
    seq["member_epochs"] = int(pop.member_epochs_.sum())  # same members, same stopping
    rows.append(
        {
            "arm": "PopulationSearchCV (random)",
            "seconds": pop_sec,
            "member_epochs": int(pop.member_epochs_.sum()),
            "best_cv_mse": -pop.best_score_,
            "test_mse": _test_mse(pop.best_estimator_, data),
        }
    )
    target = rows[0]["best_cv_mse"]
    tpe, reach, extra = _tpe_rows(cfg, folds, X, y, data, target, flops, sizes["budgets"])
    rows += tpe
    for r in rows:
        r["seed"] = seed
    summary = {
        "seed": seed,
        "target_cv_mse": target,
        "pipeline_seconds": rows[0]["seconds"],
        "tpe_reach": reach,
        "speedup": rows[0]["seconds"] / reach["seconds"] if reach else 0.0,
        "population_gflops": pop.member_epochs_.sum() * flops / pop.train_seconds_ / 1e9,
        "matmul_peak_gflops": peak,
        **extra,
    }
    print(
        f"  seed {seed}: tpe reached {target:.4f} in "
        f"{reach['seconds'] if reach else float('nan'):.1f} s -> {summary['speedup']:.1f}x",
        flush=True,
    )
    return rows, summary


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
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
        peak = matmul_gflops(256 if args.smoke else 2048)
        r, s = run_seed(seed, data, peak, sizes)
        rows += r
        summaries.append(s)
    for r in rows:
        r["seconds"] = round(r["seconds"], 2)
        r["best_cv_mse"] = round(float(r["best_cv_mse"]), 4)
        r["test_mse"] = round(r["test_mse"], 4)
    print()
    print(table(rows, ["seed", "arm", "seconds", "member_epochs", "best_cv_mse", "test_mse"]))
    speedup = float(np.median([s["speedup"] for s in summaries]))
    print()
    for s in summaries:
        print(
            f"seed {s['seed']}: target {s['target_cv_mse']:.4f}, pipeline "
            f"{s['pipeline_seconds']:.1f} s, tpe {s['tpe_reach']}, {s['speedup']:.2f}x; "
            f"population {s['population_gflops']:.0f} GFLOP/s, tpe {s['tpe_gflops']:.0f}, "
            f"matmul peak {s['matmul_peak_gflops']:.0f}"
        )
    print(f"\nspeedup (median of seeds, time to the pipeline's best CV MSE): {speedup:.2f}x")
    path = write_json(
        args.json,
        {
            "benchmark": "search_efficiency",
            "smoke": args.smoke,
            "data": data.source,
            "speedup": round(speedup, 2),
            "seeds": summaries,
            "rows": rows,
        },
    )
    print(f"written {path}")


if __name__ == "__main__":
    main()
