"""The one batched training loop, and the policies that steer it.

Every batched search (the population, the ensemble search, TPE, the deep ensemble) trains its
members here. The loop owns the epochs: it builds each epoch's batches, steps every member
(``Population.epoch``), reads the fold-validation losses when the policy asks, and lets
members leave. A ``Policy`` decides the rest, like a skorch callback, through hooks that do
nothing unless overridden:

- ``on_epoch``: after every epoch, with each member's training loss; returns the members that
  leave (diverged, or done);
- ``on_check``: on the epochs ``reads(epoch)`` names, with each member's validation loss;
  returns more members that leave (stopped, pruned, finished);
- ``on_epoch_end``: the epoch's book-keeping once it is known who leaves (telling a study,
  progress notes).

Members are named by their id (their index in the settings the population was built with),
never by their row in the stacked tensors, which shifts as members leave.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from glassnet.errors import DivergedError
from glassnet.models import MLP
from glassnet.progress import Progress
from glassnet.search.engine import Population

__all__ = [
    "FixedEpochs",
    "MemberData",
    "Policy",
    "TrainedMembers",
    "epoch_batches",
    "fold_rows",
    "members_of",
    "rows_by_group",
    "train",
    "train_population",
]


class Policy:
    """What a search decides while its members train. Override the hooks it needs."""

    max_epochs: int | None = None  # the loop stops after this epoch (None: when all have left)
    check_every: int | None = None  # read validation losses every this many epochs (None: never)

    def reads(self, epoch: int) -> bool:
        """Whether to read every member's validation loss after ``epoch``: every
        ``check_every`` epochs, and at ``max_epochs``."""
        if self.check_every is None:
            return False
        return epoch % self.check_every == 0 or epoch == self.max_epochs

    def on_epoch(self, pop: Population, epoch: int, losses: list[float]) -> set[int]:
        """``losses[r]``: the mean training loss of the member at row r (id ``pop.ids[r]``).
        Returns the ids of the members that leave."""
        return set()

    def on_check(
        self, pop: Population, epoch: int, val: list[float], leaving: set[int]
    ) -> set[int]:
        """``val[r]``: the validation loss of the member at row r; ``leaving``: the ids already
        leaving this epoch. Returns the ids of more members that leave."""
        return set()

    def on_epoch_end(self, pop: Population, epoch: int, leaving: set[int]) -> None:
        """The epoch is over; the members in ``leaving`` are still in ``pop`` until it ends."""


@dataclass
class MemberData:
    """The rows each member trains (and is validated) on, and how its batches are drawn.

    ``train_rows[m]`` / ``valid_rows[m]``: member m's rows of ``X``, ``y``. ``gen`` draws the
    batch order (one permutation per training size and epoch, as each member's own skorch net
    would); ``dropout_gen`` the dropout masks. ``input_factor`` (member, 1, 1), when given,
    scales each member's inputs (the ensemble search's per-candidate input scale).
    """

    X: torch.Tensor  # (n, in)
    y: torch.Tensor  # (n, out)
    train_rows: Sequence[torch.Tensor]
    batch_size: int
    shuffle: bool = True
    gen: torch.Generator | None = None
    dropout_gen: torch.Generator | None = None
    valid_rows: Sequence[torch.Tensor] | None = None
    input_factor: torch.Tensor | None = None
    _valid: tuple | None = field(default=None, init=False, repr=False)
    # each member's training-set size, read every epoch: counted once (a hundred len() calls
    # per epoch were ~2% of a population search)
    sizes: list[int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.sizes = [len(t) for t in self.train_rows]

    @property
    def full_batch(self) -> bool:
        """One batch per epoch: the whole set whatever its order, so batches are reusable."""
        return self.batch_size >= max(self.sizes)

    def batches(self, ids: Sequence[int]) -> list[tuple[torch.Tensor, ...]]:
        sizes = self.sizes
        out = epoch_batches(ids, sizes, self.train_rows, max(sizes), self.batch_size,
                            self.shuffle, self.gen, self.X, self.y)  # fmt: skip
        if self.input_factor is not None:
            f = self.input_factor[list(ids)]  # (member, 1, 1)
            out = [(Xb * f, *rest) for Xb, *rest in out]
        return out

    def validation_losses(self, pop: Population) -> list[float]:
        """Each remaining member's MSE on its validation rows, in ``pop``'s row order."""
        if self._valid is None:
            assert self.valid_rows is not None, "this policy reads validation losses"
            n = max(len(v) for v in self.valid_rows)
            ids = list(range(len(self.valid_rows)))
            sizes = [len(v) for v in self.valid_rows]
            Xv, yv, wv, _, _ = epoch_batches(ids, sizes, self.valid_rows, n, n, False, None,
                                             self.X, self.y)[0]  # fmt: skip
            if self.input_factor is not None:
                Xv = Xv * self.input_factor  # (member, rows, in)
            self._valid = (Xv, yv, wv)
        Xv, yv, wv = self._valid
        ids = torch.tensor(pop.ids, dtype=torch.long, device=Xv.device)
        return pop.losses(Xv[ids], yv[ids], wv[ids]).tolist()


def rows_by_group(pop: Population, group_size: int) -> dict[int, list[int]]:
    """The rows of the remaining members, by group (member id // group_size: a candidate's or
    a trial's fold members), in row order."""
    out: dict[int, list[int]] = {}
    for r, m in enumerate(pop.ids):
        out.setdefault(m // group_size, []).append(r)
    return out


def members_of(pop: Population, group_size: int, groups: set[int]) -> set[int]:
    """The ids of the remaining members of ``groups`` (member id // group_size)."""
    return {m for m in pop.ids if m // group_size in groups}


def fold_rows(folds: Sequence, members: Sequence[tuple[int, int]]) -> tuple[list, list]:
    """The training and validation rows of each (group, fold k) member: fold k's, of
    ``folds`` as a scikit-learn splitter yields them (train, validation)."""
    train_rows, valid_rows = (
        [torch.as_tensor(folds[k][part], dtype=torch.long) for _, k in members] for part in (0, 1)
    )
    return train_rows, valid_rows


def train(
    pop: Population,
    data: MemberData,
    policy: Policy,
    chunk: int = 16,
    progress: Progress | None = None,
) -> int:
    """Train ``pop`` on ``data`` as ``policy`` steers it; return the last epoch trained.

    Every member steps once per epoch; ``progress`` advances by one per member-epoch. The
    loop ends when every member has left or at ``policy.max_epochs``. Members that leave are
    dropped from ``pop`` (the last ones stay, for whoever reads them after)."""
    progress = progress or Progress()
    epoch, batches = 0, None
    while pop.ids and (policy.max_epochs is None or epoch < policy.max_epochs):
        epoch += 1
        if batches is None or not data.full_batch:
            batches = data.batches(pop.ids)
        losses = pop.epoch(batches, data.sizes, data.dropout_gen, chunk).tolist()
        leaving = set(policy.on_epoch(pop, epoch, losses))
        if policy.reads(epoch):
            leaving |= set(policy.on_check(pop, epoch, data.validation_losses(pop), leaving))
        progress.advance(len(pop.ids))
        policy.on_epoch_end(pop, epoch, leaving)
        if leaving:
            rows = [r for r, m in enumerate(pop.ids) if m not in leaving]
            if not rows:
                break
            pop.keep(rows)
            batches = None
    return epoch


@dataclass
class TrainedMembers:
    """What ``train_population`` hands back, per member id: its score (``score_fold``'s, or
    ``error_score`` when it diverged), the epochs it trained, whether it diverged, its
    training-loss history and, with ``keep_weights``, its trained MLP."""

    scores: dict[int, float] = field(default_factory=dict)
    epochs_done: list[int] = field(default_factory=list)
    diverged: list[bool] = field(default_factory=list)
    histories: dict[int, list[float]] = field(default_factory=dict)
    modules: dict[int, MLP] = field(default_factory=dict)


class FixedEpochs(Policy):
    """Each member trains its own ``settings[m]["epochs"]`` epochs, the study's way. A member
    whose loss turns NaN/inf leaves at once and scores ``error_score`` (``"raise"``:
    DivergedError, scikit-learn's contract); a finished one is scored by ``score_fold(m,
    predict)`` and, with ``keep_weights``, copied into an MLP (``blank()``)."""

    def __init__(self, settings: list[dict[str, float]], blank: Callable[[], MLP],
                 error_score: float | str = np.nan,
                 score_fold: Callable[[int, Callable], float] | None = None,
                 keep_weights: bool = False, progress: Progress | None = None) -> None:  # fmt: skip
        self.settings, self.blank, self.error_score = settings, blank, error_score
        self.score_fold, self.keep_weights = score_fold, keep_weights
        self.progress = progress or Progress()
        n = len(settings)
        self.out = TrainedMembers(epochs_done=[0] * n, diverged=[False] * n,
                                  histories={m: [] for m in range(n)})  # fmt: skip

    def on_epoch(self, pop: Population, epoch: int, losses: list[float]) -> set[int]:
        out, leaving = self.out, set()
        for r, m in enumerate(pop.ids):
            out.epochs_done[m] = epoch
            out.histories[m].append(losses[r])
            if not math.isfinite(losses[r]):
                if self.error_score == "raise":
                    raise DivergedError(f"member {m} ({self.settings[m]}): training loss "
                                        f"{losses[r]} at epoch {epoch}")  # fmt: skip
                out.diverged[m] = True
                out.scores[m] = self.error_score
                leaving.add(m)
            elif epoch >= self.settings[m]["epochs"]:
                if self.score_fold is not None:
                    out.scores[m] = self.score_fold(m, _member_predictor(pop, r))
                if self.keep_weights:
                    out.modules[m] = pop.module(r, self.blank())
                leaving.add(m)
        return leaving

    def on_epoch_end(self, pop: Population, epoch: int, leaving: set[int]) -> None:
        self.progress.note(f"epoch {epoch}, {len(pop.ids) - len(leaving)} members training")


def _member_predictor(pop: Population, row: int) -> Callable[[Any], np.ndarray]:
    """``predict(X)`` with the weights of the member at ``row``, as skorch's predict returns."""

    def predict(Xv):
        Xv = torch.as_tensor(
            np.asarray(Xv, dtype=np.float32).reshape(len(Xv), -1), device=pop.W[0].device
        )
        return pop.predict(Xv, [row])[0].cpu().numpy()  # (n, out)

    return predict


def train_population(
    spec: Any,
    X: np.ndarray,
    y: np.ndarray,
    settings: list[dict[str, float]],
    train_sets: list[np.ndarray],
    progress: Progress,
    *,
    chunk_size: int = 16,
    error_score: float | str = np.nan,
    score_fold: Callable[[int, Callable], float] | None = None,
    keep_weights: bool = False,
) -> TrainedMembers:
    """Train one member per (settings, training rows) pair for its own epochs (``FixedEpochs``).

    ``spec`` says what every member shares (``search.adapter.NetSpec``): the initial weights,
    the batch order and dropout of the skorch net it stands for."""
    dev = spec.device
    data = MemberData(torch.from_numpy(X).to(dev), torch.from_numpy(y.reshape(len(y), -1)).to(dev),
                      [torch.as_tensor(t, dtype=torch.long) for t in train_sets],
                      spec.batch_size, spec.shuffle, spec.shuffle_generator(),
                      spec.dropout_generator())  # fmt: skip
    pop = Population(spec.initial_module(), settings, dev, spec.activation)
    policy = FixedEpochs(settings, spec.blank_module, error_score, score_fold, keep_weights,
                         progress)  # fmt: skip
    train(pop, data, policy, chunk_size, progress)
    return policy.out


def epoch_batches(
    ids: Sequence[int],
    sizes: Sequence[int],
    train_idx: Sequence[torch.Tensor],
    n_max: int,
    bs: int,
    shuffle: bool,
    gen: torch.Generator | None,
    Xt: torch.Tensor,
    yt: torch.Tensor,
) -> list[tuple[torch.Tensor, ...]]:
    """One epoch's mini-batches for the members ``ids``: (X, y, weights, active, count).

    Every member with the same training size sees the permutation its own skorch net would
    draw this epoch (one generator, seeded like the net). Shorter training sets are padded
    at the end; padded rows carry weight 0, and a member with no rows left in a batch is
    marked inactive so that it does not step.
    """
    perms = {}
    for n in sorted({sizes[m] for m in ids}):
        perms[n] = torch.randperm(n, generator=gen) if shuffle else torch.arange(n)
    order = torch.zeros((len(ids), n_max), dtype=torch.long)
    valid = torch.zeros((len(ids), n_max), dtype=torch.float32)
    for r, m in enumerate(ids):
        n = sizes[m]
        order[r, :n] = train_idx[m][perms[n]]
        valid[r, :n] = 1.0
    order, valid = order.to(Xt.device), valid.to(Xt.device)
    out = []
    for start in range(0, n_max, bs):
        idx = order[:, start : start + bs]  # (member, batch)
        msk = valid[:, start : start + bs]  # (member, batch)
        count = msk.sum(1)  # (member,)
        w = (msk / count.clamp_min(1.0)[:, None])[:, :, None]  # (member, batch, 1)
        active = None
        if bool((count == 0).any()):  # some members ran out of batches this epoch
            active = (count > 0).to(torch.float32)[:, None, None]
        out.append((Xt[idx], yt[idx], w, active, count))
    return out
