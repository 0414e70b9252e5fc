"""The Laplace evidence: the tangent kernel against torch.func's Jacobian, the evidence against
the Laplace approximation written out in weight space on a net small enough to do so."""

import math

import numpy as np
import pytest
import torch
from torch.func import functional_call, jacrev

from glassnet.models import MLP
from glassnet.rng import seeded
from glassnet.search.laplace import log_evidence, tangent_kernel


def _jacobian(net: MLP, X: torch.Tensor) -> torch.Tensor:
    """J (n, p): every output's gradient with respect to every parameter, by autograd."""
    params = {k: v.detach().double() for k, v in net.named_parameters()}
    net = net.double()
    J = jacrev(lambda p: functional_call(net, p, (X.double(),))[:, 0])(params)
    return torch.cat([J[k].reshape(len(X), -1) for k in params], 1)


@pytest.mark.parametrize("activation, n_in, hidden", [("tanh", 1, (7, 5)), ("relu", 3, (6,)),
                                                      ("sigmoid", 2, (4, 5, 3))])  # fmt: skip
def test_tangent_kernel_is_the_jacobian_gram_matrix(activation, n_in, hidden):
    with seeded(3):
        net = MLP(n_in, hidden, 1, activation)
        X = torch.randn(9, n_in)
    K = tangent_kernel(net, X, activation)
    J = _jacobian(net, X)
    torch.testing.assert_close(K, J @ J.T, rtol=1e-10, atol=1e-10)


def test_evidence_is_the_laplace_approximation_in_weight_space():
    # A 1-3-2-1 net (17 weights): log Z = log p(y|theta) + log p(theta) - 1/2 log det(H / 2pi)
    # with H = J^T J / s2 + alpha I, s2 = the training objective, alpha = n wd / (2 s2); no
    # kernel, no determinant lemma.
    with seeded(1):
        net = MLP(1, (3, 2), 1, "tanh")
        X = torch.linspace(-2, 2, 8).reshape(-1, 1)
        y = torch.sin(2 * X[:, 0]) + 0.1 * torch.randn(8)
    wd = 3e-3
    with torch.no_grad():
        r = (y - net(X)[:, 0]).double()
    theta = torch.cat([p.detach().double().ravel() for p in net.parameters()])
    n, p = len(X), len(theta)
    J = _jacobian(net, X)
    s2 = float(r @ r) / n + wd / 2 * float(theta @ theta)
    alpha = n * wd / (2 * s2)
    H = J.T @ J / s2 + alpha * torch.eye(p, dtype=torch.float64)
    want = (-float(r @ r) / (2 * s2) - n / 2 * math.log(2 * math.pi * s2)  # likelihood
            + p / 2 * math.log(alpha / (2 * math.pi)) - alpha / 2 * float(theta @ theta)  # prior
            - 0.5 * float(torch.logdet(H / (2 * math.pi))))  # fmt: skip
    got = log_evidence(tangent_kernel(net, X, "tanh"), r, float(theta @ theta), wd)
    assert got == pytest.approx(want, rel=1e-9)

    # s2 is the noise variance the evidence prefers, given the penalty's tie to the prior
    def at(scale: float) -> float:
        s, a = s2 * scale, n * wd / (2 * s2 * scale)
        H = J.T @ J / s + a * torch.eye(p, dtype=torch.float64)
        return (-float(r @ r) / (2 * s) - n / 2 * math.log(2 * math.pi * s)
                + p / 2 * math.log(a / (2 * math.pi)) - a / 2 * float(theta @ theta)
                - 0.5 * float(torch.logdet(H / (2 * math.pi))))  # fmt: skip

    assert at(1.0) == pytest.approx(want, rel=1e-12)
    assert at(0.8) < want and at(1.25) < want
    with pytest.raises(ValueError, match="penalty > 0"):
        log_evidence(torch.eye(3), torch.ones(3), 1.0, 0.0)


def test_keep_takes_the_members_of_highest_evidence():
    from glassnet.search.deep_ensemble import DeepEnsembleRegressor

    rng = np.random.default_rng(0)
    x = np.sort(rng.uniform(-3, 3, 40))
    y = np.sin(2 * x) + 0.1 * rng.normal(size=40)
    kw = dict(hidden=(16, 8), n_members=4, epochs=80, lr=0.01,
              weight_decay=(1e-5, 1e-3, 1e-1, 1.0), random_state=1)  # fmt: skip
    every = DeepEnsembleRegressor(**kw).fit(x, y)
    best = DeepEnsembleRegressor(**kw, keep=2).fit(x, y)
    ev = every.evidence_
    assert np.isfinite(ev).all() and len(set(ev)) == 4
    np.testing.assert_array_equal(best.evidence_, ev)  # the same members, trained the same
    top = sorted(np.argsort(-ev)[:2])
    assert every.kept_ == [0, 1, 2, 3] and best.kept_ == top
    assert 3 not in top  # a penalty of 1 flattens the net: the worst fit of a sine
    q = np.linspace(-3, 3, 13)
    np.testing.assert_allclose(best.predict_members(q), every.predict_members(q)[top],
                               rtol=1e-5, atol=1e-6)  # fmt: skip
    # each member's evidence is the formula's, on its own trained weights and penalty
    e = every.ensemble_
    m = DeepEnsembleRegressor(**{**kw, "last_layer": "trained"}).fit(x, y).ensemble_.members[2]
    xs = (torch.tensor(x, dtype=torch.float32).reshape(-1, 1) - e.x_mean) / e.x_scale
    ys = (torch.tensor(y, dtype=torch.float32) - e.y_mean) / e.y_scale
    with torch.no_grad():
        r = ys - m(xs)[:, 0]
        theta_sq = sum(float((p.double() ** 2).sum()) for p in m.parameters())
    assert ev[2] == pytest.approx(log_evidence(tangent_kernel(m, xs, "tanh"), r, theta_sq, 1e-1))
    with pytest.raises(ValueError, match="keep must be None or 1 to n_members"):
        DeepEnsembleRegressor(**kw, keep=5).fit(x, y)
    with pytest.raises(ValueError, match="needs every weight_decay > 0"):
        DeepEnsembleRegressor(**{**kw, "weight_decay": (0.0, 1e-3, 1e-1, 1.0)}, keep=2).fit(x, y)
