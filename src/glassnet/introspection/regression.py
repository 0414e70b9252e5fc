"""Regression nets: the spread of cross-validation fold models, hidden units over the inputs."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from glassnet.introspection.activations import hidden_activation_layers, layer_activations

__all__ = ["fold_band", "activation_map"]


@torch.no_grad()
def fold_band(models: Sequence[nn.Module], x: np.ndarray) -> dict[str, np.ndarray]:
    """Predictions of each fold model on ``x``: their mean, min, max and standard deviation.

    The fold models saw different 80% slices of the training data; where they disagree most
    (typically in the gaps) the data did not pin the function down.
    """
    xt = torch.as_tensor(np.asarray(x, dtype=np.float32).reshape(-1, 1))
    preds = np.stack([m.eval()(xt).ravel().numpy() for m in models])  # (models, points)
    return {
        "all": preds,
        "mean": preds.mean(0),
        "lo": preds.min(0),
        "hi": preds.max(0),
        "std": preds.std(0),
    }


def activation_map(model: nn.Module, x: np.ndarray) -> dict[str, np.ndarray]:
    """Each hidden layer's activations over the inputs ``x``: (units, len(x)) per layer."""
    xt = torch.as_tensor(np.asarray(x, dtype=np.float32).reshape(-1, 1))
    acts = layer_activations(model, xt, hidden_activation_layers(model))
    return {name: a.numpy().T for name, a in acts.items()}
