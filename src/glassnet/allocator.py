"""An opt-in, process-wide allocator setting for training speed (the CLI applies it)."""

from __future__ import annotations

import ctypes
import os

__all__ = ["keep_freed_memory"]


def keep_freed_memory() -> None:
    """Ask glibc to recycle large freed blocks instead of returning them to the kernel.

    Every training step allocates MB-sized activations; by default glibc serves them with
    fresh mmap()s whose pages the kernel zero-fills on first touch. Measured here: 25% of a
    LeNet-5 step at batch 512, 10% of a population-search epoch. Process-wide and idempotent;
    freed memory (up to 2 GiB) stays with the process. ``GLASSNET_KEEP_FREED_MEMORY=0`` turns
    it off; a no-op where glibc's mallopt is unavailable.
    """
    if os.environ.get("GLASSNET_KEEP_FREED_MEMORY", "1") == "0":
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 1 << 30)  # M_MMAP_THRESHOLD: serve blocks < 1 GiB from the heap
        libc.mallopt(-1, 1 << 31)  # M_TRIM_THRESHOLD: keep up to 2 GiB of freed heap
    except (OSError, AttributeError):
        pass
