"""Scores computed from predictions, shared by the experiments and the report."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from glassnet.baselines import GaussianProcessBaseline
from glassnet.data.regression import RegressionData, find_gaps
from glassnet.introspection import band_coverage, fold_band, spread_inside_gaps

__all__ = ["classification_scores", "most_confused", "regression_scores"]


def classification_scores(
    y_true: np.ndarray, pred: np.ndarray, classes: Sequence[str]
) -> dict[str, Any]:
    """Accuracy, confusion matrix (rows: true class), per-class precision/recall/F1/support
    and the most frequent confusions."""
    labels = list(range(len(classes)))
    cm = confusion_matrix(y_true, pred, labels=labels)
    prec, rec, f1, support = precision_recall_fscore_support(
        y_true, pred, labels=labels, zero_division=0
    )
    return {
        "test_accuracy": float((pred == y_true).mean()),
        "confusion_matrix": cm,
        "per_class": {
            classes[i]: {
                "precision": float(prec[i]),
                "recall": float(rec[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i in labels
        },
        "most_confused": most_confused(cm, classes),
    }


def most_confused(cm: np.ndarray, classes: Sequence[str], k: int = 5) -> list[dict[str, Any]]:
    """The ``k`` largest off-diagonal counts of a confusion matrix, largest first."""
    off = cm.copy()
    np.fill_diagonal(off, 0)
    order = np.argsort(off, axis=None)[::-1][:k]
    return [
        {"true": classes[i], "predicted": classes[j], "count": int(off[i, j])}
        for i, j in (np.unravel_index(o, cm.shape) for o in order)
        if off[i, j] > 0
    ]


def regression_scores(
    model: torch.nn.Module,
    members: Any,
    data: RegressionData,
    gp: GaussianProcessBaseline,
    grid: np.ndarray,
    band: dict[str, np.ndarray] | None,
) -> dict[str, Any]:
    """Train and test MSE (the test set's one use), the band's coverage of the test points and
    spread in the gaps (``members``: the models behind ``band``), and the GP baseline's."""
    with torch.no_grad():
        pred = {
            split: model.eval()(torch.as_tensor(np.asarray(x, np.float32).reshape(-1, 1)))
            .ravel()
            .numpy()
            for split, x in (("train", data.x_train), ("test", data.x_test))
        }
    gp_mean, gp_latent, _ = gp.predict(data.x_test)
    out = {
        "train_mse": float(np.mean((pred["train"] - data.y_train) ** 2)),
        "test_mse": float(np.mean((pred["test"] - data.y_test) ** 2)),
        "baseline_gp_test_mse": float(np.mean((gp_mean - data.y_test) ** 2)),
        "baseline_gp_kernel": gp.describe(),
        "baseline_gp_points": gp.n_fit,
        "baseline_gp_band_coverage": band_coverage(data.y_test, gp_mean, gp_latent),
    }
    if band is not None:
        at_test = fold_band(members, data.x_test)
        out["band_coverage"] = band_coverage(data.y_test, at_test["mean"], at_test["std"])
        spread = spread_inside_gaps(grid, band["std"], find_gaps(data.x_train))
        if spread:
            out["fold_std_in_gaps"], out["fold_std_elsewhere"] = spread.values()
    return out
