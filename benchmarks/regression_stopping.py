"""Regression stopping: how the default's test MSE moves with training length, and whether
anything in the training data shows it.

For each panel function (``regression_quality.py``'s, development seeds by default) the
default deep ensemble is trained ``--epochs`` epochs once, with a snapshot of the model every
``--every`` epochs (``DeepEnsembleRegressor.snapshot_every``; each snapshot is built as the
final model is: Bayesian last layer included). Each snapshot is read on the training data
(training MSE, the members' mean Laplace log evidence) and on the test grid (test MSE, as a
ratio to the Gaussian process of ``regression_quality.py``).

Summaries, over the functions:
- ``fixed``: every function stopped at the same epoch (the default stops at 2,000);
- ``max_evidence``: each function stopped at its snapshot of highest evidence (a rule that
  reads training data only);
- ``oracle``: each function stopped at its snapshot of lowest *test* MSE. No user can do this;
  it bounds what any stopping rule could reach with this recipe.

Run:  .venv/bin/python benchmarks/regression_stopping.py --seed0 100 --epochs 6000 --every 250
      [--only NAME ...] [--smoke] --json benchmarks/results/regression_stopping.json
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np
from _common import HERE, write_json
from regression_quality import PANEL, make_function_data

SEED0 = 100  # the development seeds: this reads test MSEs along training, so never the reported


def _function(cfg, name: str, seed: int, every: int) -> dict:
    """One function: the long fit's snapshots, read on training and test data."""
    import torch

    from glassnet.baselines import fit_gaussian_process
    from glassnet.estimators.regression import make_deep_ensemble

    data, gaps, noise = make_function_data(name, seed)
    t0 = time.perf_counter()
    est = make_deep_ensemble(cfg)
    # inputs as the experiment passes them (a float32 column): then the snapshot at the
    # default's length is the default's model, bit for bit (float64 inputs round differently)
    x_col = np.asarray(data.x_train, dtype=np.float32).reshape(-1, 1)
    est.set_params(snapshot_every=every).fit(x_col, data.y_train)
    seconds = time.perf_counter() - t0
    gp = fit_gaussian_process(data.x_train, data.y_train, seed=cfg.seed)
    gp_mse = float(np.mean((gp.predict(data.x_test)[0] - data.y_test) ** 2))
    x_tr = torch.tensor(data.x_train, dtype=torch.float32).reshape(-1, 1)
    x_te = torch.tensor(data.x_test, dtype=torch.float32).reshape(-1, 1)
    points = []
    with torch.no_grad():
        for snap in est.snapshots_:
            fit, pred = snap.ensemble(x_tr)[:, 0].numpy(), snap.ensemble(x_te)[:, 0].numpy()
            test = float(np.mean((pred - data.y_test) ** 2))
            points.append({"epoch": snap.epoch,
                           "train_mse": float(np.mean((fit - data.y_train) ** 2)),
                           "evidence": float(np.nanmean(snap.evidence)),
                           "test_mse": test, "ratio_to_gp": test / gp_mse})  # fmt: skip
    return {"function": name, "seed": seed, "noise_sd": noise, "gaps": gaps,
            "gp_test_mse": gp_mse, "seconds": round(seconds, 1), "points": points}  # fmt: skip


def _summary(rows: list[dict], pick) -> dict:
    """Each function's ratio at the snapshot ``pick(points)`` chooses; median and worst."""
    chosen = [pick(r["points"]) for r in rows]
    ratios = [p["ratio_to_gp"] for p in chosen]
    worst = int(np.argmax(ratios))
    return {"epochs": [p["epoch"] for p in chosen], "ratios": ratios,
            "median_ratio": float(np.median(ratios)), "worst_ratio": ratios[worst],
            "worst_function": rows[worst]["function"]}  # fmt: skip


def summarise(rows: list[dict]) -> dict:
    """The stopping rules of the module's docstring, over ``rows``."""
    epochs = [p["epoch"] for p in rows[0]["points"]]
    return {
        "fixed": {str(e): _summary(rows, lambda ps, e=e: next(p for p in ps if p["epoch"] == e))
                  for e in epochs},  # fmt: skip
        "max_evidence": _summary(rows, lambda ps: max(ps, key=lambda p: p["evidence"])),
        "oracle": _summary(rows, lambda ps: min(ps, key=lambda p: p["test_mse"])),
    }


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seed0", type=int, default=SEED0, help="function i uses seed0 + i")
    p.add_argument("--epochs", type=int, default=6000, help="the long fit's epochs")
    p.add_argument("--every", type=int, default=250, help="a snapshot every this many epochs")
    p.add_argument("--only", nargs="+", choices=list(PANEL), help="a subset of the panel")
    p.add_argument("--smoke", action="store_true", help="seconds: two functions, a tiny net")
    p.add_argument(
        "--json",
        default=str(HERE.parent / "runs" / "benchmarks" / "regression_stopping.json"),
        help="where to write the results (default: under runs/, untracked)",
    )
    args = p.parse_args(argv)
    if args.epochs < 1:
        p.error(f"--epochs must be >= 1, got {args.epochs}")
    if not 1 <= args.every <= args.epochs:
        p.error(f"--every must be 1 to --epochs ({args.epochs}), got {args.every}")

    from glassnet.estimators import RegressionConfig

    cfg = replace(RegressionConfig(device="cpu"), ensemble_epochs=args.epochs)
    names = args.only or list(PANEL)
    if args.smoke:
        cfg = replace(cfg, hidden=(16, 8), members=2, ensemble_epochs=min(args.epochs, 40))
        names, args.every = names[:2], min(args.every, 20)
    rows = []
    for i, name in enumerate(PANEL):
        if name in names:
            rows.append(_function(cfg, name, args.seed0 + i, args.every))
            r = rows[-1]
            print(f"{name:16s} seed {r['seed']}: ratio to the GP by epoch "
                  + " ".join(f"{q['epoch']}:{q['ratio_to_gp']:.2f}" for q in r["points"]),
                  flush=True)  # fmt: skip
    summary = summarise(rows)
    rules = [(f"fixed {e}", v) for e, v in summary["fixed"].items()]
    rules += [("max evidence", summary["max_evidence"]), ("oracle", summary["oracle"])]
    for label, s in rules:
        print(f"{label:14s} median {s['median_ratio']:.2f}  worst {s['worst_ratio']:.2f} "
              f"({s['worst_function']})")  # fmt: skip
    payload = {"benchmark": "regression_stopping", "seed0": args.seed0, "smoke": args.smoke,
               "epochs": cfg.ensemble_epochs, "every": args.every, **summary,
               "rows": rows}  # fmt: skip
    write_json(args.json, payload)
    return payload


if __name__ == "__main__":
    main()
