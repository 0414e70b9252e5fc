"""Look inside trained nets. One module per method; everything returns arrays or tensors.

- weights: per-layer weight values and statistics
- activations: outputs of chosen layers (forward hooks, always removed)
- conv: convolution kernels and feature maps
- receptive: weight products, input gradients, Integrated Gradients, SmoothGrad
- regression: ensemble spread and its coverage, hidden activations over the input range
"""

from glassnet.introspection.activations import hidden_activation_layers, layer_activations
from glassnet.introspection.conv import conv_kernels, conv_layers, feature_maps
from glassnet.introspection.receptive import (
    ClassMeanGradient,
    InputGradient,
    IntegratedGradients,
    SmoothGrad,
    weight_product,
)
from glassnet.introspection.regression import (
    activation_map,
    band_coverage,
    first_member,
    fold_band,
    spread_inside_gaps,
)
from glassnet.introspection.weights import LayerWeights, layer_weights

__all__ = [
    "ClassMeanGradient",
    "InputGradient",
    "IntegratedGradients",
    "LayerWeights",
    "SmoothGrad",
    "activation_map",
    "band_coverage",
    "first_member",
    "conv_kernels",
    "conv_layers",
    "feature_maps",
    "fold_band",
    "hidden_activation_layers",
    "layer_activations",
    "layer_weights",
    "spread_inside_gaps",
    "weight_product",
]
