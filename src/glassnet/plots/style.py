"""One look for every figure: shared colours and sizes, applied per figure, never globally.

Figures are plain ``matplotlib.figure.Figure`` objects, not registered with pyplot: importing
or calling glassnet leaves the backend, the open figures and the global ``rcParams`` of a
notebook or script alone, and saving needs no display.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import matplotlib
from matplotlib.figure import Figure

__all__ = ["STYLE", "RC", "literal", "styled", "subplots"]

STYLE = {"train": "#1f77b4", "test": "#ff7f0e", "fit": "#d62728", "gap": "#cccccc"}
RC = {
    "figure.dpi": 100,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
}

F = TypeVar("F", bound=Callable[..., Any])


def literal(text: object) -> str:
    """A user's label (a class name) shown as written: a '$' starts no formula, so a class
    named '$\\frac{$' is drawn as such instead of failing the figure after training. (Not
    matplotlib's global text.parse_math: log axes write their tick labels as formulas.)"""
    return str(text).replace("$", r"\$")


def styled(fn: F) -> F:
    """Run a plotting function under glassnet's rc settings (a context, restored afterwards)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with matplotlib.rc_context(RC):
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def subplots(nrows: int = 1, ncols: int = 1, *, figsize=None, **kwargs: Any) -> tuple[Figure, Any]:
    """Like ``plt.subplots``, but the figure is not registered with pyplot: nothing to close."""
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(nrows, ncols, **kwargs)
