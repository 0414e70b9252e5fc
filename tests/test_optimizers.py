"""The engine's optimizers against torch.optim: each stacked member must follow the optimizer
that trains the same net alone, step for step."""

import pytest
import torch

from glassnet.models import MLP
from glassnet.search.engine import Population
from glassnet.search.loop import epoch_batches
from glassnet.search.optimizers import make_optimizer

TORCH = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}


def _reference(init, X, y, name, s, epochs, batch, order, layer_lr=None):
    """One MLP trained alone by torch.optim on the same batches."""
    net = MLP(1, (16, 8), 1, "tanh")
    net.load_state_dict(init.state_dict())
    factors = layer_lr or (1.0,) * 3
    groups = [
        {"params": list(lin.parameters()), "lr": s["lr"] * f}
        for lin, f in zip(net.linear_layers(), factors)
    ]
    kw = {"momentum": s["momentum"]} if name == "sgd" else {}
    opt = TORCH[name](groups, lr=s["lr"], weight_decay=s["wd"], **kw)
    for _ in range(epochs):
        for start in range(0, len(order), batch):
            idx = order[start : start + batch]
            opt.zero_grad()
            torch.nn.functional.mse_loss(net(X[idx]), y[idx]).backward()
            opt.step()
    return net


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw"])
def test_members_follow_torch_optim(name):
    # Three members from different starting weights, each with its own learning rate and
    # weight decay, on mini-batches where one member's shorter training set leaves it without
    # rows in the last batch (it must not step): each follows torch.optim alone.
    torch.manual_seed(0)
    inits = [MLP(1, (16, 8), 1, "tanh") for _ in range(3)]
    settings = [
        {"lr": 0.01, "momentum": 0.9, "wd": 1e-2},
        {"lr": 0.003, "momentum": 0.5, "wd": 0.0},
        {"lr": 0.02, "momentum": 0.0, "wd": 0.1},
    ]
    X = torch.linspace(-2, 2, 24).reshape(-1, 1)
    y = torch.sin(2 * X)
    sizes = [24, 24, 16]  # member 2 trains on the first 16 rows: no rows in the third batch
    idx = [torch.arange(n) for n in sizes]
    pop = Population(inits, settings, torch.device("cpu"), "tanh", optimizer=name)
    batches = epoch_batches([0, 1, 2], sizes, idx, 24, 8, False, None, X, y)
    assert batches[-1][3] is not None  # the padding case is exercised
    epochs = 15
    for _ in range(epochs):
        for Xb, yb, w, active, _count in batches:
            pop.step(Xb, yb, w, active, None, 16)
    for m, (init, s) in enumerate(zip(inits, settings)):
        net = _reference(init, X, y, name, s, epochs, 8, torch.arange(sizes[m]))
        for i, lin in enumerate(net.linear_layers()):
            torch.testing.assert_close(pop.W[i][m], lin.weight.detach(), rtol=1e-4, atol=2e-5)
            torch.testing.assert_close(pop.b[i][m, 0], lin.bias.detach(), rtol=1e-4, atol=2e-5)


def test_adam_follows_torch_with_layer_lr_and_members_leaving():
    # Per-layer learning rates (parameter groups), then a member leaves mid-training: the
    # remaining member's Adam state must travel with it.
    torch.manual_seed(1)
    inits = [MLP(1, (16, 8), 1, "tanh") for _ in range(2)]
    settings = [{"lr": 0.01, "wd": 1e-3}, {"lr": 0.005, "wd": 0.0}]
    layer_lr = (2.0, 1.0, 0.5)
    X = torch.linspace(-2, 2, 20).reshape(-1, 1)
    y = torch.cos(3 * X)
    pop = Population(inits, settings, torch.device("cpu"), "tanh", layer_lr, optimizer="adam")
    idx = [torch.arange(20)] * 2
    batches = epoch_batches([0, 1], [20, 20], idx, 20, 20, False, None, X, y)
    for epoch in range(30):
        if epoch == 10:
            pop.keep([1])  # member 0 leaves
            batches = epoch_batches([1], [20, 20], idx, 20, 20, False, None, X, y)
        for Xb, yb, w, active, _count in batches:
            pop.step(Xb, yb, w, active, None, 16)
    s = {**settings[1], "momentum": 0.0}
    net = _reference(inits[1], X, y, "adam", s, 30, 20, torch.arange(20), layer_lr)
    for i, lin in enumerate(net.linear_layers()):
        torch.testing.assert_close(pop.W[i][0], lin.weight.detach(), rtol=1e-4, atol=2e-5)


def test_unknown_optimizer_is_named():
    w = [torch.zeros(2, 3, 1)]
    with pytest.raises(ValueError, match="optimizer must be one of sgd, adam, adamw"):
        make_optimizer("rmsprop", w, w, torch.zeros(2, 1, 1))
