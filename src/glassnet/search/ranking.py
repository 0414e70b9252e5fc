"""One ranking for every search's ``cv_results_``, as scikit-learn's searches rank."""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

__all__ = ["rank_scores"]


def rank_scores(mean_scores: np.ndarray) -> np.ndarray:
    """``rank_test_score`` for mean scores (higher is better): 1 is best, ties share the lowest
    rank ("min"), failed candidates (NaN) rank last together, and all-NaN ranks all 1. The
    best candidate is ``np.argmin(rank)``: the first of those ranked 1."""
    scores = np.asarray(mean_scores, dtype=float)
    if np.isnan(scores).all():
        return np.ones(len(scores), dtype=np.int32)
    filled = np.where(np.isnan(scores), np.nanmin(scores) - 1, scores)
    return rankdata(-filled, method="min").astype(np.int32)
