"""Build scikit-learn searches with shuffled, seeded folds and failures scored as NaN."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.model_selection import GridSearchCV, KFold, RandomizedSearchCV

from glassnet.progress import Progress
from glassnet.search.population import PopulationSearchCV

__all__ = ["make_search", "search_summary", "SEARCH_KINDS"]

SEARCH_KINDS = ("population", "random", "grid", "none")


def make_search(
    estimator: Any,
    kind: str,
    space: dict,
    *,
    cv: int = 5,
    n_iter: int = 20,
    seed: int = 0,
    scoring: str = "neg_mean_squared_error",
    n_jobs: int = 1,
    progress: Progress | None = None,
) -> GridSearchCV | RandomizedSearchCV | PopulationSearchCV:
    """Return an unfitted search of ``kind`` over ``space``.

    'random' and 'grid' are scikit-learn's searches; 'population' is PopulationSearchCV drawing
    the same candidates as 'random' (same seed) and training them all at once.

    Folds are shuffled with ``seed``; a candidate whose fit raises (e.g. it diverged) scores NaN
    instead of stopping the search, as scikit-learn's ``error_score=np.nan`` does.
    """
    folds = KFold(n_splits=cv, shuffle=True, random_state=seed)
    common = dict(scoring=scoring, cv=folds, refit=True, error_score=np.nan, n_jobs=n_jobs)
    if kind == "population":
        return PopulationSearchCV(
            estimator,
            space,
            n_iter=n_iter,
            cv=folds,
            scoring=scoring,
            random_state=seed,
            error_score=np.nan,
            progress=progress,
        )
    if kind == "random":
        return RandomizedSearchCV(estimator, space, n_iter=n_iter, random_state=seed, **common)
    if kind == "grid":
        return GridSearchCV(estimator, space, **common)
    raise ValueError(f"unknown search kind {kind!r}; expected one of {SEARCH_KINDS}")


def search_summary(cv_results: dict) -> dict[str, Any]:
    """Return counts of candidates and failed (NaN-scored) candidates from ``cv_results_``."""
    scores = np.asarray(cv_results["mean_test_score"], dtype=float)
    return {"n_candidates": int(scores.size), "n_failed": int(np.isnan(scores).sum())}
