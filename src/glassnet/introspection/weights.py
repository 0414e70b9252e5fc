"""Per-layer weight and bias values with summary statistics, for any nn.Module."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from torch import nn

__all__ = ["LayerWeights", "layer_weights"]


@dataclass
class LayerWeights:
    """The flattened weights (and biases) of one layer and their statistics."""

    name: str
    shape: tuple[int, ...]
    weights: np.ndarray  # flattened
    biases: np.ndarray | None

    def stats(self) -> dict[str, float]:
        """Return mean, std, min, max and the fraction of near-zero (|w| < 1e-3) weights."""
        w = self.weights
        return {
            "mean": float(w.mean()),
            "std": float(w.std()),
            "min": float(w.min()),
            "max": float(w.max()),
            "near_zero": float(np.mean(np.abs(w) < 1e-3)),
            "count": int(w.size),
        }


def layer_weights(model: nn.Module) -> list[LayerWeights]:
    """Return one LayerWeights per parametrised leaf layer (Linear, Conv, ...), input to output."""
    out = []
    for name, m in model.named_modules():
        w = getattr(m, "weight", None)
        if not isinstance(w, nn.Parameter) or any(True for _ in m.children()):
            continue
        b = getattr(m, "bias", None)
        out.append(
            LayerWeights(
                name=name or m.__class__.__name__,
                shape=tuple(w.shape),
                weights=w.detach().cpu().numpy().ravel().copy(),
                biases=None if b is None else b.detach().cpu().numpy().ravel().copy(),
            )
        )
    return out
