"""The study's experiments, each a config dataclass and a ``run_*`` function."""

from glassnet.experiments.classification import (
    ClassificationConfig,
    ClassificationResult,
    run_classification,
)
from glassnet.experiments.regression import RegressionConfig, RegressionResult, run_regression
from glassnet.experiments.study import StudyResult, reproduce

__all__ = [
    "ClassificationConfig",
    "ClassificationResult",
    "RegressionConfig",
    "RegressionResult",
    "StudyResult",
    "reproduce",
    "run_classification",
    "run_regression",
]
