"""Activations of chosen layers for given inputs, captured with forward hooks."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from glassnet.activations import ACTIVATIONS

__all__ = ["layer_activations", "hidden_activation_layers"]


def hidden_activation_layers(model: nn.Module) -> list[str]:
    """Return the names of the non-linearity modules (the hidden layers' outputs), in order."""
    kinds = tuple(a.module for a in ACTIVATIONS.values())  # glassnet's own activations
    return [name for name, m in model.named_modules() if isinstance(m, kinds)]


@torch.no_grad()
def layer_activations(
    model: nn.Module, inputs: torch.Tensor, layers: Sequence[str]
) -> dict[str, torch.Tensor]:
    """Run ``model`` on ``inputs`` in eval mode; return each named layer's output (on the CPU).

    Hooks are removed and the training mode restored even if the forward pass raises.
    """
    modules = dict(model.named_modules())
    missing = [name for name in layers if name not in modules]
    if missing:
        raise KeyError(f"no such layer(s): {missing}; available: {list(modules)[1:]}")
    captured: dict[str, torch.Tensor] = {}
    handles = []
    was_training = model.training
    try:
        for name in layers:

            def hook(_m, _inp, out, name=name):
                captured[name] = out.detach().cpu()

            handles.append(modules[name].register_forward_hook(hook))
        model.eval()
        device = next(model.parameters()).device
        model(inputs.to(device))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return {name: captured[name] for name in layers}
