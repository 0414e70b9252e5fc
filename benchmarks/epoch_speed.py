"""Seconds per training epoch on MNIST: glassnet vs a plain PyTorch loop vs default skorch.

All three train the same module on the same 48,000 images (the fixed 80/20 split) with Adam
(lr 1e-3) and score the same 12,000 validation images each epoch, so an "epoch" is the same
work everywhere except for how batches are made:

- plain:   TensorDataset + DataLoader(batch_size=64, shuffle=True), a hand-written loop
- skorch:  NeuralNetClassifier with default iterators (DataLoader over skorch's Dataset,
           batch_size=128 default), same validation set
- glassnet: glassnet's classifier (InMemoryLoader slicing tensors, batch size --batch-size)

Usage: python benchmarks/epoch_speed.py [--data-dir DIR] [--epochs 3] [--out JSON]
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


def plain_loop(model_name, train, valid, epochs, seed):
    torch.manual_seed(seed)
    module = build_module(model_name, 10, dropout=0.2 if model_name == "mlp" else 0.25)
    opt = torch.optim.Adam(module.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    loader = DataLoader(
        TensorDataset(torch.from_numpy(train[0]), torch.from_numpy(train[1])),
        batch_size=64,
        shuffle=True,
    )
    vloader = DataLoader(
        TensorDataset(torch.from_numpy(valid[0]), torch.from_numpy(valid[1])), batch_size=64
    )
    times, acc = [], 0.0
    for _ in range(epochs):
        t0 = time.perf_counter()
        module.train()
        for xb, yb in loader:
            opt.zero_grad()
            loss_fn(module(xb), yb).backward()
            opt.step()
        module.eval()
        correct = 0
        with torch.no_grad():
            for xb, yb in vloader:
                correct += (module(xb).argmax(1) == yb).sum().item()
        times.append(time.perf_counter() - t0)
        acc = correct / len(valid[1])
    return times, acc


def skorch_default(model_name, train, valid, epochs, seed):
    torch.manual_seed(seed)
    cfg = ClassificationConfig(model=model_name)
    module = build_module(model_name, 10, dropout=0.2 if model_name == "mlp" else 0.25)
    net = NeuralNetClassifier(
        module,
        criterion=torch.nn.CrossEntropyLoss,
        optimizer=torch.optim.Adam,
        lr=cfg.lr,
        max_epochs=epochs,
        train_split=predefined_split(Dataset(*valid)),
        callbacks__print_log=PrintLog(sink=lambda *_: None),
    )
    net.fit(*train)
    return list(net.history[:, "dur"]), float(net.history[-1, "valid_acc"])


def glassnet_net(model_name, train, valid, epochs, seed, batch_size):
    cfg = ClassificationConfig(
        model=model_name,
        epochs=epochs,
        seed=seed,
        batch_size=batch_size,
        dropout=0.2 if model_name == "mlp" else 0.25,
        lr_schedule="none",  # a flat lr like the other two, so accuracies compare
        device="cpu",
    )
    net = make_classifier(cfg, 10, valid)
    net.fit(*train)
    return list(net.history[:, "dur"]), float(net.history[-1, "valid_acc"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=256, help="glassnet's batch size")
    p.add_argument("--models", nargs="+", default=["mlp", "lenet5"])
    p.add_argument("--out", default="benchmarks/results/epoch_speed.json")
    args = p.parse_args()
    data = load_images(data_dir(args.data_dir))
    x_tr, x_val, y_tr, y_val = _split(data, ClassificationConfig())
    train, valid = (x_tr, y_tr), (x_val, y_val)
    print(
        f"data: {data.source}; {len(y_tr)} train / {len(y_val)} validation; "
        f"{args.epochs} epochs each; torch threads {torch.get_num_threads()}"
    )
    rows = []
    for model in args.models:
        runs = {
            "plain (DataLoader, batch 64)": lambda m=model: plain_loop(
                m, train, valid, args.epochs, 0
            ),
            "skorch default": lambda m=model: skorch_default(m, train, valid, args.epochs, 0),
            f"glassnet (batch {args.batch_size})": lambda m=model: glassnet_net(
                m, train, valid, args.epochs, 0, args.batch_size
            ),
        }
        base = None
        for name, fn in runs.items():
            times, acc = fn()
            # median epoch: the first epoch pays one-off warm-up costs
            sec = statistics.median(times)
            base = base or sec
            rows.append(
                {
                    "model": model,
                    "pipeline": name,
                    "s_per_epoch": round(sec, 3),
                    "speedup_vs_plain": round(base / sec, 2),
                    "val_acc_after": round(acc, 4),
                    "epochs": len(times),
                }
            )
            print(table(rows[-1:], list(rows[-1])).splitlines()[-1], flush=True)
    print()
    print(table(rows, list(rows[0])))
    path = write_json(
        args.out,
        {"benchmark": "epoch_speed", "data": data.source, "epochs": args.epochs, "rows": rows},
    )
    print(f"\nwritten {path}")


if __name__ == "__main__":
    main()
