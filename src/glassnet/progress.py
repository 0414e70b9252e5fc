"""Progress reporting that library code can call without printing anything itself.

Library functions take a ``Progress``; the CLI passes a ``BarProgress`` (tqdm on a terminal),
everything else gets the silent base class. One bar per phase of work, started by the code that
knows the phase's size: a search its candidates' epochs, ``train_members`` its fold models, a
classifier's run its epochs; the experiments start one only for scikit-learn's own searches,
which report finished fits. A Progress survives ``sklearn.clone`` (deepcopy
returns the same object) so a skorch callback holding one keeps reporting to the same bar.
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["Progress", "BarProgress"]


class Progress:
    """Silent progress: every hook is a no-op. Subclass and override what you need."""

    def start(self, total: int, desc: str) -> None:
        """Begin a task of ``total`` steps."""

    def advance(self, n: int = 1) -> None:
        """Mark ``n`` steps done."""

    def note(self, text: str) -> None:
        """Show a short status (e.g. the current epoch) beside the bar."""

    def close(self) -> None:
        """Finish the current task."""

    def __deepcopy__(self, memo: dict) -> Progress:
        return self  # shared on purpose: clones of an estimator report to one bar

    def __getstate__(self) -> dict[str, Any]:
        return {}  # worker processes (n_jobs > 1) get a silent copy

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__class__ = Progress


class BarProgress(Progress):
    """tqdm bars on stderr; silent when stderr is not a terminal unless ``force`` is set."""

    def __init__(self, force: bool = False) -> None:
        self.enabled = force or sys.stderr.isatty()
        self._bar = None

    def start(self, total: int, desc: str) -> None:
        self.close()
        if self.enabled:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True)

    def advance(self, n: int = 1) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def note(self, text: str) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(text, refresh=False)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
