"""The exceptions the CLI reports politely: a mistake in the user's input, an interruption."""

import re
from collections.abc import Callable

__all__ = [
    "UserError",
    "DivergedError",
    "NoModelError",
    "StorageError",
    "TrainingInterrupted",
    "require",
]


_PARAMETER = re.compile(r"`([a-z][a-z0-9_]*)`")


class UserError(Exception):
    """Bad input from the user (a file, a parameter); the message names it and what was expected.

    A parameter is written in backquotes (```lr` must be > 0``): the library's message names it
    as the library does (``lr must be > 0``); the CLI words it as its flag (``--lr must be > 0``)
    through :meth:`worded`."""

    def __init__(self, message: str) -> None:
        super().__init__(_PARAMETER.sub(r"\1", message))
        self.template = message

    def worded(self, name: Callable[[str], str]) -> str:
        """The message with each parameter renamed by ``name`` (``"lr"`` -> ``"--lr"``)."""
        return _PARAMETER.sub(lambda m: name(m.group(1)), self.template)


class DivergedError(RuntimeError):
    """Training produced a non-finite loss; searches score such a candidate as failed (NaN)."""


class NoModelError(RuntimeError):
    """A search or fit ended with nothing to return: every candidate (member, trial) diverged,
    or a study has no finished trial. The one failure every search raises, as scikit-learn's
    searches score single failures (NaN, listed) and fail only when nothing is left."""


class StorageError(OSError):
    """The study's database failed after it opened (stopped, full, read-only, damaged). An
    ``OSError`` naming the storage (password masked): the command says so in one line and
    keeps the run for ``glassnet resume``, as for a full disk."""


class TrainingInterrupted(BaseException):
    """Ctrl-C (or SIGTERM) during training. skorch turns a KeyboardInterrupt into a normal end
    of training; glassnet re-raises it as this, which nothing catches by accident (it is not an
    ``Exception``), so an interrupted run never passes for a finished one."""


def require(checks: list[tuple[bool, str]]) -> None:
    """Raise UserError with the message of the first check that is False."""
    for ok, message in checks:
        if not ok:
            raise UserError(message)
