"""The figure set of a regression run: which plots, drawn from what the run produced."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from glassnet.introspection import (
    activation_map,
    first_member,
    hidden_activation_layers,
    layer_activations,
    layer_weights,
)
from glassnet.plots.inspect import plot_activation_map
from glassnet.plots.regression import (
    plot_activation_heatmap,
    plot_learning_curve,
    plot_regression_fit,
    plot_weight_histograms,
)

__all__ = ["regression_figures"]


def regression_figures(
    save: Callable[[str, Any], Any],
    model: nn.Module,
    data: Any,
    grid: np.ndarray,
    band: dict[str, np.ndarray] | None,
    gp: tuple[np.ndarray, np.ndarray] | None,
    curves: dict[str, Sequence[float]],
    curve_epochs: Sequence[int] | None,
    gaps: Sequence[tuple[float, float]],
    probe_x: Sequence[float],
    band_label: str,
) -> None:
    """Draw fit.png, fit_band.png, learning_curve.png, weight_histograms.png, activations.png
    and activation_map.png, handing each figure to ``save(name, fig)``.

    ``model`` maps x (n, 1) to y (n, 1) on the data's scale; ``band`` holds the members'
    predictions on ``grid`` (``fold_band``); ``gp`` the Gaussian process's mean and latent std.
    """
    model = model.cpu().eval()
    with torch.no_grad():
        curve = model(torch.as_tensor(grid, dtype=torch.float32).reshape(-1, 1)).ravel().numpy()
    points = (data.x_train, data.y_train, data.x_test, data.y_test)
    fig, ax = plot_regression_fit(
        *points, grid, curve, gaps=gaps, title="Training data, test data and the fitted net"
    )
    if gp is not None:
        ax.plot(grid, gp[0], color="k", lw=1.2, ls="--", label="Gaussian process (baseline)")
        ax.legend(loc="best", fontsize=8)
    save("fit.png", fig)

    if band is not None:
        save("fit_band.png", _band_figure(points, grid, curve, gaps, band, band_label, gp))

    fig, _ = plot_learning_curve(
        curves, title="Learning curves of the chosen model", epochs=curve_epochs
    )
    save("learning_curve.png", fig)

    which = _inside_figures(save, model, probe_x)
    maps = activation_map(model, grid)
    fig, _ = plot_activation_map(
        {f"hidden layer {i + 1}{which}": v for i, v in enumerate(maps.values())}, grid, gaps
    )
    save("activation_map.png", fig)


def _band_figure(points, grid, curve, gaps, band, band_label: str, gp):
    """The fit with every member's curve, their mean +- 2 std, and the GP's band."""
    mean, std = band["mean"], band["std"]
    widened = f", widened x{band['scale']:g}" if band.get("scale", 1.0) != 1.0 else ""
    fig, ax = plot_regression_fit(
        *points,
        grid,
        curve,
        gaps=gaps,
        band=(mean - 2 * std, mean + 2 * std),
        band_label=f"{band_label}: mean +- 2 std{widened}",
        title=f"The fitted net and its {len(band['all'])} {band_label}",
    )
    for pred in band["all"]:
        ax.plot(grid, pred, color="gray", lw=0.6, alpha=0.6)
    if gp is not None:
        ax.plot(grid, gp[0] - 2 * gp[1], color="k", lw=0.8, ls=":")
        ax.plot(
            grid, gp[0] + 2 * gp[1], color="k", lw=0.8, ls=":", label="Gaussian process +- 2 std"
        )
        ax.legend(loc="best", fontsize=8)
    return fig


def _inside_figures(save, model: nn.Module, probe_x: Sequence[float]) -> str:
    """Weight histograms and hidden activations at the probe inputs (of the first member of an
    ensemble); returns the label saying so, or ''."""
    net, probes = first_member(model, np.asarray(probe_x, dtype=np.float32))
    which = " (first ensemble member)" if net is not model else ""
    fig, _ = plot_weight_histograms(layer_weights(net))
    fig.suptitle("Weight histograms per layer" + which)
    save("weight_histograms.png", fig)
    layers = hidden_activation_layers(net)
    acts = layer_activations(net, torch.as_tensor(probes).reshape(-1, 1), layers)
    names = {
        layer: f"hidden layer {i + 1} ({acts[layer].shape[1]} units){which}"
        for i, layer in enumerate(layers)
    }
    fig, _ = plot_activation_heatmap(
        {names[k]: v.numpy() for k, v in acts.items()}, list(probe_x), max_units=512
    )
    save("activations.png", fig)
    return which
