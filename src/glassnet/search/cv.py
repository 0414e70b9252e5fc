"""Build scikit-learn searches with shuffled, seeded folds and failures scored as NaN."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from sklearn.model_selection import BaseCrossValidator, GridSearchCV, KFold, RandomizedSearchCV

from glassnet.progress import Progress
from glassnet.search.population import PopulationSearchCV

__all__ = ["make_search", "search_summary", "cv_rows", "BlockedKFold", "SEARCH_KINDS"]

SEARCH_KINDS = ("population", "random", "grid")  # what make_search builds


class BlockedKFold(BaseCrossValidator):
    """K-fold over short runs of neighbouring points: each fold holds out small gaps.

    The rows are sorted by the first feature and cut into blocks of ``block_size`` neighbours;
    fold k validates on blocks k, k + n_splits, k + 2 n_splits, ... A random fold's held-out
    points all have close neighbours in training, so it scores how well a model follows the
    noise; a held-out block scores how well it bridges a stretch without data, which is what
    a test set covering gaps asks of it. Deterministic: no shuffling, no seed.
    """

    def __init__(self, n_splits: int = 5, block_size: int = 4) -> None:
        if n_splits < 2:
            raise ValueError(f"n_splits must be >= 2, got {n_splits}")
        if block_size < 1:
            raise ValueError(f"block_size must be >= 1, got {block_size}")
        self.n_splits = n_splits
        self.block_size = block_size

    def get_n_splits(self, X=None, y=None, groups=None) -> int:
        return self.n_splits

    def _iter_test_indices(self, X=None, y=None, groups=None):
        X = np.asarray(X)
        n = len(X)
        if n < self.n_splits * self.block_size:
            raise ValueError(
                f"{n} rows are fewer than n_splits x block_size = "
                f"{self.n_splits} x {self.block_size}"
            )
        order = np.argsort(X.reshape(n, -1)[:, 0], kind="stable")
        block = np.arange(n) // self.block_size  # block number of each sorted position
        for k in range(self.n_splits):
            yield np.sort(order[block % self.n_splits == k])


def make_search(
    estimator: Any,
    kind: str,
    space: dict,
    *,
    cv: int | BaseCrossValidator = 5,
    n_iter: int = 20,
    seed: int = 0,
    scoring: str = "neg_mean_squared_error",
    n_jobs: int = 1,
    progress: Progress | None = None,
) -> GridSearchCV | RandomizedSearchCV | PopulationSearchCV:
    """Return an unfitted search of ``kind`` over ``space``.

    'random' and 'grid' are scikit-learn's searches; 'population' is PopulationSearchCV drawing
    the same candidates as 'random' (same seed) and training them all at once.

    ``cv`` folds (an int) are shuffled with ``seed``; or pass the splitter itself, so that the
    caller uses the very same folds for other work (the fold models). A candidate whose fit
    raises (e.g. it diverged) scores NaN instead of stopping the search, as scikit-learn's
    ``error_score=np.nan`` does.
    """
    folds = KFold(n_splits=cv, shuffle=True, random_state=seed) if isinstance(cv, int) else cv
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


def cv_rows(cv_results: dict) -> list[dict[str, Any]]:
    """Flatten cv_results_ into CSV rows, with the score turned back into an MSE."""
    rows = []
    split_keys = sorted(k for k in cv_results if k.startswith("split") and k.endswith("test_score"))
    for i, params in enumerate(cv_results["params"]):
        score = float(cv_results["mean_test_score"][i])
        row = {
            "rank": int(cv_results["rank_test_score"][i]),
            "mean_cv_mse": None if math.isnan(score) else -score,
            "std_cv_mse": float(cv_results["std_test_score"][i]),
        }
        # per search: fit seconds (sklearn's searches), chosen and trained epochs (ensemble)
        for key, col in (("mean_fit_time", "mean_fit_seconds"), ("best_epoch", "best_epoch"),
                         ("epochs_trained", "epochs_trained"), ("trial", "trial"),
                         ("state", "state")):  # fmt: skip
            if key in cv_results:
                row[col] = cv_results[key][i].item()
        plain = {k: v.item() if isinstance(v, np.generic) else v for k, v in params.items()}
        row.update({k.replace("optimizer__", ""): v for k, v in plain.items()})
        for k in split_keys:
            s = float(cv_results[k][i])
            row[k.replace("_test_score", "_mse")] = None if math.isnan(s) else -s
        row["params"] = plain
        rows.append(row)
    rows.sort(key=lambda r: r["rank"])
    return rows
