"""The Laplace approximation's evidence of a trained MLP: how well a penalty suits the data.

A net trained to a minimum of ``mean((y - f)^2) + wd/2 * |theta|^2`` is the most probable
weights (MAP) under Gaussian noise of variance s2 and a Gaussian prior of precision
alpha = n * wd / (2 * s2). Around those weights, the Laplace approximation with the
Gauss-Newton Hessian ``J^T J / s2 + alpha I`` (J: the (n, p) Jacobian of the outputs at the
training points) gives the log marginal likelihood of the data, the "evidence" by which a
Gaussian process chooses its kernel (MacKay 1992; Immer et al. 2021). By the matrix determinant
lemma the p x p determinant becomes the n x n one of ``I + K / (alpha s2)``, K = J J^T being the
net's tangent kernel at the training points, and the p log(alpha) terms cancel:

    log Z = -|r|^2 / (2 s2) - n/2 log(2 pi s2) - alpha/2 |theta|^2 - 1/2 log det(I + 2 K / (n wd))

Maximised over s2 at the tie above, s2 = mean(r^2) + wd/2 |theta|^2 (the training objective)
and log Z = -n/2 (1 + log(2 pi s2)) - 1/2 log det(I + 2 K / (n wd)). A small penalty fits the
points (small s2) but pays in the determinant for a kernel free to bend between them; a large
one pays in s2. Why it is glassnet's choice of penalty: on our development functions the best
penalty differs tenfold from one function to the next, plain cross-validation on 100 points chose
badly, and the last layer's evidence alone (``BayesianRidge``) cannot see the hidden layers fit
the noise; this evidence sees every weight.
"""

from __future__ import annotations

import math

import torch

from glassnet.activations import ACTIVATIONS
from glassnet.models import MLP

__all__ = ["log_evidence", "tangent_kernel"]


@torch.no_grad()
def tangent_kernel(model: MLP, X: torch.Tensor, activation: str) -> torch.Tensor:
    """K = J J^T (n, n), float64: J the Jacobian of the one output at the rows of X with
    respect to every weight and bias.

    Layer by layer, the gradient of output i with respect to a Linear layer's weight is the
    outer product of ``delta_i`` (the output's gradient at the layer's pre-activation) and
    ``a_i`` (the layer's input), so that layer adds ``(delta delta^T) * (a a^T + 1)`` (the
    1: its bias) to K without ever forming J (n x p: 53 MB for 100 points of the study's net).
    """
    grad_ = ACTIVATIONS[activation].grad_
    if grad_ is None:
        raise ValueError(f"no batched derivative for activation {activation!r}")
    layers = model.linear_layers()
    if layers[-1].out_features != 1:
        raise ValueError("the tangent kernel here is for one output")
    inputs, hidden = [], []
    a = X.double()  # (n, in)
    for i, lin in enumerate(layers):
        inputs.append(a)
        a = a @ lin.weight.double().T + lin.bias.double()  # (n, fan_out)
        if i < len(layers) - 1:
            a = ACTIVATIONS[activation].module()(a)
            hidden.append(a)
    n = len(X)
    K = torch.zeros(n, n, dtype=torch.float64)
    delta = torch.ones(n, 1, dtype=torch.float64)  # d output / d output
    for i in range(len(layers) - 1, -1, -1):
        K += (delta @ delta.T) * (inputs[i] @ inputs[i].T + 1.0)
        if i > 0:  # to the previous layer's pre-activation
            delta = grad_(delta @ layers[i].weight.double(), hidden[i - 1])  # (n, fan_in)
    return K


def log_evidence(K: torch.Tensor, residuals: torch.Tensor, theta_sq: float,
                 weight_decay: float) -> float:  # fmt: skip
    """The Laplace log evidence above, in nats, of a net trained with L2 penalty
    ``weight_decay`` on the mean squared error: K its tangent kernel (n, n), ``residuals`` y - f
    at the training points (n,), ``theta_sq`` the squared norm of all its weights and biases."""
    if not weight_decay > 0:
        raise ValueError(f"the evidence needs a penalty > 0, got {weight_decay}")
    n = len(residuals)
    r = residuals.double()
    s2 = float(r @ r) / n + weight_decay / 2 * theta_sq
    eig = torch.linalg.eigvalsh(K.double()).clamp_min(0.0)  # K is PSD; rounding may dip below 0
    log_det = float(torch.log1p(eig * (2.0 / (n * weight_decay))).sum())
    return -n / 2 * (1.0 + math.log(2 * math.pi * s2)) - 0.5 * log_det
