"""Seconds per training epoch on MNIST: glassnet vs a plain PyTorch loop vs default skorch.

All three train the same module on the same 48,000 images (the fixed 80/20 split) with Adam
(lr 1e-3, flat) and score the same 12,000 validation images each epoch, so an "epoch" is the same
work everywhere except for how batches are made:

- plain:    TensorDataset + DataLoader(batch_size=64, shuffle=True), a hand-written loop
- skorch:   NeuralNetClassifier with default iterators (DataLoader over skorch's Dataset,
            batch_size=128 default), same validation set
- glassnet: glassnet's classifier (InMemoryLoader slicing tensors, batch size --batch-size)

This machine shares its cores with noisy neighbours (the same epoch varies by 1.5x within a
minute), so the pipelines take turns epoch by epoch (A B C A B C ...), each sees the same
background load, and the table reports the median and the minimum epoch (noise only adds time).

Usage: python benchmarks/epoch_speed.py [--data-dir DIR] [--epochs 5] [--out JSON]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from skorch import NeuralNetClassifier
from skorch.callbacks import PrintLog
from skorch.dataset import Dataset
from skorch.helper import predefined_split
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import data_dir, table, write_json  # noqa: E402

from glassnet.data.images import load_images  # noqa: E402
from glassnet.experiments.classification import (  # noqa: E402
    ClassificationConfig,
    _split,
    build_module,
    make_classifier,
)

DROPOUT = {"mlp": 0.2, "lenet5": 0.25}


class PlainLoop:
    """The loop a PyTorch tutorial writes, one epoch per call."""

    def __init__(self, model_name, train, valid, seed):
        torch.manual_seed(seed)
        self.module = build_module(model_name, 10, dropout=DROPOUT[model_name])
        self.opt = torch.optim.Adam(self.module.parameters(), lr=1e-3)
        self.loss_fn = torch.nn.CrossEntropyLoss()
        tensors = [torch.from_numpy(a) for a in (*train, *valid)]
        self.loader = DataLoader(TensorDataset(*tensors[:2]), batch_size=64, shuffle=True)
        self.vloader = DataLoader(TensorDataset(*tensors[2:]), batch_size=64)
        self.n_valid = len(valid[1])

    def epoch(self) -> tuple[float, float]:
        t0 = time.perf_counter()
        self.module.train()
        for xb, yb in self.loader:
            self.opt.zero_grad()
            self.loss_fn(self.module(xb), yb).backward()
            self.opt.step()
        self.module.eval()
        correct = 0
        with torch.no_grad():
            for xb, yb in self.vloader:
                correct += (self.module(xb).argmax(1) == yb).sum().item()
        return time.perf_counter() - t0, correct / self.n_valid


class SkorchEpochs:
    """A skorch net trained one epoch per call (partial_fit), timed by skorch's own 'dur'."""

    def __init__(self, net, train):
        self.net, self.train, self.started = net, train, False

    def epoch(self) -> tuple[float, float]:
        if not self.started:
            self.net.fit(*self.train)
            self.started = True
        else:
            self.net.partial_fit(*self.train)
        return float(self.net.history[-1, "dur"]), float(self.net.history[-1, "valid_acc"])


def skorch_default(model_name, train, valid, seed):
    torch.manual_seed(seed)
    module = build_module(model_name, 10, dropout=DROPOUT[model_name])
    net = NeuralNetClassifier(
        module,
        criterion=torch.nn.CrossEntropyLoss,
        optimizer=torch.optim.Adam,
        lr=1e-3,
        max_epochs=1,
        train_split=predefined_split(Dataset(*valid)),
        callbacks__print_log=PrintLog(sink=lambda *_: None),
    )
    return SkorchEpochs(net, train)


def glassnet_net(model_name, train, valid, seed, batch_size):
    cfg = ClassificationConfig(
        model=model_name,
        epochs=1,
        seed=seed,
        batch_size=batch_size,
        dropout=DROPOUT[model_name],
        lr_schedule="none",  # a flat lr like the other two, so accuracies compare
        device="cpu",
    )
    return SkorchEpochs(make_classifier(cfg, 10, valid), train)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=256, help="glassnet's batch size")
    p.add_argument("--models", nargs="+", default=["mlp", "lenet5"])
    p.add_argument("--out", default="benchmarks/results/epoch_speed.json")
    args = p.parse_args()
    data = load_images(data_dir(args.data_dir))
    x_tr, x_val, y_tr, y_val = _split(data, ClassificationConfig())
    train, valid = (x_tr, y_tr), (x_val, y_val)
    print(
        f"data: {data.source}; {len(y_tr)} train / {len(y_val)} validation; "
        f"{args.epochs} interleaved epochs each; torch threads {torch.get_num_threads()}"
    )
    rows = []
    for model in args.models:
        pipes = {
            "plain (DataLoader, batch 64)": PlainLoop(model, train, valid, 0),
            "skorch default": skorch_default(model, train, valid, 0),
            f"glassnet (batch {args.batch_size})": glassnet_net(
                model, train, valid, 0, args.batch_size
            ),
        }
        times = {name: [] for name in pipes}
        accs = {}
        for _ in range(args.epochs):
            for name, pipe in pipes.items():
                sec, acc = pipe.epoch()
                times[name].append(sec)
                accs[name] = acc
        base_med = base_min = None
        for name in pipes:
            t = times[name][1:] or times[name]  # the first epoch pays one-off warm-up costs
            med, low = statistics.median(t), min(t)
            base_med, base_min = base_med or med, base_min or low
            rows.append(
                {
                    "model": model,
                    "pipeline": name,
                    "median_s": round(med, 3),
                    "min_s": round(low, 3),
                    "speedup_median": round(base_med / med, 2),
                    "speedup_min": round(base_min / low, 2),
                    "val_acc_after": round(accs[name], 4),
                    "epochs": len(times[name]),
                    "all_s": [round(x, 3) for x in times[name]],
                }
            )
            print(table(rows[-1:], list(rows[-1])[:-1]).splitlines()[-1], flush=True)
    print()
    print(table(rows, list(rows[0])[:-1]))
    path = write_json(
        args.out,
        {"benchmark": "epoch_speed", "data": data.source, "epochs": args.epochs, "rows": rows},
    )
    print(f"\nwritten {path}")


if __name__ == "__main__":
    main()
