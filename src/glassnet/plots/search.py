"""The search, seen: how it converged, which settings mattered, where the good region lies.

Drawn with Optuna's own plots (``optuna.visualization.matplotlib``) and its importance
evaluator, from a study (``search.trials.as_study``: every search is one). Optuna's plots show
complete trials only; pruned trials (grey crosses, at the best score they reached) and failed
ones (red marks along the top edge) are drawn over them here, so no trial goes unseen.
Optuna draws through pyplot and sets a style sheet: each figure is drawn inside an rc context
and closed once saved, so a notebook's style and open figures are left alone.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import matplotlib
import matplotlib.ticker
import numpy as np
from optuna.trial import TrialState

from glassnet.search.trials import SECONDS, VALUE

__all__ = ["SEARCH_FIGURES", "search_figures"]

SEARCH_FIGURES = ("search_history.png", "search_importance.png", "search_parallel.png",
                  "search_slice.png")  # fmt: skip
PRUNED, FAILED = "#888888", "#d62728"


def search_figures(
    save: Callable[[str, Any], Any],
    study: Any,
    target_name: str,
    log_target: bool = False,
    side_by_side: bool = False,
) -> list[str]:
    """Draw the search's four views with ``save(name, fig)``; return the names drawn.

    ``log_target``: scores spread over decades (MSE): importances, parallel coordinates and
    slices use log10 of the score. ``side_by_side``: the candidates trained together (a
    batched search), so the history against seconds is one step when the batch ends.
    Views that need two complete trials, a setting that varies, or (importances) scores that
    differ, are left out.
    """
    import matplotlib.pyplot as plt

    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    if not complete:
        return []
    varied = {k for t in complete for k in t.params}
    target = (lambda t: math.log10(t.value)) if log_target else None
    shown = f"log10 {target_name}" if log_target else target_name
    drawn = []

    def keep(name: str, fig: Any) -> None:
        fig.set_dpi(100)
        save(name, fig)
        plt.close(fig)
        drawn.append(name)

    import optuna

    with matplotlib.rc_context(), warnings.catch_warnings():  # Optuna's style sheet stays inside
        # these plots are "experimental" in Optuna: a note about its API, not about the run
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        # one setting's single value among the complete trials: matplotlib widens the axis
        warnings.filterwarnings("ignore", message="Attempting to set identical")
        keep("search_history.png", _history(study, target_name, log_target, side_by_side))
        if len(complete) >= 2 and varied:
            if len({t.value for t in complete}) > 1:  # fANOVA splits a variance: none, nothing
                keep("search_importance.png", _importance(study, target, shown))
            keep("search_parallel.png", _parallel(study, target, shown))
            keep("search_slice.png", _slice(study, target, shown, log_target))
    return drawn


def _history(study: Any, name: str, log: bool, side_by_side: bool) -> Any:
    from optuna.visualization.matplotlib import plot_optimization_history

    ax = plot_optimization_history(study, target_name=name)
    fig = ax.figure
    fig.set_size_inches(12, 4.2)
    fig.set_layout_engine(None)
    ax.set_position((0.06, 0.13, 0.42, 0.74))
    ax.set_title("Best so far, by trial")
    if log:
        ax.set_yscale("log")
    ceiling = _ceiling(study, log, False)
    _marks(ax, _points(study, lambda t: t.number, False), ceiling)
    right = fig.add_axes((0.56, 0.13, 0.42, 0.74))
    _by_seconds(right, study, name, side_by_side, ceiling)
    if log:
        right.set_yscale("log")
    return fig


def _by_seconds(
    ax: Any, study: Any, name: str, side_by_side: bool, ceiling: float | None
) -> None:
    """Best so far against the wall time at which each trial ended."""
    sign = 1 if study.direction.name == "MINIMIZE" else -1
    done = [(t.user_attrs.get(SECONDS), t.value) for t in study.trials
            if t.state == TrialState.COMPLETE]  # fmt: skip
    timed = sorted((s, v) for s, v in done if s is not None)
    ax.set_title("Best so far, by seconds of search")
    ax.set_xlabel("seconds since the search began")
    ax.set_ylabel(name)
    if not timed:
        ax.text(0.5, 0.5, "no trial times recorded", ha="center", transform=ax.transAxes)
        return
    best, xs, ys = math.inf, [0.0], [math.nan]
    for s, v in timed:
        if sign * v < best:
            best = sign * v
        xs.append(s)
        ys.append(sign * best)
    ended = [t.user_attrs.get(SECONDS) for t in study.trials]
    xs.append(max([s for s in ended if s is not None] + xs))  # the best holds to the end
    ys.append(ys[-1])
    ax.step(xs, ys, where="post", color="#d62728", label="best value")
    ax.scatter([s for s, _ in timed], [v for _, v in timed], s=14, color="#1f77b4",
               label="complete trial", zorder=3)  # fmt: skip
    ax.set_xlim(0, max(xs) * 1.05 or 1.0)
    if side_by_side:
        ax.text(0.02, 0.95, "trained side by side: every score arrives when the batch ends",
                transform=ax.transAxes, va="top", fontsize=9)  # fmt: skip
    _marks(ax, _points(study, lambda t: t.user_attrs.get(SECONDS), False), ceiling)
    ax.legend(loc="upper right", fontsize=8)


def _marks(
    ax: Any, points: list[tuple[Any, TrialState, float | None]], ceiling: float | None = None
) -> None:
    """(x, state, score) of every trial: pruned ones at the best score they reached, failed
    ones along the top edge; the x range widened to show them. A pruned score above
    ``ceiling`` (a trial that blew up before it was stopped) is drawn at the ceiling, so the
    axis keeps the range where the complete trials lie."""
    pruned = [(x, v) for x, state, v in points if state == TrialState.PRUNED and v is not None]
    high = [(x, v) for x, v in pruned if ceiling is not None and v > ceiling]
    pruned = [p for p in pruned if p not in high]
    if pruned:
        ax.scatter(*zip(*pruned), marker="x", s=22, color=PRUNED, label="pruned", zorder=3)
    if high:
        ax.scatter([x for x, _ in high], [ceiling] * len(high), marker="^", s=26, color=PRUNED,
                   clip_on=False, label="pruned, off the scale", zorder=3)  # fmt: skip
    failed = [x for x, state, _ in points if state == TrialState.FAIL]
    if failed:
        top = ax.get_ylim()[1]
        ax.scatter(failed, [top] * len(failed), marker="v", s=26, color=FAILED, clip_on=False,
                   label="failed (diverged)", zorder=3)  # fmt: skip
    xs = [x for x, _, _ in points if isinstance(x, (int, float))]
    if xs and (pruned or failed):
        lo, hi = ax.get_xlim()
        if ax.get_xscale() == "log":
            lo, hi = min(lo, min(xs) / 1.25), max(hi, max(xs) * 1.25)
        else:
            pad = 0.05 * ((max(xs) - min(xs)) or 1.0)
            lo, hi = min(lo, min(xs) - pad), max(hi, max(xs) + pad)
        ax.set_xlim(lo, hi)
    # Optuna's slice plot labels an empty "Infeasible Trial" series; glassnet sets no
    # constraints, so it is never anything but noise in the legend
    handles = [(h, lab) for h, lab in zip(*ax.get_legend_handles_labels())
               if lab != "Infeasible Trial"]  # fmt: skip
    if handles:
        ax.legend(*zip(*handles), loc="best", fontsize=8)
    if ax.get_xscale() == "log":  # decades only: minor labels overprint each other
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())


def _ceiling(study: Any, log_target: bool, log_values: bool) -> float | None:
    """Where the score axis of a minimised score spread over decades stops: two decades
    above the worst complete trial (None: no ceiling)."""
    if not log_target or study.direction.name != "MINIMIZE":
        return None
    worst = max(t.value for t in study.trials if t.state == TrialState.COMPLETE)
    if worst <= 0:
        return None
    return math.log10(worst) + 2 if log_values else worst * 100


def _points(study: Any, x_of: Callable[[Any], Any], log: bool) -> list[tuple[Any, TrialState, Any]]:
    out = []
    for t in study.trials:
        x, v = x_of(t), t.user_attrs.get(VALUE)
        if x is None:
            continue
        if log and v is not None:
            v = math.log10(v) if v > 0 else None
        out.append((x, t.state, v))
    return out


def _importance(study: Any, target: Any, shown: str) -> Any:
    from optuna.importance import FanovaImportanceEvaluator
    from optuna.visualization.matplotlib import plot_param_importances

    evaluator = FanovaImportanceEvaluator(seed=0)  # seeded: the same run draws the same bars
    ax = plot_param_importances(study, evaluator=evaluator, target=target, target_name=shown)
    ax.figure.set_size_inches(7, 0.6 + 0.5 * len(study.best_trial.params) + 1.2)
    n = sum(t.state == TrialState.COMPLETE for t in study.trials)
    _title(ax, f"Which settings mattered: fANOVA's share of the variance of {shown}, "
               f"{n} complete trials")  # fmt: skip
    return ax.figure


def _parallel(study: Any, target: Any, shown: str) -> Any:
    from optuna.visualization.matplotlib import plot_parallel_coordinate

    ax = plot_parallel_coordinate(study, target=target, target_name=shown)
    ax.figure.set_size_inches(10, 4.5)
    _title(ax, f"Complete trials across the settings, coloured by {shown}")
    for axis in ax.figure.axes:  # Optuna's own axes, one per setting: decades only
        axis.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    _no_white(ax.figure)
    return ax.figure


def _slice(study: Any, target: Any, shown: str, log: bool) -> Any:
    from optuna.visualization.matplotlib import plot_slice

    axes = np.atleast_1d(plot_slice(study, target=target, target_name=shown))
    fig = axes[0].figure
    fig.set_size_inches(max(6.0, 3.6 * len(axes)), 4.0)
    fig.suptitle(f"{shown} against each setting (complete trials coloured by trial number)")
    from optuna.distributions import CategoricalDistribution

    ceiling = _ceiling(study, log, True)
    for ax in axes:
        name = ax.get_xlabel()
        dist = next(t.distributions[name] for t in study.trials if name in t.distributions)
        if isinstance(dist, CategoricalDistribution):  # Optuna places choices by repr()
            _marks(ax, _points(study, lambda t, n=name: _choice(t, n), log), ceiling)
            ax.set_xlim(-0.5, len(dist.choices) - 0.5)
        else:
            _marks(ax, _points(study, lambda t, n=name: t.params.get(n), log), ceiling)
    _no_white(fig)
    return fig


def _no_white(fig: Any) -> None:
    """Optuna colours by "Blues", whose pale end is white: on the grey background the worst
    trial (parallel coordinates) or the first one (slices) disappears. Start the map at a
    pale blue instead."""
    from matplotlib.colors import ListedColormap

    for ax in fig.axes:
        for coll in ax.collections:
            name = coll.get_cmap().name if coll.get_array() is not None else ""
            if name.startswith("Blues"):
                cmap = ListedColormap(matplotlib.colormaps["Blues"](np.linspace(0.25, 1, 256)))
                coll.set_cmap(cmap.reversed() if name.endswith("_r") else cmap)


def _choice(trial: Any, name: str) -> str | None:
    return repr(trial.params[name]) if name in trial.params else None


def _title(ax: Any, text: str) -> None:
    """Replace Optuna's title (it may sit left, centre or right) with ours."""
    for loc in ("left", "right"):
        ax.set_title("", loc=loc)
    ax.set_title(text)
