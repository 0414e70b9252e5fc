"""The documented default search spaces for the regression experiment.

Keys are skorch parameter names, so the same dict drives RandomizedSearchCV, GridSearchCV and
PopulationSearchCV.
"""

from __future__ import annotations

from collections.abc import Sequence

from scipy.stats import loguniform, uniform

__all__ = ["regression_distributions", "regression_grid"]


def regression_distributions(epoch_choices: Sequence[int] = (100, 250, 500, 1000)) -> dict:
    """Return the random-search distributions over lr, momentum, epochs and weight decay."""
    return {
        "lr": loguniform(1e-4, 5e-2),  # log-uniform: equal odds per decade
        "optimizer__momentum": uniform(0.0, 0.95),  # [0, 0.95]; near 1 with a large lr diverges
        "max_epochs": list(epoch_choices),
        "optimizer__weight_decay": loguniform(1e-5, 1e-2),
    }


def regression_grid(epoch_choices: Sequence[int] = (250, 1000)) -> dict:
    """Return the grid: 3 learning rates x 2 momenta x epoch choices x 2 weight decays."""
    return {
        "lr": [0.001, 0.01, 0.05],
        "optimizer__momentum": [0.5, 0.9],
        "max_epochs": list(epoch_choices),
        "optimizer__weight_decay": [0.0, 0.001],
    }
