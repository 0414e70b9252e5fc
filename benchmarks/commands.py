"""The numbers a user gets from the commands themselves: each glassnet command run as a user runs
it (a fresh process, `--json`), its wall seconds and the metrics it prints, into JSON.

Sets (--sets, any of):
  mnist-default  `classify --model lenet5 --epochs 3`, `--epochs 10`, `--model mlp --epochs 3`:
                 the default preset, no other flag (targets from issue 11: 98.5%, 99.0%, 97.5%)
  mlp-best       `classify --model mlp --preset best` (about 5 minutes here)
  lenet5-best    `classify --model lenet5 --preset best` (about 9 minutes here)
  reproduce      `reproduce --quick`: what `make demo` runs, on the embedded data
Each row: the command, its wall seconds (process start to exit, figures and start-up
included), and the metrics it printed (test accuracy and validation accuracy, or each
experiment's headline for reproduce). Seed 0 unless --seed.

Usage: python benchmarks/commands.py [--sets mnist-default] [--data-dir DIR] [--json PATH]
       [--smoke]   (the test suite: tiny MNIST-layout data, one epoch)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import data_dir, table, write_json  # noqa: E402

SETS = {
    "mnist-default": [
        (["classify", "--model", "lenet5", "--epochs", "3"], 0.985),
        (["classify", "--model", "lenet5", "--epochs", "10"], 0.990),
        (["classify", "--model", "mlp", "--epochs", "3"], 0.975),
    ],
    # one set per model: LeNet-5's best is measured seed by seed by lenet_presets.py
    "mlp-best": [(["classify", "--model", "mlp", "--preset", "best"], 0.989)],
    "lenet5-best": [(["classify", "--model", "lenet5", "--preset", "best"], 0.994)],
    "reproduce": [(["reproduce", "--quick"], None)],
}
SMOKE = {"mnist-default": [(["classify", "--model", "mlp", "--epochs", "1", "--no-figures"], None)]}


def run(args: list[str], data: str | None, seed: int, out: Path, target: float | None) -> dict:
    """One command in its own process; its wall seconds and what it printed."""
    cmd = [sys.executable, "-m", "glassnet", *args, "--seed", str(seed), "--quiet", "--json",
           "--out", str(out)]  # fmt: skip
    if data is not None and args[0] == "classify":
        cmd += ["--data-dir", data]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - t0
    metrics = json.loads(done.stdout)["metrics"]
    row = {"command": "glassnet " + " ".join(args), "seed": seed, "wall_seconds": round(wall, 1)}
    if args[0] == "classify":
        row |= {"test_accuracy": metrics["test_accuracy"], "val_accuracy": metrics["val_accuracy"],
                "best_epoch": metrics["best_epoch"], "target": target,
                "met": None if target is None else metrics["test_accuracy"] >= target}  # fmt: skip
    else:  # reproduce: each experiment's headline
        row |= {"experiments": {k: {m: v.get(m) for m in ("test_mse", "test_accuracy") if m in v}
                                for k, v in metrics.items()}}  # fmt: skip
    return row


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sets", nargs="+", default=["mnist-default"], choices=list(SETS))
    p.add_argument("--data-dir")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default="runs/benchmarks/commands.json")
    p.add_argument("--smoke", action="store_true", help="one tiny command (the test suite)")
    a = p.parse_args(argv)
    data = data_dir(a.data_dir)
    if data is not None and not a.smoke:
        data = str(Path(data))
    sets = SMOKE if a.smoke else {k: SETS[k] for k in a.sets}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, commands in sets.items():
            for i, (args, target) in enumerate(commands):
                rows.append({"set": name, **run(args, data, a.seed, Path(tmp) / f"{name}{i}",
                                                target)})  # fmt: skip
                print(rows[-1], flush=True)
    print(table(rows, ["set", "command", "wall_seconds", "test_accuracy", "val_accuracy"]))
    path = write_json(a.json, {"benchmark": "commands", "smoke": a.smoke,
                               "command": " ".join(["python", "benchmarks/commands.py",
                                                    *(argv or sys.argv[1:])]),
                               "rows": rows})  # fmt: skip
    print(f"written {path}")


if __name__ == "__main__":
    main()
