"""Every search as an Optuna study, so one code path draws them all (``plots.search``).

TPE runs are Optuna studies already; the grid, random, population and ensemble searches keep
scikit-learn's ``cv_results_``. Both become ``TrialRecord`` lists, and ``as_study`` turns those
into an in-memory study (``optuna.trial.create_trial``): complete trials with their score,
pruned ones with the best score they reached (as an intermediate value at their last epoch),
failed ones with none.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "SECONDS",
    "VALUE",
    "TrialRecord",
    "as_study",
    "records_from_cv_results",
    "records_from_rows",
    "records_from_study",
    "space_from_sklearn",
    "study_space",
]

SECONDS = "seconds"  # user attribute: when the trial ended, seconds after the search began
VALUE = "value"  # user attribute: the trial's score, also for a pruned trial


@dataclass(frozen=True)
class TrialRecord:
    """One candidate of a search: its settings, its score (CV MSE, validation accuracy; None
    when it failed), how it ended, and when (None: not known, e.g. trained side by side)."""

    params: Mapping[str, Any]
    value: float | None
    state: str = "complete"  # complete | pruned | failed
    seconds: float | None = None
    epochs: int | None = None  # the epoch a pruned trial reached
    extra: Mapping[str, Any] = field(default_factory=dict)


def records_from_rows(
    rows: Iterable[Mapping[str, Any]],
    value_key: str,
    params: Sequence[str],
    seconds_key: str | None = None,
) -> list[TrialRecord]:
    """Records from a search's table (``cv_rows`` or a classifier's grid/trial rows): a row's
    ``state`` column when it has one, else complete, or failed when its score is missing."""
    out = []
    for r in rows:
        v = r.get(value_key)
        value = float(v) if v is not None and math.isfinite(float(v)) else None
        state = str(r.get("state") or ("complete" if value is not None else "failed"))
        if state == "complete" and value is None:
            state = "failed"
        seconds = r.get(seconds_key) if seconds_key else None
        epochs = r.get("epochs_trained", r.get("epochs_run"))
        out.append(TrialRecord({k: r[k] for k in params if r.get(k) is not None}, value, state,
                               None if seconds is None else float(seconds),
                               None if epochs is None else int(epochs)))  # fmt: skip
    return out


def records_from_cv_results(
    cv_results: Mapping[str, Any], n_splits: int, batch_seconds: float | None = None
) -> list[TrialRecord]:
    """Records of a regression search's candidates, in the order they were drawn, scored by
    CV MSE. Times: for a batched search (``batch_seconds`` given), every candidate ends when
    the batch does; else scikit-learn's fit and score seconds summed in order (its searches
    fit one candidate after another)."""
    import numpy as np

    n = len(cv_results["params"])
    seconds: list[float | None] = [batch_seconds] * n
    if batch_seconds is None and "mean_fit_time" in cv_results:
        per = np.asarray(cv_results["mean_fit_time"]) + np.asarray(cv_results["mean_score_time"])
        seconds = [float(v) for v in np.cumsum(per * n_splits)]
    out = []
    for i, params in enumerate(cv_results["params"]):
        score = float(cv_results["mean_test_score"][i])
        value = -score if math.isfinite(score) else None
        state = str(cv_results["state"][i]) if "state" in cv_results else "complete"
        epochs = cv_results["epochs_trained"][i] if "epochs_trained" in cv_results else None
        plain = {k.replace("optimizer__", ""): _plain(v) for k, v in params.items()}
        out.append(TrialRecord(plain, value, state if value is not None else "failed",
                               seconds[i], None if epochs is None else int(epochs)))  # fmt: skip
    return out


def _plain(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v


def records_from_study(study: Any, value_of: Any = None) -> list[TrialRecord]:
    """Records of a real study's finished trials, timed from its first trial's start.
    ``value_of(trial)``: a trial's score (default ``trial.value``; a regression TPE trial that
    was pruned keeps its best fold score in a user attribute)."""
    trials = [t for t in study.get_trials(deepcopy=False) if t.state.is_finished()]
    starts = [t.datetime_start for t in trials if t.datetime_start is not None]
    t0 = min(starts) if starts else None
    out = []
    for t in trials:
        state = {"COMPLETE": "complete", "PRUNED": "pruned"}.get(t.state.name, "failed")
        v = value_of(t) if value_of is not None else t.value
        v = float(v) if v is not None and math.isfinite(v) else None
        if v is None and state == "complete":
            state = "failed"
        ended = t.datetime_complete
        seconds = (ended - t0).total_seconds() if ended is not None and t0 is not None else None
        last = max(t.intermediate_values, default=None)
        params = {k.replace("optimizer__", ""): p for k, p in t.params.items()}
        out.append(TrialRecord(params, v, state, seconds, last))
    return out


def study_space(study: Any) -> dict[str, Any]:
    """The distributions a study's trials were asked with, under the records' names."""
    out: dict[str, Any] = {}
    for t in study.get_trials(deepcopy=False):
        for k, d in t.distributions.items():
            out.setdefault(k.replace("optimizer__", ""), d)
    return out


def as_study(
    records: Sequence[TrialRecord], direction: str, distributions: Mapping[str, Any] | None = None
) -> Any:
    """An in-memory Optuna study holding ``records`` as trials, numbered in their order.
    ``distributions``: the search space (an Optuna study's); else inferred from the values:
    numbers span their range (on a log scale when positive and spread over a factor of 20 or
    more), anything else is categorical. A setting every record shares is left out."""
    import optuna

    dists = dict(distributions) if distributions is not None else _distributions(records)
    log = logging.getLogger("optuna")  # "A new study created in memory": glassnet's business
    level = log.level
    log.setLevel(logging.WARNING)
    try:
        study = optuna.create_study(direction=direction)
    finally:
        log.setLevel(level)
    State = optuna.trial.TrialState
    for r in records:
        params = {k: _value(dists[k], v) for k, v in r.params.items() if k in dists}
        attrs = {} if r.seconds is None else {SECONDS: r.seconds}
        if r.value is not None:
            attrs[VALUE] = r.value
        kw: dict[str, Any] = {}
        if r.state == "complete" and r.value is not None:
            kw = {"state": State.COMPLETE, "value": r.value}
        elif r.state == "pruned":
            steps = {} if r.value is None else {int(r.epochs or 0): r.value}
            kw = {"state": State.PRUNED, "intermediate_values": steps}
        else:
            kw = {"state": State.FAIL}
        used = {k: dists[k] for k in params}
        study.add_trial(optuna.trial.create_trial(params=params, distributions=used,
                                                  user_attrs=attrs, **kw))  # fmt: skip
    return study


def space_from_sklearn(param_distributions: Mapping[str, Any]) -> dict[str, Any]:
    """Optuna distributions for a scikit-learn search space (scipy's log-uniform and uniform
    distributions; lists of values), under the records' names."""
    import optuna

    D = optuna.distributions
    out: dict[str, Any] = {}
    for name, spec in param_distributions.items():
        key = name.replace("optimizer__", "")
        if hasattr(spec, "support"):  # a frozen scipy distribution
            lo, hi = (float(v) for v in spec.support())
            log = spec.dist.name in ("loguniform", "reciprocal")
            out[key] = D.FloatDistribution(lo, hi, log=log)
        else:
            out.update(_distributions([TrialRecord({key: v}, None) for v in spec]))
    return out


def _distributions(records: Sequence[TrialRecord]) -> dict[str, Any]:
    import optuna

    D = optuna.distributions
    values: dict[str, list[Any]] = {}
    for r in records:
        for k, v in r.params.items():
            values.setdefault(k, []).append(v)
    out: dict[str, Any] = {}
    for k, vs in values.items():
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vs)
        if numeric and min(vs) < max(vs):
            lo, hi = min(vs), max(vs)
            log = lo > 0 and hi / lo >= 20
            if all(isinstance(v, int) for v in vs):
                out[k] = D.IntDistribution(int(lo), int(hi), log=log)
            else:
                out[k] = D.FloatDistribution(float(lo), float(hi), log=log)
        elif not numeric and len({str(v) for v in vs}) > 1:
            out[k] = D.CategoricalDistribution(sorted({str(v) for v in vs}))
    return out


def _value(dist: Any, v: Any) -> Any:
    import optuna

    if isinstance(dist, optuna.distributions.CategoricalDistribution):
        return v if v in dist.choices else str(v)  # a study's own choices, or inferred text
    return int(v) if isinstance(dist, optuna.distributions.IntDistribution) else float(v)
