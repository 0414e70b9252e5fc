"""Run folders: written under a temporary name, renamed into place only when complete."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from glassnet.errors import DivergedError, NoModelError, UserError

__all__ = [
    "RunWriter",
    "atomic_write",
    "check_settings_unchanged",
    "default_run_dir",
    "final_dir",
    "partial_dir",
    "save_atomic",
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


def partial_dir(final: str | Path) -> Path:
    """Where a run bound for ``final`` is written until it is complete: ``.<name>.partial``
    beside it. One fixed name, so a second run given the same ``--out`` cannot start beside a
    first one, and ``glassnet resume OUT`` finds an interrupted run from its ``--out``."""
    final = Path(final)
    return final.parent / f".{final.name}.partial"


def final_dir(path: str | Path) -> Path:
    """The run folder a path names: ``--out`` itself, or the one a ``.partial`` folder is for."""
    path = Path(path)
    name = path.name
    if name.startswith(".") and name.endswith(".partial"):
        return path.parent / name[1 : -len(".partial")]
    return path


_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)  # POSIX: never open through a symbolic link


def _open_new(path: Path, mode: str = "wb", **kw: Any) -> Any:
    """Open ``path`` for writing without following a symbolic link there: a link planted in
    its place is removed (a new file is made), never written through."""
    if path.is_symlink():
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _NOFOLLOW, 0o644)
    return os.fdopen(fd, mode, **kw)


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that the file is either the old one or the whole new one:
    a temporary file beside it, flushed to disk, renamed over it, and the rename made durable.
    Neither file is followed through a symbolic link (a rename replaces a link, not its
    target)."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with _open_new(tmp) as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:  # a full disk says ENOSPC without naming the file: name it
        tmp.unlink(missing_ok=True)
        raise OSError(e.errno, f"cannot write ({e.strerror or e})", str(path)) from None
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    try:  # makes a rename durable on POSIX; directories cannot be opened on Windows
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


_DIGEST = ".config.sha256"  # beside config.json: what the run was started with
_RUN_ID = ".run-id"  # this run's own name, the same after a resume


def _digest(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def check_settings_unchanged(folder: Path) -> None:
    """Refuse (UserError) to resume a partial folder whose config.json is not the one its run
    wrote: a checkpoint continued under other settings (another split, schedule, width or
    kind of run) would end as a run nobody asked for."""
    config, digest = folder / "config.json", folder / _DIGEST
    if config.exists() and digest.exists() and _digest(config) != digest.read_text().strip():
        raise UserError(
            f"{config}: changed since the run started; resume continues only the run as it "
            f"was started (restore the file, or start a new run)"
        )


class _Lock:
    """An exclusive lock on ``folder/.lock``, held while a process writes the folder; the
    operating system releases it when the process dies, however it dies."""

    def __init__(self, folder: Path, what: str) -> None:
        path = folder / ".lock"
        if path.is_symlink():
            raise UserError(f"{what}: {path} is a symbolic link; glassnet made no such file")
        fd = os.open(path, os.O_RDWR | os.O_CREAT | _NOFOLLOW, 0o644)
        self.file = os.fdopen(fd, "a+")  # held for the run's life
        try:
            import fcntl
        except ImportError:  # Windows: the folder's exclusive creation is the only guard
            return
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.file.seek(0)
            pid = self.file.read().strip() or "?"
            self.file.close()
            raise UserError(
                f"{what}: another glassnet process (pid {pid}) is writing it now"
            ) from None
        self.file.seek(0)
        self.file.truncate()
        self.file.write(str(os.getpid()))
        self.file.flush()

    def release(self) -> None:
        self.file.close()


class RunWriter:
    """Context manager owning a run folder.

    Everything is written into ``.<name>.partial`` beside the final folder (see ``partial_dir``),
    under a lock; on success it is renamed to the final name (atomic on one filesystem). The
    partial folder is deleted when the run fails on bad input (``UserError``) or before it has
    recorded its configuration; any other end (Ctrl-C, a kill, a full disk, a crash) leaves it,
    never looking finished, for ``glassnet resume``. ``resume=True`` reopens such a folder;
    a resume that fails leaves it as it found it.
    """

    def __init__(self, out: str | Path, resume: bool = False) -> None:
        self.final = Path(out)
        self.path = partial_dir(self.final)
        self.resumed = resume
        try:  # TensorBoard, JSON and the report need the folder's name as text
            str(self.final.resolve()).encode("utf-8")
        except UnicodeEncodeError:
            raise UserError(
                f"`out` {ascii(str(self.final))}: the path is not valid UTF-8; choose a name "
                "whose bytes are text"
            ) from None
        where = f"`out` {self.final}"
        # Never write through a symbolic link: a link at --out, or one planted where the
        # partial folder goes, would send the run (and a resume) somewhere else.
        for p, what in ((self.final, where), (self.path, f"{where}: {self.path}")):
            if p.is_symlink():
                raise UserError(
                    f"{what} is a symbolic link; glassnet writes only into a real folder it "
                    "made (give another path, or remove the link)"
                )
        if resume:
            if not self.path.is_dir():
                raise UserError(f"{self.final}: no interrupted run to resume ({self.path} absent)")
            if self.final.exists() and (not self.final.is_dir() or any(self.final.iterdir())):
                raise UserError(
                    f"{self.final}: already a finished run; {self.path} is left over from an "
                    "earlier attempt and is not resumed (delete it)"
                )
            check_settings_unchanged(self.path)
            self._lock = _Lock(self.path, str(self.final))
            tag = self.file(_RUN_ID)
            self.run_id = tag.read_text().strip() if tag.is_file() else self.path.name
            return
        if self.final.exists() and (not self.final.is_dir() or any(self.final.iterdir())):
            raise UserError(f"{where}: already exists and is not empty")
        if self.path.is_dir() and not (self.path / "config.json").exists():
            _Lock(self.path, where).release()  # raises if a live process still writes it
            shutil.rmtree(self.path, ignore_errors=True)  # killed before it recorded anything
        try:
            self.final.parent.mkdir(parents=True, exist_ok=True)
            self.path.mkdir()  # exclusive: of two runs given the same --out, one gets here
        except FileExistsError:
            raise UserError(
                f"{where}: {self.path} exists: another run is writing it, or an interrupted "
                f"one left it (continue it with `glassnet resume {self.final}`, or delete it)"
            ) from None
        except OSError as e:
            raise UserError(f"{where}: cannot write there ({e.strerror})") from None
        self._lock = _Lock(self.path, where)
        import uuid

        self.run_id = uuid.uuid4().hex  # names this run's trials in a shared Optuna study
        atomic_write(self.file(_RUN_ID), self.run_id.encode())

    def __enter__(self) -> RunWriter:
        self.json("environment.json", software_versions())
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self._lock.release()
            if self.resumed:  # a resume that fails leaves the interrupted run as it was
                return
            # bad input, or settings that trained nothing: there is nothing to resume
            dead_end = issubclass(exc_type, (UserError, NoModelError, DivergedError))
            if dead_end or not self.file("config.json").exists():
                shutil.rmtree(self.path, ignore_errors=True)
            return
        self.file("checkpoint.pt").unlink(missing_ok=True)  # the finished run needs none
        self.file(_DIGEST).unlink(missing_ok=True)
        self.file(_RUN_ID).unlink(missing_ok=True)
        self.file(".lock").unlink(missing_ok=True)
        self._lock.release()
        if self.final.exists():  # an empty folder we were allowed to fill
            self.final.rmdir()
        os.replace(self.path, self.final)
        _fsync_dir(self.final.parent)

    def file(self, name: str) -> Path:
        """Return the path of ``name`` inside the (temporary) run folder."""
        return self.path / name

    def json(self, name: str, obj: Any) -> Path:
        """Write ``obj`` as indented JSON (atomically) and return its path."""
        p = self.file(name)
        atomic_write(p, (json.dumps(to_jsonable(obj), indent=2) + "\n").encode())
        return p

    def settings(self, obj: Any) -> Path:
        """Write the run's settings (config.json), and their digest beside them: what resume
        checks the settings against (``check_settings_unchanged``)."""
        p = self.json("config.json", obj)
        atomic_write(self.file(_DIGEST), _digest(p).encode())
        return p

    def csv(self, name: str, rows: list[dict[str, Any]]) -> Path:
        """Write a list of dicts as CSV (columns from the first row) and return its path."""
        p = self.file(name)
        with _open_new(p, "w", newline="") as f:
            if rows:
                w = csv.DictWriter(f, fieldnames=list(rows[0]))
                w.writeheader()
                w.writerows(to_jsonable(rows))
        return p

    def figure(self, name: str, fig: Any) -> Path:
        """Save a matplotlib figure as PNG and return its path (glassnet's figures are not
        registered with pyplot, so there is nothing to close)."""
        p = self.file(name)
        with _open_new(p) as f:
            fig.savefig(f, format="png", dpi=110, bbox_inches="tight")
        return p

    def weights(self, module: torch.nn.Module, name: str = "weights.pt") -> Path:
        """Save ``module.state_dict()`` and return its path."""
        p = self.file(name)
        save_atomic({k: v.detach().cpu() for k, v in module.state_dict().items()}, p)
        return p

    def checkpoint(self, state: dict[str, Any]) -> Path:
        """Save the state a resumed run continues from (``checkpoint.pt``), atomically."""
        p = self.file("checkpoint.pt")
        save_atomic(_plain(state), p)
        return p

    def load_checkpoint(self) -> dict[str, Any] | None:
        """The last checkpoint saved in this folder, or None when there is none yet."""
        p = self.file("checkpoint.pt")
        return load_state_dict(p) if p.exists() else None


def _plain(obj: Any) -> Any:
    """numpy scalars and arrays (as in skorch's history) made Python numbers and tensors, the
    types a ``weights_only`` load accepts."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_plain(v) for v in obj)
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(obj)
    return obj


def save_atomic(obj: Any, path: Path) -> None:
    """``torch.save`` through ``atomic_write``: a reader never sees half a file."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write(path, buf.getvalue())


def read_json(path: str | Path) -> Any:
    """Read a JSON file of a run, with a clear error when missing or broken."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: not found; is {path.parent} a finished glassnet run?") from None
    except (OSError, json.JSONDecodeError) as e:
        raise UserError(f"{path}: unreadable ({e})") from None


def load_state_dict(path: str | Path) -> dict[str, Any]:
    """Load saved weights or a checkpoint safely: ``weights_only=True`` unpickles tensors and
    plain containers only, so a file carrying code is refused, never run."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: weights file not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for corrupt files
        if "weights_only" in str(e) or "Weights only load failed" in str(e):
            raise UserError(
                f"{path}: holds objects other than tensors; refused (unpickling it could run "
                "code). glassnet only loads files it wrote"
            ) from None
        raise UserError(f"{path}: cannot load weights ({e.__class__.__name__})") from None
