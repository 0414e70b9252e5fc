"""Helpers shared by the benchmark scripts: data lookup, tables, JSON output."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

import torch

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parent.parent / "shared" / "datasets"


def _commit() -> dict[str, Any] | None:
    """The commit the benchmark started at, and whether src/ or benchmarks/ differed from it
    (a preset's meaning changes between commits). None outside a git checkout."""

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(HERE.parent), *args], capture_output=True,
                              text=True, check=True).stdout.strip()  # fmt: skip

    try:
        return {"sha": git("rev-parse", "HEAD"),
                "dirty": bool(git("status", "--porcelain", "--", "src", "benchmarks"))}  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return None


STARTED_AT = _commit()  # read when the script starts: the editable install may change later


def data_dir(arg: str | None) -> str | None:
    """The data folder: the option, else $GLASSNET_DATA, else ../shared/datasets if present."""
    if arg:
        return arg
    if os.environ.get("GLASSNET_DATA"):
        return os.environ["GLASSNET_DATA"]
    return str(DEFAULT_DATA) if DEFAULT_DATA.exists() else None


def table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """Format rows as a plain text table."""

    def cell(v: Any) -> str:
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    widths = [max(len(c), *(len(cell(r.get(c, ""))) for r in rows)) for c in columns]
    line = "  ".join(c.ljust(w) for c, w in zip(columns, widths))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(cell(r.get(c, "")).ljust(w) for c, w in zip(columns, widths)) for r in rows]
    return "\n".join(out)


def write_json(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write benchmark results with machine information."""
    payload = {
        "when_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "commit": STARTED_AT,
        "machine": {
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        },
        **payload,
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path
