"""Optuna studies for glassnet's searches: storage, samplers, pruners, and the checks that
refuse a wrong storage URL or a study made for another search before any training starts.

A study is the search's record: every trial, its parameters, its reported fold scores and its
end (complete, pruned, failed). Several processes, on one machine or many, given the same
storage and study name work on one study; Optuna's storage numbers the trials, so none is
lost or run twice.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from skorch.callbacks import Callback

from glassnet.errors import UserError
from glassnet.redact import mask_url
from glassnet.search.storage import reason, retry_once, storage_from_url

__all__ = [
    "PRUNERS",
    "RUN_TAG",
    "ReportToTrial",
    "make_pruner",
    "open_study",
    "pruner_acts_at",
    "optuna_space",
    "trials_left",
]

RUN_TAG = "glassnet_run"  # a trial's user attribute: the run that asked for it
# A worker tags a trial within milliseconds of asking for it; one still untagged after this
# many seconds was asked by a process that died in between, and is failed on resume.
UNTAGGED_STALE_S = 5.0

PRUNERS = ("halving", "hyperband", "median", "none")
REDUCTION = 3  # halving and hyperband keep the best third of the trials at each rung


def make_pruner(name: str, min_resource: int, max_resource: int, startup: int) -> Any:
    """The pruner for ``name``; resources are epochs (a trial reports every few epochs).

    halving (the default): asynchronous successive halving, which needs no finished trials to
    compare with, so trials trained side by side prune each other from the first rung.
    hyperband: several halving brackets. median: prune below the median of earlier trials at
    the same epoch, after ``startup`` trials. none: every trial trains to the end.
    """
    import optuna

    if name == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=min_resource, reduction_factor=REDUCTION
        )
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=min_resource, max_resource=max_resource, reduction_factor=REDUCTION
        )
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=startup, n_warmup_steps=min_resource)
    if name == "none":
        return optuna.pruners.NopPruner()
    raise UserError(f"`pruner` must be one of {', '.join(PRUNERS)}, got {name}")


def pruner_acts_at(name: str, min_resource: int, step: int, last: int) -> bool:
    """Whether ``make_pruner(name, min_resource, ...)`` can prune on a report at ``step``, the
    trial's previous check having been at ``last``.

    Halving and hyperband judge a trial at the first report on or after each rung
    (``min_resource`` x 3^k epochs); asked anywhere else, ``should_prune`` reads the whole
    study and decides nothing. The median pruner compares the trials at every multiple of
    ``min_resource`` (each reports at the same checks); ``none`` never prunes."""
    if name == "none" or step < min_resource:
        return False
    if name == "median":
        return step // min_resource > last // min_resource
    rung = min_resource
    while rung <= last:
        rung *= REDUCTION
    return rung <= step


def optuna_space(space: dict[str, tuple]) -> dict[str, Any]:
    """Optuna distributions from ``{name: ("float", low, high, log)}`` or ``("int", ...)`` or
    ``("categorical", choices)``: a plain description that can be stored and compared."""
    import optuna

    out = {}
    for name, spec in space.items():
        kind = spec[0]
        if kind == "float":
            out[name] = optuna.distributions.FloatDistribution(spec[1], spec[2], log=spec[3])
        elif kind == "int":
            out[name] = optuna.distributions.IntDistribution(spec[1], spec[2], log=spec[3])
        else:
            out[name] = optuna.distributions.CategoricalDistribution(list(spec[1]))
    return out


def open_study(
    storage: str | None,
    study_name: str | None,
    direction: str,
    space: dict[str, tuple],
    sampler: Any,
    pruner: Any,
    must_exist: bool = False,
) -> Any:
    """Create or load the study; refuse (UserError) a storage that cannot be opened, or an
    existing study searched in the other direction or over another space; with
    ``must_exist``, a study that is not there yet."""
    import optuna

    rdb = None
    if storage is not None:
        rdb = storage_from_url(storage)
    if must_exist:  # checked before create_study, which would leave an empty study behind
        names = optuna.study.get_all_study_names(rdb) if rdb is not None else []
        if study_name not in names:
            where = mask_url(storage) if storage else "memory"
            raise UserError(f"`study_name` {study_name}: no such study in {where} to refit "
                            "(`n_trials` 0 refits an existing study's best trial)")  # fmt: skip
    try:
        study = optuna.create_study(
            storage=rdb,
            study_name=study_name,
            direction=direction,
            sampler=sampler,
            pruner=pruner,
            load_if_exists=True,
        )
    except Exception as e:  # noqa: BLE001 - database drivers raise many types
        raise UserError(
            f"`storage` {mask_url(storage)}: cannot open the study ({reason(e)})"
        ) from None
    signature = json.dumps({k: list(v) for k, v in sorted(space.items())})
    if study.direction.name.lower() != direction:
        raise UserError(
            f"`study_name` {study.study_name}: exists in {mask_url(storage)} and is "
            f"{study.direction.name.lower()}d, not {direction}d; choose another name"
        )
    saved = study.user_attrs.get("glassnet_space")
    if saved is None:
        study.set_user_attr("glassnet_space", signature)
    elif saved != signature:
        raise UserError(
            f"`study_name` {study.study_name}: exists in {mask_url(storage)} with another search "
            f"space ({saved}); choose another name"
        )
    return study


def trials_left(study: Any, n_trials: int, tag: str | None = None) -> int:
    """For a resumed run: mark the trials its dead process left RUNNING as failed, queue each
    again once with its parameters (``retry_once``), and return how many of ``n_trials`` are
    still to run. ``tag``: only the trials this run asked for (user attribute ``RUN_TAG``), in
    a study other processes share; None: every trial (the run's own study)."""
    import optuna

    def mine(t: Any) -> bool:
        return tag is None or t.user_attrs.get(RUN_TAG) == tag

    def orphan(t: Any) -> bool:  # asked, never tagged: its process died in between
        age = (datetime.now() - t.datetime_start).total_seconds() if t.datetime_start else 0
        return RUN_TAG not in t.user_attrs and age > UNTAGGED_STALE_S

    State = optuna.trial.TrialState
    for t in study.get_trials(deepcopy=False, states=(State.RUNNING,)):
        if mine(t) or orphan(t):
            try:
                study._storage.set_trial_state_values(t._trial_id, State.FAIL)
            except optuna.exceptions.UpdateFinishedTrialError:
                continue  # another worker found it stale first, and queued it again
            retry_once(study, study._storage.get_trial(t._trial_id))
    finished = study.get_trials(deepcopy=False, states=(State.COMPLETE, State.PRUNED))
    return max(0, n_trials - sum(mine(t) for t in finished))


class ReportToTrial(Callback):
    """Report each epoch's ``monitor`` (e.g. validation accuracy) to an Optuna trial; raise
    ``optuna.TrialPruned`` when the study's pruner says the trial cannot win any more."""

    def __init__(self, trial: Any, monitor: str = "valid_acc") -> None:
        self.trial = trial
        self.monitor = monitor

    def on_epoch_end(self, net: Any, **kwargs: Any) -> None:
        import optuna

        row = net.history[-1]
        self.trial.report(float(row[self.monitor]), int(row["epoch"]))
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned at epoch {row['epoch']}")
