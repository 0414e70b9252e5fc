"""What inputs drive each output: weight products, input gradients, Captum attributions.

Every method is a class with ``attribute(inputs, target)`` returning a tensor shaped like
``inputs`` (Captum's convention), except ``weight_product``, which needs no inputs.
"""

from __future__ import annotations

import torch
from torch import nn

from glassnet.rng import seeded

__all__ = [
    "weight_product",
    "InputGradient",
    "ClassMeanGradient",
    "IntegratedGradients",
    "SmoothGrad",
]


def weight_product(model: nn.Module) -> torch.Tensor:
    """The study's MLP receptive fields: W_L @ ... @ W_1 for the Linear layers, input to output.

    Returns (out_features, in_features): row k says how much each input pixel pushes class k.
    Biases and non-linearities are ignored, so this is exactly right only for a linear net;
    for a ReLU net it is the map of a net whose units are all switched on.
    """
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"{type(model).__name__} has no Linear layers")
    if any(isinstance(m, nn.Conv2d) for m in model.modules()):
        raise ValueError("weight_product is defined for fully connected nets only")
    with torch.no_grad():
        prod = linears[0].weight.detach().cpu().clone()  # (h1, in)
        for lin in linears[1:]:
            prod = lin.weight.detach().cpu() @ prod  # (h_next, in)
    return prod


def _targets(logits: torch.Tensor, target: int | torch.Tensor | None) -> torch.Tensor:
    if target is None:
        return logits.argmax(1)  # the predicted class
    if isinstance(target, int):
        return torch.full((logits.shape[0],), target, dtype=torch.long, device=logits.device)
    return torch.as_tensor(target, device=logits.device).reshape(-1)


class InputGradient:
    """d logit[target] / d input: the study's CNN receptive fields (a saliency mask).

    ``target=None`` uses each input's predicted class. The model runs in eval mode (dropout off)
    and its training mode is restored afterwards.
    """

    def __init__(self, model: nn.Module, absolute: bool = False) -> None:
        self.model = model
        self.absolute = absolute

    def attribute(
        self, inputs: torch.Tensor, target: int | torch.Tensor | None = None
    ) -> torch.Tensor:
        """Return the input gradients, shaped like ``inputs``."""
        was_training = self.model.training
        self.model.eval()
        try:
            device = next(self.model.parameters()).device
            x = inputs.detach().to(device).clone().requires_grad_(True)
            logits = self.model(x)  # (batch, classes)
            t = _targets(logits, target)
            logits.gather(1, t[:, None]).sum().backward()
            g = x.grad.detach().cpu()
        finally:
            self.model.zero_grad(set_to_none=True)
            self.model.train(was_training)
        return g.abs() if self.absolute else g


class ClassMeanGradient:
    """Activation-aware receptive fields: the input gradient of class k's logit, averaged over
    real inputs of class k. Unlike ``weight_product`` it accounts for which units are active.
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = model

    def attribute(self, inputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Return per-input gradients of their own class logit (shaped like ``inputs``)."""
        return InputGradient(self.model).attribute(inputs, target)

    def class_means(
        self, inputs: torch.Tensor, labels: torch.Tensor, n_classes: int
    ) -> torch.Tensor:
        """Return (n_classes, *input_shape): the mean gradient over each class's inputs."""
        g = self.attribute(inputs, labels)
        out = torch.zeros((n_classes, *inputs.shape[1:]))
        for k in range(n_classes):
            sel = labels == k
            if sel.any():
                out[k] = g[sel].mean(0)
        return out


class IntegratedGradients:
    """Integrated Gradients through Captum (baseline: all-zero input by default).

    ``attribute`` takes Captum's argument order: ``inputs, baselines=None, target=None``.
    """

    def __init__(self, model: nn.Module, n_steps: int = 32) -> None:
        self.model = model
        self.n_steps = n_steps

    def attribute(
        self,
        inputs: torch.Tensor,
        baselines: torch.Tensor | float | None = None,
        target: int | torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Return IG attributions shaped like ``inputs``."""
        from captum.attr import IntegratedGradients as CaptumIG

        return _with_eval(
            self.model,
            inputs,
            target,
            lambda m, x, t: CaptumIG(m).attribute(
                x, target=t, baselines=baselines, n_steps=self.n_steps
            ),
        )


class SmoothGrad:
    """SmoothGrad through Captum: input gradients averaged over noisy copies of the input."""

    def __init__(
        self, model: nn.Module, n_samples: int = 16, stdev: float = 0.15, seed: int = 0
    ) -> None:
        self.model = model
        self.n_samples = n_samples
        self.stdev = stdev
        self.seed = seed

    def attribute(
        self, inputs: torch.Tensor, target: int | torch.Tensor | None = None
    ) -> torch.Tensor:
        """Return SmoothGrad attributions shaped like ``inputs``."""
        from captum.attr import NoiseTunnel, Saliency

        with seeded(self.seed):  # Captum draws the noise from torch's global generator
            return _with_eval(
                self.model,
                inputs,
                target,
                lambda m, x, t: NoiseTunnel(Saliency(m)).attribute(
                    x,
                    target=t,
                    nt_type="smoothgrad",
                    nt_samples=self.n_samples,
                    stdevs=self.stdev,
                    abs=False,
                ),
            )


def _with_eval(model, inputs, target, fn) -> torch.Tensor:
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        x = inputs.detach().to(device)
        if target is None:
            with torch.no_grad():
                target = model(x).argmax(1)
        elif not isinstance(target, int):
            target = torch.as_tensor(target, device=device)
        return fn(model, x, target).detach().cpu()
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)
