"""Regression nets: the spread of an ensemble's members, its coverage, hidden units over x."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from glassnet.introspection.activations import hidden_activation_layers, layer_activations
from glassnet.models import RegressionEnsemble

__all__ = ["fold_band", "band_coverage", "spread_inside_gaps", "activation_map", "first_member"]


@torch.no_grad()
def fold_band(
    models: RegressionEnsemble | Sequence[nn.Module], x: np.ndarray
) -> dict[str, Any]:
    """Predictions of each member (or fold model) on ``x``: their mean, min, max and std, and
    ``scale``, the calibration factor already in that std (an ensemble's ``band_scale``; 1 for
    fold models).

    The members saw different slices of the training data (and, in an ensemble, started from
    different weights); where they disagree most (typically in the gaps) the data did not pin
    the function down.
    """
    xt = torch.as_tensor(np.asarray(x, dtype=np.float32).reshape(-1, 1))
    scale = 1.0
    if isinstance(models, RegressionEnsemble):
        preds = models.eval().member_outputs(xt)[:, :, 0].numpy()  # (members, points)
        std = models.band_std(xt).numpy()  # with a Bayesian last layer, its variance too
        scale = models.band_scale  # std is widened by this calibration factor
    else:
        preds = np.stack([m.eval()(xt).ravel().numpy() for m in models])  # (models, points)
        std = preds.std(0)
    return {
        "all": preds,
        "mean": preds.mean(0),
        "lo": preds.min(0),
        "hi": preds.max(0),
        "std": std,
        "scale": scale,
    }


def band_coverage(y: np.ndarray, mean: np.ndarray, std: np.ndarray, k: float = 2.0) -> float:
    """Fraction of the targets ``y`` inside ``mean +- k * std`` (edges count as inside)."""
    y, mean, std = (np.asarray(a, dtype=float).ravel() for a in (y, mean, std))
    if not (len(y) == len(mean) == len(std)) or len(y) == 0:
        raise ValueError(f"need equal, non-empty lengths, got {len(y)}, {len(mean)}, {len(std)}")
    return float(np.mean(np.abs(y - mean) <= k * std))


def spread_inside_gaps(
    x: np.ndarray, std: np.ndarray, gaps: Sequence[tuple[float, float]]
) -> dict[str, float]:
    """Mean spread inside the gaps and elsewhere (empty when either side has no point)."""
    x = np.asarray(x, dtype=float)
    in_gap = np.zeros(len(x), dtype=bool)
    for lo, hi in gaps:
        in_gap |= (x >= lo) & (x <= hi)
    if not in_gap.any() or in_gap.all():
        return {}
    return {"in_gaps": float(std[in_gap].mean()), "elsewhere": float(std[~in_gap].mean())}


def first_member(model: nn.Module, x: np.ndarray) -> tuple[nn.Module, np.ndarray]:
    """The net to look inside and the inputs it sees: an ensemble's first member on its
    standardised inputs, or the model itself on ``x``."""
    x = np.asarray(x, dtype=np.float32)
    if isinstance(model, RegressionEnsemble):
        xs = (x - float(model.x_mean)) / float(model.x_scale)
        return model.members[0], xs.astype(np.float32)
    return model, x


def activation_map(model: nn.Module, x: np.ndarray) -> dict[str, np.ndarray]:
    """Each hidden layer's activations over the inputs ``x``: (units, len(x)) per layer."""
    net, xs = first_member(model, x)
    xt = torch.as_tensor(xs.reshape(-1, 1))
    acts = layer_activations(net, xt, hidden_activation_layers(net))
    return {name: a.numpy().T for name, a in acts.items()}
