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


def _tiles(panels: np.ndarray, gap: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """RGBA panels (rows, cols, h, w, 4) tiled into one image with a ``gap``-pixel white
    gutter, and the tiles' centre rows and columns, for tick labels.

    One image on one axes instead of an axes per panel: each matplotlib axes costs tens of
    milliseconds to make and draw, and a LeNet-5 run draws a few hundred panels.
    """
    rows, cols, h, w = panels.shape[:4]
    out = np.ones((rows * (h + gap) - gap, cols * (w + gap) - gap, 4))  # white
    for i in range(rows):
        for j in range(cols):
            r, c = i * (h + gap), j * (w + gap)  # the panel's top-left pixel
            out[r : r + h, c : c + w] = panels[i, j]
    return out, np.arange(rows) * (h + gap) + (h - 1) / 2, np.arange(cols) * (w + gap) + (w - 1) / 2


def _colours(a: np.ndarray, cmap: str, vmin: float, vmax: float) -> np.ndarray:
    """``a`` (..., h, w) as RGBA (..., h, w, 4) through ``cmap`` on [vmin, vmax]: panels that
    each keep their own colour scale can then share one image."""
    norm = matplotlib.colors.Normalize(vmin, vmax)
    return matplotlib.colormaps[cmap](norm(np.asarray(a, dtype=float)))


def _padded(a: np.ndarray, size: int) -> np.ndarray:
    """An RGBA panel (h, w, 4) centred on a white ``size`` x ``size`` square, first enlarged by
    the largest whole factor that fits (each pixel a block): an 8x8 map is read at 24x24."""
    k = max(1, size // max(a.shape[:2]))
    a = a.repeat(k, 0).repeat(k, 1)
    out = np.ones((size, size, 4))
    r, c = (size - a.shape[0]) // 2, (size - a.shape[1]) // 2
    out[r : r + a.shape[0], c : c + a.shape[1]] = a
    return out


def _label_tiles(ax, row_centres, row_labels, col_centres, col_labels, fontsize=8) -> None:
    """Tile labels as tick labels: rows on the left, columns on top; no frame, no ticks."""
    ax.set_yticks(row_centres, row_labels, fontsize=fontsize)
    ax.set_xticks(col_centres, col_labels, fontsize=fontsize)
    ax.xaxis.tick_top()
    ax.tick_params(length=0)
    ax.set_frame_on(False)


@styled
def plot_conv_kernels(kernels: np.ndarray, title: str):
    """Kernels (out, in, kh, kw) as a grid: a column per output channel, a row per input."""
    k = np.asarray(kernels, dtype=float)
    n_out, n_in = k.shape[:2]
    lim = _sym(k)  # one scale for every kernel: their weights compare
    rgba = _colours(k.transpose(1, 0, 2, 3), "RdBu_r", -lim, lim)  # (in, out, kh, kw, 4)
    image, rows, cols = _tiles(rgba)  # a row per input channel, a column per output
    fig, ax = subplots(figsize=(1.5 + 0.75 * n_out, 1.1 + 0.75 * n_in))
    ax.imshow(image)
    _label_tiles(ax, rows, [f"in {i}" for i in range(n_in)], cols,
                 [f"out {o}" for o in range(n_out)])  # fmt: skip
    fig.suptitle(title, fontsize=10)
    scale = matplotlib.cm.ScalarMappable(matplotlib.colors.Normalize(-lim, lim), "RdBu_r")
    fig.colorbar(scale, ax=ax, fraction=0.02, pad=0.01, label="weight")
    return fig, ax


@styled
def plot_feature_maps(image: np.ndarray, maps: dict[str, np.ndarray], max_channels: int = 16):
    """The input image, then a row per conv layer with each channel's response to it (maps
    smaller than the input are enlarged by whole pixels; each layer on its own colour scale)."""
    image = np.asarray(image, dtype=float).squeeze()
    size = image.shape[0]
    n_cols = 1 + min(max_channels, max(m.shape[0] for m in maps.values()))
    fig, axes = subplots(len(maps), 1, figsize=(1.15 * n_cols, 1.45 * len(maps)), squeeze=False)
    shown = _padded(_colours(image, "gray_r", image.min(), image.max()), size)
    for ax, (name, m) in zip(axes[:, 0], maps.items()):
        lim, n = _sym(m), min(max_channels, m.shape[0])
        row = [shown] + [_padded(_colours(m[c], "RdBu_r", -lim, lim), size) for c in range(n)]
        row += [np.ones_like(shown)] * (n_cols - len(row))  # a shorter row ends in white
        tiled, _, cols = _tiles(np.stack(row)[None], gap=3)
        ax.imshow(tiled)
        _label_tiles(ax, [], [], cols[: n + 1], ["input"] + [f"{name}[{c}]" for c in range(n)],
                     fontsize=7)  # fmt: skip
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
    """Columns are input images; the first row shows them, each further row one attribution
    (each panel on its own colour scale, zero white)."""
    n = len(images)
    fig, ax = subplots(figsize=(1.5 * n + 1.2, 1.6 * (1 + len(rows))))
    shown = [np.asarray(im, dtype=float).squeeze() for im in images]
    panels = [[_colours(im, "gray_r", im.min(), im.max()) for im in shown]]
    for att in rows.values():
        maps = [np.asarray(a, dtype=float).squeeze() for a in att]
        panels.append([_colours(a, "RdBu_r", -_sym(a), _sym(a)) for a in maps])
    tiled, row_centres, col_centres = _tiles(np.array(panels), gap=3)
    ax.imshow(tiled)
    _label_tiles(ax, row_centres, ["input", *rows], col_centres, list(titles))
    fig.suptitle(
        "What the prediction depends on (red: raises the class score, blue: lowers it)", fontsize=10
    )
    fig.tight_layout()
    return fig, ax


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
