"""What moving the digits costs per epoch, against the training epoch it feeds (issue 22).

Each arm passes once over the training images (48,000 MNIST digits, the 80% split) in
shuffled batches of 128 through ``AugmentLoader``, as training does, and nothing else. The
baseline, in the same run: one training epoch of LeNet-5 (forward, backward, Adam) over the
same batches with no moves. The cost of a move is its pass over the plain pass, as seconds
and as a share of that training epoch. Medians of ``--repeats`` passes, arms interleaved so
the machine's noise falls on all of them alike.

Usage: python benchmarks/augment_cost.py [--data-dir DIR] [--repeats 5] [--json PATH]
       [--smoke]   (the test suite: 512 random images, one repeat)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from skorch.dataset import Dataset

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import data_dir, table, write_json  # noqa: E402

from glassnet.data.batches import AugmentLoader, InMemoryLoader  # noqa: E402
from glassnet.models import LeNet5  # noqa: E402
from glassnet.preprocessing import to_inputs  # noqa: E402

BATCH = 128
# (arm, AugmentLoader's settings; None: the plain loader). The elastic arms use Simard et
# al.'s sigma 4; alpha 34 is theirs.
ARMS: list[tuple[str, dict | None]] = [
    ("no moves", None),
    ("shift 2 px (exact, one gather)", {"max_shift": 2}),
    ("shift 2, rotate 10, zoom 0.1 (the best preset)", {"max_shift": 2, "max_rotate": 10.0,
                                                         "max_zoom": 0.1}),
    ("... + elastic alpha 34, sigma 4", {"max_shift": 2, "max_rotate": 10.0, "max_zoom": 0.1,
                                         "elastic": 34.0, "elastic_sigma": 4.0}),
]  # fmt: skip


def _images(folder: str | None, smoke: bool) -> torch.Tensor:
    """The training images as a run's loader holds them: standardised, (n, 1, 28, 28)."""
    if smoke or folder is None:
        g = torch.Generator().manual_seed(0)
        return torch.randn(512, 1, 28, 28, generator=g)
    from glassnet.data.images import load_images

    data = load_images(folder)
    x = to_inputs(data.x_train[:48_000], *data.input_scale())  # (48000, 1, 28, 28)
    return torch.from_numpy(x)


def _pass(loader: InMemoryLoader) -> float:
    t0 = time.perf_counter()
    for _xb, _yb in loader:
        pass
    return time.perf_counter() - t0


def _train_epoch(loader: InMemoryLoader, net: torch.nn.Module, opt: torch.optim.Optimizer) -> float:
    t0 = time.perf_counter()
    for xb, yb in loader:
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(net(xb), yb).backward()
        opt.step()
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--json", default="runs/benchmarks/augment_cost.json")
    p.add_argument("--smoke", action="store_true", help="tiny random images, one repeat")
    a = p.parse_args(argv)
    if a.repeats < 1:
        p.error("--repeats: expected at least 1")
    repeats = 1 if a.smoke else a.repeats
    torch.manual_seed(0)
    x = _images(data_dir(a.data_dir), a.smoke)
    y = torch.randint(0, 10, (len(x),))
    ds = Dataset(x, y)

    def loader(kw: dict | None) -> InMemoryLoader:
        if kw is None:
            return InMemoryLoader(ds, batch_size=BATCH, shuffle=True)
        return AugmentLoader(ds, batch_size=BATCH, shuffle=True, **kw)

    loaders = [loader(kw) for _, kw in ARMS]
    net = LeNet5()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    seconds: list[list[float]] = [[] for _ in ARMS]
    train: list[float] = []
    for _ in range(repeats):
        train.append(_train_epoch(loaders[0], net, opt))
        for i, ld in enumerate(loaders):
            seconds[i].append(_pass(ld))
    train_s = statistics.median(train)
    plain = statistics.median(seconds[0])
    rows = []
    for (arm, kw), s in zip(ARMS, seconds):
        med = statistics.median(s)
        rows.append({"arm": arm, "settings": kw, "pass_seconds": med,
                     "cost_seconds": med - plain, "share_of_training_epoch":
                     (med - plain) / train_s, "seconds": s})  # fmt: skip
    print(table(rows, ["arm", "pass_seconds", "cost_seconds", "share_of_training_epoch"]))
    print(f"training epoch (LeNet-5, batch {BATCH}, no moves): {train_s:.2f} s")
    payload = {"benchmark": "augment_cost", "smoke": a.smoke, "n_images": len(x),
               "batch_size": BATCH, "repeats": repeats, "training_epoch_seconds": train_s,
               "training_epoch_runs": train, "rows": rows,
               "command": " ".join(["python", "benchmarks/augment_cost.py",
                                    *(argv if argv is not None else sys.argv[1:])])}  # fmt: skip
    path = write_json(a.json, payload)
    print(f"written {path}")
    return payload


if __name__ == "__main__":
    main()
