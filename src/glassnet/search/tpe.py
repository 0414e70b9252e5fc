"""TPESearchCV: Optuna proposes the candidates; each batch of trials trains as one population.

The random searches train every candidate to its full epoch budget. Here Optuna's TPE sampler
learns from the trials so far where good settings lie, and a pruner stops trials that cannot
win any more; a pruned trial's members leave the stacked population at once. Epochs are the
resource: every trial trains up to ``max_epochs``, reports its mean fold-validation MSE every
``check_every`` epochs, and keeps its best epoch's score (and that epoch count), rather than
sampling the epoch count as the study did.

A round: ask ``batch`` trials, train their (trial x fold) members together, read the fold
scores every ``check_every`` epochs, report the best so far every ``min_epochs`` epochs and
ask the pruner where it can act (halving: at its rungs, ``min_epochs`` x 3^k epochs), tell
the trials as they end. The same engine, folds, initial weights and batches as
``PopulationSearchCV``: a trial's fold scores are those of training it alone.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from optuna.trial import TrialState
from sklearn.base import BaseEstimator
from sklearn.model_selection import check_cv

from glassnet.errors import NoModelError
from glassnet.progress import Progress
from glassnet.search.adapter import NetSpec, refit_best
from glassnet.search.engine import Population
from glassnet.search.loop import MemberData, Policy, fold_rows, members_of, rows_by_group, train
from glassnet.search.ranking import rank_scores
from glassnet.search.storage import ask, fail_stale, heartbeats, storage_faults
from glassnet.search.studies import (
    RUN_TAG,
    make_pruner,
    open_study,
    optuna_space,
    pruner_acts_at,
)

__all__ = ["TPESearchCV", "REGRESSION_SPACE", "best_trial", "trial_mse", "trial_params"]

# The study's ranges (search/spaces.py), in Optuna's terms: (kind, low, high, log).
REGRESSION_SPACE: dict[str, tuple] = {
    "lr": ("float", 1e-4, 5e-2, True),
    "optimizer__momentum": ("float", 0.0, 0.95, False),
    "optimizer__weight_decay": ("float", 1e-5, 1e-2, True),
}


class TPESearchCV(BaseEstimator):
    """Cross-validated TPE search with pruning over SGD settings of a skorch MLP regressor.

    ``estimator``: the skorch net (as for ``PopulationSearchCV``); ``space``: ``{skorch name:
    (kind, low, high, log)}``. ``n_trials`` trials are run by this process, ``batch`` at a time;
    with ``storage`` and ``study_name`` several processes share one study (``study_``), and
    ``run_tag`` marks the trials this process asked for (user attribute ``RUN_TAG``).
    ``n_trials=0`` runs nothing and refits the study's best trial. A trial's score at a check
    is the worst of ``window`` consecutive checks' mean fold MSE (of those so far, early on),
    read at the middle one: at the edge of stability the MSE swings from check to check, and
    the lowest single read was luck that a fresh fit at that epoch did not repeat (on the
    tuning seeds 10-15, 5 folds: the search's own CV and a fresh 5-fold fit at the chosen epoch
    then agreed within 1% on five seeds and 9% on the sixth, against up to 23% apart with the
    lowest read). A trial whose score has not improved for ``patience`` checks ends complete
    (0: every trial that is not pruned trains to ``max_epochs``). After ``fit``:
    ``best_params_`` (with ``max_epochs`` = the best trial's best epoch), ``best_score_``
    (negative MSE, scikit-learn's sign), ``best_estimator_`` (refit on all data),
    ``member_epochs_`` (trained by this process), ``trace_`` ((seconds, member-epochs, best MSE)
    at every improvement), ``rounds_`` ((seconds, member-epochs, best MSE, trials) after each
    batch) and ``cv_results_`` (every finished trial of the study).
    """

    def __init__(
        self,
        estimator: Any,
        space: Mapping[str, tuple] | None = None,
        *,
        n_trials: int = 30,
        batch: int = 6,
        max_epochs: int = 1000,
        check_every: int = 10,
        pruner: str = "halving",
        min_epochs: int = 30,
        patience: int = 0,
        window: int = 3,
        cv: Any = 5,
        random_state: int = 0,
        storage: str | None = None,
        study_name: str | None = None,
        run_tag: str | None = None,
        refit: bool = True,
        chunk_size: int = 16,
        progress: Progress | None = None,
    ) -> None:
        self.estimator = estimator
        self.space = space
        self.n_trials = n_trials
        self.batch = batch
        self.max_epochs = max_epochs
        self.check_every = check_every
        self.pruner = pruner
        self.min_epochs = min_epochs
        self.patience = patience
        self.window = window
        self.cv = cv
        self.random_state = random_state
        self.storage = storage
        self.study_name = study_name
        self.run_tag = run_tag
        self.refit = refit
        self.chunk_size = chunk_size
        self.progress = progress

    def fit(self, X, y) -> TPESearchCV:
        """Run this process's trials, then pick the study's best and refit it."""
        import optuna

        space = dict(self.space or REGRESSION_SPACE)
        for name in ("n_trials", "batch", "max_epochs", "check_every", "window", "patience"):
            low = 0 if name in ("n_trials", "patience") else 1
            if getattr(self, name) < low:
                raise ValueError(f"{name} must be >= {low}")
        # multivariate: learning rate and momentum act together (lr / (1 - momentum) sets the
        # step), which independent per-parameter densities cannot see
        sampler = optuna.samplers.TPESampler(seed=self.random_state, multivariate=True,
                                             n_startup_trials=self.batch)  # fmt: skip
        pruner = make_pruner(self.pruner, self.min_epochs, self.max_epochs, self.batch)
        self.study_ = open_study(self.storage, self.study_name, "minimize", space, sampler,
                                 pruner, must_exist=self.n_trials == 0)  # fmt: skip
        with storage_faults(self.storage):
            self._search(space, X, y)
        if self.refit:
            t1 = time.perf_counter()
            Xa = np.asarray(X, dtype=np.float32).reshape(len(X), -1)
            ya = np.asarray(y, dtype=np.float32).reshape(len(y), -1)
            self.best_estimator_ = refit_best(
                self.estimator, self.best_params_, Xa, ya[:, 0] if ya.shape[1] == 1 else ya,
                self.progress or Progress(), self.chunk_size,
            )  # fmt: skip
            self.refit_time_ = time.perf_counter() - t1
        return self

    def _search(self, space: dict, X, y) -> None:
        """This process's trials, batch by batch, then the study's best (``_collect``)."""
        X = np.asarray(X, dtype=np.float32).reshape(len(X), -1)
        y = np.asarray(y, dtype=np.float32).reshape(len(y), -1)
        spec = NetSpec(self.estimator, set(space) | {"max_epochs"})
        folds = list(check_cv(self.cv, y, classifier=False).split(X, y))
        self.n_splits_ = len(folds)
        self.member_epochs_, self.trace_, self.rounds_, self.n_pruned_ = 0, [], [], 0
        progress = self.progress or Progress()
        progress.start(self.n_trials, f"TPE search: {self.n_trials} trials x {len(folds)} folds")
        t0 = time.perf_counter()
        dists = optuna_space(space)
        done = 0
        while done < self.n_trials:
            fail_stale(self.study_)  # a dead worker's trials: failed, and asked again here
            trials = [ask(self.study_, dists) for _ in range(min(self.batch, self.n_trials - done))]
            with heartbeats(self.study_, trials):
                if self.run_tag is not None:
                    for t in trials:
                        t.set_user_attr(RUN_TAG, self.run_tag)
                self._round(trials, spec, X, y, folds, progress, t0)
            done += len(trials)
            self.rounds_.append((time.perf_counter() - t0, self.member_epochs_, self._best, done))
        self.train_seconds_ = time.perf_counter() - t0
        progress.close()
        self._collect()

    def predict(self, X):
        """Predict with the refit best estimator."""
        return self.best_estimator_.predict(X)

    # -- internals ----------------------------------------------------------------------------
    def _round(self, trials, spec, X, y, folds, progress, t0) -> None:
        """Train one batch of trials as one population until each is pruned, fails or ends."""
        dev = spec.device
        K = len(folds)
        members = [(c, k) for c in range(len(trials)) for k in range(K)]  # id = c * K + k
        settings = [
            spec.settings({**trials[c].params, "max_epochs": self.max_epochs}) for c, _ in members
        ]
        pop = Population(spec.initial_module(), settings, dev, spec.activation)
        train_rows, valid_rows = fold_rows(folds, members)
        data = MemberData(torch.from_numpy(X).to(dev), torch.from_numpy(y).to(dev), train_rows,
                          spec.batch_size, spec.shuffle, spec.shuffle_generator(),
                          spec.dropout_generator(), valid_rows=valid_rows)  # fmt: skip
        # progress counts trials (the policy's), not member-epochs
        train(pop, data, _TrialRound(self, trials, K, progress, t0), self.chunk_size)

    @property
    def _best(self) -> float:
        return self.trace_[-1][2] if self.trace_ else math.inf

    def _improved(self, mse: float, t0: float) -> None:
        if mse < self._best:
            self.trace_.append((time.perf_counter() - t0, self.member_epochs_, mse))

    def _tell(self, trial, state: TrialState, best: _Best, epoch: int) -> None:
        trial.set_user_attr("best_epoch", best.epoch)
        trial.set_user_attr("epochs_trained", epoch)
        trial.set_user_attr("fold_mse", best.folds)
        if state == TrialState.COMPLETE:
            self.study_.tell(trial, best.mse)
        else:
            self.n_pruned_ += 1
            trial.set_user_attr("best_value", best.mse)
            self.study_.tell(trial, state=state)

    def _collect(self) -> None:
        """The study's best trial, complete or pruned (a pruned trial's best epoch counts:
        epochs are the resource, and its score up to there is a real fold score)."""
        done = [t for t in self.study_.get_trials(deepcopy=False)
                if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]  # fmt: skip
        if not done:
            raise NoModelError(f"study {self.study_.study_name!r} has no finished trial to refit")
        best = best_trial(done)
        if not math.isfinite(trial_mse(best)):
            raise NoModelError("every trial diverged (NaN/inf loss); lower the learning rates")
        self.best_trial_ = best
        self.best_params_ = trial_params(best)
        self.best_score_ = -trial_mse(best)
        mse = np.array([trial_mse(t) for t in done])
        mse[~np.isfinite(mse)] = np.nan  # diverged: NaN, as the other searches score failures
        folds = [t.user_attrs.get("fold_mse") or [np.nan] for t in done]
        self.cv_results_ = {
            "params": [t.params for t in done],
            "trial": np.array([t.number for t in done]),
            "state": np.array([t.state.name.lower() for t in done]),
            "mean_test_score": -mse,
            "std_test_score": np.array([np.std(f) for f in folds]),
            "rank_test_score": rank_scores(-mse),
            "best_epoch": np.array([t.user_attrs.get("best_epoch", 0) for t in done]),
            "epochs_trained": np.array([t.user_attrs.get("epochs_trained", 0) for t in done]),
        }


@dataclass
class _Best:
    """A trial's best read so far: its mean fold MSE, the epoch, and the fold MSEs."""

    mse: float = math.inf
    epoch: int = 0
    folds: list[float] = field(default_factory=list)


class _TrialRound(Policy):
    """One batch of trials (``K`` fold members each, member id = trial * K + fold) as the loop
    trains them: a trial whose member diverges is pruned at once; every ``check_every``
    epochs each trial's mean fold MSE is read and its best epoch kept; every ``min_epochs``
    the best so far is reported, and at the pruner's rungs it is judged; at ``max_epochs``
    it is complete.
    Ended trials are told to the study as they end."""

    def __init__(self, search: TPESearchCV, trials: list, K: int, progress: Progress,
                 t0: float) -> None:  # fmt: skip
        self.search, self.trials, self.K, self.progress, self.t0 = search, trials, K, progress, t0
        self.max_epochs, self.check_every = search.max_epochs, search.check_every
        self.best = {c: _Best() for c in range(len(trials))}
        self.recent: dict[int, list] = {c: [] for c in range(len(trials))}
        self.ended: dict[int, TrialState] = {}

    def _leave(self, pop: Population) -> set[int]:
        return members_of(pop, self.K, set(self.ended))

    def on_epoch(self, pop: Population, epoch: int, losses: list[float]) -> set[int]:
        self.search.member_epochs_ += len(pop.ids)
        self.ended = {}
        for c, rows in rows_by_group(pop, self.K).items():
            if not all(math.isfinite(losses[r]) for r in rows):  # diverged: hopeless
                self.trials[c].report(math.inf, epoch)
                self.ended[c] = TrialState.PRUNED
        return self._leave(pop)

    def on_check(self, pop: Population, epoch: int, val: list[float],
                 leaving: set[int]) -> set[int]:  # fmt: skip
        """Each live trial's mean fold MSE, scored as the worst of its last ``window`` reads:
        keep its best score and epoch; end it complete at the epoch cap or after ``patience``
        checks without a better score, pruned when it diverged or when the pruner says so.
        Every min_epochs epochs the trial's score so far is reported (the study keeps each
        trial's curve; each report is a database write), and the pruner is asked only where it
        can act (``pruner_acts_at``; halving: its rungs at min_epochs x 3^k): elsewhere its
        ``should_prune`` reads the whole study to decide nothing. The best epoch is tracked
        here."""
        report = epoch % self.search.min_epochs == 0
        judge = pruner_acts_at(self.search.pruner, self.search.min_epochs, epoch,
                               epoch - self.check_every)  # fmt: skip
        window, patience = self.search.window, self.search.patience
        at_rung = []
        for c, rows in rows_by_group(pop, self.K).items():
            if c in self.ended:
                continue
            trial = self.trials[c]
            folds = [val[r] for r in rows]
            mse = float(np.mean(folds))
            mse = mse if math.isfinite(mse) else math.inf
            recent = self.recent[c] = [*self.recent[c], (mse, epoch, folds)][-window:]
            score = max(v for v, _, _ in recent)  # the worst of the last `window` reads
            if score < self.best[c].mse:
                _, middle, middle_folds = recent[len(recent) // 2]
                self.best[c] = _Best(score, middle, middle_folds)
                self.search._improved(score, self.t0)
            best = self.best[c]
            stalled = patience and epoch - best.epoch >= patience * self.check_every
            if epoch >= self.max_epochs or (stalled and math.isfinite(best.mse)):
                trial.report(best.mse, epoch)
                self.ended[c] = TrialState.COMPLETE
            elif not math.isfinite(mse):
                trial.report(math.inf, epoch)
                self.ended[c] = TrialState.PRUNED
            else:
                if report or judge:
                    trial.report(best.mse, epoch)  # what the trial is worth so far
                if judge:
                    at_rung.append(c)
        # Judged best first: a pruner compares a trial with those judged at its rung before
        # it, so the first judged sees no rival there and is always promoted. In trial order,
        # a round's weak first trials went on to the epoch cap.
        for c in sorted(at_rung, key=lambda c: self.best[c].mse):
            if self.trials[c].should_prune():
                self.ended[c] = TrialState.PRUNED
        return self._leave(pop)

    def on_epoch_end(self, pop: Population, epoch: int, leaving: set[int]) -> None:
        for c, state in self.ended.items():
            self.search._tell(self.trials[c], state, self.best[c], epoch)
            self.progress.advance()
        self.progress.note(f"best CV MSE {self.search._best:.4g}, {self.search.n_pruned_} pruned")


def trial_mse(trial: Any) -> float:
    """A finished trial's best mean fold MSE, complete or pruned (a pruned trial's best epoch
    counts: epochs are the resource); inf when it diverged or did not finish."""
    state = trial.state
    v = trial.value if state == TrialState.COMPLETE else trial.user_attrs.get("best_value")
    if state not in (TrialState.COMPLETE, TrialState.PRUNED) or v is None or not math.isfinite(v):
        return math.inf
    return float(v)


def best_trial(trials: Any) -> Any:
    """The trial with the lowest ``trial_mse`` (ties: the earlier one)."""
    return min(trials, key=lambda t: (trial_mse(t), t.number))


def trial_params(trial: Any) -> dict[str, Any]:
    """A trial's settings under skorch's names, with its best epoch as ``max_epochs``."""
    return {**trial.params, "max_epochs": int(trial.user_attrs["best_epoch"])}
