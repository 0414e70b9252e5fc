"""Figures for the introspection methods: kernels, feature maps, receptive fields, activations."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib
import numpy as np

from glassnet.plots.style import literal, styled, subplots

__all__ = [
    "plot_conv_kernels",
    "plot_feature_maps",
    "plot_class_maps",
    "plot_saliency_grid",
    "plot_hidden_units",
    "plot_activation_map",
]


def _sym(a: np.ndarray) -> float:
    """Symmetric colour limit so that zero is always white in a diverging colormap."""
    return float(np.abs(a).max()) or 1.0


@styled
def plot_conv_kernels(kernels: np.ndarray, title: str):
    """Kernels (out, in, kh, kw) as a grid: a column per output channel, a row per input."""
    k = np.asarray(kernels)
    n_out, n_in = k.shape[:2]
    fig, axes = subplots(
        n_in, n_out, figsize=(1.5 + 0.75 * n_out, 1.1 + 0.75 * n_in), squeeze=False
    )
    lim = _sym(k)
    for o in range(n_out):
        for i in range(n_in):
            ax = axes[i, o]
            im = ax.imshow(k[o, i], cmap="RdBu_r", vmin=-lim, vmax=lim)
            _bare(ax)
            if o == 0:
                ax.set_ylabel(f"in {i}", fontsize=8)
            if i == 0:
                ax.set_title(f"out {o}", fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.colorbar(im, ax=axes, fraction=0.02, pad=0.01, label="weight")
    return fig, axes


def _bare(ax) -> None:
    """An image panel: no ticks, no frame (labels still allowed)."""
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_frame_on(False)


@styled
def plot_feature_maps(image: np.ndarray, maps: dict[str, np.ndarray], max_channels: int = 16):
    """The input image, then a row per conv layer with each channel's response to it."""
    n_cols = 1 + min(max_channels, max(m.shape[0] for m in maps.values()))
    fig, axes = subplots(
        len(maps), n_cols, figsize=(1.15 * n_cols, 1.45 * len(maps)), squeeze=False
    )
    for ax in axes.flat:
        ax.axis("off")
    for r, (name, m) in enumerate(maps.items()):
        axes[r, 0].imshow(np.asarray(image).squeeze(), cmap="gray_r")
        axes[r, 0].set_title("input", fontsize=8)
        lim = _sym(m)
        for c in range(min(max_channels, m.shape[0])):
            axes[r, c + 1].imshow(m[c], cmap="RdBu_r", vmin=-lim, vmax=lim)
            axes[r, c + 1].set_title(f"{name}[{c}]", fontsize=7)
    fig.suptitle(
        "Feature maps: each conv channel's response to one digit (red +, blue -)", fontsize=10
    )
    fig.tight_layout()
    return fig, axes


@styled
def plot_class_maps(maps: np.ndarray, classes: Sequence[str], title: str, cols: int = 5):
    """One 28x28 map per class (e.g. receptive fields), red positive, blue negative."""
    maps = np.asarray(maps).reshape(len(classes), 28, 28)
    rows = int(np.ceil(len(classes) / cols))
    fig, axes = subplots(rows, cols, figsize=(1.9 * cols + 0.8, 2.0 * rows + 0.5), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for k, name in enumerate(classes):
        ax = axes.flat[k]
        lim = _sym(maps[k])  # per class: each map is read on its own scale
        ax.imshow(maps[k], cmap="RdBu_r", vmin=-lim, vmax=lim)
        ax.set_title(f"class {literal(name)}", fontsize=9)
    fig.suptitle(title, fontsize=10)
    sm = matplotlib.cm.ScalarMappable(cmap="RdBu_r", norm=matplotlib.colors.Normalize(-1, 1))
    fig.colorbar(
        sm,
        ax=axes,
        fraction=0.025,
        pad=0.02,
        label="relative weight (each map scaled to its max |value|)",
    )
    return fig, axes


@styled
def plot_saliency_grid(images: np.ndarray, rows: dict[str, np.ndarray], titles: Sequence[str]):
    """Columns are input images; the first row shows them, each further row one attribution."""
    n = len(images)
    fig, axes = subplots(
        1 + len(rows), n, figsize=(1.5 * n + 1.2, 1.6 * (1 + len(rows))), squeeze=False
    )
    for ax in axes.flat:
        _bare(ax)
    for j in range(n):
        axes[0, j].imshow(np.asarray(images[j]).squeeze(), cmap="gray_r")
        axes[0, j].set_title(titles[j], fontsize=8)
    axes[0, 0].set_ylabel("input", fontsize=8)
    for r, (name, att) in enumerate(rows.items(), start=1):
        axes[r, 0].set_ylabel(name, fontsize=8)
        for j in range(n):
            a = np.asarray(att[j]).squeeze()
            lim = _sym(a)
            axes[r, j].imshow(a, cmap="RdBu_r", vmin=-lim, vmax=lim)
    fig.suptitle(
        "What the prediction depends on (red: raises the class score, blue: lowers it)", fontsize=10
    )
    fig.tight_layout()
    return fig, axes


@styled
def plot_hidden_units(acts: np.ndarray, labels: np.ndarray, classes: Sequence[str], layer: str):
    """Heatmap of one hidden layer for test digits grouped by class (rows), units as columns."""
    order = np.argsort(labels, kind="stable")
    a = np.asarray(acts)[order]
    fig, ax = subplots(figsize=(9, 4.5))
    im = ax.imshow(a, aspect="auto", cmap="magma", interpolation="nearest")
    bounds = np.flatnonzero(np.diff(labels[order])) + 0.5
    for b in bounds:
        ax.axhline(b, color="white", lw=0.6)
    centers = [np.mean(np.flatnonzero(labels[order] == k)) for k in np.unique(labels)]
    ax.set_yticks(centers, [literal(classes[k]) for k in np.unique(labels)])
    ax.set(
        xlabel=f"unit of {layer}",
        ylabel="test digits, grouped by true class",
        title=f"Last hidden layer ({layer}) activations: each class lights its own units",
    )
    fig.colorbar(im, ax=ax, label="activation")
    fig.tight_layout()
    return fig, ax


def _unit_order(m: np.ndarray) -> np.ndarray:
    """Order units (rows of m, activation over increasing x) so the map reads as two sweeps:
    rising units by where they cross their midpoint, then falling units likewise."""
    mid = (m.max(1, keepdims=True) + m.min(1, keepdims=True)) / 2
    falling = m[:, -1] < m[:, 0]
    cross = np.where(falling, np.argmax(m < mid, axis=1), np.argmax(m > mid, axis=1))
    return np.lexsort((cross, falling))


@styled
def plot_activation_map(
    maps: dict[str, np.ndarray], x: np.ndarray, gaps: Sequence[tuple[float, float]] = ()
):
    """Regression hidden layers over the input range: units (rows, sorted) x input (columns)."""
    fig, axes = subplots(len(maps), 1, figsize=(8, 2.6 * len(maps)), squeeze=False)
    for ax, (name, m) in zip(axes[:, 0], maps.items()):
        m = np.asarray(m)
        order = _unit_order(m)
        lim = _sym(m)
        im = ax.imshow(
            m[order],
            aspect="auto",
            cmap="RdBu_r",
            vmin=-lim,
            vmax=lim,
            extent=(x[0], x[-1], m.shape[0], 0),
            interpolation="nearest",
        )
        for lo, hi in gaps:
            ax.axvline(lo, color="k", ls=":", lw=1)
            ax.axvline(hi, color="k", ls=":", lw=1)
        ax.set(
            xlabel="input x (dotted: gaps in the training data)",
            ylabel=f"unit (sorted), {m.shape[0]}",
            title=f"{name}: activation over the inputs",
        )
        fig.colorbar(im, ax=ax, label="activation", pad=0.01)
    fig.tight_layout()
    return fig, axes
