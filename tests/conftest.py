"""Tiny fixtures shared by the tests: small CSVs and a fast regression config."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from glassnet.estimators import RegressionConfig

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def write_csv(path: Path, x: np.ndarray, y: np.ndarray, header: bool = True) -> Path:
    lines = (["input,label"] if header else []) + [
        f"{float(a)!r},{float(b)!r}" for a, b in zip(x, y)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def small_csvs(tmp_path: Path) -> tuple[Path, Path]:
    """A 30-point train and 20-point test CSV of a smooth function."""
    rng = np.random.default_rng(1)
    x = np.sort(rng.uniform(-3, 3, 30))
    xt = np.linspace(-3, 3, 20)
    tr = write_csv(tmp_path / "train.csv", x, np.sin(x) + 0.05 * rng.normal(size=30))
    te = write_csv(tmp_path / "test.csv", xt, np.sin(xt))
    return tr, te


@pytest.fixture
def fast_cfg(small_csvs) -> RegressionConfig:
    """A regression config that trains in about a second: small net, few epochs, 2 folds."""
    tr, te = small_csvs
    return RegressionConfig(
        train=str(tr),
        test=str(te),
        hidden=(16, 8),
        search="random",
        n_iter=3,
        cv=2,
        epoch_choices=(20, 40),
        epochs=40,
        lr=0.05,
        momentum=0.9,
        weight_decay=0.0,
        probe_x=(-1.0, 0.0, 1.0),
        device="cpu",
    )
