"""Configurations, presets and the estimators (skorch nets, searches) built from them."""

from glassnet.estimators.classification import (
    COMMON,
    KEEPS,
    MODELS,
    PRESETS,
    ClassificationConfig,
    build_module,
    make_classifier,
    module_class,
    module_kwargs,
)
from glassnet.estimators.regression import (
    COMMON_FIELDS,
    FOLDS,
    SEARCHES,
    RegressionConfig,
    build_regression_module,
    make_deep_ensemble,
    make_ensemble_search,
    make_regressor,
    make_tpe_search,
)

__all__ = [
    "COMMON",
    "COMMON_FIELDS",
    "FOLDS",
    "KEEPS",
    "MODELS",
    "PRESETS",
    "SEARCHES",
    "ClassificationConfig",
    "RegressionConfig",
    "build_module",
    "build_regression_module",
    "make_classifier",
    "make_deep_ensemble",
    "make_ensemble_search",
    "make_regressor",
    "make_tpe_search",
    "module_class",
    "module_kwargs",
]
