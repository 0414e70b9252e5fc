"""EnsembleSearchCV: candidates x folds trained at once, epochs chosen by fold loss, and the answer
an ensemble of the best candidate's fold models.

The population search (``PopulationSearchCV``) reproduces the study: each candidate trains for a
sampled number of epochs, the best is refit once on all data, and that one net is the model. Here:

- inputs and targets are standardised (the scaling is kept inside the returned model);
- every candidate trains up to ``max_epochs`` while its mean fold-validation loss is read every
  ``check_every`` epochs: the epoch count is chosen by that loss, not sampled, and a candidate
  whose loss has not improved for ``patience`` checks stops (it cannot win any more);
- fold k's member of every candidate starts from the same weights (seed ``(random_state, k)``):
  candidates are compared on equal terms, and the fold models differ in data and start;
- the model is the mean of the best candidate's fold models at its best epoch (of the ``top_k``
  best candidates' with ``top_k`` > 1): no refit, and their spread is an uncertainty band that
  knows about the data and the initialisation.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.model_selection import ParameterSampler, check_cv

from glassnet.activations import BATCHABLE_ACTIVATIONS
from glassnet.errors import NoModelError
from glassnet.models import MLP, RegressionEnsemble, standard_scaling
from glassnet.progress import Progress
from glassnet.rng import seeded
from glassnet.search.adapter import NotBatchableError
from glassnet.search.deep_ensemble import EnsemblePredictions
from glassnet.search.engine import Population
from glassnet.search.loop import MemberData, Policy, fold_rows, members_of, rows_by_group, train
from glassnet.search.ranking import rank_scores

__all__ = ["EnsembleSearchCV"]

# Searchable settings: skorch's names for SGD's, and ``input_scale``, a factor on the
# standardised inputs (how finely the first layer's initial units cut the input range).
_KEYS = {
    "lr": "lr",
    "optimizer__momentum": "momentum",
    "optimizer__weight_decay": "wd",
    "input_scale": "input_scale",
}


class EnsembleSearchCV(EnsemblePredictions, BaseEstimator):
    """Random search over SGD settings for an MLP regressor; the result is a fold-model ensemble.

    ``param_distributions`` maps ``lr``, ``optimizer__momentum`` and ``optimizer__weight_decay``
    to lists or scipy distributions (skorch's names, as for the other searches). ``layer_lr``
    multiplies the learning rate per Linear layer, input to output (SGD parameter groups).
    """

    def __init__(
        self,
        param_distributions: Mapping[str, Any],
        *,
        hidden: Sequence[int] = (512, 256),
        activation: str = "tanh",
        n_iter: int = 8,
        cv: Any = 5,
        max_epochs: int = 1000,
        check_every: int = 10,
        patience: int = 30,
        top_k: int = 1,
        batch_size: int = 128,
        layer_lr: Sequence[float] | None = None,
        optimizer: str = "sgd",
        scale_inputs: bool = True,
        random_state: int = 0,
        device: str = "cpu",
        chunk_size: int = 16,
        progress: Progress | None = None,
    ) -> None:
        self.param_distributions = param_distributions
        self.hidden = hidden
        self.activation = activation
        self.n_iter = n_iter
        self.cv = cv
        self.max_epochs = max_epochs
        self.check_every = check_every
        self.patience = patience
        self.top_k = top_k
        self.batch_size = batch_size
        self.layer_lr = layer_lr
        self.optimizer = optimizer
        self.scale_inputs = scale_inputs
        self.random_state = random_state
        self.device = device
        self.chunk_size = chunk_size
        self.progress = progress

    # -- public API ---------------------------------------------------------------------------
    def fit(self, X, y) -> EnsembleSearchCV:
        """Train every (candidate, fold) member, pick the best candidate and epoch, keep its
        fold models as ``ensemble_``."""
        self._check_params()
        X = np.asarray(X, dtype=np.float64).reshape(len(X), -1)
        y = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
        self.x_mean_, self.x_scale_ = standard_scaling(X) if self.scale_inputs else (0.0, 1.0)
        self.y_mean_, self.y_scale_ = standard_scaling(y)
        Xs = ((X - self.x_mean_) / self.x_scale_).astype(np.float32)
        ys = ((y - self.y_mean_) / self.y_scale_).astype(np.float32)
        self.candidates_ = list(
            ParameterSampler(self.param_distributions, self.n_iter, random_state=self.random_state)
        )
        folds = list(check_cv(self.cv, ys, classifier=False).split(Xs, ys))
        self.n_splits_ = len(folds)
        t0 = time.perf_counter()
        state = self._train(Xs, ys, folds)
        self.train_seconds_ = time.perf_counter() - t0
        self._collect(state, len(folds))
        return self

    # -- internals ----------------------------------------------------------------------------
    def _check_params(self) -> None:
        unknown = set(self.param_distributions) - set(_KEYS)
        if unknown:
            raise ValueError(
                f"EnsembleSearchCV searches {sorted(_KEYS)}; cannot search {sorted(unknown)}"
            )
        if self.activation not in BATCHABLE_ACTIVATIONS:
            raise NotBatchableError(
                f"EnsembleSearchCV cannot batch activation {self.activation!r}; "
                f"supported: {list(BATCHABLE_ACTIVATIONS)}"
            )
        for name in ("n_iter", "max_epochs", "check_every", "patience", "top_k", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    def _settings(self, cand: dict) -> dict[str, float]:
        s = {"lr": 0.01, "momentum": 0.9, "wd": 0.0, "dropout": 0.0, "input_scale": 1.0}
        s.update({_KEYS[k]: float(v) for k, v in cand.items()})
        return s

    def _initial_modules(self, n_folds: int, n_in: int, n_out: int) -> list[MLP]:
        """Fold k's initial module, built from its own generator (global RNG untouched)."""
        mods = []
        for k in range(n_folds):
            with seeded(self.random_state * 1000 + k):
                mods.append(MLP(n_in, tuple(self.hidden), n_out, self.activation))
        return mods

    def _train(self, X: np.ndarray, y: np.ndarray, folds: list) -> _Candidates:
        """Every (candidate, fold) member trained as one population (``search.loop``)."""
        dev = torch.device(self.device)
        n_cand, n_folds = len(self.candidates_), len(folds)
        members = [(c, k) for c in range(n_cand) for k in range(n_folds)]  # id = c * folds + k
        inits = self._initial_modules(n_folds, X.shape[1], y.shape[1])
        settings = [self._settings(self.candidates_[c]) for c, _ in members]
        pop = Population([inits[k] for _, k in members], settings, dev, self.activation,
                         self.layer_lr, self.optimizer)  # fmt: skip
        gen = torch.Generator()
        gen.manual_seed(self.random_state + 1)
        train_rows, valid_rows = fold_rows(folds, members)
        data = MemberData(
            torch.from_numpy(X).to(dev), torch.from_numpy(y).to(dev), train_rows,
            self.batch_size, True, gen, None, valid_rows=valid_rows,
            input_factor=torch.tensor([s["input_scale"] for s in settings],
                                      device=dev)[:, None, None],
        )  # fmt: skip
        progress = self.progress or Progress()
        progress.start(len(members) * self.max_epochs, f"ensemble search: {len(members)} members")
        policy = _BestEpoch(n_cand, n_folds, self.max_epochs, self.check_every, self.patience,
                            progress)  # fmt: skip
        train(pop, data, policy, self.chunk_size, progress)
        progress.close()
        return policy.st

    def _collect(self, st: _Candidates, n_folds: int) -> None:
        """Fill the fitted attributes from the search state (scores back in data units)."""
        var = self.y_scale_**2
        mse = np.where(st.failed, np.nan, st.best * var)
        if np.isnan(mse).all():
            raise NoModelError("every candidate diverged (NaN/inf loss); lower the learning rates")
        rank = rank_scores(-mse)
        order = np.argsort(rank, kind="stable")  # best first; ties in candidate order
        self.cv_results_ = {
            "params": self.candidates_,
            "mean_test_score": -mse,
            "std_test_score": np.where(st.failed, np.nan, st.best_folds.std(axis=1) * var),
            "rank_test_score": rank,
            "best_epoch": np.where(st.failed, 0, st.best_epoch),
            "epochs_trained": st.epochs.copy(),
            **{f"split{k}_test_score": -st.best_folds[:, k] * var for k in range(n_folds)},
        }
        self.best_index_ = int(order[0])
        self.best_epoch_ = int(st.best_epoch[self.best_index_])
        self.best_params_ = {**self.candidates_[self.best_index_], "max_epochs": self.best_epoch_}
        self.best_score_ = float(-mse[self.best_index_])
        self.failed_ = st.failed.copy()
        self.member_epochs_ = int(st.epochs.sum() * n_folds)
        self.curves_ = {
            "epoch": [e for e, _ in st.curve_valid[self.best_index_]],
            "train_mse": [v * var for _, v in st.curve_train[self.best_index_]],
            "valid_mse": [v * var for _, v in st.curve_valid[self.best_index_]],
        }
        members = []
        chosen = [int(c) for c in order[: self.top_k] if np.isfinite(mse[c])]
        for c in chosen:  # the best candidate's fold models first
            snap = st.snap[c]  # per layer: (W (fold, out, in), b (fold, 1, out))
            n_in, n_out = snap[0][0].shape[2], snap[-1][0].shape[1]
            scale = self._settings(self.candidates_[c])["input_scale"]
            for f in range(n_folds):
                mod = MLP(n_in, tuple(self.hidden), n_out, self.activation)
                with torch.no_grad():
                    for lin, (W, b) in zip(mod.linear_layers(), snap):
                        lin.weight.copy_(W[f])
                        lin.bias.copy_(b[f, 0])
                    # the input scale folded into the first layer: W (s x) = (s W) x
                    mod.linear_layers()[0].weight.mul_(scale)
                members.append(mod.eval())
        self.ensemble_candidates_ = chosen
        self.ensemble_ = RegressionEnsemble(
            members, self.x_mean_, self.x_scale_, self.y_mean_, self.y_scale_
        ).eval()


@dataclass
class _Candidates:
    """What the search tracks per candidate while it trains (standardised units)."""

    best: np.ndarray  # best mean fold MSE so far
    best_epoch: np.ndarray
    best_folds: np.ndarray  # (candidate, fold): the fold MSEs at the best epoch
    stale: np.ndarray  # reads since the best
    failed: np.ndarray
    epochs: np.ndarray  # epochs trained
    snap: dict[int, list] = field(default_factory=dict)  # its fold models at the best epoch
    curve_train: dict[int, list] = field(default_factory=dict)  # (epoch, mean fold MSE)
    curve_valid: dict[int, list] = field(default_factory=dict)

    @classmethod
    def start(cls, n_cand: int, n_folds: int) -> _Candidates:
        return cls(np.full(n_cand, np.inf), np.zeros(n_cand, dtype=int),
                   np.full((n_cand, n_folds), np.nan), np.zeros(n_cand, dtype=int),
                   np.zeros(n_cand, dtype=bool), np.zeros(n_cand, dtype=int),
                   curve_train={c: [] for c in range(n_cand)},
                   curve_valid={c: [] for c in range(n_cand)})  # fmt: skip


class _BestEpoch(Policy):
    """Candidates of ``n_folds`` members each (member id = candidate * n_folds + fold) train
    up to ``max_epochs``; every ``check_every`` epochs their mean fold-validation MSE is read
    and the best epoch's weights kept. A candidate leaves when a member diverges, or after
    ``patience`` reads without a better epoch (it cannot win any more)."""

    def __init__(self, n_cand: int, n_folds: int, max_epochs: int, check_every: int,
                 patience: int, progress: Progress) -> None:  # fmt: skip
        self.n_folds, self.max_epochs = n_folds, max_epochs
        self.check_every, self.patience, self.progress = check_every, patience, progress
        self.st = _Candidates.start(n_cand, n_folds)
        self._losses: list[float] = []

    def _leave(self, pop: Population, candidates: set[int]) -> set[int]:
        return members_of(pop, self.n_folds, candidates)

    def on_epoch(self, pop: Population, epoch: int, losses: list[float]) -> set[int]:
        self._losses, failed = losses, set()
        for c, rows in rows_by_group(pop, self.n_folds).items():
            self.st.epochs[c] = epoch
            if not all(math.isfinite(losses[r]) for r in rows):
                self.st.failed[c] = True  # diverged: the candidate leaves with a NaN score
                failed.add(c)
        return self._leave(pop, failed)

    def on_check(self, pop: Population, epoch: int, val: list[float],
                 leaving: set[int]) -> set[int]:  # fmt: skip
        st, done = self.st, set()
        for c, rows in rows_by_group(pop, self.n_folds).items():
            if pop.ids[rows[0]] in leaving:
                continue
            fold_mse = np.array([val[r] for r in rows])
            if not np.isfinite(fold_mse).all():
                st.failed[c] = True
                done.add(c)
                continue
            mean = float(fold_mse.mean())
            st.curve_train[c].append((epoch, float(np.mean([self._losses[r] for r in rows]))))
            st.curve_valid[c].append((epoch, mean))
            if mean < st.best[c]:
                st.best[c], st.best_epoch[c], st.best_folds[c] = mean, epoch, fold_mse
                st.snap[c] = pop.snapshot(rows)
                st.stale[c] = 0
            else:
                st.stale[c] += 1
                if st.stale[c] >= self.patience:
                    done.add(c)  # no better epoch for `patience` reads: it is done
        return self._leave(pop, done)

    def on_epoch_end(self, pop: Population, epoch: int, leaving: set[int]) -> None:
        left = (len(pop.ids) - len(leaving)) // self.n_folds
        self.progress.note(f"epoch {epoch}, {left} candidates training")
