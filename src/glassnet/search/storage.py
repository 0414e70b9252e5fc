"""Where a study lives, and how its workers keep it whole when one of them dies.

``--storage`` takes a database URL (``sqlite:///study.db``, ``postgresql://user@host/db``) or an
Optuna journal file (``study.log``; Optuna's advice for several processes on one machine,
where SQLite's locks serialise them).

A worker can die mid-trial (``kill -9``, a lost machine) and leave trials RUNNING that nobody
will finish. On a database, every worker records a heartbeat for the trials it trains
(``heartbeats``) and, before it asks for new trials, fails the trials whose heartbeat has gone
quiet (``fail_stale``). A failed trial of a dead worker is asked again, once, with the same
parameters (``retry_once``): whoever asks next trains it. A resumed run does the same for the
trials it left behind (``search.studies.trials_left``), on any storage.

A run given no ``--storage`` keeps its study in its own folder as a journal file
(``run_study``): one process writes it, and on the regression TPE search an SQLite file there
cost about a fifth of the search's time (every report, attribute and tell is a transaction
with an fsync; measured in the closing note of issue 20), the journal an append each.
"""

from __future__ import annotations

import errno
import re
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from glassnet.errors import StorageError, UserError
from glassnet.redact import mask_url

__all__ = [
    "GRACE_S",
    "HEARTBEAT_S",
    "JOURNAL_SUFFIXES",
    "ask",
    "fail_stale",
    "heartbeats",
    "load_study",
    "reason",
    "retry_once",
    "run_study",
    "storage_faults",
    "storage_from_url",
]

# A worker records a heartbeat for each trial it trains every HEARTBEAT_S seconds; a trial
# whose last one is older than GRACE_S is taken for dead. Several beats fit in the grace, so a
# busy database or a slow step does not fail a live trial.
HEARTBEAT_S = 10
GRACE_S = 60
RUN_STUDY = "optuna.log"  # a run's own study (no --storage): a journal file in its folder
RUN_STUDY_BEFORE = "optuna.db"  # ... an SQLite file, in run folders made before
JOURNAL_SUFFIXES = (".log", ".journal")  # --storage FILE.log: an Optuna journal file


def storage_from_url(url: str, heartbeat: int = HEARTBEAT_S, grace: int = GRACE_S) -> Any:
    """The Optuna storage ``--storage`` names: a database (with heartbeats every ``heartbeat``
    seconds, stale after ``grace``), or a journal file. UserError when it cannot be opened."""
    import optuna

    if "://" not in url:
        if Path(url).suffix in JOURNAL_SUFFIXES:
            return _journal(url)
        raise UserError(f"`storage` {mask_url(url)}: not a database URL or journal file (e.g. "
                        "sqlite:///study.db, postgresql://user@host/db, study.log)")  # fmt: skip
    if url.startswith(("postgresql://", "postgres://")):
        # SQLAlchemy 2.1 reads a bare postgresql:// as psycopg 3; glassnet ships psycopg2
        url = "postgresql+psycopg2://" + url.split("://", 1)[1]
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):  # several workers on one file wait for each other's writes
        kwargs = {"connect_args": {"timeout": 60}}
    for attempt in range(6):
        try:
            with _quiet():  # heartbeats are "experimental" in Optuna; glassnet relies on them
                return optuna.storages.RDBStorage(
                    url, engine_kwargs=kwargs, heartbeat_interval=heartbeat, grace_period=grace,
                    heartbeat_stale_trial_callback=retry_once,
                )  # fmt: skip
        except Exception as e:  # noqa: BLE001 - SQLAlchemy and the drivers raise many types
            # Two workers creating a new database's tables at once: one wins, the other
            # finds them made once it tries again. Anything else is the URL's fault.
            racing = any(w in str(e) for w in ("UNIQUE constraint", "already exists", "locked"))
            if not racing or attempt == 5:
                raise UserError(f"`storage` {mask_url(url)}: cannot open ({reason(e)})") from None
            time.sleep(0.2 * (attempt + 1))


def run_study(file: Any) -> str:
    """The storage of a run's own study: ``file(name)`` is the path of ``name`` in the run's
    folder (``RunWriter.file``). A journal file, or the SQLite file a run made before has
    there, so that it resumes from its own trials."""
    before = Path(file(RUN_STUDY_BEFORE))
    return f"sqlite:///{before}" if before.exists() else str(file(RUN_STUDY))


def _journal(path: str) -> Any:
    import optuna
    from optuna.storages.journal import JournalFileBackend

    file = Path(path)
    if file.is_symlink() or (file.exists() and not file.is_file()):
        raise UserError(f"`storage` {path}: not a plain file (a journal file is written in place)")
    if not file.parent.is_dir():
        raise UserError(f"`storage` {path}: folder {file.parent} does not exist")
    try:
        return optuna.storages.JournalStorage(JournalFileBackend(str(file)))
    except Exception as e:  # noqa: BLE001 - a journal that is not Optuna's, or unreadable
        raise UserError(f"`storage` {path}: cannot open the journal ({reason(e)})") from None


def load_study(url: str, name: str | None) -> Any:
    """An existing study in ``url`` (UserError when the storage cannot be opened)."""
    import optuna

    return optuna.load_study(study_name=name, storage=storage_from_url(url))


def reason(e: BaseException) -> str:
    """The first line of the driver's own message: Optuna and SQLAlchemy wrap it in theirs."""
    while e.__cause__ is not None or e.__context__ is not None:
        e = e.__cause__ or e.__context__  # type: ignore[assignment]
    text = str(e).splitlines()[0] if str(e) else type(e).__name__
    # a driver's message may quote the URL it was given: never its password
    text = re.sub(r"(://[^:/@\s]*):[^@\s]*@", r"\1:***@", text)
    return text.split(" (Background on this error")[0][:200]


@contextmanager
def storage_faults(url: str | None) -> Iterator[None]:
    """Turn a database failure while a study is in use into ``StorageError`` (one line naming
    the storage, password masked; the run is kept for resume). Optuna wraps the driver's error
    in a misleading one ("... exceeding max length"): the message is the driver's own."""
    import optuna
    import sqlalchemy.exc

    try:
        yield
    except (sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError) as e:
        where = mask_url(url) or "the study's storage"
        raise StorageError(errno.EIO, f"the study's database failed ({reason(e)})",
                           where) from None  # fmt: skip


def retry_once(study: Any, trial: Any) -> None:
    """Queue a dead worker's trial again with its parameters (state WAITING: the next ``ask``
    of any worker takes it), unless it is itself a retry: a trial that kills its worker twice
    is left failed."""
    import optuna

    with _quiet():
        optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1)(study, trial)


def ask(study: Any, distributions: dict[str, Any]) -> Any:
    """``study.ask``, without Optuna's warning that heartbeats are meant for ``optimize``:
    glassnet asks and tells itself, and sends the heartbeats (``heartbeats``)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Heartbeat of storage", category=UserWarning)
        return study.ask(distributions)


def fail_stale(study: Any) -> None:
    """Fail the study's trials whose heartbeat has gone quiet, and queue each again once.
    Called before asking: a worker's own trials are never stale while it beats for them."""
    import optuna

    with _quiet():
        optuna.storages.fail_stale_trials(study)


@contextmanager
def heartbeats(study: Any, trials: Sequence[Any]) -> Iterator[None]:
    """While the block runs, record a heartbeat for each of ``trials`` every
    ``heartbeat_interval`` seconds (none on a storage without heartbeats). The first is
    recorded before the block starts, so a trial is never RUNNING without one for long."""
    from optuna.storages._heartbeat import BaseHeartbeat, is_heartbeat_enabled

    storage = study._storage
    if not (isinstance(storage, BaseHeartbeat) and is_heartbeat_enabled(storage)):
        yield
        return
    ids = [t._trial_id for t in trials]
    stop = threading.Event()

    def beat() -> None:
        for i in ids:
            try:
                storage.record_heartbeat(i)
            except Exception:  # noqa: BLE001 - the training thread meets a dead database itself
                return

    beat()
    interval = storage.get_heartbeat_interval()

    def loop() -> None:
        while not stop.wait(interval):
            beat()

    thread = threading.Thread(target=loop, name="glassnet-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


@contextmanager
def _quiet() -> Iterator[None]:
    """Optuna's "experimental feature" warnings: about its API, not the user's settings."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        warnings.simplefilter("ignore", FutureWarning)
        yield
