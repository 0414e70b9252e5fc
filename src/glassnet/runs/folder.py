"""Run folders: written under a temporary name, renamed into place only when complete."""

from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from glassnet.errors import UserError

__all__ = [
    "RunWriter",
    "default_run_dir",
    "read_json",
    "load_state_dict",
    "to_jsonable",
    "software_versions",
]


def software_versions() -> dict[str, str]:
    """Versions of Python and of the packages a run depends on."""
    import platform
    from importlib import metadata

    out = {"python": platform.python_version()}
    for pkg in ("glassnet", "torch", "skorch", "scikit-learn", "numpy", "matplotlib", "captum"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def default_run_dir(kind: str, root: str | Path = "runs") -> Path:
    """Return ``runs/<UTC time>-<kind>``."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return Path(root) / f"{stamp}-{kind}"


def to_jsonable(obj: Any) -> Any:
    """Convert numpy/torch scalars and arrays (recursively) into plain JSON types."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, torch.Tensor):
        return to_jsonable(obj.detach().cpu().numpy())
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None  # JSON has no NaN; null reads as "failed / not available"
    if isinstance(obj, Path):
        return str(obj)
    return obj


class RunWriter:
    """Context manager owning a run folder.

    Everything is written into ``.<name>.partial-<random>`` beside the final folder; on success it
    is renamed to the final name (atomic on one filesystem), on any exception it is deleted. A
    crash that kills the process leaves only a ``.partial`` folder, never a finished-looking run.
    """

    def __init__(self, out: str | Path) -> None:
        self.final = Path(out)
        if self.final.exists() and (not self.final.is_dir() or any(self.final.iterdir())):
            raise UserError(f"--out {self.final}: already exists and is not empty")
        parent = self.final.parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
            self.path = Path(tempfile.mkdtemp(prefix=f".{self.final.name}.partial-", dir=parent))
        except OSError as e:
            raise UserError(f"--out {self.final}: cannot write there ({e.strerror})") from None

    def __enter__(self) -> RunWriter:
        self.json("environment.json", software_versions())
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            shutil.rmtree(self.path, ignore_errors=True)
            return
        if self.final.exists():  # an empty folder we were allowed to fill
            self.final.rmdir()
        os.replace(self.path, self.final)

    def file(self, name: str) -> Path:
        """Return the path of ``name`` inside the (temporary) run folder."""
        return self.path / name

    def json(self, name: str, obj: Any) -> Path:
        """Write ``obj`` as indented JSON and return its path."""
        p = self.file(name)
        p.write_text(json.dumps(to_jsonable(obj), indent=2) + "\n")
        return p

    def csv(self, name: str, rows: list[dict[str, Any]]) -> Path:
        """Write a list of dicts as CSV (columns from the first row) and return its path."""
        p = self.file(name)
        with p.open("w", newline="") as f:
            if rows:
                w = csv.DictWriter(f, fieldnames=list(rows[0]))
                w.writeheader()
                w.writerows(to_jsonable(rows))
        return p

    def figure(self, name: str, fig: Any) -> Path:
        """Save a matplotlib figure as PNG and return its path (glassnet's figures are not
        registered with pyplot, so there is nothing to close)."""
        p = self.file(name)
        fig.savefig(p, dpi=110, bbox_inches="tight")
        return p

    def weights(self, module: torch.nn.Module, name: str = "weights.pt") -> Path:
        """Save ``module.state_dict()`` and return its path."""
        p = self.file(name)
        torch.save({k: v.detach().cpu() for k, v in module.state_dict().items()}, p)
        return p


def read_json(path: str | Path) -> Any:
    """Read a JSON file of a run, with a clear error when missing or broken."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: not found; is {path.parent} a finished glassnet run?") from None
    except (OSError, json.JSONDecodeError) as e:
        raise UserError(f"{path}: unreadable ({e})") from None


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Load saved weights safely (tensors only, ``weights_only=True``)."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: weights file not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for corrupt files
        raise UserError(f"{path}: cannot load weights ({e.__class__.__name__})") from None
