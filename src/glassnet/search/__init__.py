"""Hyperparameter search: default spaces and the wiring of scikit-learn searches."""

from glassnet.search.cv import make_search, search_summary
from glassnet.search.population import NotBatchableError, PopulationSearchCV
from glassnet.search.spaces import regression_distributions, regression_grid

__all__ = [
    "NotBatchableError",
    "PopulationSearchCV",
    "make_search",
    "regression_distributions",
    "regression_grid",
    "search_summary",
]
