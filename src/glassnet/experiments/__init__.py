"""The study's experiments, each a ``run_*`` function of a config (from ``glassnet.estimators``,
re-exported here)."""

from glassnet.estimators import ClassificationConfig, RegressionConfig
from glassnet.experiments.classification import ClassificationResult, run_classification
from glassnet.experiments.regression import RegressionResult, run_regression
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
