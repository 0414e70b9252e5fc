"""Checkpoints of a training run, so that an interrupted run continues where it stopped.

A checkpoint holds everything the next epoch depends on: the weights, the optimizer and the
learning-rate schedule, the weights' moving average, the best weights so far, the history and
the random generators. A run resumed from it ends exactly as the uninterrupted run would.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch
from skorch.callbacks import Callback, LRScheduler
from skorch.history import History

__all__ = ["Checkpointer", "resume_fit", "training_state", "restore_training_state"]

FORMAT = 1  # bump when the layout changes; older checkpoints are then refused, not misread


def training_state(net: Any) -> dict[str, Any]:
    """A copy of the state of a skorch net (a ``GlassClassifier``) at the end of an epoch:
    tensors and plain containers only, so it loads with ``weights_only=True``."""
    callbacks = dict(net.callbacks_)
    best = callbacks.get("best")
    schedulers = {
        name: cb.lr_scheduler_.state_dict()
        for name, cb in net.callbacks_
        if isinstance(cb, LRScheduler) and cb.lr_scheduler_ is not None
    }
    average = getattr(net, "average_", None)
    return copy.deepcopy(
        {  # state_dict()s hold the live tensors, which training goes on moving
            "format": FORMAT,
            "module": net.module_.state_dict(),
            "optimizer": net.optimizer_.state_dict(),
            "schedulers": schedulers,
            "average": None if average is None else average.state_dict(),
            "best": None if best is None else _best_state(best),
            "history": [dict(row) for row in net.history],
            "rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        }
    )


def _best_state(cb: Any) -> dict[str, Any]:
    return {
        "key": cb.best_key_,
        "epoch": cb.best_epoch_,
        "state": cb.best_state_,
        "snapshots": cb.snapshots_,
    }


def restore_training_state(net: Any, state: dict[str, Any]) -> None:
    """Put ``state`` (from ``training_state``) back into an initialized net, after its
    learning-rate schedulers have been created (``on_train_begin``)."""
    if state.get("format") != FORMAT:
        raise ValueError(f"checkpoint format {state.get('format')!r}, expected {FORMAT}")
    net.module_.load_state_dict(state["module"])
    net.optimizer_.load_state_dict(state["optimizer"])  # its rates: the schedule's, mid-run
    callbacks = dict(net.callbacks_)
    for name, sched in state["schedulers"].items():
        callbacks[name].lr_scheduler_.load_state_dict(sched)
    if state["average"] is not None:
        net.average_.load_state_dict(state["average"])
    if state["best"] is not None:
        cb, b = callbacks["best"], state["best"]
        cb.best_key_ = None if b["key"] is None else tuple(b["key"])
        cb.best_epoch_, cb.best_state_, cb.snapshots_ = b["epoch"], b["state"], b["snapshots"]
    net.history = History(state["history"])
    for _, cb in net.callbacks_:  # scorers mark "best so far" against their own record
        if hasattr(cb, "best_score_") and getattr(cb, "name", None):
            seen = [row[cb.name] for row in net.history if cb.name in row]
            if seen:
                cb.best_score_ = min(seen) if cb.lower_is_better else max(seen)
    torch.set_rng_state(state["rng"])
    if state["cuda_rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])


class Checkpointer(Callback):
    """Hand the training state to ``save`` after every epoch; with ``resume_from``, restore it
    when training begins. Place it after the learning-rate scheduler callbacks.

    ``save`` decides where and how (a run folder writes it atomically); the net trains
    ``max_epochs - epochs done`` more epochs when resumed (see ``resume_fit``).
    """

    def __init__(
        self,
        save: Callable[[dict[str, Any]], Any] | None = None,
        resume_from: dict[str, Any] | None = None,
    ) -> None:
        self.save = save
        self.resume_from = resume_from

    def on_train_begin(self, net, **kwargs) -> None:
        if self.resume_from is not None:
            restore_training_state(net, self.resume_from)

    def on_epoch_end(self, net, **kwargs) -> None:
        if self.save is not None:
            self.save(training_state(net))


def resume_fit(net: Any, X: Any, y: Any, state: dict[str, Any]) -> Any:
    """Continue ``net.fit(X, y)`` from ``state``: ``net`` built as for the original run, with
    a ``Checkpointer`` named "checkpoint". Returns the fitted net."""
    net.set_params(callbacks__checkpoint__resume_from=state)
    remaining = max(0, net.max_epochs - len(state["history"]))
    return net.fit(X, y, epochs=remaining)
