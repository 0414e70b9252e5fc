"""Classification figures: training curves, confusion matrix, misclassified examples."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.ticker import MaxNLocator

from glassnet.plots.style import literal, styled, subplots

__all__ = [
    "plot_training_curves",
    "plot_confusion_matrix",
    "plot_confused_examples",
    "plot_training_batch",
]


@styled
def plot_training_curves(
    loss: dict[str, Sequence[float]],
    accuracy: dict[str, Sequence[float]],
    best_epoch: int | None = None,
):
    """Loss (left) and accuracy (right) per epoch for train and validation; best epoch marked."""
    fig, axes = subplots(1, 2, figsize=(11, 4))
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
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # no epoch 1.25 on short runs
        ax.grid(alpha=0.3)
        ax.legend()
    axes[0].set_title("Loss per epoch")
    axes[1].set_title("Accuracy per epoch")
    fig.tight_layout()
    return fig, axes


@styled
def plot_confusion_matrix(cm: np.ndarray, classes: Sequence[str]):
    """Confusion matrix with counts in every cell; rows are true classes, columns predicted."""
    n = len(classes)
    fig, ax = subplots(figsize=(1.2 + 0.55 * n, 0.8 + 0.55 * n))
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
    ax.set_xticks(range(n), [literal(c) for c in classes])
    ax.set_yticks(range(n), [literal(c) for c in classes])
    ax.set(
        xlabel="predicted class",
        ylabel="true class",
        title=f"Confusion matrix (test set, accuracy {np.trace(cm) / cm.sum():.2%})",
    )
    fig.colorbar(im, ax=ax, label="count + 1 (log scale)", fraction=0.046)
    fig.tight_layout()
    return fig, ax


@styled
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
    fig, axes = subplots(rows, per_pair, figsize=(1.4 * per_pair, 1.6 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for r, (i, j) in enumerate(order):
        idx = np.flatnonzero((y_true == i) & (y_pred == j))[:per_pair]
        for c, k in enumerate(idx):
            axes[r, c].imshow(images[k], cmap="gray_r")
            axes[r, c].set_title(f"true {literal(classes[i])}\npred {literal(classes[j])}",
                                 fontsize=8)  # fmt: skip
        axes[r, 0].text(
            -0.6,
            0.5,
            f"{literal(classes[i])}->{literal(classes[j])}\n({cm[i, j]}x)",
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


def plot_training_batch(
    stored: np.ndarray,
    seen: np.ndarray,
    labels: np.ndarray,
    classes: Sequence[str],
    moves: str = "",
):
    """What training saw: training images as stored (top row, 0-255) and, below, as the
    training loader gave them in each of ``len(seen)`` draws (``seen``: (draws, n, h, w) in
    the same units). ``moves`` says how images are moved ("" when they are not)."""
    draws, n = len(seen), len(stored)
    fig, axes = subplots(1 + draws, n, figsize=(0.9 * n + 1.2, 1.0 * (1 + draws) + 0.6),
                         squeeze=False)  # fmt: skip
    rows = [("as stored", stored), *((f"draw {d + 1}", seen[d]) for d in range(draws))]
    for r, (name, images) in enumerate(rows):
        for c in range(n):
            ax = axes[r, c]
            ax.imshow(images[c], cmap="gray_r", vmin=0, vmax=255)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(literal(classes[labels[c]]), fontsize=9)
        axes[r, 0].set_ylabel(name, fontsize=8)
    if moves:
        fig.suptitle(f"What training saw: each digit moved afresh at every draw ({moves})",
                     fontsize=10)  # fmt: skip
    else:
        fig.suptitle("What training saw: the digits as stored (no augmentation)", fontsize=10)
    fig.tight_layout()
    return fig, axes
