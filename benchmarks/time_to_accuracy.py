"""MNIST time to accuracy: wall seconds until the validation accuracy first reaches a threshold.

Every arm trains the same module class on the same 48,000 images and scores the same 12,000
validation images after every epoch (the fixed, stratified 80/20 split of the arm's seed). The
clock starts once the images are in memory as arrays (reading the IDX files is the same for
every arm, about 5 s here) and includes building the net, feeding batches (each arm's own data
loading path), training and the per-epoch validation. Each (arm, model, seed) runs in its own
process, one at a time.

Arms:
- tutorial:  the plain loop a PyTorch tutorial writes: TensorDataset + DataLoader(batch 64,
             shuffle), Adam 1e-3 constant, float32, the study's dropout (mlp 0.2, lenet5 0.25).
- recipe:    the same plain loop (DataLoader, hand-written steps) given glassnet's default
             recipe: its batch size, peak learning rate and betas, warm-up cosine, dropout,
             label smoothing, float32, validation of the weights' moving average with
             glassnet's warm-up decay (``MovingAverage``), and the allocator setting the
             glassnet command applies.
             glassnet vs recipe shows the training loop's own contribution; recipe vs
             tutorial shows the recipe's.
- skorch:    NeuralNetClassifier with skorch's defaults (batch 128, its DataLoader iterators,
             constant learning rate), given the study's optimizer (Adam 1e-3; skorch's own
             default, SGD 0.01, would not reach these thresholds) and the study's dropout.
- glassnet:  `glassnet classify --model M` with no other flag (the "default" preset).

The recipe was chosen on the validation split of seed 100, never on these seeds' splits nor on
the test set (which no arm touches). An arm stops once it has reached every threshold, or after
its epochs (glassnet and recipe: the preset's 10; tutorial and skorch: --max-epochs). An arm
that never reaches a threshold counts as not reaching it; where the tutorial never reaches one,
glassnet's speedup there is a lower bound (the tutorial's whole run over glassnet's time) and
is marked so; where glassnet's median never reaches a threshold that the baseline's does, its
speedup there is 0 (marked ``glassnet_not_reached``), so the minimum cannot hide it.
``speedup_min`` is the smallest of glassnet's speedups over the tutorial, over both models and
all thresholds, from medians over the seeds; ``speedup_min_vs_recipe`` the same over the
recipe-matched loop. Targets: speedup_min >= 3, speedup_min_vs_recipe >= 1.

Usage: python benchmarks/time_to_accuracy.py [--data-dir DIR] [--models lenet5 mlp]
       [--seeds 0 1 2 3 4] [--arms ...] [--max-epochs 10] [--json PATH]
Default JSON path: runs/benchmarks/time_to_accuracy.json (untracked); the recorded results were
written with --json benchmarks/results/time_to_accuracy.json on purpose.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import data_dir, table, write_json  # noqa: E402

THRESHOLDS = {"lenet5": (0.985, 0.990), "mlp": (0.975, 0.980)}
STUDY_DROPOUT = {"mlp": 0.2, "lenet5": 0.25}
ARMS = ("tutorial", "recipe", "skorch", "glassnet")


class Clock:
    """Epoch-end validation accuracies against the wall clock; says when every threshold is met."""

    def __init__(self, thresholds: tuple[float, ...]) -> None:
        self.t0 = time.perf_counter()
        self.thresholds = thresholds
        self.epochs: list[dict] = []

    def start(self) -> None:
        self.t0 = time.perf_counter()

    def tick(self, valid_acc: float) -> bool:
        self.epochs.append(
            {"seconds": round(time.perf_counter() - self.t0, 3), "valid_acc": float(valid_acc)}
        )
        return max(e["valid_acc"] for e in self.epochs) >= max(self.thresholds)

    def result(self) -> dict:
        first = {}
        for th in self.thresholds:
            hit = next((e for i, e in enumerate(self.epochs) if e["valid_acc"] >= th), None)
            first[str(th)] = None if hit is None else hit["seconds"]
        return {
            "epochs": self.epochs,
            "time_to": first,
            "total_seconds": self.epochs[-1]["seconds"],
        }


def _data(folder: str | None, seed: int):
    from glassnet.data.images import load_images
    from glassnet.estimators import ClassificationConfig
    from glassnet.experiments.classification import _split

    data = load_images(folder, seed=seed)
    return _split(data, ClassificationConfig(seed=seed))  # x_tr, x_val, y_tr, y_val


def _plain(model: str, seed: int, folder: str | None, clock: Clock, recipe: bool, max_epochs: int):
    import torch
    from torch.optim.swa_utils import AveragedModel
    from torch.utils.data import DataLoader, TensorDataset

    from glassnet.allocator import keep_freed_memory
    from glassnet.estimators import ClassificationConfig, build_module
    from glassnet.training import MovingAverage, WarmupCosine

    if recipe:
        keep_freed_memory()  # as the glassnet command does
    torch.manual_seed(seed)
    x_tr, x_val, y_tr, y_val = _data(folder, seed)
    clock.start()
    cfg = ClassificationConfig(model=model, seed=seed)  # glassnet's default recipe
    if not recipe:
        cfg.dropout, cfg.batch_size, cfg.lr, cfg.epochs = STUDY_DROPOUT[model], 64, 1e-3, max_epochs
        cfg.betas, cfg.label_smoothing = (0.9, 0.999), 0.0  # Adam's and PyTorch's own
    module = build_module(cfg, 10)
    train = DataLoader(
        TensorDataset(torch.as_tensor(x_tr), torch.as_tensor(y_tr)),
        batch_size=cfg.batch_size,
        shuffle=True,
    )
    valid = DataLoader(
        TensorDataset(torch.as_tensor(x_val), torch.as_tensor(y_val)), batch_size=1000
    )
    opt = torch.optim.Adam(module.parameters(), lr=cfg.lr, betas=cfg.betas)
    sched = None
    scored = module
    if recipe:
        steps = WarmupCosine(cfg.epochs * len(train), cfg.warmup)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, steps)
        scored = AveragedModel(module, multi_avg_fn=MovingAverage(cfg.average)).eval()
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    for _ in range(cfg.epochs):
        module.train()
        for xb, yb in train:
            opt.zero_grad()
            loss_fn(module(xb), yb).backward()
            opt.step()
            if recipe:
                sched.step()
                scored.update_parameters(module)
        scored.eval()
        correct = 0
        with torch.no_grad():
            for xb, yb in valid:
                correct += (scored(xb).argmax(1) == yb).sum().item()
        if clock.tick(correct / len(y_val)):
            break


def _skorch(model: str, seed: int, folder: str | None, clock: Clock, max_epochs: int):
    import torch
    from skorch import NeuralNetClassifier
    from skorch.callbacks import Callback, PrintLog
    from skorch.dataset import Dataset
    from skorch.helper import predefined_split

    from glassnet.estimators import ClassificationConfig, build_module

    torch.manual_seed(seed)
    x_tr, x_val, y_tr, y_val = _data(folder, seed)
    clock.start()
    cfg = ClassificationConfig(model=model, dropout=STUDY_DROPOUT[model])

    class Tick(Callback):
        def on_epoch_end(self, net, **kw):
            if clock.tick(net.history[-1, "valid_acc"]):
                raise KeyboardInterrupt  # skorch ends training cleanly on it

    net = NeuralNetClassifier(
        build_module(cfg, 10),
        criterion=torch.nn.CrossEntropyLoss,
        optimizer=torch.optim.Adam,
        lr=1e-3,
        max_epochs=max_epochs,
        train_split=predefined_split(Dataset(x_val, y_val)),
        callbacks=[("tick", Tick())],
        callbacks__print_log=PrintLog(sink=lambda *_: None),
    )
    net.fit(x_tr, y_tr)


def _glassnet(model: str, seed: int, folder: str | None, clock: Clock, epochs: int | None):
    from skorch.callbacks import Callback

    from glassnet.allocator import keep_freed_memory
    from glassnet.estimators import ClassificationConfig, make_classifier
    from glassnet.training import StopTraining

    keep_freed_memory()  # as the glassnet command does
    cfg = ClassificationConfig(model=model, seed=seed)  # no flag but the model: the defaults
    if epochs is not None:  # --smoke only
        cfg = ClassificationConfig(model=model, seed=seed, epochs=epochs)
    x_tr, x_val, y_tr, y_val = _data(folder, seed)  # the net seeds its own weights and batches
    clock.start()

    class Tick(Callback):
        def on_epoch_end(self, net, **kw):
            if clock.tick(net.history[-1, "valid_acc"]):
                raise StopTraining  # an ordinary end of training, not an interruption

    net = make_classifier(cfg, 10, len(y_tr), (x_val, y_val))
    net.callbacks.append(("tick", Tick()))
    net.fit(x_tr, y_tr)


def worker(arm: str, model: str, seed: int, folder: str | None, max_epochs: int,
           smoke: bool = False) -> dict:  # fmt: skip
    clock = Clock(THRESHOLDS[model])
    if arm in ("tutorial", "recipe"):
        _plain(model, seed, folder, clock, arm == "recipe", max_epochs)
    elif arm == "skorch":
        _skorch(model, seed, folder, clock, max_epochs)
    else:
        _glassnet(model, seed, folder, clock, max_epochs if smoke else None)
    return {"arm": arm, "model": model, "seed": seed, **clock.result()}


def _median(values: list[float | None]) -> float | None:
    """Median with 'not reached' (None) counted as slower than any time."""
    ranked = sorted(values, key=lambda v: math.inf if v is None else v)
    mid = ranked[len(ranked) // 2]
    return mid if len(ranked) % 2 or mid is None else statistics.median(ranked)


def summarise(runs: list[dict]) -> tuple[list[dict], list[dict], float | None]:
    """Per (model, arm, threshold) medians, glassnet's speedups and their minimum."""
    rows, speedups = [], []
    for model, ths in THRESHOLDS.items():
        mine = [r for r in runs if r["model"] == model]
        if not mine:
            continue
        for th in map(str, ths):
            med = {}
            for arm in ARMS:
                arm_runs = [r for r in mine if r["arm"] == arm]
                if arm_runs:
                    med[arm] = _median([r["time_to"][th] for r in arm_runs])
                    reached = sum(r["time_to"][th] is not None for r in arm_runs)
                    rows.append(
                        {
                            "model": model,
                            "threshold": float(th),
                            "arm": arm,
                            "median_seconds": med[arm],
                            "reached": f"{reached}/{len(arm_runs)}",
                        }
                    )
            g = med.get("glassnet")
            for base in ("tutorial", "recipe"):
                if "glassnet" not in med or base not in med:
                    continue
                if g is None:  # glassnet's median never got there: a loss if the base's did
                    if med[base] is not None:
                        speedups.append({"model": model, "threshold": float(th), "over": base,
                                         "speedup": 0.0, "lower_bound": False,
                                         "glassnet_not_reached": True})  # fmt: skip
                    continue
                bound = med[base] is None
                if bound:  # the baseline never got there: its whole run is a lower bound
                    b = _median([r["total_seconds"] for r in mine if r["arm"] == base])
                else:
                    b = med[base]
                speedups.append(
                    {
                        "model": model,
                        "threshold": float(th),
                        "over": base,
                        "speedup": round(b / g, 2),
                        "lower_bound": bound,
                    }
                )
    over_tutorial = [s["speedup"] for s in speedups if s["over"] == "tutorial"]
    return rows, speedups, (min(over_tutorial) if over_tutorial else None)


def speedup_min_over(speedups: list[dict], base: str) -> float | None:
    over = [s["speedup"] for s in speedups if s["over"] == base]
    return min(over) if over else None


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir")
    p.add_argument("--models", nargs="+", default=["lenet5", "mlp"], choices=list(THRESHOLDS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    p.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS)
    p.add_argument("--max-epochs", type=int, default=10, help="tutorial and skorch arms")
    p.add_argument("--json", default="runs/benchmarks/time_to_accuracy.json")
    p.add_argument(
        "--runs-from",
        nargs="+",
        metavar="JSON",
        help="train nothing: summarise the runs recorded in these JSON files (each model and "
        "arm's runs taken from the last file that has them)",
    )
    p.add_argument("--smoke", action="store_true",
                   help="every arm for --max-epochs (glassnet too), one seed: seconds on the "
                   "small data the test suite gives with --data-dir")  # fmt: skip
    p.add_argument("--worker", nargs=3, metavar=("ARM", "MODEL", "SEED"), help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    folder = data_dir(a.data_dir)
    if a.worker:
        arm, model, seed = a.worker
        print(json.dumps(worker(arm, model, int(seed), folder, a.max_epochs, a.smoke)))
        return
    runs = _recorded(a.runs_from) if a.runs_from else _measure(a, folder)
    rows, speedups, smin = summarise(runs)
    print()
    print(table(rows, ["model", "threshold", "arm", "median_seconds", "reached"]))
    print()
    print(table(speedups, ["model", "threshold", "over", "speedup", "lower_bound"]))
    print(f"\nspeedup_min (glassnet over the tutorial loop): {smin}; over the recipe-matched "
          f"loop: {speedup_min_over(speedups, 'recipe')}")
    sources = {r.get("max_epochs", a.max_epochs) for r in runs}
    payload = {"command": " ".join(sys.argv), "smoke": a.smoke, "thresholds": THRESHOLDS,
               "seeds": a.seeds,
               "max_epochs": sorted(sources), "tuned_on": "validation split of seed 100",
               "rows": rows, "speedups": speedups, "speedup_min": smin,
               "speedup_min_vs_recipe": speedup_min_over(speedups, "recipe"),
               "targets": {"speedup_min": 3.0, "speedup_min_vs_recipe": 1.0},
               "runs": runs}  # fmt: skip
    if a.runs_from:
        payload["summarised_from"] = [
            json.loads(Path(f).read_text())["command"] for f in a.runs_from
        ]
    print(f"wrote {write_json(a.json, payload)}")


def _recorded(files: list[str]) -> list[dict]:
    """Runs recorded by earlier invocations; for each (model, arm), those of the last file
    having it (so an arm measured again replaces only its own runs)."""
    by_arm: dict[tuple[str, str], list[dict]] = {}
    for f in files:
        found: dict[tuple[str, str], list[dict]] = {}
        for r in json.loads(Path(f).read_text())["runs"]:
            found.setdefault((r["model"], r["arm"]), []).append(r)
        by_arm.update(found)
    return [r for runs in by_arm.values() for r in runs]


def _measure(a: argparse.Namespace, folder: str | None) -> list[dict]:
    runs = []
    for model in a.models:
        for seed in a.seeds:
            for arm in a.arms:  # arms take turns, so slow drifts of the machine hit them alike
                cmd = [
                    sys.executable,
                    __file__,
                    "--worker",
                    arm,
                    model,
                    str(seed),
                    "--max-epochs",
                    str(a.max_epochs),
                ] + (["--data-dir", folder] if folder else []) + (["--smoke"] if a.smoke else [])
                out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
                runs.append(
                    {**json.loads(out.strip().splitlines()[-1]), "max_epochs": a.max_epochs}
                )
                r = runs[-1]
                print(
                    f"{model} seed {seed} {arm:9s} time_to {r['time_to']} "
                    f"({len(r['epochs'])} epochs, {r['total_seconds']:.1f} s)",
                    flush=True,
                )
    return runs


if __name__ == "__main__":
    main()
