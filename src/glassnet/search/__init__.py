"""Hyperparameter search: default spaces and the wiring of scikit-learn searches."""

from glassnet.search.adapter import NotBatchableError, train_members
from glassnet.search.cv import BlockedKFold, make_search, search_summary
from glassnet.search.ensemble import EnsembleSearchCV
from glassnet.search.population import PopulationSearchCV
from glassnet.search.spaces import regression_distributions, regression_grid

__all__ = [
    "BlockedKFold",
    "EnsembleSearchCV",
    "NotBatchableError",
    "PopulationSearchCV",
    "make_search",
    "regression_distributions",
    "regression_grid",
    "search_summary",
    "train_members",
]
