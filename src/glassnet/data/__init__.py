"""Data readers and sources: regression CSVs, the embedded generator, IDX/MNIST."""

from glassnet.data.regression import (
    RegressionData,
    find_gaps,
    generate_gapped,
    read_xy_csv,
    true_function,
)
from glassnet.data.sources import ENV_VAR, load_regression

__all__ = [
    "ENV_VAR",
    "RegressionData",
    "find_gaps",
    "generate_gapped",
    "load_regression",
    "read_xy_csv",
    "true_function",
]
