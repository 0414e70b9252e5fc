"""The networks against hand-computed forward passes and PyTorch's own layers."""

import math

import pytest
import torch
from torch import nn

from glassnet.models import MLP, LeNet5


def test_mlp_tiny_forward_matches_hand_computation():
    # 1-2-1 tanh net with hand-set weights: y = v1*tanh(w1*x+b1) + v2*tanh(w2*x+b2) + c
    net = MLP(1, (2,), 1, "tanh")
    lin1, lin2 = net.linear_layers()
    with torch.no_grad():
        lin1.weight[:] = torch.tensor([[0.5], [-1.0]])
        lin1.bias[:] = torch.tensor([0.1, 0.2])
        lin2.weight[:] = torch.tensor([[2.0, 3.0]])
        lin2.bias[:] = torch.tensor([-0.5])
    for x in (-2.0, 0.0, 0.7):
        expected = 2.0 * math.tanh(0.5 * x + 0.1) + 3.0 * math.tanh(-1.0 * x + 0.2) - 0.5
        got = net(torch.tensor([[x]])).item()
        assert got == pytest.approx(expected, abs=1e-6)


def test_mlp_equals_pytorch_sequential_with_same_weights():
    torch.manual_seed(0)
    net = MLP(3, (5, 4), 2, "relu")
    ref = nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 2))
    ref.load_state_dict({k.removeprefix("net."): v for k, v in net.state_dict().items()})
    x = torch.randn(7, 3)
    torch.testing.assert_close(net(x), ref(x))


def test_mlp_shapes_and_dropout_layers():
    net = MLP(784, (256, 512, 256), 10, "relu", dropout=0.2)
    assert net(torch.zeros(4, 1, 28, 28)).shape == (4, 10)
    assert sum(isinstance(m, nn.Dropout) for m in net.modules()) == 3
    assert [tuple(m.weight.shape) for m in net.linear_layers()] == [
        (256, 784),
        (512, 256),
        (256, 512),
        (10, 256),
    ]


def test_mlp_rejects_bad_arguments_and_inputs():
    with pytest.raises(ValueError, match="activation"):
        MLP(activation="swishy")
    with pytest.raises(ValueError, match="dropout"):
        MLP(dropout=1.0)
    with pytest.raises(ValueError, match="expects 1 input"):
        MLP(1, (4,), 1)(torch.zeros(2, 3))


def test_lenet5_shapes_and_rejects_wrong_size():
    net = LeNet5()
    assert net(torch.zeros(3, 1, 28, 28)).shape == (3, 10)
    assert net(torch.zeros(3, 784)).shape == (3, 10)
    with pytest.raises(ValueError, match=r"\(batch, 1, 28, 28\)"):
        net(torch.zeros(2, 1, 32, 32))
