"""A finished run's settings read back from its config.json: checked, then rebuilt.

Below the estimators (which rebuild their own configuration with ``settings_from_run``) and
below ``runs.load`` (which rebuilds models): it imports neither, so nothing imports in a circle.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path
from typing import Any, TypeVar

from glassnet.errors import UserError
from glassnet.runs.folder import read_json

__all__ = ["KINDS", "complete", "run_config", "settings_from_run"]

KINDS = ("classification", "regression")
C = TypeVar("C")


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


def settings_from_run(
    run_dir: str | Path, cls: type[C], kind: str, before: Mapping[str, Any] | None = None
) -> C:
    """The configuration (dataclass ``cls``, a run of ``kind``) a run was made with: every
    setting that applied, read from its config.json; the extra facts recorded there (classes,
    input scaling, versions) are left out. Running it again repeats the run. ``before``: the
    values of settings added since, for a config.json written without them (what such a run
    trained with; a setting missing otherwise takes its default)."""
    saved = run_config(run_dir)
    if saved["kind"] != kind:
        raise UserError(f"{run_dir}: not a run of a {cls.__name__}")
    saved = {**(before or {}), **saved}
    kwargs = {}
    for f in fields(cls):  # type: ignore[arg-type]
        if f.name in saved:
            v = saved[f.name]
            kwargs[f.name] = tuple(v) if isinstance(v, list) else v
    with complete(run_dir):
        cfg = cls(**kwargs)
        cfg.validate()  # type: ignore[attr-defined]  # wrong types or ranges: told here
    return cfg


@contextmanager
def complete(run_dir: str | Path) -> Iterator[None]:
    """Turn a config.json that lacks a setting, or holds one of the wrong type, into one line."""
    try:
        yield
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        what = f"no {e}" if isinstance(e, KeyError) else f"a bad setting ({e})"
        where = Path(run_dir) / "config.json"
        raise UserError(f"{where}: {what}; the run folder is damaged") from None
