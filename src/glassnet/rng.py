"""Seeded blocks that leave the caller's random generators as they found them."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

__all__ = ["seeded"]


@contextmanager
def seeded(seed: int | None) -> Iterator[None]:
    """Run a block with Python's, numpy's and torch's global generators seeded from ``seed``
    (``None``: left as they are), and restore all three afterwards.

    PyTorch draws weight initialisation, dropout masks and Captum's noise from its global
    generator and takes no generator argument for them, so a library function that must be
    repeatable seeds inside this block instead of reseeding the process for its caller.
    """
    py_state, np_state = random.getstate(), np.random.get_state()
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    try:
        with torch.random.fork_rng(devices=devices):
            if seed is not None:
                random.seed(seed)
                np.random.seed(seed % 2**32)
                torch.manual_seed(seed)
            yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
