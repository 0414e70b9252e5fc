"""Look inside trained nets: weights, activations (more methods arrive per module)."""

from glassnet.introspection.activations import hidden_activation_layers, layer_activations
from glassnet.introspection.weights import LayerWeights, layer_weights

__all__ = ["LayerWeights", "hidden_activation_layers", "layer_activations", "layer_weights"]
