"""Fixtures shared by the tests: small CSVs, a fast regression config, a PostgreSQL server."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
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
    """A regression config that trains in about a second: small net, few epochs, 2 folds, no
    figures (a test that looks at them asks for them)."""
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
        figures=False,
    )


class PostgresServer:
    """A real PostgreSQL server in a temporary folder on a free localhost port (trust auth),
    with a database ``glassnet``; ``stop()`` and ``start()`` it to play a failing server."""

    def __init__(self) -> None:
        found = shutil.which("initdb") or next(
            iter(glob.glob("/usr/lib/postgresql/*/bin/initdb")), None
        )
        if found is None:
            pytest.skip("PostgreSQL is not installed (Debian: apt-get install postgresql)")
        pytest.importorskip("psycopg2", reason="psycopg2-binary is not installed")
        self.bindir = os.path.dirname(os.path.realpath(found))
        self.as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        self.root = tempfile.mkdtemp(prefix="glassnet-pg-")
        if self.as_postgres:
            shutil.chown(self.root, "postgres", "postgres")  # initdb refuses to run as root
        self.data = os.path.join(self.root, "data")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self._ctl("initdb", "-D", self.data, "-A", "trust", "-U", "postgres")
        self.start()
        import psycopg2

        con = psycopg2.connect(host="127.0.0.1", port=self.port, user="postgres",
                               dbname="postgres")  # fmt: skip
        con.autocommit = True
        con.cursor().execute("CREATE DATABASE glassnet")
        con.close()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/glassnet"

    def _ctl(self, tool: str, *args: str) -> None:
        subprocess.run([*self.as_postgres, f"{self.bindir}/{tool}", *args], check=True,
                       capture_output=True, text=True)  # fmt: skip

    def start(self) -> None:
        opts = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
        self._ctl("pg_ctl", "-D", self.data, "-o", opts, "-l", os.path.join(self.root, "log"),
                  "-w", "start")  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        self._ctl("pg_ctl", "-D", self.data, "-m", mode, "-w", "stop")

    def close(self) -> None:
        subprocess.run([*self.as_postgres, f"{self.bindir}/pg_ctl", "-D", self.data, "-m",
                        "immediate", "stop"], capture_output=True)  # fmt: skip
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_url():
    """The URL of a PostgreSQL server shared by the tests that only use it."""
    server = PostgresServer()
    try:
        yield server.url
    finally:
        server.close()


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory):
    """Finished runs trained in seconds, shared by the tests that read runs back: a deep
    ensemble, the study's single net, and both classifiers (no figures: none is looked at)."""
    from glassnet.estimators import ClassificationConfig
    from glassnet.experiments.classification import run_classification
    from glassnet.experiments.regression import run_regression

    from .test_data_images import make_idx_folder

    root = tmp_path_factory.mktemp("tiny_runs")
    data = make_idx_folder(root / "data", n_train=120, n_test=30, n_classes=3)
    ens = RegressionConfig(search="deep-ensemble", members=2, ensemble_epochs=200, device="cpu",
                           figures=False)  # fmt: skip
    one = RegressionConfig(search="none", hidden=(16, 8), epochs=20, cv=2, device="cpu",
                           figures=False)  # fmt: skip
    cls = dict(data_dir=str(data), epochs=1, batch_size=32, device="cpu", figures=False)
    return {
        "ensemble": run_regression(ens, root / "ens").run_dir,
        "single": run_regression(one, root / "one").run_dir,
        "mlp": run_classification(ClassificationConfig(model="mlp", **cls), root / "mlp").run_dir,
        "lenet5": run_classification(ClassificationConfig(model="lenet5", **cls),
                                     root / "cnn").run_dir,  # fmt: skip
    }
