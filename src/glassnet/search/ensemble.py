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
from glassnet.search.engine import Population, epoch_batches, validation_batch

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

    def _train(self, X: np.ndarray, y: np.ndarray, folds: list) -> dict[str, Any]:
        """The search loop: step every member, read fold losses, let finished candidates go."""
        dev = torch.device(self.device)
        n_cand, n_folds = len(self.candidates_), len(folds)
        members = [(c, k) for c in range(n_cand) for k in range(n_folds)]  # row = c * folds + k
        inits = self._initial_modules(n_folds, X.shape[1], y.shape[1])
        settings = [self._settings(self.candidates_[c]) for c, _ in members]
        pop = Population([inits[k] for _, k in members], settings, dev, self.activation,
                         self.layer_lr, self.optimizer)  # fmt: skip
        factor = torch.tensor([s["input_scale"] for s in settings], device=dev)[:, None, None]
        Xt, yt = torch.from_numpy(X).to(dev), torch.from_numpy(y).to(dev)
        train_idx = [torch.as_tensor(folds[k][0], dtype=torch.long) for _, k in members]
        sizes = [len(t) for t in train_idx]
        Xv, yv, wv = validation_batch(members, folds, Xt, yt)
        Xv = Xv * factor  # (member, rows, in): each member's input scale
        gen = torch.Generator()
        gen.manual_seed(self.random_state + 1)
        st = _search_state(n_cand, n_folds)
        progress = self.progress or Progress()
        progress.start(len(members) * self.max_epochs, f"ensemble search: {len(members)} members")
        full_batch = self.batch_size >= max(sizes)
        batches, epoch = None, 0
        while pop.ids and epoch < self.max_epochs:
            epoch += 1
            if batches is None or not full_batch:
                batches = epoch_batches(
                    pop.ids, sizes, train_idx, max(sizes), self.batch_size, True, gen, Xt, yt
                )
                f = factor[pop.ids]  # (member, 1, 1): each member's input scale
                batches = [(Xb * f, *rest) for Xb, *rest in batches]
            loss = pop.epoch(batches, sizes, None, self.chunk_size).tolist()
            progress.advance(len(pop.ids))
            check = epoch % self.check_every == 0 or epoch == self.max_epochs
            leaving = self._update(st, pop, members, n_folds, epoch, loss, check, Xv, yv, wv)
            if leaving:
                rows = [r for r, m in enumerate(pop.ids) if members[m][0] not in leaving]
                pop.keep(rows)
                batches = None
            progress.note(f"epoch {epoch}, {len(pop.ids) // n_folds} candidates training")
        progress.close()
        return st

    def _update(self, st, pop, members, n_folds, epoch, loss, check, Xv, yv, wv) -> set[int]:
        """Book-keeping after one epoch; returns the candidates that leave now."""
        rows_of: dict[int, list[int]] = {}
        for r, m in enumerate(pop.ids):
            rows_of.setdefault(members[m][0], []).append(r)
        leaving = set()
        for c, rows in rows_of.items():
            st["epochs"][c] = epoch
            if not all(math.isfinite(loss[r]) for r in rows):
                st["failed"][c] = True  # diverged: the candidate leaves with a NaN score
                leaving.add(c)
        if not check:
            return leaving
        ids = torch.tensor(pop.ids, dtype=torch.long, device=Xv.device)
        vl = pop.losses(Xv[ids], yv[ids], wv[ids]).tolist()  # (member,) fold-validation MSE
        for c, rows in rows_of.items():
            if c in leaving:
                continue
            fold_mse = np.array([vl[r] for r in rows])
            if not np.isfinite(fold_mse).all():
                st["failed"][c] = True
                leaving.add(c)
                continue
            mean = float(fold_mse.mean())
            st["curve_train"][c].append((epoch, float(np.mean([loss[r] for r in rows]))))
            st["curve_valid"][c].append((epoch, mean))
            if mean < st["best"][c]:
                st["best"][c], st["best_epoch"][c] = mean, epoch
                st["best_folds"][c] = fold_mse
                st["snap"][c] = pop.snapshot(rows)
                st["stale"][c] = 0
            else:
                st["stale"][c] += 1
                if st["stale"][c] >= self.patience:
                    leaving.add(c)  # no better epoch for `patience` checks: it is done
        return leaving

    def _collect(self, st: dict[str, Any], n_folds: int) -> None:
        """Fill the fitted attributes from the search state (scores back in data units)."""
        var = self.y_scale_**2
        mse = np.where(st["failed"], np.nan, st["best"] * var)
        if np.isnan(mse).all():
            raise NoModelError("every candidate diverged (NaN/inf loss); lower the learning rates")
        n_cand = len(self.candidates_)
        filled = np.where(np.isnan(mse), np.inf, mse)
        order = np.argsort(filled, kind="stable")
        rank = np.empty(n_cand, dtype=int)
        rank[order] = np.arange(1, n_cand + 1)
        self.cv_results_ = {
            "params": self.candidates_,
            "mean_test_score": -mse,
            "std_test_score": np.where(st["failed"], np.nan, st["best_folds"].std(axis=1) * var),
            "rank_test_score": rank,
            "best_epoch": np.where(st["failed"], 0, st["best_epoch"]),
            "epochs_trained": st["epochs"].copy(),
            **{f"split{k}_test_score": -st["best_folds"][:, k] * var for k in range(n_folds)},
        }
        self.best_index_ = int(order[0])
        self.best_epoch_ = int(st["best_epoch"][self.best_index_])
        self.best_params_ = {**self.candidates_[self.best_index_], "max_epochs": self.best_epoch_}
        self.best_score_ = float(-mse[self.best_index_])
        self.failed_ = st["failed"].copy()
        self.member_epochs_ = int(st["epochs"].sum() * n_folds)
        self.curves_ = {
            "epoch": [e for e, _ in st["curve_valid"][self.best_index_]],
            "train_mse": [v * var for _, v in st["curve_train"][self.best_index_]],
            "valid_mse": [v * var for _, v in st["curve_valid"][self.best_index_]],
        }
        members = []
        chosen = [int(c) for c in order[: self.top_k] if np.isfinite(filled[c])]
        for c in chosen:  # the best candidate's fold models first
            snap = st["snap"][c]  # per layer: (W (fold, out, in), b (fold, 1, out))
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


def _search_state(n_cand: int, n_folds: int) -> dict[str, Any]:
    """What the search tracks per candidate while it trains."""
    return {
        "best": np.full(n_cand, np.inf),  # best mean fold MSE (standardised units)
        "best_epoch": np.zeros(n_cand, dtype=int),
        "best_folds": np.full((n_cand, n_folds), np.nan),
        "snap": {},  # candidate -> its fold models' weights at its best epoch
        "stale": np.zeros(n_cand, dtype=int),
        "failed": np.zeros(n_cand, dtype=bool),
        "epochs": np.zeros(n_cand, dtype=int),
        "curve_train": {c: [] for c in range(n_cand)},
        "curve_valid": {c: [] for c in range(n_cand)},
    }
