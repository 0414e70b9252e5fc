"""Reading finished runs back: their models, and their configurations to run again."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path
from typing import Any

import torch

from glassnet.errors import UserError
from glassnet.runs.folder import load_state_dict, read_json

__all__ = ["load_classifier", "load_regression_model", "config_from_run", "run_config"]

KINDS = ("classification", "regression")


def run_config(run_dir: str | Path, kind: str | None = None) -> dict[str, Any]:
    """config.json of a finished run, checked to be a run (of ``kind``, when given)."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.json").is_file():
        raise UserError(f"{run_dir}: not a run folder (no config.json)")
    cfg = read_json(run_dir / "config.json")
    if not isinstance(cfg, dict) or cfg.get("kind") not in KINDS:
        raise UserError(f"{run_dir / 'config.json'}: not a glassnet run configuration")
    if kind is not None and cfg["kind"] != kind:
        raise UserError(f"{run_dir}: not a {kind} run (kind {cfg['kind']!r})")
    return cfg


def config_from_run(run_dir: str | Path, expected: type | None = None) -> Any:
    """The configuration a run was made with (``ClassificationConfig`` or ``RegressionConfig``):
    every setting that applied, read from its config.json; the extra facts recorded there
    (classes, input scaling, versions) are left out. Running it again repeats the run.
    ``expected``: the configuration class the run must be of (UserError otherwise)."""
    from glassnet.estimators import ClassificationConfig, RegressionConfig

    saved = run_config(run_dir)
    cls = ClassificationConfig if saved["kind"] == "classification" else RegressionConfig
    if expected is not None and cls is not expected:
        raise UserError(f"{run_dir}: not a run of a {expected.__name__}")
    kwargs = {}
    for f in fields(cls):
        if f.name in saved:
            v = saved[f.name]
            kwargs[f.name] = tuple(v) if isinstance(v, list) else v
    with _complete(run_dir):
        cfg = cls(**kwargs)
        cfg.validate()  # settings of the wrong type or range are told here, not mid-run
    return cfg


def load_classifier(run_dir: str | Path) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Rebuild the module of a finished classification run; return it (eval mode) and its config."""
    from glassnet.estimators import build_module

    cfg = run_config(run_dir, "classification")
    with _complete(run_dir):
        module = build_module(cfg, int(cfg["n_classes"]))
        float(cfg["input_mean"]), float(cfg["input_std"]), list(cfg["classes"])  # predict's
    _load_weights(module, Path(run_dir) / "weights.pt")
    return module.eval(), cfg


def load_regression_model(run_dir: str | Path) -> torch.nn.Module:
    """Rebuild the model of a finished regression run (x -> y, data units) from its folder."""
    from glassnet.estimators import build_regression_module

    cfg = run_config(run_dir, "regression")
    state = load_state_dict(Path(run_dir) / "weights.pt")
    with _complete(run_dir):
        model = build_regression_module(cfg, state)
    _load_weights(model, Path(run_dir) / "weights.pt", state)
    return model.eval()


@contextmanager
def _complete(run_dir: str | Path) -> Iterator[None]:
    """Turn a config.json that lacks a setting, or holds one of the wrong type, into one line."""
    try:
        yield
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        what = f"no {e}" if isinstance(e, KeyError) else f"a bad setting ({e})"
        where = Path(run_dir) / "config.json"
        raise UserError(f"{where}: {what}; the run folder is damaged") from None


def _load_weights(module: torch.nn.Module, path: Path, state: dict | None = None) -> None:
    state = load_state_dict(path) if state is None else state
    try:
        module.load_state_dict(state)  # strict: every key, every shape
    except RuntimeError:
        raise UserError(f"{path}: weights do not match the architecture in config.json") from None
