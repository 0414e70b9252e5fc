"""The regression experiment's configuration and the estimators built from it.

One place for the defaults (the CLI, ``reproduce`` and the Python API all start from
``RegressionConfig``) and one module factory, used by training and by loading a saved run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from scipy.stats import loguniform, uniform
from sklearn.model_selection import KFold

from glassnet.data.batches import InMemoryLoader
from glassnet.errors import UserError, require
from glassnet.limits import net_checks, seed_check
from glassnet.models import ACTIVATIONS, MLP, RegressionEnsemble
from glassnet.progress import Progress
from glassnet.runs.saved import settings_from_run
from glassnet.search.cv import BlockedKFold
from glassnet.search.deep_ensemble import DeepEnsembleRegressor
from glassnet.search.ensemble import EnsembleSearchCV
from glassnet.search.studies import PRUNERS
from glassnet.search.tpe import REGRESSION_SPACE, TPESearchCV
from glassnet.training import (
    EpochProgress,
    GlassRegressor,
    StopOnDivergence,
    check_device,
    choose_device,
)

__all__ = [
    "COMMON_FIELDS",
    "SEARCHES",
    "Search",
    "FOLDS",
    "RegressionConfig",
    "make_regressor",
    "make_ensemble_search",
    "make_deep_ensemble",
    "member_penalties",
    "build_regression_module",
]

@dataclass(frozen=True)
class Search:
    """One way to train a regression model: what ``--help`` says of it and the settings
    (``RegressionConfig`` fields) it uses beyond the common ones. The parser's choices and
    help, the check of options given for another search, the report's configuration table and
    the experiment's dispatch all read this table, so a search is declared here once."""

    help: str
    fields: tuple[str, ...]
    ensemble: bool = False  # its model is a RegressionEnsemble (members and scaling)


# Settings every search uses (the data, the net, the seed, where it runs, what figures show).
COMMON_FIELDS = ("train", "test", "data_dir", "hidden", "activation", "search", "seed",
                 "device", "probe_x", "batch_size", "figures")  # fmt: skip
SEARCHES: dict[str, Search] = {
    "deep-ensemble": Search(
        "the default: --members nets from different seeds trained together on all the data "
        "with Adam, each with a Bayesian last layer, averaged",
        ("members", "adam_lr", "penalty", "penalty_spread", "keep_members", "ensemble_epochs",
         "band_scale"),
        ensemble=True,
    ),
    "tpe": Search(
        "Optuna's TPE proposes, a pruner stops hopeless trials, each batch of trials trains "
        "at once; epochs up to --max-epochs, the best kept",
        ("cv", "max_epochs", "n_trials", "trial_batch", "trial_patience", "pruner", "storage",
         "study_name"),
    ),
    "ensemble": Search(
        "SGD candidates x blocked folds trained together, epochs chosen by fold loss, the "
        "model the mean of the best candidate's fold models",
        ("n_iter", "cv", "folds", "max_epochs", "patience"),
        ensemble=True,
    ),
    "population": Search(
        "the study's random search, all fits at once, best refit",
        ("n_iter", "cv", "epoch_choices"),
    ),
    "random": Search(
        "the study's pipeline: skorch + RandomizedSearchCV", ("n_iter", "cv", "epoch_choices",
                                                               "n_jobs"),
    ),  # fmt: skip
    "grid": Search("GridSearchCV over the study's grid", ("cv", "epoch_choices", "n_jobs")),
    "none": Search(
        "one fit with --lr --momentum --epochs --weight-decay",
        ("lr", "momentum", "epochs", "weight_decay"),
    ),
}
ENSEMBLES = tuple(k for k, s in SEARCHES.items() if s.ensemble)
# What a run's config.json lacks when it was written before the setting existed: the value
# that run trained with (not today's default), so that `glassnet rerun` repeats it.
SETTINGS_BEFORE = {"penalty_spread": 0.0, "band_scale": 1.0, "trial_patience": 0,
                   "keep_members": 0}  # fmt: skip
FOLDS = ("blocked", "shuffled")


@dataclass
class RegressionConfig:
    """Everything a regression run depends on; stored as config.json in the run folder."""

    train: str | None = None  # CSV with header input,label (needs test too)
    test: str | None = None
    data_dir: str | None = None  # folder holding regression/{train,test}_data.csv
    hidden: tuple[int, ...] = (512, 256)  # hidden layer widths: the study's 1-512-256-1
    activation: str = "tanh"
    search: str = "deep-ensemble"  # one of SEARCHES
    # --search deep-ensemble: `members` nets from different seeds trained together on all the
    # training data with Adam (rate `adam_lr`, L2 penalty `penalty`) for `ensemble_epochs`
    # epochs (one full batch each for <= batch_size points), averaged. Chosen on the development
    # functions (benchmarks/regression_quality.py --seed0 100), never on a test set.
    members: int = 4
    adam_lr: float = 3e-3
    penalty: float = 3e-4  # the members' L2 penalties are log-spaced around this value ...
    penalty_spread: float = 0.0  # ... over this many decades (0: every member the same)
    # after training, keep only the `keep_members` members of highest Laplace evidence
    # (search.laplace: the evidence chooses among their penalties); 0 keeps every member
    keep_members: int = 0
    ensemble_epochs: int = 2000
    band_scale: float = 1.25  # the band (mean +- 2 std) widened by this factor: a calibration
    # chosen on the development functions (the band as computed covered ~80% of their test
    # points, the Gaussian process's ~92%; 1.25 matches the GP's median there)
    # candidates drawn by the random searches; None: 8 for ensemble (each trains up to
    # max_epochs), the study's 20 for population and random
    n_iter: int | None = None
    cv: int = 5  # folds
    # ensemble search: folds of neighbouring points (blocked) or shuffled points; an epoch cap;
    # a candidate stops after `patience` fold-loss reads (every 10 epochs) without improving
    folds: str = "blocked"
    max_epochs: int = 1000
    patience: int = 30
    lr: float = 0.01  # used by --search none (the study's choice)
    momentum: float = 0.9
    epochs: int = 1000
    weight_decay: float = 0.001
    batch_size: int = 128  # skorch's default; >= 100 points means full-batch gradient descent
    seed: int = 0  # one seed for weights, batch order, folds and the sampler
    n_jobs: int = 1  # parallel fits of --search random/grid (1 keeps exact reproducibility)
    device: str = "auto"  # auto | cpu | cuda
    epoch_choices: tuple[int, ...] = (100, 250, 500, 1000)  # epochs the study's search draws
    probe_x: tuple[float, ...] = (-4.0, -3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0, 4.0)
    figures: bool = True  # draw the PNGs; False: metrics, weights and history only (sweeps)
    # --search tpe: trials this process runs (0: refit the study's best), trained `trial_batch`
    # at a time up to max_epochs; the pruner; the Optuna storage URL (None: optuna.log in the
    # run folder) and study name. Chosen on seeds 100-102 (benchmarks/RESULTS.md).
    n_trials: int = 30
    trial_batch: int = 6
    # a trial whose (3-check worst) fold MSE has not improved for this many checks (every 10
    # epochs) ends complete; 0: it trains on to max_epochs. Chosen on seeds 10-15.
    trial_patience: int = 15
    pruner: str = "halving"
    storage: str | None = None
    study_name: str = "glassnet-regression"

    @classmethod
    def from_run(cls, run_dir: str | Path) -> RegressionConfig:
        """The configuration a finished run was made with, from its config.json (what
        ``glassnet rerun`` runs again)."""
        return settings_from_run(run_dir, cls, "regression", SETTINGS_BEFORE)

    def validate(self) -> None:
        """Raise UserError naming the first option outside its valid range."""
        checks = [
            (self.search in SEARCHES, f"`search` must be one of {', '.join(SEARCHES)}"),
            (self.folds in FOLDS, f"`folds` must be one of {', '.join(FOLDS)}"),
            (math.isfinite(self.lr) and self.lr > 0, f"`lr` must be > 0, got {self.lr}"),
            (0.0 <= self.momentum < 1.0, f"`momentum` must be in [0, 1), got {self.momentum}"),
            (self.epochs >= 1, f"`epochs` must be >= 1, got {self.epochs}"),
            (self.max_epochs >= 1, f"`max_epochs` must be >= 1, got {self.max_epochs}"),
            (self.patience >= 1, f"`patience` must be >= 1, got {self.patience}"),
            (self.members >= 1, f"`members` must be >= 1, got {self.members}"),
            (
                math.isfinite(self.adam_lr) and self.adam_lr > 0,
                f"`adam_lr` must be > 0, got {self.adam_lr}",
            ),
            (
                math.isfinite(self.penalty) and self.penalty >= 0,
                f"`penalty` must be >= 0, got {self.penalty}",
            ),
            (
                0 <= self.penalty_spread <= 6,
                f"`penalty_spread` must be 0 to 6 decades, got {self.penalty_spread}",
            ),
            (
                0 <= self.keep_members <= self.members,
                f"`keep_members` must be 0 to `members` ({self.members}), got {self.keep_members}",
            ),
            (
                self.keep_members == 0 or self.penalty > 0,
                "`keep_members` chooses by the Laplace evidence, which needs `penalty` > 0",
            ),
            (
                0.1 <= self.band_scale <= 10,
                f"`band_scale` must be 0.1 to 10, got {self.band_scale}",
            ),
            (
                self.ensemble_epochs >= 1,
                f"`ensemble_epochs` must be >= 1, got {self.ensemble_epochs}",
            ),
            (self.weight_decay >= 0, f"`weight_decay` must be >= 0, got {self.weight_decay}"),
            (self.cv >= 2, f"`cv` must be >= 2, got {self.cv}"),
            (
                len(self.epoch_choices) >= 1 and all(e >= 1 for e in self.epoch_choices),
                f"`epoch_choices` must be positive integers, got {self.epoch_choices}",
            ),
            (self.n_iter is None or self.n_iter >= 1, f"`n_iter` must be >= 1, got {self.n_iter}"),
            (self.batch_size >= 1, f"`batch_size` must be >= 1, got {self.batch_size}"),
            (self.n_jobs >= 1, f"`n_jobs` must be >= 1, got {self.n_jobs}"),
            (self.n_trials >= 0, f"`n_trials` must be >= 0, got {self.n_trials}"),
            (self.trial_batch >= 1, f"`trial_batch` must be >= 1, got {self.trial_batch}"),
            (
                self.trial_patience >= 0,
                f"`trial_patience` must be >= 0, got {self.trial_patience}",
            ),
            (self.pruner in PRUNERS, f"`pruner` must be one of {', '.join(PRUNERS)}"),
            (
                self.n_jobs == 1 or "n_jobs" in SEARCHES.get(self.search, SEARCHES["none"]).fields,
                f"`n_jobs` {self.n_jobs}: only `search` random and grid run fits in parallel "
                f"(`search` {self.search} trains all its members as one computation)",
            ),
            *net_checks(tuple(self.hidden), 1, 1, copies=self.members_at_once()),
            seed_check(self.seed),
            (
                self.activation in ACTIVATIONS,
                f"`activation` must be one of {', '.join(ACTIVATIONS)}",
            ),
        ]
        require(checks)
        check_device(self.device)

    def unused(self, given: set[str]) -> list[str]:
        """The fields in ``given`` that this configuration's search does not use."""
        used = set(COMMON_FIELDS) | set(SEARCHES[self.search].fields)
        return sorted(given - used)

    def members_at_once(self) -> int:
        """How many nets the search trains side by side (what its memory scales with)."""
        if self.search == "deep-ensemble":
            return self.members
        if self.search in ("ensemble", "population"):
            return self.candidates() * self.cv
        if self.search == "tpe":
            return self.trial_batch * self.cv
        return 1

    def candidates(self) -> int:
        """How many candidates the random searches draw (``n_iter``, or the search's default)."""
        if self.n_iter is not None:
            return self.n_iter
        return 8 if self.search == "ensemble" else 20

    def study_params(self) -> dict[str, Any]:
        """The single-fit settings (--search none) under skorch's parameter names."""
        return {
            "lr": self.lr,
            "optimizer__momentum": self.momentum,
            "max_epochs": self.epochs,
            "optimizer__weight_decay": self.weight_decay,
        }

    def folds_splitter(self, n_rows: int) -> KFold | BlockedKFold:
        """The cross-validation folds of the ensemble search for ``n_rows`` training rows.

        Blocks of 4 neighbours, fewer where the data have fewer than 4 rows per fold.
        """
        if self.folds == "blocked":
            return BlockedKFold(self.cv, block_size=max(1, min(4, n_rows // self.cv)))
        return self.shuffled_folds()

    def shuffled_folds(self) -> KFold:
        """Shuffled, seeded folds: the study's searches and their fold-model band."""
        return KFold(self.cv, shuffle=True, random_state=self.seed)


def ensemble_space() -> dict[str, Any]:
    """The ensemble search's space (skorch names): learning rate, momentum, weight decay.

    Chosen on panel functions with other seeds than the benchmark's (see RESULTS.md): full-batch
    SGD on this net is slow on the fine detail and unstable above lr ~0.03, so heavy momentum
    (0.9-0.99) near the largest stable learning rates fits most within the epoch budget.
    """
    return {
        "lr": loguniform(3e-3, 3e-2),
        "optimizer__momentum": uniform(0.9, 0.09),  # [0.9, 0.99]
        "optimizer__weight_decay": loguniform(1e-5, 1e-2),
    }


def make_ensemble_search(
    cfg: RegressionConfig, n_rows: int, progress: Progress | None = None
) -> EnsembleSearchCV:
    """The default search for ``n_rows`` training rows: EnsembleSearchCV over
    ``ensemble_space()``."""
    return EnsembleSearchCV(
        ensemble_space(),
        hidden=tuple(cfg.hidden),
        activation=cfg.activation,
        n_iter=cfg.candidates(),
        cv=cfg.folds_splitter(n_rows),
        max_epochs=cfg.max_epochs,
        patience=cfg.patience,
        batch_size=cfg.batch_size,
        random_state=cfg.seed,
        device=choose_device(cfg.device),
        progress=progress,
    )


def member_penalties(centre: float, decades: float, members: int) -> tuple[float, ...]:
    """Each member's L2 penalty: log-spaced over ``decades`` decades with ``centre`` as their
    geometric mean, smallest first (all ``centre`` when ``decades`` is 0 or one member)."""
    if members == 1 or decades == 0:
        return (centre,) * members
    return tuple(centre * 10 ** (decades * (k / (members - 1) - 0.5)) for k in range(members))


def make_deep_ensemble(cfg: RegressionConfig, progress: Progress | None = None
                       ) -> DeepEnsembleRegressor:  # fmt: skip
    """The default model: ``cfg.members`` nets from different seeds, Adam, all the data."""
    return DeepEnsembleRegressor(
        hidden=tuple(cfg.hidden),
        activation=cfg.activation,
        n_members=cfg.members,
        optimizer="adam",
        lr=cfg.adam_lr,
        weight_decay=member_penalties(cfg.penalty, cfg.penalty_spread, cfg.members),
        keep=cfg.keep_members or None,
        epochs=cfg.ensemble_epochs,
        batch_size=cfg.batch_size,
        band_scale=cfg.band_scale,
        random_state=cfg.seed,
        device=choose_device(cfg.device),
        progress=progress,
    )


def make_tpe_search(
    cfg: RegressionConfig, storage: str | None, progress: Progress | None = None
) -> TPESearchCV:
    """--search tpe: TPESearchCV over the study's ranges, on the study's shuffled folds."""
    return TPESearchCV(
        make_regressor(cfg, progress),
        REGRESSION_SPACE,
        n_trials=cfg.n_trials,
        batch=cfg.trial_batch,
        max_epochs=cfg.max_epochs,
        pruner=cfg.pruner,
        patience=cfg.trial_patience,
        cv=cfg.shuffled_folds(),
        random_state=cfg.seed,
        storage=storage,
        study_name=cfg.study_name,
        progress=progress,
    )


def make_regressor(
    cfg: RegressionConfig, progress: Progress | None = None, tick_fits: bool = True
) -> GlassRegressor:
    """Return the study's skorch regressor: MLP, MSE, SGD with momentum, no internal split."""
    return GlassRegressor(
        MLP,
        module__in_features=1,
        module__hidden=tuple(cfg.hidden),
        module__out_features=1,
        module__activation=cfg.activation,
        criterion=torch.nn.MSELoss,
        optimizer=torch.optim.SGD,
        lr=cfg.lr,
        optimizer__momentum=cfg.momentum,
        optimizer__weight_decay=cfg.weight_decay,
        max_epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        train_split=None,  # cross-validation does the validating
        iterator_train=InMemoryLoader,
        iterator_train__shuffle=True,
        iterator_valid=InMemoryLoader,
        callbacks=[StopOnDivergence(), EpochProgress(progress, tick_fits)],
        verbose=0,  # library code stays silent (skorch's PrintLog prints only when verbose)
        device=choose_device(cfg.device),
        random_state=cfg.seed,
    )


def build_regression_module(
    cfg: dict[str, Any], state: dict[str, torch.Tensor] | None = None
) -> MLP | RegressionEnsemble:
    """The module a regression run saves, rebuilt from its config (and its weights' keys).

    An ensemble run (``ENSEMBLES``) saves a RegressionEnsemble (members and scaling in one
    ``state_dict``); the other searches, and runs from before ensembles, save one MLP.
    """
    hidden, activation = tuple(cfg["hidden"]), cfg["activation"]
    if state is None or not any(k.startswith("members.") for k in state):
        return MLP(1, hidden, 1, activation)
    n = len({k.split(".")[1] for k in state if k.startswith("members.")})
    if cfg.get("search") not in ENSEMBLES:
        raise UserError("weights.pt holds an ensemble but config.json names no ensemble search")
    last = {}
    if "last_cov" in state and "last_center" in state:  # a Bayesian last layer's band
        last = {k: torch.zeros_like(state[k]) for k in ("last_cov", "last_center")}
    # Only a search that uses band_scale widens its band; runs from before the setting did not.
    uses = "band_scale" in SEARCHES[cfg["search"]].fields
    scale = cfg.get("band_scale", SETTINGS_BEFORE["band_scale"]) if uses else 1.0
    members = [MLP(1, hidden, 1, activation) for _ in range(n)]
    return RegressionEnsemble(members, **last, band_scale=scale)
