"""The study's experiments, each a config dataclass and a ``run_*`` function."""

from glassnet.experiments.regression import RegressionConfig, RegressionResult, run_regression

__all__ = ["RegressionConfig", "RegressionResult", "run_regression"]
