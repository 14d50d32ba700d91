"""Kernel initializers whose variance is too small for the layer's fan-in, so signal and gradient shrink.

## What it flags
Weighted layers whose initializer gives fan_in * E[w^2] below `min-gain` (0.5), when the
estimate over the model shows the consequence: the forward signal entering some weighted
layer, or the gradient at some layer, falls below `warning-below` (1e-2) of its starting
value, or below `error-below` (1e-3) for an error. `RandomNormal(stddev=0.01)` at fan-in 128
gives fan_in * E[w^2] = 0.0128: each such layer shrinks the signal by a factor of nine.
Layers followed by normalization are not flagged when the normalization restores the scale,
because then the estimate does not fall. The small layers must explain the fall themselves:
the product of their gains on the route into the weakest signal and from the weakest
gradient to the loss must fall below the threshold too. A single Glorot-initialized first
convolution (VGG16's fan-in of 27 gives 0.09: a factor of 0.3) does not explain a signal at
1e-3 after 15 more layers; what does is GL202's pairing of ReLU with Glorot.

## Why it hurts gradient flow
A layer's output variance is fan_in * Var(W) times its input's (for a linear unit), and its
input gradient is fan_out * Var(W) times its output gradient. Below one, both shrink
geometrically with depth; after ten such layers little signal reaches the output and little
gradient reaches the first layer (He et al. 2015, section 2.2; Glorot & Bengio 2010).

A trained checkpoint whose stored weights no longer shrink the signal (the estimate from the
stored weights stays above `warning-below`) is not flagged: training got past its
initialization. In the labelled corpus, three MNIST CNNs saved after training to 97-99%
were flagged before.

## Example
    keras.layers.Dense(128, activation="relu",
                       kernel_initializer=keras.initializers.RandomNormal(stddev=0.01))

## Use instead
A variance-scaling initializer matched to the activation: `HeNormal` for ReLU-family
activations, `GlorotUniform` (Keras's default) for tanh and linear layers, `LecunNormal` for
SELU. Or add normalization after the layer.

Fix (`gradlint fix`): each small layer's kernel is re-initialized with the initializer its
activation needs, and re-drawn.

## Options
- `min-gain` (0.5): fan_in * E[w^2] below which a layer's initializer counts as small.
- `error-below` (1e-3), `warning-below` (1e-2): thresholds on the estimate.
- `adaptive-factor` (0.1): when the saved optimizer adapts its step sizes (Adam, AdamW,
  Nadam, RMSprop, Adagrad and kin), the thresholds are multiplied by it; a file saved
  without a compile configuration gets its error threshold multiplied (an error must fail
  under any optimizer). Such an optimizer takes steps of the usual size from a uniformly
  smaller gradient (Kingma & Ba 2015): on scikit-learn's digits
  (`bench/adaptive_optimizer.py`) MLPs whose estimated gradient is 1.8e-3 of the output
  layer's train to 88% with Adam and 2.6e-4 to 83%, from 6.7e-5 down they fail; with SGD
  all of them stay at chance.

## References
He et al., *Delving Deep into Rectifiers*, ICCV 2015. Glorot & Bengio, AISTATS 2010.
"""

from gradlint import verdicts
from gradlint.findings import (Problem, adaptive_thresholds, number, number_range,
                               severity_below, span)
from gradlint.rules._fixes import initializer_fix

CODE = "GL201"
NAME = "small-initializer"
SEVERITY = "error"
PRECISION = "high"
GROUPS = ("initialization", "vanishing")
ALIASES = ()
OPTIONS = {"min-gain": 0.5, "error-below": 1e-3, "warning-below": 1e-2,
           "adaptive-factor": 0.1}
CLAIMS = "vanishing"


def confirm(finding, measurements, options):
    """The probe confirms the shrinking signal below the rule's own warning threshold."""
    return verdicts.vanishing(finding, measurements, options["warning-below"])


def weakest_signal(analysis):
    """The smallest forward scale entering a weighted layer and the smallest gradient."""
    scales, gradients = [], []
    for node in analysis.weighted_nodes():
        record = analysis.estimate[node.id]
        if record.input_scale is not None and not node.layer.family.takes_indices:
            scales.append((record.input_scale, node))
        if record.gradient is not None and not analysis.routes.behind_learnable_scale[node.id]:
            gradients.append((record.gradient, node))
    scale = min(scales, key=lambda item: item[0], default=(None, None))
    gradient = min(gradients, key=lambda item: item[0], default=(None, None))
    return scale, gradient


def _falls_in(analysis, options) -> bool:
    """Whether the estimate from the stored weights shows the fall too (it does for a file
    saved before training, whose weights are the initializers' draw)."""
    stored = analysis.weights_estimate
    values = [stored[node.id].input_scale for node in analysis.weighted_nodes()
              if not node.layer.family.takes_indices] + \
        [stored[node.id].gradient for node in analysis.weighted_nodes()
         if not analysis.routes.behind_learnable_scale[node.id]]
    values = [value for value in values if value is not None]
    return bool(values) and min(values) < options["warning-below"]


def check(analysis, options):
    small = []
    for node in analysis.weighted_nodes():
        record = analysis.estimate[node.id]
        initializer = node.layer.kernel_initializer
        if node.layer.family.takes_indices or record.weight_second_moment is None \
                or (initializer is not None and initializer.is_constant):
            continue  # constant kernels are GL204's
        gain = record.fan_in * record.weight_second_moment
        if gain < options["min-gain"]:
            small.append((node, gain))
    if not small:
        return
    (scale, scale_node), (gradient, gradient_node) = weakest_signal(analysis)
    worst = min(value for value in (scale, gradient) if value is not None) \
        if (scale is not None or gradient is not None) else None
    if worst is None:
        return
    error_below, warning_below = adaptive_thresholds(analysis, options)
    severity = severity_below(worst, error_below, warning_below)
    if severity is None:
        return
    # The small layers must explain the fall themselves: those on the route into the
    # weakest signal and from the weakest gradient to the loss, whose gains multiply.
    route = set()
    if scale_node is not None:
        route.update(analysis.signal_route(scale_node.id)[1:])
    if gradient_node is not None:
        route.update(analysis.gradient_route(gradient_node.id))
    explained = 1.0
    for node, gain in small:
        if node.id in route:
            explained *= gain
    severity = severity_below(max(worst, explained ** 0.5), error_below, warning_below)
    if severity is None:
        return
    if analysis.weights_estimate is not None and not _falls_in(analysis, options):
        return  # trained weights that no longer shrink the signal: training got past it
    paths = [node.path for node, _ in small]
    first, gain = small[0]
    names = list(dict.fromkeys(
        node.layer.kernel_initializer.name if node.layer.kernel_initializer is not None
        else "the stored weights" for node, _ in small))
    name = ", ".join(names[:3]) + (" …" if len(names) > 3 else "")
    gains = [value for _, value in small]
    stated = number_range(gains)
    yield Problem(
        f"{span(paths)} start{'s' if len(paths) == 1 else ''} with too small a kernel variance "
        f"({name}: fan_in * E[w^2] = {stated}, where about 1 to 2 keeps the signal): "
        f"the estimated signal entering '{scale_node.path}' falls to {number(scale)} and the "
        f"gradient at '{gradient_node.path}' to {number(gradient)} of the output layer's",
        layer=first.path, layers=paths, severity=severity,
        evidence={"fan_in_times_variance": gain, "initializer": names[0],
                  "fan_in_times_variance_range": [min(gains), max(gains)],
                  "min_forward_scale": scale, "min_gradient": gradient},
        fix=initializer_fix(analysis, [node for node, _ in small],
                            "gradient" if gradient_node is not None else "input_scale",
                            gradient_node.path if gradient_node is not None
                            else scale_node.path))
