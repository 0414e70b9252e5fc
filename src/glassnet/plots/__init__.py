"""Matplotlib figures. Every function returns ``(fig, ax)`` and never calls ``plt.show()``."""

from glassnet.plots.classification import (
    plot_confused_examples,
    plot_confusion_matrix,
    plot_training_curves,
)
from glassnet.plots.inspect import (
    plot_activation_map,
    plot_class_maps,
    plot_conv_kernels,
    plot_feature_maps,
    plot_hidden_units,
    plot_saliency_grid,
)
from glassnet.plots.regression import (
    plot_activation_heatmap,
    plot_learning_curve,
    plot_regression_fit,
    plot_weight_histograms,
)

__all__ = [
    "plot_activation_heatmap",
    "plot_activation_map",
    "plot_class_maps",
    "plot_confused_examples",
    "plot_confusion_matrix",
    "plot_conv_kernels",
    "plot_feature_maps",
    "plot_hidden_units",
    "plot_learning_curve",
    "plot_regression_fit",
    "plot_saliency_grid",
    "plot_training_curves",
    "plot_weight_histograms",
]
