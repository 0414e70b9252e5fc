"""PopulationSearchCV: a scikit-learn search whose (candidate, fold) members train as one.

The layers: ``search.engine`` trains stacked members (tensors only); ``search.adapter`` reads
a skorch net's settings and hands a trained member back as a net; this module is the
scikit-learn search on top: candidates and folds drawn as scikit-learn draws them, scores,
``cv_results_``, the refit.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.metrics import check_scoring
from sklearn.model_selection import ParameterGrid, ParameterSampler, check_cv

from glassnet.progress import Progress
from glassnet.search.adapter import NetSpec, refit_best
from glassnet.search.loop import TrainedMembers, train_population
from glassnet.search.ranking import rank_scores

__all__ = ["PopulationSearchCV"]


class _MemberPredictor(RegressorMixin, BaseEstimator):
    """Just enough of a regressor for sklearn scorers: ``predict`` (and ``score``, R^2) with one
    member's weights."""

    def __init__(self, predict_fn=None) -> None:
        self.predict_fn = predict_fn

    def predict(self, X):
        return self.predict_fn(X)


class PopulationSearchCV(BaseEstimator):
    """Cross-validated search that trains all (candidate, fold) members of an MLP together.

    A drop-in for ``RandomizedSearchCV`` (``n_iter`` set) or ``GridSearchCV`` (``n_iter=None``)
    on a skorch ``NeuralNetRegressor`` wrapping ``glassnet.models.MLP`` with SGD and MSE.
    Candidates and folds are drawn exactly as scikit-learn draws them, so the same seed gives
    the same candidates. Members whose training loss turns NaN/inf leave at once and score
    ``error_score``. ``mean_fit_time`` is each member's share of the batched training time,
    in proportion to its epochs.
    """

    def __init__(
        self,
        estimator: Any,
        param_distributions: Mapping | list,
        *,
        n_iter: int | None = 10,
        cv: Any = 5,
        scoring: Any = None,
        random_state: Any = None,
        refit: bool = True,
        error_score: float | str = np.nan,
        chunk_size: int = 16,
        progress: Progress | None = None,
    ) -> None:
        self.estimator = estimator
        self.param_distributions = param_distributions
        self.n_iter = n_iter
        self.cv = cv
        self.scoring = scoring
        self.random_state = random_state
        self.refit = refit
        self.error_score = error_score
        self.chunk_size = chunk_size
        self.progress = progress

    # -- public API ---------------------------------------------------------------------------
    def fit(self, X, y) -> PopulationSearchCV:
        """Train every member, fill ``cv_results_``, pick the best and refit it on all data."""
        progress = self.progress or Progress()
        X = np.asarray(X, dtype=np.float32).reshape(len(X), -1)
        y = np.asarray(y, dtype=np.float32)
        if self.n_iter is None:
            candidates = list(ParameterGrid(self.param_distributions))
        else:
            candidates = list(
                ParameterSampler(
                    self.param_distributions, self.n_iter, random_state=self.random_state
                )
            )
        keys = set().union(*candidates) if candidates else set()
        spec = NetSpec(self.estimator, keys)
        folds = list(check_cv(self.cv, y, classifier=False).split(X, y))
        scorer = check_scoring(self.estimator, scoring=self.scoring)

        members = [(c, f) for c in range(len(candidates)) for f in range(len(folds))]
        settings = [spec.settings(candidates[c]) for c, _ in members]
        train_sets = [folds[f][0] for _, f in members]
        total_epochs = sum(s["epochs"] for s in settings)
        progress.start(total_epochs, f"population search: {len(members)} members")
        t0 = time.perf_counter()
        result = train_population(
            spec,
            X,
            y,
            settings,
            train_sets,
            progress,
            chunk_size=self.chunk_size,
            error_score=self.error_score,
            score_fold=lambda m, predict: self._score(
                scorer, predict, X[folds[members[m][1]][1]], y[folds[members[m][1]][1]]
            ),
        )
        elapsed = time.perf_counter() - t0
        progress.close()

        self._record(candidates, len(folds), result, elapsed)
        self.best_index_ = int(np.argmin(self.cv_results_["rank_test_score"]))
        self.best_params_ = candidates[self.best_index_]
        self.best_score_ = float(self.cv_results_["mean_test_score"][self.best_index_])
        self.scorer_ = scorer
        if self.refit:
            t1 = time.perf_counter()
            self.best_estimator_ = refit_best(
                self.estimator, self.best_params_, X, y, progress, self.chunk_size
            )
            self.refit_time_ = time.perf_counter() - t1
        return self

    def predict(self, X):
        """Predict with the refit best estimator."""
        return self.best_estimator_.predict(X)

    def score(self, X, y) -> float:
        """Score with the search's scorer and the refit best estimator."""
        return float(self.scorer_(self.best_estimator_, X, y))

    # -- internals ----------------------------------------------------------------------------
    def _record(self, candidates: list[dict], n_folds: int, result: TrainedMembers,
                elapsed: float) -> None:  # fmt: skip
        """Fill ``cv_results_`` and the per-member records from the engine's result."""
        shape = (len(candidates), n_folds)
        scores = np.array([result.scores[m] for m in range(shape[0] * n_folds)], dtype=float)
        epochs_done = np.array(result.epochs_done, dtype=float)
        fit_share = elapsed * epochs_done / max(epochs_done.sum(), 1.0)
        self.cv_results_ = self._results(
            candidates, scores.reshape(shape), fit_share.reshape(shape)
        )
        self.n_splits_ = n_folds
        self.member_epochs_ = epochs_done.reshape(shape).astype(int)
        self.diverged_ = np.array(result.diverged).reshape(shape)
        self.train_seconds_ = elapsed

    @staticmethod
    def _score(scorer, predict, X_val, y_val) -> float:
        return float(scorer(_MemberPredictor(predict), X_val, y_val))

    @staticmethod
    def _results(candidates, scores, fit_times) -> dict[str, Any]:
        """cv_results_ with RandomizedSearchCV's keys (NaN-scored candidates rank last)."""
        n_cand, n_splits = scores.shape
        res: dict[str, Any] = {
            "mean_fit_time": fit_times.mean(1),
            "std_fit_time": fit_times.std(1),
            "mean_score_time": np.zeros(n_cand),
            "std_score_time": np.zeros(n_cand),
        }
        names = sorted(set().union(*candidates)) if candidates else []
        for name in names:
            ma = np.ma.MaskedArray(np.empty(n_cand, dtype=object), mask=True)
            for i, c in enumerate(candidates):
                if name in c:
                    ma[i] = c[name]
            res[f"param_{name}"] = ma
        res["params"] = candidates
        for k in range(n_splits):
            res[f"split{k}_test_score"] = scores[:, k]
        means = scores.mean(1)
        res["mean_test_score"] = means
        res["std_test_score"] = scores.std(1)
        res["rank_test_score"] = rank_scores(means)
        return res
