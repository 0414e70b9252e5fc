"""TensorBoard event files for every run: losses, accuracies, learning rate, weight histograms.

Each run folder gets a ``tensorboard/`` folder; ``tensorboard --logdir runs`` shows them all.
Classification runs write as they train (``TensorBoardLog``, a skorch callback); regression
runs, which train a whole population at once, write their curves when training ends
(``write_curves``). Every finished run also writes its settings and final metrics for the
HParams tab (``write_hparams``), which lists runs side by side.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from skorch.callbacks import Callback

__all__ = ["TensorBoardLog", "write_curves", "write_hparams", "HISTOGRAM_EVERY"]

HISTOGRAM_EVERY = 5  # epochs between weight histograms (and the first and last epoch)

# history key -> TensorBoard tag; loss and accuracy curves of train and validation overlay
_TAGS = {
    "train_loss": "loss/train",
    "valid_loss": "loss/valid",
    "train_acc": "accuracy/train",
    "valid_acc": "accuracy/valid",
}


def _writer(logdir: str | Path) -> Any:
    from torch.utils.tensorboard import SummaryWriter  # imported on use: it loads tensorboard

    return SummaryWriter(log_dir=str(logdir))


def _histograms(writer: Any, module: torch.nn.Module, step: int) -> None:
    for name, p in module.named_parameters():
        writer.add_histogram(f"weights/{name}", p.detach().float().cpu(), step)


class TensorBoardLog(Callback):
    """After every epoch: the history's losses and accuracies, the learning rate, and every
    ``histogram_every`` epochs the weights' histograms. ``logdir=None`` writes nothing."""

    def __init__(self, logdir: str | Path | None = None, histogram_every: int = HISTOGRAM_EVERY):
        self.logdir = logdir
        self.histogram_every = histogram_every

    def initialize(self) -> TensorBoardLog:
        self.writer_ = None
        return self

    def on_train_begin(self, net, **kwargs) -> None:
        if self.logdir is not None:
            self.writer_ = _writer(self.logdir)  # a resumed run adds a file; TensorBoard joins

    def on_epoch_end(self, net, **kwargs) -> None:
        if self.writer_ is None:
            return
        row = net.history[-1]
        epoch = int(row["epoch"])
        for key, tag in _TAGS.items():
            if key in row:
                self.writer_.add_scalar(tag, float(row[key]), epoch)
        self.writer_.add_scalar("learning_rate", net.optimizer_.param_groups[0]["lr"], epoch)
        if epoch == 1 or epoch % self.histogram_every == 0 or epoch == net.max_epochs:
            _histograms(self.writer_, net.module_, epoch)
        self.writer_.flush()  # each epoch readable at once, and kept if the run is killed

    def on_train_end(self, net, **kwargs) -> None:
        if self.writer_ is not None:
            self.writer_.close()
            self.writer_ = None


def write_curves(
    logdir: str | Path,
    rows: Iterable[dict[str, Any]],
    lr: float | None,
    module: torch.nn.Module | None,
) -> None:
    """Write a finished run's curves (history rows with "epoch" and ``_TAGS`` keys), its
    constant learning rate and its final weights' histograms."""
    writer = _writer(logdir)
    last = 0
    for row in rows:
        last = int(row["epoch"])
        for key, tag in _TAGS.items():
            if row.get(key) is not None:
                writer.add_scalar(tag, float(row[key]), last)
        if lr is not None:
            writer.add_scalar("learning_rate", lr, last)
    if module is not None:
        _histograms(writer, module, last)
    writer.close()


def write_hparams(
    logdir: str | Path, settings: Mapping[str, Any], metrics: Mapping[str, Any]
) -> dict[str, dict[str, Any]]:
    """Write a finished run's settings and final metrics for TensorBoard's HParams tab, into
    ``logdir`` itself (``SummaryWriter.add_hparams`` would make a timestamped sub-folder, a
    second "run" beside the curves).

    Hyperparameters: every setting that is a number, a string or a flag (lists as text, None
    as "none"), and the search's choice as ``chosen/<name>``. Metrics: every finite number in
    ``metrics`` as ``final/<name>``. Returns both, as written."""
    from torch.utils.tensorboard.summary import hparams

    hp = {k: _hparam(v) for k, v in settings.items() if _hparam(v) is not None}
    for k, v in (metrics.get("best_params") or {}).items():
        if _hparam(v) is not None:
            hp[f"chosen/{k}"] = _hparam(v)
    finals = {
        f"final/{k}": float(v)
        for k, v in metrics.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    }
    writer = _writer(logdir)
    for summary in hparams(hp, finals):  # the experiment, the session's start and its end
        writer.file_writer.add_summary(summary)
    for tag, v in finals.items():
        writer.add_scalar(tag, v, 0)
    writer.close()
    return {"hparams": hp, "metrics": finals}


def _hparam(v: Any) -> bool | int | float | str | None:
    if isinstance(v, (bool, str)):
        return v
    if isinstance(v, (int, float)):
        return v if math.isfinite(v) else str(v)
    if v is None:
        return "none"
    if isinstance(v, (list, tuple)):
        return ",".join(map(str, v))
    return None  # nested records (data summaries) are not settings
