"""What glassnet refuses up front, and why: limits checked before any work starts.

Each limit keeps a run from failing late (after minutes of training) or taking the machine
down; the README's "What glassnet refuses" table lists them.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "MAX_PARAMETERS",
    "MAX_REGRESSION_ROWS",
    "MAX_SEED",
    "mlp_parameters",
    "net_checks",
    "seed_check",
]

# A net's parameter count: 50 M float32 parameters are 200 MB, ~1 GB while Adam trains them
# (weights, gradients, two moments, a copy for the best epoch); the study's nets have 0.1-0.5 M.
MAX_PARAMETERS = 50_000_000
# Training rows a regression run holds in memory; its searches keep every (candidate, fold)
# member's activations for the whole batch.
MAX_REGRESSION_ROWS = 200_000
# numpy and torch take seeds in [0, 2**32 - 1]
MAX_SEED = 2**32 - 1


def mlp_parameters(n_in: int, hidden: Sequence[int], n_out: int) -> int:
    """Weights and biases of an MLP n_in -> hidden... -> n_out."""
    widths = [n_in, *hidden, n_out]
    return sum((a + 1) * b for a, b in zip(widths[:-1], widths[1:]))


def net_checks(hidden: Sequence[int], n_in: int, n_out: int, copies: int = 1
               ) -> list[tuple[bool, str]]:  # fmt: skip
    """``--hidden``: positive widths, and a net (times ``copies`` trained at once) that fits."""
    ok = len(hidden) >= 1 and all(isinstance(h, int) and h >= 1 for h in hidden)
    checks = [(ok, f"`hidden` must be one or more positive widths, got {tuple(hidden)}")]
    if ok:
        n = mlp_parameters(n_in, hidden, n_out) * copies
        checks.append((
            n <= MAX_PARAMETERS,
            f"`hidden` {' '.join(map(str, hidden))}: {n:,} parameters to train at once "
            f"(~{n * 20 / 2**30:.1f} GiB); the limit is {MAX_PARAMETERS:,}",
        ))  # fmt: skip
    return checks


def seed_check(seed: int) -> tuple[bool, str]:
    return (0 <= seed <= MAX_SEED, f"`seed` must be in [0, {MAX_SEED}], got {seed}")
