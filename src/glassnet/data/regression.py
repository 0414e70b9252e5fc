"""1-D regression data: the CSV reader, the embedded gapped generator, and gap detection."""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from glassnet.errors import UserError

__all__ = [
    "RegressionData",
    "read_xy_csv",
    "read_inputs",
    "generate_gapped",
    "true_function",
    "find_gaps",
    "GENERATED_GAPS",
]

HEADER = ("input", "label")
# A 1-D regression CSV of a million rows is ~40 MB; anything past this is not one, and is
# refused before it is read into memory.
MAX_CSV_BYTES = 256 << 20
# Where the embedded generator leaves no training points (the study's data has gaps near -2, +2).
GENERATED_GAPS: tuple[tuple[float, float], ...] = ((-2.6, -1.4), (1.4, 2.6))


@dataclass
class RegressionData:
    """Train and test arrays (x shaped (n,), y shaped (n,)) and where they came from."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str  # human-readable: a path, or "generated (seed 0)"
    generated: bool = False


def read_xy_csv(path: str | Path, option: str = "CSV") -> tuple[np.ndarray, np.ndarray]:
    """Read two numeric columns (header ``input,label`` or none) and return (x, y) float arrays."""
    path = Path(path)
    where = f"{option} {path}"
    text = _read_text(path, where, "utf-8-sig")
    try:
        rows = [r for r in csv.reader(text.splitlines()) if any(c.strip() for c in r)]
    except csv.Error as e:  # a NUL byte, a field past the csv module's size limit
        raise UserError(f"{where}: not a readable CSV ({e})") from None
    if not rows:
        raise UserError(f"{where}: file is empty; expected a header 'input,label' and data rows")
    first = [c.strip() for c in rows[0]]
    start = 1
    if not _is_number(first[0]):
        if tuple(c.lower() for c in first) != HEADER:
            raise UserError(
                f"{where}: header is {_clip(','.join(first))!r}; expected 'input,label' "
                "(or no header and two numeric columns)"
            )
    else:
        start = 0
    data = rows[start:]
    if not data:
        raise UserError(f"{where}: has a header but no data rows")
    xs, ys = [], []
    for lineno, row in enumerate(data, start=start + 1):
        if len(row) != 2:
            raise UserError(f"{where}, line {lineno}: expected 2 columns, found {len(row)}")
        try:
            x, y = float(row[0]), float(row[1])
        except ValueError:
            raise UserError(
                f"{where}, line {lineno}: non-numeric value in {_clip(','.join(row))!r}"
            ) from None
        if not (math.isfinite(x) and math.isfinite(y)):
            bad = _clip(",".join(row))
            raise UserError(f"{where}, line {lineno}: NaN or infinite value in {bad!r}")
        xs.append(x)
        ys.append(y)
    return np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64)


def read_inputs(path: str | Path, option: str = "CSV") -> np.ndarray:
    """Read inputs to predict: one numeric column (optional header) or an input,label CSV."""
    path = Path(path)
    text = _read_text(path, f"{option} {path}", "utf-8", errors="replace")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if lines and "," in lines[-1]:
        return read_xy_csv(path, option)[0]
    values = []
    for i, ln in enumerate(lines, start=1):
        if not _is_number(ln):
            if i == 1:
                continue  # a header line
            raise UserError(f"{option} {path}, line {i}: not a number: {_clip(ln)!r}")
        values.append(float(ln))
    arr = np.asarray(values)
    if arr.size == 0:
        raise UserError(f"{option} {path}: no numbers found")
    if not np.isfinite(arr).all():
        raise UserError(f"{option} {path}: NaN or infinite input")
    return arr


def _read_text(path: Path, where: str, encoding: str, errors: str = "strict") -> str:
    """The text of a data file, refused with one line when missing, a folder, or too large."""
    if not path.exists():
        raise UserError(f"{where}: file not found")
    if not path.is_file():
        raise UserError(f"{where}: is a folder or device, expected a CSV file")
    size = path.stat().st_size
    if size > MAX_CSV_BYTES:
        raise UserError(f"{where}: {size:,} bytes; a regression CSV is expected to be far smaller")
    try:
        return path.read_text(encoding=encoding, errors=errors)
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{where}: cannot read ({e.__class__.__name__}: {e})") from None


def _clip(text: str, n: int = 60) -> str:
    """Enough of a bad line to recognise it, never a screenful."""
    return text if len(text) <= n else text[:n] + "..."


def _is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def true_function(x: np.ndarray) -> np.ndarray:
    """The embedded default's smooth target: f(x) = 0.05 x^3 + sin(1.5 x) + 2."""
    return 0.05 * x**3 + np.sin(1.5 * x) + 2.0


def generate_gapped(
    n_train: int = 100, n_test: int = 100, noise: float = 0.4, seed: int = 0
) -> RegressionData:
    """Return the embedded default data set.

    ``n_train`` points drawn uniformly on [-5, 5] outside the two gaps in ``GENERATED_GAPS``,
    labelled ``true_function(x) + N(0, noise^2)``; the test set is a noise-free grid of ``n_test``
    points over the whole interval, gaps included, so the test shows how the fit bridges them.
    """
    rng = np.random.default_rng(seed)
    xs: list[float] = []
    while len(xs) < n_train:  # rejection sampling keeps the distribution uniform off the gaps
        x = rng.uniform(-5.0, 5.0)
        if not any(lo <= x <= hi for lo, hi in GENERATED_GAPS):
            xs.append(x)
    x_train = np.asarray(xs)
    y_train = true_function(x_train) + rng.normal(0.0, noise, size=n_train)
    x_test = np.linspace(-5.0, 5.0, n_test)
    return RegressionData(
        x_train,
        y_train,
        x_test,
        true_function(x_test),
        source=f"{n_train} noisy points of 0.05x^3+sin(1.5x)+2 with gaps, generated (seed {seed})",
        generated=True,
    )


def find_gaps(x: np.ndarray, min_fraction: float = 0.1) -> list[tuple[float, float]]:
    """Return the gaps between consecutive sorted ``x`` wider than ``min_fraction`` of the range."""
    xs = np.sort(np.asarray(x, dtype=float))
    if len(xs) < 2:
        return []
    width = xs[-1] - xs[0]
    d = np.diff(xs)
    return [(float(xs[i]), float(xs[i + 1])) for i in np.flatnonzero(d > min_fraction * width)]


def input_grid(data: RegressionData, n: int = 400) -> np.ndarray:
    """Evenly spaced inputs over the range of all the data."""
    lo = min(data.x_train.min(), data.x_test.min())
    hi = max(data.x_train.max(), data.x_test.max())
    return np.linspace(lo, hi, n)
