"""Matplotlib figures. Every function returns ``(fig, ax)`` and never calls ``plt.show()``."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")  # files only; no display needed (and none on servers/CI)
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from glassnet.introspection.weights import LayerWeights  # noqa: E402

__all__ = [
    "plot_regression_fit",
    "plot_learning_curve",
    "plot_weight_histograms",
    "plot_activation_heatmap",
]

STYLE = {"train": "#1f77b4", "test": "#ff7f0e", "fit": "#d62728", "gap": "#cccccc"}


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
):
    """Training and test points, the fitted curve, gaps in the training data shaded."""
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for i, (lo, hi) in enumerate(gaps):
        ax.axvspan(
            lo, hi, color=STYLE["gap"], alpha=0.5, label="gap in training data" if i == 0 else None
        )
    if band is not None:
        ax.fill_between(
            x_curve, band[0], band[1], color=STYLE["fit"], alpha=0.2, label="CV fold spread"
        )
    ax.scatter(x_train, y_train, s=14, color=STYLE["train"], label=f"train ({len(x_train)})")
    ax.scatter(x_test, y_test, s=14, marker="x", color=STYLE["test"], label=f"test ({len(x_test)})")
    ax.plot(x_curve, y_curve, color=STYLE["fit"], lw=2, label="fitted net")
    ax.set(xlabel="input x", ylabel="label y", title=title)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    return fig, ax


def plot_learning_curve(
    curves: dict[str, Sequence[float]],
    ylabel: str = "MSE loss",
    logy: bool = True,
    title: str = "Learning curve",
):
    """One line per named per-epoch series (e.g. train and validation loss)."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, values in curves.items():
        v = np.asarray(values, dtype=float)
        ax.plot(np.arange(1, len(v) + 1), v, lw=1.5, label=name)
    if logy:
        ax.set_yscale("log")
    ax.set(xlabel="epoch", ylabel=ylabel, title=title)
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    return fig, ax


def plot_weight_histograms(layers: Sequence[LayerWeights], bins: int = 60):
    """One histogram per layer of its weights, with mean/std in the panel title."""
    n = len(layers)
    cols = min(n, 3)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    for ax, lw in zip(axes.flat, layers):
        s = lw.stats()
        ax.hist(lw.weights, bins=bins, color=STYLE["train"], alpha=0.85)
        shape = "x".join(map(str, lw.shape))
        ax.set_title(f"{lw.name} ({shape})\nmean {s['mean']:.3f}, std {s['std']:.3f}", fontsize=9)
        ax.set_xlabel("weight value")
        ax.set_ylabel("count")
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.suptitle("Weight histograms per layer")
    fig.tight_layout()
    return fig, axes


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
    fig, axes = plt.subplots(
        n, 1, figsize=(9, 1.2 + 0.35 * len(inputs) * n + 0.6 * n), squeeze=False
    )
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


def plot_training_curves(
    loss: dict[str, Sequence[float]],
    accuracy: dict[str, Sequence[float]],
    best_epoch: int | None = None,
):
    """Loss (left) and accuracy (right) per epoch for train and validation; best epoch marked."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, series, label in (
        (axes[0], loss, "cross-entropy loss"),
        (axes[1], accuracy, "accuracy"),
    ):
        for name, v in series.items():
            v = np.asarray(v, dtype=float)
            ax.plot(np.arange(1, len(v) + 1), v, marker="o", ms=3, lw=1.5, label=name)
        if best_epoch:
            ax.axvline(best_epoch, color="gray", ls="--", lw=1, label=f"best epoch ({best_epoch})")
        ax.set(xlabel="epoch", ylabel=label)
        ax.grid(alpha=0.3)
        ax.legend()
    axes[0].set_title("Loss per epoch")
    axes[1].set_title("Accuracy per epoch")
    fig.tight_layout()
    return fig, axes


def plot_confusion_matrix(cm: np.ndarray, classes: Sequence[str]):
    """Confusion matrix with counts in every cell; rows are true classes, columns predicted."""
    n = len(classes)
    fig, ax = plt.subplots(figsize=(1.2 + 0.55 * n, 0.8 + 0.55 * n))
    # Log colour scale so the few off-diagonal confusions are visible next to the big diagonal.
    from matplotlib.colors import LogNorm

    im = ax.imshow(cm + 1, cmap="Blues", norm=LogNorm(vmin=1, vmax=cm.max() + 1))
    for i in range(n):
        for j in range(n):
            if cm[i, j]:
                dark = cm[i, j] + 1 > np.sqrt(cm.max() + 1)
                ax.text(
                    j,
                    i,
                    str(cm[i, j]),
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if dark else "black",
                )
    ax.set_xticks(range(n), classes)
    ax.set_yticks(range(n), classes)
    ax.set(
        xlabel="predicted class",
        ylabel="true class",
        title=f"Confusion matrix (test set, accuracy {np.trace(cm) / cm.sum():.2%})",
    )
    fig.colorbar(im, ax=ax, label="count + 1 (log scale)", fraction=0.046)
    fig.tight_layout()
    return fig, ax


def plot_confused_examples(
    images: np.ndarray,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    classes: Sequence[str],
    pairs: int = 4,
    per_pair: int = 6,
):
    """For the most confused (true, predicted) pairs, show misclassified example images."""
    n = len(classes)
    cm = np.zeros((n, n), dtype=int)
    np.add.at(cm, (y_true, y_pred), 1)
    np.fill_diagonal(cm, 0)
    order = [np.unravel_index(o, cm.shape) for o in np.argsort(cm, axis=None)[::-1][:pairs]]
    order = [(i, j) for i, j in order if cm[i, j] > 0]
    rows = max(len(order), 1)
    fig, axes = plt.subplots(rows, per_pair, figsize=(1.4 * per_pair, 1.6 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for r, (i, j) in enumerate(order):
        idx = np.flatnonzero((y_true == i) & (y_pred == j))[:per_pair]
        for c, k in enumerate(idx):
            axes[r, c].imshow(images[k], cmap="gray_r")
            axes[r, c].set_title(f"true {classes[i]}\npred {classes[j]}", fontsize=8)
        axes[r, 0].text(
            -0.6,
            0.5,
            f"{classes[i]}->{classes[j]}\n({cm[i, j]}x)",
            transform=axes[r, 0].transAxes,
            ha="right",
            va="center",
            fontsize=9,
        )
    if not order:
        axes[0, 0].text(0, 0.5, "no misclassified test images", fontsize=10)
    fig.suptitle("Most confused pairs: misclassified test digits")
    fig.tight_layout()
    return fig, axes
