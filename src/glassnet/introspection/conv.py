"""Convolution kernels and the feature maps they produce, for any model with Conv2d layers."""

from __future__ import annotations

import torch
from torch import nn

from glassnet.introspection.activations import layer_activations

__all__ = ["conv_layers", "conv_kernels", "feature_maps"]


def conv_layers(model: nn.Module) -> list[str]:
    """Return the names of the Conv2d layers, input to output."""
    return [name for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]


def conv_kernels(model: nn.Module) -> dict[str, torch.Tensor]:
    """Return each Conv2d layer's weights, shaped (out_channels, in_channels, kh, kw)."""
    modules = dict(model.named_modules())
    return {name: modules[name].weight.detach().cpu().clone() for name in conv_layers(model)}


def feature_maps(model: nn.Module, image: torch.Tensor) -> dict[str, torch.Tensor]:
    """Return each Conv2d layer's output for one image, shaped (channels, H, W).

    ``image`` is (C, H, W) or (1, C, H, W); the maps are the convolution outputs before the
    non-linearity, so negative responses stay visible.
    """
    if image.dim() == 3:
        image = image[None]  # (1, C, H, W)
    if image.dim() != 4 or image.shape[0] != 1:
        raise ValueError(f"expected one image (C, H, W), got shape {tuple(image.shape)}")
    layers = conv_layers(model)
    if not layers:
        raise ValueError(f"{type(model).__name__} has no Conv2d layers")
    maps = layer_activations(model, image, layers)
    return {name: t[0] for name, t in maps.items()}
