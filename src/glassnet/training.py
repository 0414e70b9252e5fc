"""skorch nets the experiments share: seeding, in-memory batches, divergence and progress hooks."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from skorch import NeuralNetClassifier, NeuralNetRegressor
from skorch.callbacks import Callback
from skorch.utils import to_tensor as skorch_to_tensor

from glassnet.errors import DivergedError, TrainingInterrupted, UserError
from glassnet.progress import Progress
from glassnet.rng import seeded

__all__ = [
    "StopTraining",
    "SeededMixin",
    "GlassRegressor",
    "GlassClassifier",
    "StopOnDivergence",
    "EpochProgress",
    "BestWeights",
    "best_of",
    "choose_device",
    "check_device",
    "check_precision",
    "PRECISIONS",
    "WarmupCosine",
    "MovingAverage",
]

PRECISIONS = ("float32", "bfloat16")


def check_device(device: str) -> None:
    """Raise UserError unless ``device`` is auto, cpu or an available CUDA device."""
    if not (device in ("auto", "cpu") or device.startswith("cuda")):
        raise UserError(f"`device` must be auto, cpu or cuda, got {device}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError("`device` cuda: no CUDA GPU is available")


def check_precision(precision: str, device: str = "auto") -> None:
    """Raise UserError unless ``precision`` is known and ``device`` computes it natively.

    bfloat16 on a CPU without bfloat16 instructions would be emulated, slower than float32.
    """
    if precision not in PRECISIONS:
        raise UserError(f"`precision` must be one of {', '.join(PRECISIONS)}, got {precision}")
    if precision == "float32":
        return
    device = choose_device(device)
    if device.startswith("cuda"):
        native = torch.cuda.is_bf16_supported()
    else:
        try:  # oneDNN's own check for AVX512-BF16 / AMX (private, hence the guard)
            native = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):
            native = False
    if not native:
        raise UserError(
            f"`precision` bfloat16: this {device} has no native bfloat16 "
            "arithmetic (needs AVX512-BF16/AMX or a recent GPU); use `precision` float32"
        )


def choose_device(device: str = "auto") -> str:
    """Return ``cuda`` when asked for ``auto`` and a GPU is present, else the given device."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


class WarmupCosine:
    """Learning-rate factor per optimizer step: a linear warm-up, then a cosine to zero.

    ``factor(t) = 0.04 + 0.96 * t / w`` for ``t < w``, then
    ``0.5 * (1 + cos(pi * (t - w) / (T - w)))``; ``T = total_steps``, ``w = round(warmup * T)``.
    The short warm-up lets Adam start at a high peak rate without its first, badly estimated
    steps throwing the weights far; the cosine ends each run annealed, whatever its length.
    A class, not a lambda, so nets pickle.
    """

    def __init__(self, total_steps: int, warmup: float = 0.03) -> None:
        if total_steps < 1 or not 0.0 <= warmup < 1.0:
            raise ValueError(
                f"need total_steps >= 1 and 0 <= warmup < 1, got {total_steps}, {warmup}"
            )
        self.total_steps = total_steps
        self.warm_steps = round(warmup * total_steps)

    def __call__(self, step: int) -> float:
        t, w, n = step, self.warm_steps, self.total_steps
        if t < w:
            return 0.04 + 0.96 * t / w
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (t - w) / max(1, n - w))))


class StopOnDivergence(Callback):
    """Raise DivergedError as soon as the epoch's training loss is NaN or infinite."""

    def on_epoch_end(self, net, **kwargs) -> None:
        loss = net.history[-1, "train_loss"]
        if not math.isfinite(loss):
            raise DivergedError(f"training loss became {loss} at epoch {len(net.history)}")


class EpochProgress(Callback):
    """Report epochs and finished fits to a Progress (shared across sklearn clones).

    ``tick_fits``: one step per finished fit (searches); ``tick_epochs``: one step per epoch
    (a single long training run).
    """

    def __init__(
        self, progress: Progress | None = None, tick_fits: bool = True, tick_epochs: bool = False
    ) -> None:
        self.progress = progress
        self.tick_fits = tick_fits
        self.tick_epochs = tick_epochs

    def on_epoch_end(self, net, **kwargs) -> None:
        if self.progress is not None:
            if self.tick_epochs:
                self.progress.advance()
            self.progress.note(f"epoch {len(net.history)}/{net.max_epochs}")

    def on_train_end(self, net, **kwargs) -> None:
        if self.progress is not None and self.tick_fits:
            self.progress.advance()


class StopTraining(KeyboardInterrupt):
    """Raised by a callback to end training early, on purpose (a target reached, a budget
    spent): the fit ends normally, its ``on_train_end`` hooks run, and the net is usable.

    skorch ends training on any ``KeyboardInterrupt``; glassnet treats a bare one as Ctrl-C
    (``TrainingInterrupted``: the run is kept to resume), so a deliberate stop says so.
    """


class SeededMixin:
    """Initial weights from ``random_state``, and the fit's batch order and dropout from
    ``random_state + 1``, each in a ``seeded`` block: the caller's generators are untouched.

    Every clone inside a search then starts from the same weights for the same seed, whatever
    order (or process) it runs in, which makes searches repeatable with ``n_jobs > 1`` too.
    """

    random_state: int | None

    def initialize_module(self):
        with seeded(self.random_state):
            return super().initialize_module()

    def fit(self, X, y=None, **fit_params):
        seed = None if self.random_state is None else self.random_state + 1
        with seeded(seed):  # shuffling and dropout draw from torch's global generator
            return super().fit(X, y, **fit_params)

    def fit_loop(self, X, y=None, epochs=None, **fit_params):
        try:
            return super().fit_loop(X, y, epochs=epochs, **fit_params)
        except StopTraining:
            raise  # a callback's deliberate stop: skorch ends training cleanly on it
        except KeyboardInterrupt:  # skorch would end training quietly and call it done
            raise TrainingInterrupted(f"interrupted in epoch {len(self.history)}") from None


class GlassRegressor(SeededMixin, NeuralNetRegressor):
    """skorch regressor with a ``random_state`` and float32 targets shaped (n, 1)."""

    def __init__(self, *args: Any, random_state: int | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.random_state = random_state

    def fit(self, X, y=None, **fit_params):
        X = np.asarray(X, dtype=np.float32).reshape(len(X), -1)
        y = np.asarray(y, dtype=np.float32).reshape(-1, 1)
        return super().fit(X, y, **fit_params)

    def predict(self, X) -> np.ndarray:
        X = np.asarray(X, dtype=np.float32).reshape(len(X), -1)
        return super().predict(X)


class MovingAverage:
    """Exponential moving average of weights, for ``AveragedModel(multi_avg_fn=...)``.

    After ``n`` updates the decay is ``min(decay, (1 + n) / (10 + n))``: early on the average
    follows the weights closely instead of clinging to the first step's (which matters on small
    data sets, where a run has few steps), and soon settles at ``decay``.
    """

    def __init__(self, decay: float) -> None:
        self.decay = decay

    def __call__(self, averaged: list, current: list, n_averaged: torch.Tensor) -> None:
        n = int(n_averaged)
        d = min(self.decay, (1 + n) / (10 + n))
        for a, c in zip(averaged, current):
            a.lerp_(c, 1.0 - d)  # a = d * a + (1 - d) * c


class GlassClassifier(SeededMixin, NeuralNetClassifier):
    """skorch classifier with a ``random_state``, weight averaging and optional bfloat16 training.

    ``average=d`` (0 < d < 1) keeps an exponential moving average of the weights, updated after
    every optimizer step (``avg = d * avg + (1 - d) * w``, see ``MovingAverage``), and validates
    *it* each epoch: the average of a noisy, high-learning-rate trajectory scores like an
    annealed model at every epoch, so a good model exists early (Polyak averaging).
    ``validated_state()`` is the state that was scored; ``BestWeights`` keeps and restores that
    one. ``average=0`` turns it off.
    """

    def __init__(
        self,
        *args: Any,
        random_state: int | None = None,
        precision: str = "float32",
        average: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.random_state = random_state
        self.precision = precision
        self.average = average

    def initialize_module(self):
        out = super().initialize_module()
        self.average_ = None
        if self.average:
            from torch.optim.swa_utils import AveragedModel

            self.average_ = AveragedModel(
                self.module_, multi_avg_fn=MovingAverage(self.average)
            ).eval()  # only ever evaluated: no dropout
        return out

    def train_step(self, batch, **fit_params):
        out = super().train_step(batch, **fit_params)
        if getattr(self, "average_", None) is not None:
            self.average_.update_parameters(self.module_)
        return out

    def validated_state(self) -> dict[str, torch.Tensor]:
        """A copy of the weights that validation scores: the average when there is one."""
        module = self.module_ if getattr(self, "average_", None) is None else self.average_.module
        return {k: v.detach().clone() for k, v in module.state_dict().items()}

    def partial_fit(self, X, y=None, classes=None, **fit_params):
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if not 0.0 <= self.average < 1.0:
            raise ValueError(f"average must be in [0, 1), got {self.average!r}")
        # A trailing underscore: state, not a parameter (get_params leaves it out).
        self.in_fit_ = True  # fit() goes through here too
        try:
            return super().partial_fit(X, y, classes, **fit_params)
        finally:
            self.in_fit_ = False

    def infer(self, x, **fit_params):
        if not getattr(self, "in_fit_", False):
            return super().infer(x, **fit_params)
        # Validation inside fit (the module in eval mode) scores the average, when kept.
        averaged = not self.module_.training and getattr(self, "average_", None) is not None
        cast = self.precision == "bfloat16"
        with torch.autocast(torch.device(self.device).type, torch.bfloat16, enabled=cast):
            if averaged:
                y = self.average_(skorch_to_tensor(x, device=self.device), **fit_params)
            else:
                y = super().infer(x, **fit_params)
        return y.float()  # the loss and the scores in float32


def best_of(net: Any) -> BestWeights:
    """The ``BestWeights`` callback of a glassnet classifier (``make_classifier`` names it
    "best"): its best epoch, scores and state."""
    cb = dict(net.callbacks_).get("best")
    if not isinstance(cb, BestWeights):
        raise TypeError("the net has no BestWeights callback named 'best'")
    return cb


class BestWeights(Callback):
    """Keep (in memory) the weights of the epoch with the best validation accuracy.

    Ties go to the lower validation loss. At the end of training the best weights are loaded
    back into the module; ``snapshots[e]`` holds the best state seen within the first ``e``
    epochs for each ``e`` in ``budgets``, so one run answers "what if we had trained e epochs".
    ``keep="last"`` keeps the last epoch's weights instead (validation is still scored and
    reported): for a schedule that ends at a rate of zero, where the last epochs differ by less
    than a small validation split can tell, and picking among them would pick noise.
    """

    def __init__(self, budgets: tuple[int, ...] = (), keep: str = "best") -> None:
        self.budgets = budgets
        self.keep = keep

    def initialize(self):
        self.best_key_: tuple[float, float] | None = None
        self.best_epoch_ = 0
        self.best_state_: dict[str, torch.Tensor] | None = None
        self.snapshots_: dict[int, dict[str, Any]] = {}
        return self

    def on_epoch_end(self, net, **kwargs) -> None:
        row = net.history[-1]
        key = (row["valid_acc"], -row["valid_loss"])
        if self.keep == "last" or self.best_key_ is None or key > self.best_key_:
            self.best_key_ = key
            self.best_epoch_ = row["epoch"]
            self.best_state_ = net.validated_state()
        if row["epoch"] in self.budgets:
            self.snapshots_[row["epoch"]] = {
                "state": self.best_state_,
                "epoch": self.best_epoch_,
                "valid_acc": self.best_key_[0],
                "valid_loss": -self.best_key_[1],
            }

    def on_train_end(self, net, **kwargs) -> None:
        if self.best_state_ is not None:
            net.module_.load_state_dict(self.best_state_)
