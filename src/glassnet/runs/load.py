"""Reading finished runs back: their models, and their configurations to run again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from glassnet.errors import UserError
from glassnet.estimators import (
    ClassificationConfig,
    RegressionConfig,
    build_module,
    build_regression_module,
)
from glassnet.runs.folder import load_state_dict
from glassnet.runs.saved import complete, run_config

__all__ = ["load_classifier", "load_regression_model", "config_from_run", "run_config"]


def config_from_run(run_dir: str | Path, expected: type | None = None) -> Any:
    """The configuration a run was made with (``ClassificationConfig`` or ``RegressionConfig``,
    by its kind); ``expected``: the class it must be (UserError otherwise)."""
    kind = run_config(run_dir)["kind"]
    cls = ClassificationConfig if kind == "classification" else RegressionConfig
    if expected is not None and cls is not expected:
        raise UserError(f"{run_dir}: not a run of a {expected.__name__}")
    return cls.from_run(run_dir)


def load_classifier(run_dir: str | Path) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Rebuild the module of a finished classification run; return it (eval mode) and its config."""
    cfg = run_config(run_dir, "classification")
    with complete(run_dir):
        module = build_module(cfg, int(cfg["n_classes"]))
        float(cfg["input_mean"]), float(cfg["input_std"]), list(cfg["classes"])  # predict's
    _load_weights(module, Path(run_dir) / "weights.pt")
    return module.eval(), cfg


def load_regression_model(run_dir: str | Path) -> torch.nn.Module:
    """Rebuild the model of a finished regression run (x -> y, data units) from its folder."""
    cfg = run_config(run_dir, "regression")
    state = load_state_dict(Path(run_dir) / "weights.pt")
    with complete(run_dir):
        model = build_regression_module(cfg, state)
    _load_weights(model, Path(run_dir) / "weights.pt", state)
    return model.eval()


def _load_weights(module: torch.nn.Module, path: Path, state: dict | None = None) -> None:
    state = load_state_dict(path) if state is None else state
    try:
        module.load_state_dict(state)  # strict: every key, every shape
    except RuntimeError:
        raise UserError(f"{path}: weights do not match the architecture in config.json") from None
