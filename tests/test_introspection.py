"""Introspection methods against hand-set weights with known answers."""

import numpy as np
import pytest
import torch
from torch import nn

from glassnet import introspection as insp
from glassnet.models import MLP, LeNet5


def test_weight_product_of_linear_two_layer_net():
    net = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 2))
    w1 = torch.tensor([[1.0, 2.0, 0.0], [0.0, -1.0, 3.0]])
    w2 = torch.tensor([[2.0, 1.0], [-1.0, 4.0]])
    with torch.no_grad():
        net[0].weight.copy_(w1)
        net[1].weight.copy_(w2)
    expected = torch.tensor([[2.0, 3.0, 3.0], [-1.0, -6.0, 12.0]])  # w2 @ w1 by hand
    torch.testing.assert_close(insp.weight_product(net), expected)
    with pytest.raises(ValueError, match="fully connected"):
        insp.weight_product(LeNet5())


def test_saliency_of_linear_model_equals_its_weights():
    torch.manual_seed(0)
    lin = nn.Linear(784, 10)
    x = torch.randn(4, 784)
    g = insp.InputGradient(lin).attribute(x, target=3)
    assert g.shape == x.shape
    torch.testing.assert_close(g, lin.weight[3].detach().expand(4, -1))
    # target=None uses each input's predicted class
    pred = lin(x).argmax(1)
    torch.testing.assert_close(insp.InputGradient(lin).attribute(x), lin.weight[pred].detach())


def test_integrated_gradients_of_linear_model_is_input_times_weight():
    torch.manual_seed(1)
    lin = nn.Linear(6, 3)
    x = torch.randn(2, 6)
    ig = insp.IntegratedGradients(lin).attribute(x, target=1, baselines=0.0)
    torch.testing.assert_close(ig, x * lin.weight[1].detach(), rtol=1e-4, atol=1e-5)
    sg = insp.SmoothGrad(lin, n_samples=4).attribute(x, target=1)
    torch.testing.assert_close(sg, lin.weight[1].detach().expand(2, -1))


def test_class_mean_gradient_on_linear_model():
    lin = nn.Linear(4, 2)
    x = torch.randn(6, 4)
    labels = torch.tensor([0, 1, 0, 1, 1, 0])
    means = insp.ClassMeanGradient(lin).class_means(x, labels, 2)
    torch.testing.assert_close(means, lin.weight.detach())


def test_hooks_are_removed_even_when_forward_fails():
    net = MLP(2, (4, 3), 1, "tanh")
    acts = insp.layer_activations(net, torch.zeros(5, 2), insp.hidden_activation_layers(net))
    assert [a.shape for a in acts.values()] == [(5, 4), (5, 3)]
    assert all(not m._forward_hooks for m in net.modules())
    with pytest.raises(ValueError):
        insp.layer_activations(net, torch.zeros(5, 7), ["net.1"])  # wrong input width
    assert all(not m._forward_hooks for m in net.modules())
    net.train()
    insp.layer_activations(net, torch.zeros(1, 2), ["net.1"])
    assert net.training  # mode restored
    with pytest.raises(KeyError, match="no such layer"):
        insp.layer_activations(net, torch.zeros(1, 2), ["nope"])


def test_lenet_kernels_and_feature_maps_shapes():
    net = LeNet5()
    k = insp.conv_kernels(net)
    assert {n: tuple(t.shape) for n, t in k.items()} == {
        "conv1": (6, 1, 5, 5),
        "conv2": (16, 6, 5, 5),
    }
    maps = insp.feature_maps(net, torch.zeros(1, 28, 28))
    assert {n: tuple(t.shape) for n, t in maps.items()} == {
        "conv1": (6, 28, 28),
        "conv2": (16, 10, 10),
    }
    assert insp.hidden_activation_layers(net)[-1] == "act4"
    with pytest.raises(ValueError, match="no Conv2d"):
        insp.feature_maps(MLP(784, (8,), 10), torch.zeros(1, 28, 28))


def test_weights_stats_and_fold_band():
    net = MLP(1, (3,), 1)
    with torch.no_grad():
        net.linear_layers()[0].weight.copy_(torch.tensor([[1.0], [2.0], [3.0]]))
    stats = insp.layer_weights(net)[0].stats()
    assert stats["mean"] == pytest.approx(2.0) and stats["count"] == 3
    a, b = nn.Linear(1, 1), nn.Linear(1, 1)
    with torch.no_grad():
        a.weight.fill_(1.0), a.bias.fill_(0.0), b.weight.fill_(3.0), b.bias.fill_(0.0)
    band = insp.fold_band([a, b], np.array([0.0, 1.0, 2.0]))
    assert band["scale"] == 1.0  # fold models: their spread as it is
    np.testing.assert_allclose(band["mean"], [0.0, 2.0, 4.0])
    np.testing.assert_allclose(band["hi"] - band["lo"], [0.0, 2.0, 4.0])
