"""Classical references every run reports, so a user sees at once whether the net is worth it."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import RBF, WhiteKernel
from sklearn.gaussian_process.kernels import ConstantKernel as Constant

__all__ = ["GP_MAX_POINTS", "GaussianProcessBaseline", "fit_gaussian_process"]

# A GP's fit costs n^3 time and n^2 memory (20,000 points: 12 GB); past this many training
# points the baseline is fitted on a seeded random subsample of this size, and says so.
GP_MAX_POINTS = 2000
# Restarts of the marginal-likelihood optimiser from random kernel settings: one start can stop
# in a poor local optimum (a long length scale that reads the data as noise); 5 is what a
# careful user runs.
GP_RESTARTS = 5


@dataclass
class GaussianProcessBaseline:
    """A fitted Gaussian process: scikit-learn's regressor and its learned kernel."""

    model: GaussianProcessRegressor
    n_fit: int = 0  # training points the GP saw (fewer than given past GP_MAX_POINTS)

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return (mean, latent std, predictive std) at the 1-D inputs ``x``.

        The latent std is the uncertainty about the function itself (comparable with an
        ensemble's spread); the predictive std adds the fitted noise level.
        """
        mean, std = self.model.predict(np.asarray(x, dtype=float).reshape(-1, 1), return_std=True)
        # sklearn's std includes the WhiteKernel noise; take it out for the function's own.
        noise = self.noise_variance * float(getattr(self.model, "_y_train_std", 1.0)) ** 2
        latent = np.sqrt(np.clip(std**2 - noise, 0.0, None))
        return mean, latent, std

    @property
    def noise_variance(self) -> float:
        """The fitted WhiteKernel level (in the normalised target's units)."""
        return float(self.model.kernel_.k2.noise_level)

    def describe(self) -> str:
        """The learned kernel, e.g. ``2.76**2 * RBF(length_scale=1.69) + WhiteKernel(...)``."""
        return str(self.model.kernel_)


def fit_gaussian_process(
    x: np.ndarray, y: np.ndarray, seed: int = 0, restarts: int = GP_RESTARTS
) -> GaussianProcessBaseline:
    """Fit ConstantKernel x RBF + WhiteKernel with ``normalize_y=True`` to 1-D data.

    Hyperparameters (amplitude, length scale, noise) by maximum marginal likelihood on the
    training data alone, the best of 1 + ``restarts`` starts of the optimiser (seeded); 100
    points take about a second. At most ``GP_MAX_POINTS`` points are used (a seeded subsample).
    """
    x = np.asarray(x, dtype=float).reshape(-1, 1)
    y = np.asarray(y, dtype=float).ravel()
    if len(x) > GP_MAX_POINTS:
        keep = np.sort(np.random.default_rng(seed).choice(len(x), GP_MAX_POINTS, replace=False))
        x, y = x[keep], y[keep]
    kernel = Constant(1.0) * RBF(length_scale=1.0) + WhiteKernel(noise_level=0.1)
    gp = GaussianProcessRegressor(
        kernel, normalize_y=True, n_restarts_optimizer=restarts, random_state=seed
    )
    with warnings.catch_warnings():  # a noise level at its bound is an answer, not a fault
        warnings.simplefilter("ignore", ConvergenceWarning)
        gp.fit(x, y)
    return GaussianProcessBaseline(gp, n_fit=len(x))
