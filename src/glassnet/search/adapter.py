"""The skorch adapter of the batched engine: which nets it can stack, their settings, and the
handover of a trained member back as a skorch net."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.base import clone
from skorch import NeuralNetRegressor
from torch import nn

from glassnet.activations import BATCHABLE_ACTIVATIONS
from glassnet.errors import DivergedError
from glassnet.models import MLP
from glassnet.progress import Progress
from glassnet.rng import seeded
from glassnet.search.loop import TrainedMembers, train_population
from glassnet.training import EpochProgress, StopOnDivergence

__all__ = [
    "BATCHABLE_PARAMS",
    "NotBatchableError",
    "NetSpec",
    "train_members",
    "net_from_member",
    "fold_models",
]

BATCHABLE_PARAMS = (
    "lr",
    "optimizer__momentum",
    "optimizer__weight_decay",
    "max_epochs",
    "module__dropout",
)

_SGD_OPTIONS = {
    "momentum",
    "weight_decay",
    "dampening",
    "nesterov",
    "maximize",
    "foreach",
    "differentiable",
    "fused",
}


class NotBatchableError(ValueError):
    """The estimator (or search space) has a part PopulationSearchCV cannot batch."""


def _refuse(part: str, why: str) -> None:
    raise NotBatchableError(f"PopulationSearchCV cannot batch {part}: {why}")


def _check_fit_settings(est: Any, space_keys: set[str]) -> None:
    """Validation split, callbacks and searched parameters the engine can honour."""
    if est.train_split is not None:
        _refuse("train_split", "set train_split=None (the search's folds do the validating)")
    for cb in est.callbacks or []:
        cb = cb[1] if isinstance(cb, tuple) else cb
        # Divergence and progress are handled by the population itself.
        if not isinstance(cb, (StopOnDivergence, EpochProgress)):
            _refuse(f"callback {type(cb).__name__}", "callbacks run per fit and cannot be batched")
    fixed = set(space_keys) - set(BATCHABLE_PARAMS)
    if fixed:
        _refuse(
            f"search parameter {sorted(fixed)[0]!r}",
            f"only {', '.join(BATCHABLE_PARAMS)} may vary between members",
        )


class NetSpec:
    """What the population needs to know about the estimator, checked once."""

    def __init__(self, est: Any, space_keys: set[str]) -> None:
        if not isinstance(est, NeuralNetRegressor):
            _refuse(type(est).__name__, "only skorch NeuralNetRegressor estimators are supported")
        self._read_module(est)
        self._read_loss_and_optimizer(est)
        _check_fit_settings(est, space_keys)
        self.lr = float(est.lr)
        self.max_epochs = int(est.max_epochs)
        it = est.get_params_for("iterator_train")
        self.batch_size = int(it.get("batch_size", est.batch_size))
        self.shuffle = bool(it.get("shuffle", False))
        self.seed = getattr(est, "random_state", None)
        self.device = torch.device("cpu" if est.device in (None, "cpu") else est.device)

    def _read_module(self, est: Any) -> None:
        module = est.module
        if module is not MLP:
            name = getattr(module, "__name__", type(module).__name__)
            _refuse(
                f"module {name}",
                "only the glassnet.models.MLP class (with module__ parameters) can be stacked",
            )
        kw = est.get_params_for("module")
        self.in_features = kw.get("in_features", 1)
        self.hidden = tuple(kw.get("hidden", (512, 256)))
        self.out_features = kw.get("out_features", 1)
        self.activation = kw.get("activation", "tanh")
        self.dropout = float(kw.get("dropout", 0.0))
        if self.activation not in BATCHABLE_ACTIVATIONS:
            _refuse(f"activation {self.activation!r}", f"supported: {list(BATCHABLE_ACTIVATIONS)}")

    def _read_loss_and_optimizer(self, est: Any) -> None:
        crit = est.criterion
        if crit is not nn.MSELoss:
            _refuse(f"criterion {getattr(crit, '__name__', crit)}", "only torch.nn.MSELoss")
        if est.get_params_for("criterion").get("reduction", "mean") != "mean":
            _refuse("criterion reduction", "only the mean reduction")
        if est.optimizer is not torch.optim.SGD:
            _refuse(
                f"optimizer {getattr(est.optimizer, '__name__', est.optimizer)}",
                "only torch.optim.SGD",
            )
        opt = est.get_params_for("optimizer")
        for name, ok in (("dampening", 0), ("nesterov", False), ("maximize", False)):
            if opt.get(name, ok) != ok:
                _refuse(f"optimizer__{name}={opt[name]!r}", f"only {name}={ok!r}")
        unknown = set(opt) - _SGD_OPTIONS
        if unknown:
            _refuse(f"optimizer__{sorted(unknown)[0]}", "not an SGD option we batch")
        self.momentum = float(opt.get("momentum", 0.0))
        self.weight_decay = float(opt.get("weight_decay", 0.0))

    def settings(self, params: dict) -> dict[str, float]:
        """One member's training settings: ``params`` over the net's own."""
        s = {
            "lr": float(params.get("lr", self.lr)),
            "momentum": float(params.get("optimizer__momentum", self.momentum)),
            "wd": float(params.get("optimizer__weight_decay", self.weight_decay)),
            "epochs": int(params.get("max_epochs", self.max_epochs)),
            "dropout": float(params.get("module__dropout", self.dropout)),
        }
        if not 0.0 <= s["dropout"] < 1.0:
            raise ValueError(f"module__dropout must be in [0, 1), got {s['dropout']}")
        return s

    def initial_module(self) -> MLP:
        """Build the module the way the skorch net would (same seed -> same weights)."""
        with seeded(self.seed):
            return MLP(self.in_features, self.hidden, self.out_features, self.activation, 0.0)

    def blank_module(self) -> MLP:
        """An MLP of the right shape to copy trained weights into (global RNG left untouched)."""
        with seeded(None):
            return MLP(self.in_features, self.hidden, self.out_features, self.activation, 0.0)

    def shuffle_generator(self) -> torch.Generator:
        """Generator reproducing the net's batch order (seeded as SeededMixin does)."""
        g = torch.Generator()
        g.manual_seed((self.seed + 1) if self.seed is not None else 0)
        return g

    def dropout_generator(self) -> torch.Generator:
        """Generator of the batched members' dropout masks, on the members' device."""
        g = torch.Generator(device=self.device)
        g.manual_seed(self.seed or 0)
        return g


def train_members(
    estimator: Any,
    params: dict,
    X,
    y,
    train_sets: list[np.ndarray],
    progress: Progress | None = None,
    desc: str | None = None,
    chunk_size: int = 16,
) -> TrainedMembers:
    """Train one member per training subset, all with the same ``params``, at once.

    The one way glassnet trains a set of models of one setting (the fold models behind the
    regression band, and the search's refit). Returns ``train_population``'s record, with the
    trained MLPs in ``modules`` (a diverged member has none). Raises NotBatchableError
    where the engine cannot stack ``estimator``.
    """
    progress = progress or Progress()
    spec = NetSpec(estimator, set(params))
    X = np.asarray(X, dtype=np.float32).reshape(len(X), -1)
    y = np.asarray(y, dtype=np.float32)
    s = spec.settings(params)
    progress.start(s["epochs"] * len(train_sets), desc or f"{len(train_sets)} fold models")
    out = train_population(
        spec,
        X,
        y,
        [s] * len(train_sets),
        train_sets,
        progress,
        chunk_size=chunk_size,
        keep_weights=True,
    )
    progress.close()
    return out


def net_from_member(estimator: Any, params: dict, module: MLP, history: list[float]) -> Any:
    """A fitted skorch net (a clone of ``estimator`` with ``params``) holding ``module``'s
    weights and its training-loss history, as if the net had trained itself."""
    net = clone(estimator).set_params(**params)
    net.initialize()
    with torch.no_grad():  # copy layer by layer: dropout shifts the Sequential's indices
        for dst, src in zip(net.module_.linear_layers(), module.linear_layers()):
            dst.weight.copy_(src.weight)
            dst.bias.copy_(src.bias)
    net.module_.eval()
    for e, loss in enumerate(history, start=1):
        net.history.new_epoch()
        net.history.record("epoch", e)
        net.history.record("train_loss", loss)
    return net


def refit_best(estimator: Any, params: dict, X, y, progress: Progress, chunk_size: int = 16):
    """Train ``params`` on all rows as one member and hand it over as a skorch net."""
    out = train_members(
        estimator,
        params,
        X,
        y,
        [np.arange(len(y))],
        progress,
        "refit on all training data",
        chunk_size,
    )
    if out.diverged[0]:
        raise DivergedError("the best candidate diverged when refit on all training data")
    return net_from_member(estimator, params, out.modules[0], out.histories[0])


def fold_models(estimator: Any, params: dict, X, y, train_sets, progress=None) -> list:
    """``params`` trained on each training subset: batched where the engine can stack the
    net, else one skorch fit after another. One module per subset; None where it diverged."""
    try:
        out = train_members(estimator, params, X, y, train_sets, progress)
        return [out.modules.get(m) for m in range(len(train_sets))]
    except NotBatchableError:  # e.g. an activation the engine cannot stack: one by one
        models = []
        for tr in train_sets:
            try:
                net = clone(estimator).set_params(**params).fit(X[tr], y[tr])
                models.append(net.module_.cpu())
            except DivergedError:
                models.append(None)
        return models
