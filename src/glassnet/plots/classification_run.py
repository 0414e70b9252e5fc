"""The figure set of a classification run: curves, confusions, and a look inside the net."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from skorch.dataset import Dataset

from glassnet import introspection as insp
from glassnet.data.batches import AugmentLoader
from glassnet.data.images import ImageData
from glassnet.plots.classification import (
    plot_confused_examples,
    plot_confusion_matrix,
    plot_training_batch,
    plot_training_curves,
)
from glassnet.plots.inspect import (
    plot_class_maps,
    plot_conv_kernels,
    plot_feature_maps,
    plot_hidden_units,
    plot_saliency_grid,
)
from glassnet.plots.regression import plot_weight_histograms
from glassnet.plots.style import literal
from glassnet.preprocessing import from_inputs, to_inputs

__all__ = ["classification_figures", "training_views"]

Save = Callable[[str, Any], Any]  # RunWriter.figure: (file name, figure) -> path


def classification_figures(
    save: Save, net: Any, data: ImageData, pred: np.ndarray, cm: np.ndarray, best_epoch: int
) -> None:
    """Draw every figure of a run with ``save(name, fig)``: the fitted skorch ``net``, the test
    predictions ``pred`` and their confusion matrix ``cm``."""
    save("training_batch.png", _training_batch(net, data))
    h = net.history
    fig, _ = plot_training_curves(
        {"train": h[:, "train_loss"], "validation": h[:, "valid_loss"]},
        {"train": h[:, "train_acc"], "validation": h[:, "valid_acc"]},
        best_epoch=best_epoch,
    )
    save("curves.png", fig)
    save("confusion_matrix.png", plot_confusion_matrix(cm, data.classes)[0])
    fig, _ = plot_confused_examples(data.x_test, data.y_test, pred, data.classes)
    save("confused_examples.png", fig)
    module = copy.deepcopy(net.module_).cpu().eval()  # a CPU copy: the net itself stays put
    rng = np.random.default_rng(0)
    # A fixed, class-balanced handful of test digits for the per-digit pictures.
    per_class = [
        rng.permutation(np.flatnonzero(data.y_test == k))[:20] for k in range(len(data.classes))
    ]
    _weights_and_units(save, module, data, np.concatenate(per_class))
    if insp.conv_layers(module):
        _conv_figures(save, module, data, per_class)
    else:
        _dense_maps(save, module, data, np.concatenate(per_class))


def _training_batch(net: Any, data: ImageData) -> Any:
    pick, seen, moves = training_views(net, data)
    fig, _ = plot_training_batch(data.x_train[pick], seen, data.y_train[pick], data.classes, moves)
    return fig


def training_views(net: Any, data: ImageData, draws: int = 3) -> tuple[Any, Any, str]:
    """One training digit per class (up to 10) as the net's own training loader gives it, in
    ``draws`` draws when the run moves its images (none when it does not): the moves the run
    trained on, made by the code that made them, seeded, on a forked generator (the run's
    random state is left as it was). Returns the digits' indices in ``data.x_train``, the
    views (draws, n, 28, 28) in stored units (0-255), and how images are moved ("": not)."""
    rng = np.random.default_rng(0)
    pick = np.array([rng.choice(np.flatnonzero(data.y_train == k))
                     for k in np.unique(data.y_train)[:10]])  # fmt: skip
    moved = isinstance(net.iterator_train, type) and issubclass(net.iterator_train, AugmentLoader)
    params = net.get_params()
    moves = ", ".join(
        text.format(value)
        for key, text in (
            ("max_shift", "shifted up to {} px"),
            ("max_rotate", "rotated up to {:g} degrees"),
            ("max_zoom", "zoomed by up to {:.0%}"),
            ("elastic", "bent by an elastic distortion of alpha {:g} px"),
        )
        if moved and (value := params.get(f"iterator_train__{key}", 0))
    )
    draws, n = (draws if moved else 0), len(pick)
    scale = data.input_scale()
    x = to_inputs(data.x_train[pick], *scale)  # (n, 1, 28, 28)
    seen = np.empty((draws * n, *x.shape[1:]), np.float32)  # (draws * n, 1, 28, 28)
    if draws:
        with torch.random.fork_rng():
            torch.manual_seed(0)
            ids = np.arange(draws * n)  # the labels carry each copy's place back
            for xb, yb in net.get_iterator(Dataset(np.tile(x, (draws, 1, 1, 1)), ids),
                                           training=True):  # fmt: skip
                seen[yb.cpu().numpy()] = xb.detach().float().cpu().numpy()
    pixels = from_inputs(seen, *scale)  # back to the stored units: (draws * n, 28, 28)
    return pick, pixels.reshape(draws, n, *x.shape[2:]), moves


def _inputs(data: ImageData, images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(to_inputs(images, *data.input_scale()))  # (n, 1, 28, 28)


def _weights_and_units(save: Save, module: torch.nn.Module, data: ImageData, sample) -> None:
    save("weight_histograms.png", plot_weight_histograms(insp.layer_weights(module))[0])
    last = insp.hidden_activation_layers(module)[-1]
    acts = insp.layer_activations(module, _inputs(data, data.x_test[sample]), [last])[last]
    fig, _ = plot_hidden_units(acts.numpy(), data.y_test[sample], data.classes, last)
    save("hidden_activations.png", fig)


def _conv_figures(save: Save, module: torch.nn.Module, data: ImageData, per_class) -> None:
    """Kernels, feature maps, and receptive fields as the study drew them: saliency of the
    predicted class for real digits and an all-white image; then Integrated Gradients and
    SmoothGrad (Captum)."""
    for name, k in insp.conv_kernels(module).items():
        title = (
            f"{name} kernels {tuple(k.shape[2:])}: "
            f"{k.shape[0]} outputs x {k.shape[1]} inputs (red +, blue -)"
        )
        save(f"{name}_kernels.png", plot_conv_kernels(k.numpy(), title)[0])
    first = per_class[0][0]
    maps = {
        k: v.numpy()
        for k, v in insp.feature_maps(module, _inputs(data, data.x_test[[first]])[0]).items()
    }
    save("feature_maps.png", plot_feature_maps(data.x_test[first], maps)[0])
    show = np.array([p[0] for p in per_class[:8]])
    images = np.concatenate([data.x_test[show], np.full((1, 28, 28), 255, np.uint8)])
    x = _inputs(data, images)
    with torch.no_grad():
        predicted = module(x).argmax(1)
    black = float(_inputs(data, np.zeros((1, 28, 28), np.uint8)).min())
    rows = {
        "input gradient": insp.InputGradient(module).attribute(x, predicted),
        "Integrated\nGradients": insp.IntegratedGradients(module).attribute(x, black, predicted),
        "SmoothGrad": insp.SmoothGrad(module).attribute(x, predicted),
    }
    names = [literal(c) for c in data.classes]
    titles = [f"true {names[data.y_test[i]]}" for i in show] + ["all-ones image"]
    titles = [f"{t}\npred {names[int(c)]}" for t, c in zip(titles, predicted)]
    fig, _ = plot_saliency_grid(images, {k: v.numpy() for k, v in rows.items()}, titles)
    save("saliency.png", fig)


def _dense_maps(save: Save, module: torch.nn.Module, data: ImageData, sample) -> None:
    prod = insp.weight_product(module).numpy()  # (classes, 784)
    title = (
        "Receptive fields as the study computed them: the product of "
        "the weight matrices (biases and ReLUs ignored)"
    )
    save("receptive_fields.png", plot_class_maps(prod, data.classes, title)[0])
    x_s, y_s = _inputs(data, data.x_test[sample]), torch.from_numpy(data.y_test[sample])
    means = insp.ClassMeanGradient(module).class_means(x_s, y_s, len(data.classes)).numpy()
    title = (
        "Activation-aware receptive fields: input gradient of each "
        "class score, averaged over test digits of that class"
    )
    save("class_gradients.png", plot_class_maps(means, data.classes, title)[0])
