"""MNIST seconds per epoch and final accuracy: glassnet vs a plain PyTorch loop vs skorch.

All three train the same module on the same 48,000 images (the fixed 80/20 split) for the same
number of epochs and score the same 12,000 validation images after every epoch:

- plain:    TensorDataset + DataLoader(batch_size=64, shuffle=True), Adam 1e-3, a hand-written loop
- skorch:   NeuralNetClassifier with default iterators (DataLoader over skorch's Dataset,
            batch_size=128 default), Adam 1e-3, same validation set
- glassnet: glassnet's classifier as `glassnet classify` runs it: InMemoryLoader batches, cosine
            learning rate over the epochs, and the per-model settings in GLASSNET below (batch
            size, lr, shift augmentation, precision), each overridable from the command line

"Equal final accuracy" is judged on the last epoch's validation accuracy of each pipeline.
This machine shares its cores with noisy neighbours (the same epoch varies by 1.5x within a
minute), so the pipelines take turns epoch by epoch (A B C A B C ...), each sees the same
background load, and the table reports the median and the minimum epoch (noise only adds time).

Usage: python benchmarks/epoch_speed.py [--data-dir DIR] [--epochs 15] [--models mlp lenet5]
       [--batch-size N] [--lr LR] [--augment PIXELS] [--precision float32|bfloat16] [--out JSON]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
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
# glassnet's settings per model (what the README recommends for each)
GLASSNET = {
    "mlp": {"batch_size": 256, "lr": 1e-3, "augment": 0, "precision": "bfloat16"},
    "lenet5": {"batch_size": 512, "lr": 3e-3, "augment": 2, "precision": "bfloat16"},
}


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


def glassnet_net(model_name, train, valid, seed, epochs, settings):
    cfg = ClassificationConfig(
        model=model_name,
        epochs=epochs,
        seed=seed,
        dropout=DROPOUT[model_name],
        lr_schedule="cosine",
        device="cpu",
        **settings,
    )
    cfg.validate()
    net = make_classifier(cfg, 10, valid)
    # one epoch per call; the cosine schedule still spans all the epochs (its T_max)
    net.set_params(max_epochs=1)
    return SkorchEpochs(net, train)


def _worker(conn, kind: str, model: str, data_path: str | None, epochs: int, settings) -> None:
    """One pipeline in its own process, training one epoch per request.

    Separate processes keep process-wide settings (glassnet's allocator setting, see
    ``keep_freed_memory``) from helping or hurting the other pipelines.
    """
    data = load_images(data_path)
    x_tr, x_val, y_tr, y_val = _split(data, ClassificationConfig())
    train, valid = (x_tr, y_tr), (x_val, y_val)
    if kind == "plain":
        pipe = PlainLoop(model, train, valid, 0)
    elif kind == "skorch":
        pipe = skorch_default(model, train, valid, 0)
    else:
        pipe = glassnet_net(model, train, valid, 0, epochs, settings)
    conn.send(("ready", data.source, len(y_tr), len(y_val), torch.get_num_threads()))
    while conn.recv() == "epoch":
        conn.send(pipe.epoch())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir")
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--batch-size", type=int, help="glassnet's batch size (default: per model)")
    p.add_argument("--lr", type=float, help="glassnet's Adam lr (default: per model)")
    p.add_argument("--augment", type=int, help="glassnet's shift augmentation (default: per model)")
    p.add_argument("--precision", help="glassnet's training precision (default: per model)")
    p.add_argument("--models", nargs="+", default=["mlp", "lenet5"])
    p.add_argument("--out", default="benchmarks/results/epoch_speed.json")
    args = p.parse_args()
    data_path = data_dir(args.data_dir)
    ctx = mp.get_context("spawn")
    rows, source = [], None
    for model in args.models:
        settings = dict(GLASSNET[model])
        for key in settings:
            if getattr(args, key) is not None:
                settings[key] = getattr(args, key)
        label = (
            f"glassnet (batch {settings['batch_size']}, lr {settings['lr']:g}, "
            f"augment {settings['augment']}, {settings['precision']})"
        )
        names = {
            "plain": "plain (DataLoader, batch 64)",
            "skorch": "skorch default",
            "glass": label,
        }
        conns, procs = {}, []
        for kind in names:
            here, there = ctx.Pipe()
            proc = ctx.Process(
                target=_worker, args=(there, kind, model, data_path, args.epochs, settings)
            )
            proc.start()
            there.close()  # so that a crashed worker ends our recv() with EOFError, not a hang
            conns[kind], procs = here, [*procs, proc]
        for conn in conns.values():  # wait until every pipeline has loaded its data
            _, source, n_tr, n_val, threads = conn.recv()
        if model == args.models[0]:
            print(
                f"data: {source}; {n_tr} train / {n_val} validation; {args.epochs} interleaved "
                f"epochs each, one process per pipeline; torch threads {threads}"
            )
        times = {kind: [] for kind in names}
        accs = {kind: [] for kind in names}
        for _ in range(args.epochs):  # one epoch each in turn; the others wait meanwhile
            for kind, conn in conns.items():
                conn.send("epoch")
                sec, acc = conn.recv()
                times[kind].append(sec)
                accs[kind].append(acc)
        for conn, proc in zip(conns.values(), procs):
            conn.send("stop")
            proc.join()
        base_med = base_min = None
        for kind, name in names.items():
            t = times[kind][1:] or times[kind]  # the first epoch pays one-off warm-up costs
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
                    "final_val_acc": round(accs[kind][-1], 4),
                    "best_val_acc": round(max(accs[kind]), 4),
                    "epochs": len(times[kind]),
                    "all_s": [round(x, 3) for x in times[kind]],
                    "all_val_acc": [round(x, 4) for x in accs[kind]],
                }
            )
            print(table(rows[-1:], list(rows[-1])[:-2]).splitlines()[-1], flush=True)
    print()
    print(table(rows, list(rows[0])[:-2]))
    path = write_json(
        args.out,
        {"benchmark": "epoch_speed", "data": source, "epochs": args.epochs, "rows": rows},
    )
    print(f"\nwritten {path}")


if __name__ == "__main__":
    main()
