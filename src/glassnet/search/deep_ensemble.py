"""DeepEnsembleRegressor: several nets from different seeds, trained together on all the data
with Adam, averaged (a "deep ensemble", Lakshminarayanan et al. 2017).

Why this is glassnet's regression default (measured in ``benchmarks/regression_quality.py``):
full-batch momentum SGD fits this net's fine detail slowly and is unstable above lr ~0.03, so
the SGD searches stop at their epoch cap still underfitting; Adam on standardised data fits the
detail in ~2,000 full-batch steps. With 100 points, holding a fifth out for validation costs the
members data exactly where it is scarce (near the gaps), and on our development functions
choosing the stopping step by cross-validation stopped too early; an L2 penalty (Adam's
``weight_decay``) regularises instead, and averaging members that differ only in their start
removes most of the variance a single net has.

The last layer (``last_layer="bayes"``): after training, each member's output weights are
replaced by a Bayesian linear regression on its own last hidden features at the training
points, with the prior and noise precisions chosen by maximising the evidence (the marginal
likelihood, scikit-learn's ``BayesianRidge``), as a Gaussian process chooses its kernel. So the
data choose the last layer's penalty, one per member, instead of a fixed weight decay; on the
development functions this lowered the median test MSE by a fifth. The posterior also gives
the band: members trained on the same data from different starts agree closely, even in the
gaps, so their spread alone covers few test points; the last layer's posterior variance grows
where the features differ from those seen in training. The band is sqrt(members' spread^2 +
their mean last-layer variance).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.linear_model import BayesianRidge
from sklearn.utils.validation import check_is_fitted

from glassnet.activations import BATCHABLE_ACTIVATIONS
from glassnet.errors import NoModelError
from glassnet.models import MLP, RegressionEnsemble, standard_scaling
from glassnet.progress import Progress
from glassnet.rng import seeded
from glassnet.search.adapter import NotBatchableError
from glassnet.search.engine import Population, load_member
from glassnet.search.laplace import log_evidence, tangent_kernel
from glassnet.search.loop import MemberData, Policy, train
from glassnet.search.optimizers import OPTIMIZERS

__all__ = ["DeepEnsembleRegressor", "EnsemblePredictions", "EnsembleSnapshot"]

EVIDENCE_ROWS = 2000  # the evidence's kernel is rows x rows: beyond this, a seeded draw of rows


@dataclass(frozen=True)
class EnsembleSnapshot:
    """The model as it stood after ``epoch`` epochs (``DeepEnsembleRegressor.snapshot_every``):
    built like the final one; ``evidence`` by member id (NaN: diverged), ``kept`` the ids in
    ``ensemble``."""

    epoch: int
    ensemble: RegressionEnsemble
    evidence: np.ndarray
    kept: list[int]


class EnsemblePredictions(RegressorMixin):
    """``predict`` and ``predict_members`` of an estimator whose model is ``ensemble_`` (a
    ``RegressionEnsemble``), with scikit-learn's ``score`` (R^2)."""

    def predict(self, X) -> np.ndarray:
        """The members' mean prediction, shaped (n,) for one output."""
        return self.predict_members(X).mean(0)

    def predict_members(self, X) -> np.ndarray:
        """Every member's prediction: (members, n)."""
        check_is_fitted(self, "ensemble_")
        return self.ensemble_.predict_members(X)


class DeepEnsembleRegressor(EnsemblePredictions, BaseEstimator):
    """``n_members`` MLPs (seeds ``random_state * 1000 + k``) trained on all of (X, y).

    Inputs and targets are standardised (the scaling is kept inside ``ensemble_``); every
    member trains ``epochs`` epochs with ``optimizer`` (``adam``: weight decay as an L2
    penalty; ``adamw``: decoupled; ``sgd``: with ``momentum``) at rate ``lr``, with
    ``weight_decay`` (one value for every member, or a sequence: one per member). A member whose
    loss turns NaN/inf leaves at once and is listed in ``failed_``; the others make the model.
    After ``fit``: ``ensemble_`` (a ``RegressionEnsemble``), ``curves_`` (the members' mean
    training MSE, data units, every ``record_every`` epochs), ``failed_``, ``member_epochs_``,
    ``penalties_`` (each member's weight decay), ``evidence_`` (each member's Laplace log
    evidence as trained, ``search.laplace``; NaN where it diverged or had no penalty) and
    ``kept_`` (the members in the model). ``keep``: keep only the ``keep`` members of highest
    evidence (None: all), a choice among their penalties; it measured no better than keeping
    all on the development functions (benchmarks/RESULTS.md), so the default keeps all.
    ``last_layer``: ``bayes`` (each member's Bayesian last layer, above: its mean is the output
    layer, its variance joins the band) or ``trained`` (the nets as trained; the band is their
    spread alone). ``band_scale`` widens the band by that factor: 1.25, chosen on the
    development functions so that the band's median coverage of the test points matches the
    Gaussian process's there (the band as computed covers about 80%, the GP's about 92%).
    ``snapshot_every``: also keep the model as it stood every that many epochs, each built
    the same way as the final one (evidence, ``keep``, last layer), in ``snapshots_``: a list
    of ``EnsembleSnapshot`` by epoch (None: none). It shows how the fit moves with training
    length; ``benchmarks/regression_stopping.py`` reads it.
    """

    def __init__(
        self,
        *,
        hidden: tuple[int, ...] = (512, 256),
        activation: str = "tanh",
        n_members: int = 4,
        optimizer: str = "adam",
        lr: float = 3e-3,
        weight_decay: float | tuple[float, ...] = 3e-4,
        momentum: float = 0.9,
        epochs: int = 2000,
        batch_size: int = 128,
        last_layer: str = "bayes",
        keep: int | None = None,
        band_scale: float = 1.25,
        record_every: int = 10,
        random_state: int = 0,
        device: str = "cpu",
        chunk_size: int = 16,
        snapshot_every: int | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.hidden = hidden
        self.activation = activation
        self.n_members = n_members
        self.optimizer = optimizer
        self.lr = lr
        self.weight_decay = weight_decay
        self.momentum = momentum
        self.epochs = epochs
        self.batch_size = batch_size
        self.last_layer = last_layer
        self.keep = keep
        self.band_scale = band_scale
        self.record_every = record_every
        self.random_state = random_state
        self.device = device
        self.chunk_size = chunk_size
        self.snapshot_every = snapshot_every
        self.progress = progress

    def fit(self, X, y) -> DeepEnsembleRegressor:
        """Train every member on all rows of (X, y); keep them as ``ensemble_``."""
        self._check_params()
        self.penalties_ = self._penalties()  # checked too, before any work
        if self.keep is not None and min(self.penalties_) <= 0:
            raise ValueError("keep chooses by the Laplace evidence, which needs every "
                             "weight_decay > 0")  # fmt: skip
        X = np.asarray(X, dtype=np.float64).reshape(len(X), -1)
        y = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
        x_mean, x_scale = standard_scaling(X)
        y_mean, y_scale = standard_scaling(y)
        Xs = torch.from_numpy(((X - x_mean) / x_scale).astype(np.float32))  # (n, in)
        ys = torch.from_numpy(((y - y_mean) / y_scale).astype(np.float32))  # (n, out)
        t0 = time.perf_counter()
        pop, losses, snaps = self._train(Xs, ys)
        self.train_seconds_ = time.perf_counter() - t0
        alive = [r for r, m in enumerate(pop.ids) if not self.failed_[m]]
        if not alive:
            raise NoModelError(f"every member diverged (training loss NaN/inf at lr={self.lr})")
        scaling = (x_mean, x_scale, y_mean, y_scale)
        members = [pop.module(r, self._blank(X.shape[1], y.shape[1])).eval() for r in alive]
        self.ensemble_, self.evidence_, self.kept_ = self._model(
            members, [pop.ids[r] for r in alive], Xs, ys, scaling
        )
        self.snapshots_ = None if self.snapshot_every is None else []
        for epoch, ids, weights in snaps:  # each built like the final model
            members = [load_member(weights, k, self._blank(X.shape[1], y.shape[1])).eval()
                       for k in range(len(ids))]  # fmt: skip
            self.snapshots_.append(EnsembleSnapshot(epoch, *self._model(members, ids, Xs, ys,
                                                                        scaling)))  # fmt: skip
        if self.snapshot_every is not None and self.epochs % self.snapshot_every == 0:
            # the last snapshot is the model itself: not copied out and built a second time
            self.snapshots_.append(
                EnsembleSnapshot(self.epochs, self.ensemble_, self.evidence_, self.kept_)
            )
        self.curves_ = {
            "epoch": [e for e, _ in losses],
            "train_mse": [v * y_scale**2 for _, v in losses],
        }
        return self

    # -- internals ----------------------------------------------------------------------------
    def _check_params(self) -> None:
        for name in ("n_members", "epochs", "batch_size", "record_every"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not (math.isfinite(self.band_scale) and self.band_scale > 0):
            raise ValueError(f"band_scale must be > 0, got {self.band_scale}")
        if self.snapshot_every is not None and int(self.snapshot_every) < 1:
            raise ValueError(f"snapshot_every must be None or >= 1, got {self.snapshot_every}")
        if self.keep is not None and not 1 <= int(self.keep) <= self.n_members:
            raise ValueError(f"keep must be None or 1 to n_members, got {self.keep}")
        if self.last_layer not in ("bayes", "trained"):
            raise ValueError(f"last_layer must be 'bayes' or 'trained', got {self.last_layer!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}")
        if self.activation not in BATCHABLE_ACTIVATIONS:
            raise NotBatchableError(
                f"activation {self.activation!r} cannot be batched; "
                f"supported: {list(BATCHABLE_ACTIVATIONS)}"
            )

    def _model(self, members: list[MLP], ids: list[int], Xs: torch.Tensor, ys: torch.Tensor,
               scaling: tuple) -> tuple[RegressionEnsemble, np.ndarray, list[int]]:  # fmt: skip
        """The model of these trained members (ids: theirs): each one's evidence, the ``keep``
        of highest evidence, the last layer; returns (ensemble, evidence by id, kept ids)."""
        evidence = np.full(self.n_members, np.nan)  # a failed member has none
        if ys.shape[1] == 1:
            evidence[ids] = self._evidence(members, [self.penalties_[m] for m in ids], Xs, ys)
        if self.keep is not None and self.keep < len(ids):  # the members of highest evidence
            best = sorted(np.argsort(-evidence[ids], kind="stable")[: self.keep])
            members, ids = [members[k] for k in best], [ids[k] for k in best]
        last = bayesian_last_layer(members, Xs, ys) if self.last_layer == "bayes" else {}
        model = RegressionEnsemble(members, *scaling, **last, band_scale=self.band_scale)
        return model.eval(), evidence, ids

    def _penalties(self) -> list[float]:
        """Each member's weight decay: ``weight_decay`` is one for all, or one per member."""
        wd = self.weight_decay
        each = [float(v) for v in wd] if np.ndim(wd) else [float(wd)] * self.n_members
        if len(each) != self.n_members or not all(math.isfinite(v) and v >= 0 for v in each):
            raise ValueError(f"weight_decay must be >= 0, one value or one per member "
                             f"({self.n_members}), got {wd}")  # fmt: skip
        return each

    def _evidence(self, members: list[MLP], penalties: list[float], X: torch.Tensor,
                  y: torch.Tensor) -> list[float]:  # fmt: skip
        """Each trained member's Laplace log evidence (``search.laplace``), standardised
        units, on at most EVIDENCE_ROWS rows (a seeded draw of them beyond that: the kernel is
        rows x rows)."""
        if len(X) > EVIDENCE_ROWS:
            gen = torch.Generator().manual_seed(self.random_state)
            rows = torch.randperm(len(X), generator=gen)[:EVIDENCE_ROWS]
            X, y = X[rows], y[rows]
        out = []
        for m, wd in zip(members, penalties):
            with torch.no_grad():
                r = (y - m(X))[:, 0]  # (n,)
                theta_sq = sum(float((p.double() ** 2).sum()) for p in m.parameters())
            K = tangent_kernel(m, X, self.activation)  # (n, n)
            out.append(log_evidence(K, r, theta_sq, wd) if wd > 0 else math.nan)
        return out

    def _blank(self, n_in: int, n_out: int) -> MLP:
        return MLP(n_in, tuple(self.hidden), n_out, self.activation)

    def _train(self, X: torch.Tensor, y: torch.Tensor) -> tuple[Population, list, list]:
        """Every member, every epoch (``search.loop``); returns the population, the recorded
        mean losses and the snapshots (epoch, member ids, stacked weights)."""
        dev = torch.device(self.device)
        inits = []
        for k in range(self.n_members):  # member k's start, from its own seed
            with seeded(self.random_state * 1000 + k):
                inits.append(self._blank(X.shape[1], y.shape[1]))
        s = {"lr": self.lr, "momentum": self.momentum}
        settings = [{**s, "wd": wd} for wd in self.penalties_]
        pop = Population(inits, settings, dev, self.activation, optimizer=self.optimizer)
        gen = torch.Generator().manual_seed(self.random_state + 1)
        data = MemberData(X.to(dev), y.to(dev), [torch.arange(len(X))] * self.n_members,
                          self.batch_size, True, gen)  # fmt: skip
        progress = self.progress or Progress()
        progress.start(self.n_members * self.epochs, f"deep ensemble: {self.n_members} members")
        policy = _AllEpochs(self.n_members, self.epochs, self.record_every, self.snapshot_every)
        train(pop, data, policy, self.chunk_size, progress)
        progress.close()
        self.failed_, self.member_epochs_ = policy.failed, policy.member_epochs
        return pop, policy.losses, policy.snapshots


class _AllEpochs(Policy):
    """Every member trains ``epochs`` epochs; a member whose loss turns NaN/inf leaves at once
    (``failed``). The mean loss of the members still training is recorded every
    ``record_every`` epochs and at the last; with ``snapshot_every``, a copy of their weights
    every that many epochs before the last (``snapshots``: epoch, member ids,
    ``Population.snapshot``)."""

    def __init__(self, n_members: int, epochs: int, record_every: int,
                 snapshot_every: int | None = None) -> None:  # fmt: skip
        self.max_epochs, self.record_every = epochs, record_every
        self.snapshot_every = snapshot_every
        self.failed = np.zeros(n_members, dtype=bool)
        self.member_epochs = 0
        self.losses: list[tuple[int, float]] = []
        self.snapshots: list[tuple[int, list[int], list]] = []

    def on_epoch(self, pop: Population, epoch: int, losses: list[float]) -> set[int]:
        self.member_epochs += len(pop.ids)
        bad = {pop.ids[r] for r, v in enumerate(losses) if not math.isfinite(v)}
        self.failed[list(bad)] = True
        rows = [r for r, m in enumerate(pop.ids) if m not in bad]
        if rows and (epoch % self.record_every == 0 or epoch == self.max_epochs):
            self.losses.append((epoch, float(np.mean([losses[r] for r in rows]))))
        # the last epoch's snapshot is the final model, which fit builds anyway
        due = bool(self.snapshot_every) and epoch % self.snapshot_every == 0
        if rows and due and epoch < self.max_epochs:
            self.snapshots.append((epoch, [pop.ids[r] for r in rows], pop.snapshot(rows)))
        return bad


@torch.no_grad()
def bayesian_last_layer(members: list[MLP], X: torch.Tensor, y: torch.Tensor
                        ) -> dict[str, torch.Tensor]:  # fmt: skip
    """Give each member the Bayesian last layer of (X, y), standardised units, in place.

    The posterior mean becomes the member's output layer; returned are the posterior
    covariances of the output weights (members, H, H) and the features' mean they are centred
    on (members, H), for ``RegressionEnsemble``. One output only; precisions by evidence
    maximisation (``BayesianRidge``, float64).
    """
    if y.shape[1] != 1:
        raise ValueError("a Bayesian last layer needs one output")
    cov, center = [], []
    for m in members:
        phi = m.net[:-1](X).double().numpy()  # (n, H): the last hidden features
        blr = BayesianRidge(fit_intercept=True, max_iter=500).fit(phi, y[:, 0].double().numpy())
        out = m.linear_layers()[-1]
        out.weight.copy_(torch.from_numpy(blr.coef_)[None, :])  # (1, H)
        out.bias.fill_(float(blr.intercept_))
        cov.append(torch.from_numpy(blr.sigma_))
        center.append(torch.from_numpy(blr.X_offset_))
    return {"last_cov": torch.stack(cov).float(), "last_center": torch.stack(center).float()}
