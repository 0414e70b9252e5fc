"""Where data comes from: an explicit folder, the GLASSNET_DATA variable, or an embedded default."""

from __future__ import annotations

import os
from pathlib import Path

from glassnet.data.regression import RegressionData, generate_gapped, read_xy_csv
from glassnet.errors import UserError

__all__ = ["ENV_VAR", "data_dir_from", "load_regression"]

ENV_VAR = "GLASSNET_DATA"


def data_dir_from(data_dir: str | Path | None) -> tuple[Path | None, str]:
    """Return (folder, how it was named): the explicit option wins over the environment."""
    if data_dir is not None:
        return Path(data_dir), "`data_dir`"
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env), ENV_VAR
    return None, ""


def load_regression(
    train: str | Path | None = None,
    test: str | Path | None = None,
    data_dir: str | Path | None = None,
) -> RegressionData:
    """Load regression data from ``--train/--test``, a data folder, or the embedded generator."""
    if (train is None) != (test is None):
        raise UserError("`train` and `test` must be given together")
    if train is not None:
        x_tr, y_tr = read_xy_csv(train, "`train`")
        x_te, y_te = read_xy_csv(test, "`test`")
        return RegressionData(x_tr, y_tr, x_te, y_te, source=f"{train} + {test}")
    folder, how = data_dir_from(data_dir)
    if folder is not None:
        if not folder.is_dir():
            raise UserError(f"{how} {folder}: not a folder")
        sub = folder / "regression"
        tr, te = sub / "train_data.csv", sub / "test_data.csv"
        if not tr.exists() or not te.exists():
            raise UserError(
                f"{how} {folder}: expected regression/train_data.csv and regression/test_data.csv"
            )
        x_tr, y_tr = read_xy_csv(tr, how)
        x_te, y_te = read_xy_csv(te, how)
        return RegressionData(x_tr, y_tr, x_te, y_te, source=str(sub))
    return generate_gapped()  # fixed seed: the embedded data set is the same on every machine
