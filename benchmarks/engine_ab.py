"""The batched engine before and after a change: the population search's member-epoch rate and
its results, measured in one run, the two source trees taking turns (B A B A ...).

"after" is this checkout's src/; "before" is src/ as it was at --before REV (extracted with
`git archive`). Each measurement runs in its own process: the study's population search (20
candidates x 5 shuffled folds of the study's data, seed 0, 1-512-256-1 tanh, SGD, full batch),
without the refit. Printed and written as JSON: each run's member-epochs, training seconds and
rate, the medians per tree, after / before, and whether both trees found the same scores.

Usage: python benchmarks/engine_ab.py --before REV [--repeats 3] [--json PATH] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import data_dir, table, write_json  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

# One measurement, run under PYTHONPATH=<tree>/src: prints one JSON line.
MEASURE = """
import json, sys, numpy as np
from sklearn.model_selection import KFold
from glassnet.data.sources import load_regression
from glassnet.estimators import RegressionConfig, make_regressor
from glassnet.search.population import PopulationSearchCV
from glassnet.search.spaces import regression_distributions
data = load_regression(data_dir=sys.argv[1] or None)
kw = json.loads(sys.argv[2])
cfg = RegressionConfig(seed=0, device="cpu", **kw.get("cfg", {}))
X = data.x_train.astype(np.float32).reshape(-1, 1)
s = PopulationSearchCV(make_regressor(cfg), regression_distributions(cfg.epoch_choices),
                       n_iter=kw["n_iter"], cv=KFold(kw["folds"], shuffle=True, random_state=0),
                       random_state=0, scoring="neg_mean_squared_error", refit=False)
s.fit(X, data.y_train.astype(np.float32))
scores = [None if v != v else round(float(v), 6) for v in s.cv_results_["mean_test_score"]]
print(json.dumps({"member_epochs": int(s.member_epochs_.sum()),
                  "seconds": s.train_seconds_, "scores": scores}))
"""
FULL = {"n_iter": 20, "folds": 5}
SMOKE = {"n_iter": 3, "folds": 2, "cfg": {"hidden": [16, 8], "epoch_choices": [5, 10]}}


def _extract(rev: str, into: Path) -> Path:
    """src/ as it was at ``rev``, under ``into``."""
    blob = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "src"], check=True,
                          capture_output=True).stdout  # fmt: skip
    with tarfile.open(fileobj=BytesIO(blob)) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


def _measure(src: Path, data: str | None, sizes: dict) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src)}
    out = subprocess.run([sys.executable, "-c", MEASURE, data or "", json.dumps(sizes)],
                         env=env, check=True, capture_output=True, text=True).stdout  # fmt: skip
    row = json.loads(out.strip().splitlines()[-1])
    row["rate"] = row["member_epochs"] / row["seconds"]
    return row


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--before", required=True, metavar="REV", help="the commit to compare with")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--data-dir")
    p.add_argument("--json", default="runs/benchmarks/engine_ab.json")
    p.add_argument("--smoke", action="store_true", help="tiny sizes, seconds (the test suite)")
    a = p.parse_args(argv)
    sizes = SMOKE if a.smoke else FULL
    data = data_dir(a.data_dir)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        trees = {"before": _extract(a.before, Path(tmp)), "after": ROOT / "src"}
        for i in range(a.repeats):
            for name in ("before", "after"):  # taking turns: drifts of the machine hit both
                r = _measure(trees[name], data, sizes)
                rows.append({"tree": name, "repeat": i, **r})
                print(f"{name} #{i}: {r['member_epochs']} member-epochs in {r['seconds']:.2f} s "
                      f"= {r['rate']:.0f}/s", flush=True)  # fmt: skip
    med = {t: statistics.median(r["rate"] for r in rows if r["tree"] == t) for t in trees}
    same = len({json.dumps(r["scores"]) for r in rows}) == 1
    print(table([{k: v for k, v in r.items() if k != "scores"} for r in rows],
                ["tree", "repeat", "member_epochs", "seconds", "rate"]))  # fmt: skip
    print(f"median member-epochs/s: before {med['before']:.0f}, after {med['after']:.0f} "
          f"({med['after'] / med['before']:.3f}x); same scores in every run: {same}")
    path = write_json(a.json, {
        "benchmark": "engine_ab", "smoke": a.smoke, "before": a.before,
        "command": "python benchmarks/engine_ab.py " + " ".join(argv or sys.argv[1:]),
        "median_rate_before": med["before"], "median_rate_after": med["after"],
        "after_over_before": med["after"] / med["before"], "same_scores": same, "rows": rows,
    })  # fmt: skip
    print(f"written {path}")


if __name__ == "__main__":
    main()
