"""LeNet-5's presets seed by seed, and what each lever added: an ablation run as a user runs it.

Each arm is one `glassnet classify --model lenet5 ...` command (a fresh process, `--json`),
run once per seed. An ablation starts from the previous preset, written out flag by flag, and
adds one lever per arm; its last arm is the preset as shipped, with no flag but the epochs.

Two roles for seeds, never mixed (choices are made on data the judging never sees):
  --role tune    seeds 100, 101, 102: the levers were chosen on these seeds' validation
                 accuracy (their 20% split of the training images); test accuracy not recorded
  --role report  seeds 0, 1, 2: each arm's test accuracy, the test set scored once per run
  --role confirm seeds 3, 4, 5: the same, on seeds no choice was made after (a check of a
                 report's number, e.g. of a lever decided after the report seeds were seen)

Ablations (--ablation):
  default   3 epochs (issue 22: the default preset >= 99.0% test after 3 epochs, median of 3
            seeds), then the shipped default at 10 epochs (no loss against the previous one)
  best      60 epochs on moved digits: the previous best preset, + a 5% validation split,
            + keeping the last epoch's weights, + no dropout, + mild elastic distortion (the
            shipped best; issue 22: >= 99.4% test, median of 3 seeds, <= 15 minutes a run);
            8-13 minutes a run alone: about 2.5 hours for the whole ablation
  best-tune no dropout, before it was shipped, on the tuning seeds (--role tune): the best
            preset with dropout 0.1 and a 20% validation split, then without dropout
  best-next-tune  the next levers, on the tuning seeds: elastic alpha 12, or 80 epochs

Usage: python benchmarks/lenet_presets.py [--ablation default|best|best-tune|best-next-tune]
       [--role report|tune|confirm] [--arms I ...] [--seeds S ...] [--data-dir DIR] [--json PATH]
       [--smoke]   (the test suite: tiny MNIST-layout data, one epoch, one seed)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import data_dir, table, write_json  # noqa: E402
from commands import run  # noqa: E402

SEEDS = {"tune": [100, 101, 102], "report": [0, 1, 2], "confirm": [3, 4, 5]}
# The default preset before issue 22, spelled out, so the ablation does not move with it.
PREVIOUS_DEFAULT = ["--lr", "0.012", "--dropout", "0.1", "--batch-size", "128", "--average",
                    "0.99", "--warmup", "0.03", "--betas", "0.9", "0.999",
                    "--label-smoothing", "0"]  # fmt: skip


def _with(flags: list[str], name: str, value: str) -> list[str]:
    """``flags`` with the value after ``name`` replaced."""
    i = flags.index(name)
    return [*flags[: i + 1], value, *flags[i + 2 :]]


# Each lever added to the one before: the ablation's steps towards today's default.
BATCH_64 = _with(PREVIOUS_DEFAULT, "--batch-size", "64")
NO_DROPOUT = _with(BATCH_64, "--dropout", "0")

ABLATIONS: dict[str, list[tuple[str, list[str], float | None]]] = {
    "default": [  # (arm, flags after `classify --model lenet5`, target test accuracy)
        ("previous default, 3 epochs", [*PREVIOUS_DEFAULT, "--epochs", "3"], None),
        ("+ batch 64", [*BATCH_64, "--epochs", "3"], None),
        ("+ no dropout", [*NO_DROPOUT, "--epochs", "3"], None),
        ("+ label smoothing 0.05: the default, 3 epochs", ["--epochs", "3"], 0.990),
        ("previous default, 10 epochs", [*PREVIOUS_DEFAULT, "--epochs", "10"], None),
        ("default, 10 epochs", ["--epochs", "10"], None),
    ],
}
# The best preset as shipped before issue 22, spelled out likewise.
PREVIOUS_BEST = ["--lr", "0.012", "--dropout", "0.1", "--batch-size", "128", "--average", "0.99",
                 "--warmup", "0.03", "--betas", "0.9", "0.999", "--label-smoothing", "0",
                 "--augment", "2", "--rotate", "10", "--zoom", "0.1", "--elastic", "0",
                 "--val-fraction", "0.2", "--keep", "best", "--epochs", "60"]  # fmt: skip
ABLATIONS["best"] = [  # issue 22: >= 99.4% test, median of 3 seeds, <= 15 minutes a run
    ("previous best, 60 epochs", PREVIOUS_BEST, None),
    ("+ 5% validation split", _with(PREVIOUS_BEST, "--val-fraction", "0.05"), None),
    ("+ the last epoch's weights",
     _with(_with(PREVIOUS_BEST, "--val-fraction", "0.05"), "--keep", "last"), None),
    ("+ no dropout", ["--preset", "best", "--elastic", "0"], 0.994),
    ("+ elastic alpha 12: the best preset", ["--preset", "best"], 0.994),
]
# The best preset's last lever (no dropout), tried on the tuning seeds' validation accuracy
# first: a 20% split (12,000 images; the shipped 5% is too few to tell tenths apart), the last
# epoch kept, dropout spelled out (it was the preset's 0.1 then).
BEST_TUNE = ["--preset", "best", "--val-fraction", "0.2", "--dropout", "0.1"]
ABLATIONS["best-tune"] = [
    ("the best preset, 20% validation split", BEST_TUNE, None),
    ("+ no dropout", _with(BEST_TUNE, "--dropout", "0"), None),
]
# The next levers for the best preset (issue 22: its median was 99.41% on the report seeds but
# 99.35% on the confirming seeds), tried on the tuning seeds like the one before, each on its
# own: mild elastic distortion (alpha 12 moves a pixel about half a pixel), and 80 epochs
# instead of 60 (without dropout the net may still underfit its moved digits). The preset
# itself at a 20% split is best-tune's second arm, the same flags.
BEST_NEXT = ["--preset", "best", "--val-fraction", "0.2"]
ABLATIONS["best-next-tune"] = [
    ("+ elastic alpha 12", [*BEST_NEXT, "--elastic", "12"], None),
    ("+ 80 epochs", [*BEST_NEXT, "--epochs", "80"], None),
]
SMOKE = [("default, 1 epoch", ["--epochs", "1", "--max-train", "200", "--no-figures"], None)]


def summarise(rows: list[dict], arms: list[tuple[str, str, float | None]]) -> list[dict]:
    """Per arm (name, command, target): the median over seeds of each accuracy and of the
    minutes per run. Also how render_results reads rows that several runs wrote."""
    out = []
    for arm, command, target in arms:
        mine = [r for r in rows if r["arm"] == arm]
        test = [r["test_accuracy"] for r in mine if r.get("test_accuracy") is not None]
        med = statistics.median(test) if test else None
        out.append({
            "arm": arm, "command": command,
            "seeds": [r["seed"] for r in mine],
            "median_val_accuracy": statistics.median(r["val_accuracy"] for r in mine),
            "median_test_accuracy": med,
            "median_minutes": statistics.median(r["wall_seconds"] for r in mine) / 60,
            "target": target, "met": None if target is None or med is None else med >= target,
        })  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ablation", default="default", choices=list(ABLATIONS))
    p.add_argument("--role", default="report", choices=list(SEEDS))
    p.add_argument("--arms", type=int, nargs="+", help="run only these arms (0-based)")
    p.add_argument("--seeds", type=int, nargs="+",
                   help="a subset of the role's seeds (e.g. two tuning seeds of three)")
    p.add_argument("--data-dir")
    p.add_argument("--json", default="runs/benchmarks/lenet_presets.json")
    p.add_argument("--smoke", action="store_true", help="one tiny run (the test suite)")
    a = p.parse_args(argv)
    data = data_dir(a.data_dir)
    arms = SMOKE if a.smoke else ABLATIONS[a.ablation]
    if a.arms:
        if not all(0 <= i < len(arms) for i in a.arms):
            p.error(f"--arms: indices 0 to {len(arms) - 1} (the ablation's arms, in order)")
        arms = [arms[i] for i in a.arms]
    seeds = SEEDS[a.role][:1] if a.smoke else SEEDS[a.role]
    if a.seeds:
        if not set(a.seeds) <= set(SEEDS[a.role]):
            p.error(f"--seeds: some of {SEEDS[a.role]} (the {a.role} role's seeds)")
        seeds = a.seeds
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (arm, flags, target) in enumerate(arms):
            for seed in seeds:
                args = ["classify", "--model", "lenet5", *flags]
                row = run(args, data, seed, Path(tmp) / f"{i}-{seed}", target)
                if a.role == "tune":  # chosen on validation: the test set is not looked at
                    row["test_accuracy"] = row["met"] = None
                rows.append({"arm": arm, **row})
                print(rows[-1], flush=True)
    summary = summarise(rows, [(arm, "glassnet classify --model lenet5 " + " ".join(flags), t)
                               for arm, flags, t in arms])
    print(table(summary, ["arm", "median_val_accuracy", "median_test_accuracy",
                          "median_minutes", "met"]))  # fmt: skip
    path = write_json(a.json, {"benchmark": "lenet_presets", "smoke": a.smoke,
                               "ablation": a.ablation, "role": a.role,
                               "command": " ".join(["python", "benchmarks/lenet_presets.py",
                                                    *(argv or sys.argv[1:])]),
                               "rows": rows, "arms": summary})  # fmt: skip
    print(f"written {path}")


if __name__ == "__main__":
    main()
