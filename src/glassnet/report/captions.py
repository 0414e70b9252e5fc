"""One sentence per figure: what it shows and what to look for."""

CAPTIONS = {
    "fit.png": "Training points, test points and the fitted curve; grey bands mark the gaps in "
    "the training data: look at how the net bridges them. The dashed line is a Gaussian "
    "process fitted to the same points, the classical baseline.",
    "fit_band.png": "The members (nets from different seeds, or fold models each trained "
    "without one fold) agree where there is data and fan out in the gaps: their spread is the "
    "net's uncertainty about the function there (the default's band adds each member's "
    "Bayesian last-layer variance and is widened by a calibration factor, --band-scale, as "
    "its legend says). Dotted: the Gaussian process's band for the function, for comparison.",
    "learning_curve.png": "Training loss of the model (and, for a fold-model ensemble, its mean "
    "fold-validation loss, which chose the epoch): a flat tail means training had converged.",
    "weight_histograms.png": "Weight values per layer: look for layers that stayed close to "
    "their initialisation and for heavy tails.",
    "activations.png": "Hidden activations for chosen inputs (rows): neighbouring inputs share "
    "units, and saturated units (deep red or blue) act as switches.",
    "activation_map.png": "Each hidden unit's activation across the whole input range: units "
    "switch at different places and tile the line; few switch inside the "
    "gaps.",
    "search_history.png": "How the search converged. Left, by trial: each complete trial's "
    "score and the best so far; pruned trials are grey crosses, at the best score they "
    "reached before they were stopped, and failed (diverged) ones red marks along the top. "
    "Right, the best so far against the search's wall time. A best still improving at the end "
    "says more trials would pay.",
    "search_importance.png": "Which settings mattered: Optuna's fANOVA estimate of each "
    "setting's share of the variation in the score over the complete trials. Spend the next "
    "search on the long bars; fix the short ones.",
    "search_parallel.png": "Every complete trial as one line across the settings, coloured "
    "by its score (see the colour bar): where the lines of the best trials bunch on an axis "
    "lies the good range of that setting.",
    "search_slice.png": "The score against each setting alone, one point per complete trial "
    "(darker: later), pruned trials as grey crosses: a valley or a peak marks a setting's good "
    "range, a flat cloud a setting that did not matter.",
    "training_batch.png": "What training saw: one training digit per class as stored and, "
    "when the run moves its images, as the training loader gave it in three draws (each "
    "epoch moves every image afresh; the test images are never moved).",
    "curves.png": "Loss and accuracy per epoch on the training and validation splits; the dashed "
    "line marks the epoch whose weights were kept for the test.",
    "confusion_matrix.png": "Rows are true classes, columns predictions; the off-diagonal cells "
    "show which digits get confused (the study saw 3 and 5).",
    "confused_examples.png": "Misclassified test digits from the most confused pairs: many are "
    "ambiguous even to a person.",
    "hidden_activations.png": "The last hidden layer for test digits grouped by class: each "
    "class lights up its own set of units.",
    "receptive_fields.png": "The study's receptive fields: the product of the weight matrices, one "
    "map per class (biases and ReLUs ignored); red pixels push towards "
    "the class.",
    "class_gradients.png": "Activation-aware receptive fields: the input gradient of each class "
    "score averaged over real digits of that class; compare with the "
    "weight-product maps.",
    "conv1_kernels.png": "The first convolution's 5x5 kernels: small edge and stroke detectors.",
    "conv2_kernels.png": "The second convolution's kernels, one column per output channel and "
    "one row per input channel.",
    "feature_maps.png": "One digit seen through every convolution channel: where each detector "
    "responds (red) or is suppressed (blue).",
    "saliency.png": "What each prediction depends on: input gradients (the study's receptive "
    "fields) for test digits and an all-ones image, with Integrated Gradients "
    "and SmoothGrad for comparison.",
}
