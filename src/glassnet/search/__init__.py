"""Training and search on the batched engine: the default deep ensemble, default spaces,
scikit-learn searches, the batched population, and Optuna-driven TPE search with pruning."""

from glassnet.search.adapter import NotBatchableError, train_members
from glassnet.search.cv import BlockedKFold, make_search, search_summary
from glassnet.search.deep_ensemble import DeepEnsembleRegressor
from glassnet.search.ensemble import EnsembleSearchCV
from glassnet.search.population import PopulationSearchCV
from glassnet.search.spaces import regression_distributions, regression_grid
from glassnet.search.tpe import REGRESSION_SPACE, TPESearchCV

__all__ = [
    "BlockedKFold",
    "DeepEnsembleRegressor",
    "EnsembleSearchCV",
    "NotBatchableError",
    "PopulationSearchCV",
    "REGRESSION_SPACE",
    "TPESearchCV",
    "make_search",
    "regression_distributions",
    "regression_grid",
    "search_summary",
    "train_members",
]
