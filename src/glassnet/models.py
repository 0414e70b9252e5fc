"""The study's networks as plain ``nn.Module`` classes: a configurable MLP and LeNet-5."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from glassnet.activations import ACTIVATIONS

__all__ = [
    "MLP",
    "LeNet5",
    "RegressionEnsemble",
    "ACTIVATIONS",
    "kaiming_init",
    "standard_scaling",
]


def standard_scaling(a: np.ndarray) -> tuple[float, float]:
    """(mean, std) of ``a`` for standardising it; a constant column gets scale 1."""
    std = float(np.std(a))
    return float(np.mean(a)), (std if std > 0 else 1.0)


class MLP(nn.Module):
    """Fully connected net: Linear -> activation (-> dropout) per hidden layer, then a Linear head.

    The study's regression net is ``MLP(1, (512, 256), 1, "tanh")`` and its dense MNIST net is
    ``MLP(784, (256, 512, 256), 10, "relu", dropout=p)``.
    """

    def __init__(
        self,
        in_features: int = 1,
        hidden: Sequence[int] = (512, 256),
        out_features: int = 1,
        activation: str = "tanh",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.in_features = in_features
        layers: list[nn.Module] = []
        width = in_features
        for h in hidden:
            layers += [nn.Linear(width, h), ACTIVATIONS[activation].module()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = h
        layers.append(nn.Linear(width, out_features))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(x.shape[0], -1)  # (batch, in_features): images arrive as (batch, 1, 28, 28)
        if x.shape[1] != self.in_features:
            raise ValueError(f"MLP expects {self.in_features} input features, got {x.shape[1]}")
        return self.net(x)  # (batch, out_features)

    def linear_layers(self) -> list[nn.Linear]:
        """Return the Linear layers from input to output."""
        return [m for m in self.net if isinstance(m, nn.Linear)]


class RegressionEnsemble(nn.Module):
    """The mean of several MLPs, in the data's own units.

    Members see standardised inputs and targets: ``x_s = (x - x_mean) / x_scale`` in,
    ``y = y_s * y_scale + y_mean`` out. The scaling lives in buffers, so it is saved and loaded
    with the weights (``state_dict``) and can never be lost between training and ``predict``.

    ``last_cov`` (members, H, H) and ``last_center`` (members, H), when given, are each member's
    Bayesian last layer: the posterior covariance of its output weights given its last hidden
    features at the training points (centred on their mean), standardised units. They add to
    the members' spread in ``band_std``; they do not change the prediction. ``band_scale``
    widens that band by a constant factor (a calibration; 1: as computed). It is a setting of
    the run (config.json), not a weight, so ``state_dict`` is the same with or without it.
    """

    def __init__(
        self,
        members: Sequence[MLP],
        x_mean: float = 0.0,
        x_scale: float = 1.0,
        y_mean: float = 0.0,
        y_scale: float = 1.0,
        last_cov: torch.Tensor | None = None,
        last_center: torch.Tensor | None = None,
        band_scale: float = 1.0,
    ) -> None:
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        if not band_scale > 0:
            raise ValueError(f"band_scale must be > 0, got {band_scale}")
        self.band_scale = float(band_scale)
        if not (x_scale > 0 and y_scale > 0):
            raise ValueError(f"scales must be > 0, got x_scale={x_scale}, y_scale={y_scale}")
        self.members = nn.ModuleList(members)
        for name, v in (
            ("x_mean", x_mean),
            ("x_scale", x_scale),
            ("y_mean", y_mean),
            ("y_scale", y_scale),
        ):
            self.register_buffer(name, torch.tensor(float(v), dtype=torch.float32))
        if (last_cov is None) != (last_center is None):
            raise ValueError("last_cov and last_center come together")
        if last_cov is not None:
            self.register_buffer("last_cov", torch.as_tensor(last_cov, dtype=torch.float32))
            self.register_buffer("last_center", torch.as_tensor(last_center, dtype=torch.float32))

    def _standardise(self, x: torch.Tensor) -> torch.Tensor:
        return (x.reshape(x.shape[0], -1) - self.x_mean) / self.x_scale  # (batch, in)

    def member_outputs(self, x: torch.Tensor) -> torch.Tensor:
        """Each member's prediction in data units: (members, batch, out)."""
        xs = self._standardise(x)
        out = torch.stack([m(xs) for m in self.members])  # (members, batch, out), standardised
        return out * self.y_scale + self.y_mean

    def member_features(self, x: torch.Tensor) -> torch.Tensor:
        """Each member's last hidden layer: (members, batch, H)."""
        xs = self._standardise(x)
        return torch.stack([m.net[:-1](xs) for m in self.members])

    def band_std(self, x: torch.Tensor) -> torch.Tensor:
        """The uncertainty about the function at x, data units: (batch,).

        ``band_scale`` x sqrt(spread of the members' predictions + the mean of their last
        layers' posterior variance); without a Bayesian last layer, the members' spread alone.
        """
        var = self.member_outputs(x)[:, :, 0].var(0, unbiased=False)  # (batch,)
        if hasattr(self, "last_cov"):
            f = self.member_features(x) - self.last_center[:, None, :]  # (members, batch, H)
            latent = torch.einsum("mbh,mhk,mbk->mb", f, self.last_cov, f)  # (members, batch)
            var = var + latent.clamp_min(0).mean(0) * self.y_scale**2
        return self.band_scale * var.sqrt()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.member_outputs(x).mean(0)  # (batch, out): the ensemble's prediction

    @torch.no_grad()
    def predict_members(self, X: Any) -> np.ndarray:
        """Every member's prediction for array-like inputs: (members, n) for one output."""
        xt = torch.as_tensor(np.asarray(X, dtype=np.float32).reshape(len(X), -1))
        out = self.member_outputs(xt.to(self.x_mean.device))  # (members, n, out)
        out = out.cpu().numpy()
        return out[:, :, 0] if out.shape[2] == 1 else out


class LeNet5(nn.Module):
    """LeNet-5 for 28x28 grayscale images, with dropout and Kaiming initialisation.

    conv 6@5x5 (padding 2) -> maxpool 2 -> ReLU -> conv 16@5x5 -> maxpool 2 -> ReLU
    -> 120 -> 84 -> n_classes, ReLU and dropout between the dense layers.
    """

    def __init__(self, n_classes: int = 10, dropout: float = 0.25, in_channels: int = 1) -> None:
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.in_channels = in_channels
        self.conv1 = nn.Conv2d(in_channels, 6, kernel_size=5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, kernel_size=5)
        self.pool = nn.MaxPool2d(2)
        # one ReLU module per layer, so hooks can tell the layers apart
        self.act1, self.act2, self.act3, self.act4 = (nn.ReLU() for _ in range(4))
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, n_classes)
        self.drop = nn.Dropout(dropout)
        kaiming_init(self)
        # channels-last convolutions and pooling are markedly faster on CPUs (oneDNN); the
        # results are the same up to float rounding.
        self.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2 and x.shape[1] == 28 * 28 * self.in_channels:
            x = x.reshape(-1, self.in_channels, 28, 28)  # flat pixels from an MLP-style array
        if x.dim() != 4 or tuple(x.shape[1:]) != (self.in_channels, 28, 28):
            raise ValueError(
                f"LeNet5 expects images shaped (batch, {self.in_channels}, 28, 28), "
                f"got {tuple(x.shape)}"
            )
        x = x.contiguous(memory_format=torch.channels_last)
        # pool before ReLU: the same values as ReLU then pool (ReLU is monotonic), on 4x fewer
        x = self.act1(self.pool(self.conv1(x)))  # (batch, 6, 14, 14)
        x = self.act2(self.pool(self.conv2(x)))  # (batch, 16, 5, 5)
        x = x.flatten(1)  # (batch, 400)
        x = self.drop(self.act3(self.fc1(x)))  # (batch, 120)
        x = self.drop(self.act4(self.fc2(x)))  # (batch, 84): the last hidden layer
        return self.fc3(x)  # (batch, n_classes)


def kaiming_init(module: nn.Module) -> nn.Module:
    """Kaiming-normal weights (fan_in, ReLU gain) and zero biases for every conv/linear layer."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            nn.init.zeros_(m.bias)
    return module
