"""TPESearchCV: Optuna proposes the candidates; each batch of trials trains as one population.

The random searches train every candidate to its full epoch budget. Here Optuna's TPE sampler
learns from the trials so far where good settings lie, and a pruner stops trials that cannot
win any more; a pruned trial's members leave the stacked population at once. Epochs are the
resource: every trial trains up to ``max_epochs``, reports its mean fold-validation MSE every
``check_every`` epochs, and keeps its best epoch's score (and that epoch count), rather than
sampling the epoch count as the study did.

A round: ask ``batch`` trials, train their (trial x fold) members together, read the fold
scores every ``check_every`` epochs, report the best so far to the pruner every ``min_epochs``
epochs (its rungs), tell the trials as they end. The same engine, folds, initial weights and batches
as ``PopulationSearchCV``: a trial's fold scores are those of training it alone.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.model_selection import check_cv

from glassnet.errors import NoModelError
from glassnet.progress import Progress
from glassnet.search.adapter import NetSpec, refit_best
from glassnet.search.engine import Population, epoch_batches, validation_batch
from glassnet.search.storage import ask, fail_stale, heartbeats, storage_faults
from glassnet.search.studies import RUN_TAG, make_pruner, open_study, optuna_space

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
    ``n_trials=0`` runs nothing and refits the study's best trial. After ``fit``:
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
        for name in ("n_trials", "batch", "max_epochs", "check_every"):
            if getattr(self, name) < (0 if name == "n_trials" else 1):
                raise ValueError(f"{name} must be >= {0 if name == 'n_trials' else 1}")
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
        import optuna

        dev = spec.device
        K = len(folds)
        members = [(c, k) for c in range(len(trials)) for k in range(K)]  # row = c * K + k
        settings = [
            spec.settings({**trials[c].params, "max_epochs": self.max_epochs}) for c, _ in members
        ]
        pop = Population(spec.initial_module(), settings, dev, spec.activation)
        Xt, yt = torch.from_numpy(X).to(dev), torch.from_numpy(y).to(dev)
        train_idx = [torch.as_tensor(folds[k][0], dtype=torch.long) for _, k in members]
        sizes = [len(t) for t in train_idx]
        Xv, yv, wv = validation_batch(members, folds, Xt, yt)
        gen = spec.shuffle_generator()
        drop_gen = torch.Generator(device=dev)
        drop_gen.manual_seed(spec.seed or 0)
        best = {c: (math.inf, 0, []) for c in range(len(trials))}  # (mean fold MSE, epoch, folds)
        full_batch = spec.batch_size >= max(sizes)
        batches, epoch = None, 0
        while pop.ids:
            epoch += 1
            if batches is None or not full_batch:
                batches = epoch_batches(pop.ids, sizes, train_idx, max(sizes), spec.batch_size,
                                        spec.shuffle, gen, Xt, yt)  # fmt: skip
            loss = pop.epoch(batches, sizes, drop_gen, self.chunk_size)
            self.member_epochs_ += len(pop.ids)
            rows_of: dict[int, list[int]] = {}
            for r, m in enumerate(pop.ids):
                rows_of.setdefault(members[m][0], []).append(r)
            finite = torch.isfinite(loss).tolist()
            ended: dict[int, Any] = {}
            for c, rows in rows_of.items():
                if not all(finite[r] for r in rows):  # diverged: reported as hopeless
                    trials[c].report(math.inf, epoch)
                    ended[c] = optuna.trial.TrialState.PRUNED
            if epoch % self.check_every == 0 or epoch == self.max_epochs:
                ids = torch.tensor(pop.ids, dtype=torch.long, device=dev)
                val = pop.losses(Xv[ids], yv[ids], wv[ids]).tolist()  # (member,) fold MSE
                self._check(trials, rows_of, val, best, epoch, ended, t0)
            for c, state in ended.items():
                self._tell(trials[c], state, best[c], epoch)
                progress.advance()
            progress.note(f"best CV MSE {self._best:.4g}, {self.n_pruned_} pruned")
            if ended:
                pop.keep([r for r, m in enumerate(pop.ids) if members[m][0] not in ended])
                batches = None

    def _check(self, trials, rows_of, val, best, epoch: int, ended: dict, t0: float) -> None:
        """Read each live trial's mean fold MSE: keep its best epoch; end it at the epoch cap,
        when it diverged, or when the pruner says so. The pruner hears every min_epochs epochs
        (its rungs): each report is a database write, and the best epoch is tracked here."""
        import optuna

        tell_pruner = epoch % self.min_epochs == 0
        for c, rows in rows_of.items():
            if c in ended:
                continue
            mse = float(np.mean([val[r] for r in rows]))
            mse = mse if math.isfinite(mse) else math.inf
            if mse < best[c][0]:
                best[c] = (mse, epoch, [val[r] for r in rows])
                self._improved(mse, t0)
            if epoch >= self.max_epochs:
                trials[c].report(best[c][0], epoch)
                ended[c] = optuna.trial.TrialState.COMPLETE
            elif not math.isfinite(mse):
                trials[c].report(math.inf, epoch)
                ended[c] = optuna.trial.TrialState.PRUNED
            elif tell_pruner:
                trials[c].report(best[c][0], epoch)  # what the trial is worth so far
                if trials[c].should_prune():
                    ended[c] = optuna.trial.TrialState.PRUNED

    @property
    def _best(self) -> float:
        return self.trace_[-1][2] if self.trace_ else math.inf

    def _improved(self, mse: float, t0: float) -> None:
        if mse < self._best:
            self.trace_.append((time.perf_counter() - t0, self.member_epochs_, mse))

    def _tell(self, trial, state, best: tuple[float, int, list], epoch: int) -> None:
        trial.set_user_attr("best_epoch", best[1])
        trial.set_user_attr("epochs_trained", epoch)
        trial.set_user_attr("fold_mse", best[2])
        if state.name == "COMPLETE":
            self.study_.tell(trial, best[0])
        else:
            self.n_pruned_ += 1
            trial.set_user_attr("best_value", best[0])
            self.study_.tell(trial, state=state)

    def _collect(self) -> None:
        """The study's best trial, complete or pruned (a pruned trial's best epoch counts:
        epochs are the resource, and its score up to there is a real fold score)."""
        done = [t for t in self.study_.get_trials(deepcopy=False)
                if t.state.name in ("COMPLETE", "PRUNED")]  # fmt: skip
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
        order = np.argsort(np.where(np.isnan(mse), np.inf, mse), kind="stable")
        rank = np.empty(len(done), dtype=int)
        rank[order] = np.arange(1, len(done) + 1)
        self.cv_results_ = {
            "params": [t.params for t in done],
            "trial": np.array([t.number for t in done]),
            "state": np.array([t.state.name.lower() for t in done]),
            "mean_test_score": -mse,
            "std_test_score": np.array([np.std(f) for f in folds]),
            "rank_test_score": rank,
            "best_epoch": np.array([t.user_attrs.get("best_epoch", 0) for t in done]),
            "epochs_trained": np.array([t.user_attrs.get("epochs_trained", 0) for t in done]),
        }


def trial_mse(trial: Any) -> float:
    """A finished trial's best mean fold MSE, complete or pruned (a pruned trial's best epoch
    counts: epochs are the resource); inf when it diverged or did not finish."""
    state = trial.state.name
    v = trial.value if state == "COMPLETE" else trial.user_attrs.get("best_value")
    if state not in ("COMPLETE", "PRUNED") or v is None or not math.isfinite(v):
        return math.inf
    return float(v)


def best_trial(trials: Any) -> Any:
    """The trial with the lowest ``trial_mse`` (ties: the earlier one)."""
    return min(trials, key=lambda t: (trial_mse(t), t.number))


def trial_params(trial: Any) -> dict[str, Any]:
    """A trial's settings under skorch's names, with its best epoch as ``max_epochs``."""
    return {**trial.params, "max_epochs": int(trial.user_attrs["best_epoch"])}
