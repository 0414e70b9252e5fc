"""Regression figures: data and fit, learning curves, weight histograms, activations."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from glassnet.introspection.weights import LayerWeights
from glassnet.plots.style import STYLE, styled, subplots

__all__ = [
    "plot_regression_fit",
    "plot_learning_curve",
    "plot_weight_histograms",
    "plot_activation_heatmap",
]


@styled
def plot_regression_fit(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    x_curve: np.ndarray,
    y_curve: np.ndarray,
    gaps: Sequence[tuple[float, float]] = (),
    band: tuple[np.ndarray, np.ndarray] | None = None,
    title: str = "Data and fitted curve",
    band_label: str = "CV fold spread",
):
    """Training and test points, the fitted curve, gaps in the training data shaded."""
    fig, ax = subplots(figsize=(7.5, 4.5))
    for i, (lo, hi) in enumerate(gaps):
        ax.axvspan(
            lo, hi, color=STYLE["gap"], alpha=0.5, label="gap in training data" if i == 0 else None
        )
    if band is not None:
        ax.fill_between(x_curve, band[0], band[1], color=STYLE["fit"], alpha=0.2, label=band_label)
    ax.scatter(x_train, y_train, s=14, color=STYLE["train"], label=f"train ({len(x_train)})")
    ax.scatter(x_test, y_test, s=14, marker="x", color=STYLE["test"], label=f"test ({len(x_test)})")
    ax.plot(x_curve, y_curve, color=STYLE["fit"], lw=2, label="fitted net")
    ax.set(xlabel="input x", ylabel="label y", title=title)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    return fig, ax


@styled
def plot_learning_curve(
    curves: dict[str, Sequence[float]],
    ylabel: str = "MSE loss",
    logy: bool = True,
    title: str = "Learning curve",
    epochs: Sequence[int] | None = None,
):
    """One line per named series (e.g. train and validation loss), one value per epoch, or one
    per entry of ``epochs`` when the series were read every few epochs."""
    fig, ax = subplots(figsize=(7, 4))
    for name, values in curves.items():
        v = np.asarray(values, dtype=float)
        x = np.arange(1, len(v) + 1) if epochs is None else np.asarray(epochs)
        ax.plot(x, v, lw=1.5, label=name)
    if logy:
        ax.set_yscale("log")
    ax.set(xlabel="epoch", ylabel=ylabel, title=title)
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    return fig, ax


@styled
def plot_weight_histograms(layers: Sequence[LayerWeights], bins: int = 60):
    """One histogram per layer of its weights, with mean/std in the panel title."""
    n = len(layers)
    cols = min(n, 3)
    rows = int(np.ceil(n / cols))
    fig, axes = subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    for ax, lw in zip(axes.flat, layers):
        s = lw.stats()
        counts, edges = np.histogram(lw.weights, bins=bins)
        # one filled outline, not a patch per bin: the same picture, drawn far faster
        ax.stairs(counts, edges, fill=True, color=STYLE["train"], alpha=0.85)
        shape = "x".join(map(str, lw.shape))
        ax.set_title(f"{lw.name} ({shape})\nmean {s['mean']:.3f}, std {s['std']:.3f}", fontsize=9)
        ax.set_xlabel("weight value")
        ax.set_ylabel("count")
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.suptitle("Weight histograms per layer")
    fig.tight_layout()
    return fig, axes


@styled
def plot_activation_heatmap(
    activations: dict[str, np.ndarray],
    inputs: Sequence[float],
    max_units: int = 512,
    sort_units: bool = True,
):
    """Heatmap per layer: rows are the chosen inputs, columns the layer's units.

    With ``sort_units`` the columns are ordered by how the unit changes from the first to the
    last input, which turns a speckle of units into visible groups.
    """
    n = len(activations)
    fig, axes = subplots(n, 1, figsize=(9, 1.2 + 0.35 * len(inputs) * n + 0.6 * n), squeeze=False)
    for ax, (name, a) in zip(axes[:, 0], activations.items()):
        a = np.asarray(a)[:, :max_units]
        if sort_units:  # units that rise with the input on the left, falling ones on the right
            a = a[:, np.argsort(a[0] - a[-1], kind="stable")]
        lim = float(np.abs(a).max()) or 1.0
        im = ax.imshow(
            a, aspect="auto", cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest"
        )
        ax.set_yticks(range(len(inputs)), [f"x={v:g}" for v in inputs], fontsize=8)
        total = np.asarray(activations[name]).shape[1]
        shown = f"first {a.shape[1]} of {total}" if total > a.shape[1] else f"all {total}"
        order = ", sorted by change from first to last input" if sort_units else ""
        ax.set_xlabel(f"unit ({shown}{order})")
        ax.set_title(f"Activations of {name}", fontsize=10)
        fig.colorbar(im, ax=ax, label="activation", pad=0.01)
    fig.tight_layout()
    return fig, axes
