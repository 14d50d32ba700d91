"""Trained checkpoints whose stored weights make the signal or gradient collapse, where the initializers did not.

## What it flags
Files whose stored weights are not the initializers' draw (some kernel's second moment is
outside the initializer's by more than sampling explains, or a Zeros-initialized bias is no
longer zero) where the estimate from the stored weights has the signal entering a weighted
layer, or a layer's gradient, below `warning-below` (1e-2) of the input's or the output
layer's, or below `error-below` (1e-3) for an error, while the initializers' estimate stays
above `warning-below`. The stored kernel gains on the route (of layers not followed by
normalization, which undoes their scale) must explain the fall.

## Why it hurts gradient flow
A checkpoint is often trained further (fine-tuning, resuming). If training (weight decay, a
learning rate that drove the kernels towards zero) left them too small for their fan-in,
each layer scales the signal by fan_in * E[w^2] * E[phi'^2] below one, and the gradient
reaching the early layers shrinks geometrically: the next run starts where the file shows
a vanishing gradient (He et al. 2015; Glorot & Bengio 2010). The thresholds are GL201's,
which judges the same estimate from the initializers, so a file saved before training is
GL201's alone.

The gains are the stored kernels' fan_in * E[w^2] times the activation's slope at a centred
input (0.5 for ReLU), not the stored estimate's own slope: the estimate multiplies a trained
kernel's overall mean by the fan-in, and in the dev split of the labelled corpus 7 of the
32 healthy files (6 of its 7 Keras 3 files, CNNs with a reported accuracy) show a collapse
that their kernels' scale does not explain and that training did not suffer. The one file
it flags there, a DeepDiagnosis MNIST checkpoint stuck at chance for 100 epochs whose kernels
all have a standard deviation of 0.0045, the probe confirms: no gradient at all.

## Example
A checkpoint whose hidden kernels were scaled to 0.05 of their He scale by training:

    for layer in model.layers[:-1]:
        kernel, bias = layer.get_weights()
        layer.set_weights([kernel * 0.05, bias])

## Use instead
Re-initialize the collapsed layers (or restart from an earlier checkpoint), lower the weight
decay or learning rate that shrank them, and add normalization.

## Options
- `error-below` (1e-3), `warning-below` (1e-2): thresholds on the stored-weights estimate.
- `min-gain` (0.5): a stored layer gain below which the layer is named as a cause.

## References
He et al., *Delving Deep into Rectifiers*, ICCV 2015. Glorot & Bengio, AISTATS 2010.
"""

from gradlint import verdicts
from gradlint.findings import Problem, number, number_range, severity_below, span
from gradlint.rules._stored import moved_layers, stored_gain

CODE = "GL206"
NAME = "stored-weights-vanishing"
SEVERITY = "error"
PRECISION = "high"
GROUPS = ("weights", "vanishing")
ALIASES = ("collapsed-checkpoint",)
OPTIONS = {"error-below": 1e-3, "warning-below": 1e-2, "min-gain": 0.5}
CLAIMS = "vanishing"


def confirm(finding, measurements, options):
    """The probe (which runs the stored weights) confirms the collapse below the rule's own
    warning threshold."""
    return verdicts.vanishing(finding, measurements, options["warning-below"])


def weakest(analysis, estimate):
    """(value, node, what) of the smallest signal entering a weighted layer and of the
    smallest gradient, in one estimate."""
    scales, gradients = [], []
    for node in analysis.weighted_nodes():
        record = estimate[node.id]
        if record.input_scale is not None and not node.layer.family.takes_indices:
            scales.append((record.input_scale, node))
        if record.gradient is not None and not analysis.routes.behind_learnable_scale[node.id]:
            gradients.append((record.gradient, node))
    return (min(scales, key=lambda item: item[0], default=(None, None)),
            min(gradients, key=lambda item: item[0], default=(None, None)))


def _explained(analysis, route):
    """The product of the stored gains on a route (None when one is unknown), and each
    layer's gain."""
    product, gains = 1.0, []
    for node_id in route:
        node = analysis.node(node_id)
        if not node.layer.weighted or node.layer.family.takes_indices \
                or analysis.followed_by_normalization(node.id):
            continue  # normalization undoes a layer's scale
        gain = stored_gain(analysis, node)
        if gain is None:
            return None, []
        product *= gain
        gains.append((node, gain))
    return product, gains


def check(analysis, options):
    if analysis.weights_estimate is None:
        return
    below = options["warning-below"]
    (scale, _), (gradient, _) = weakest(analysis, analysis.estimate)
    if any(value is not None and value < below for value in (scale, gradient)):
        return  # the initializers already shrink it: GL201's, GL101's or GL202's finding
    (scale, scale_node), (gradient, gradient_node) = weakest(analysis,
                                                             analysis.weights_estimate)
    candidates = [(value, node, what) for value, node, what in
                  ((scale, scale_node, "signal entering"), (gradient, gradient_node,
                                                            "gradient at"))
                  if value is not None]
    if not candidates:
        return
    worst, node, what = min(candidates, key=lambda item: item[0])
    if severity_below(worst, options["error-below"], below) is None:
        return
    moved = moved_layers(analysis)
    if not moved:
        return  # the initializers' draw: judged by the initializer rules
    route = analysis.signal_route(node.id)[1:] if what == "signal entering" \
        else analysis.gradient_route(node.id)
    product, gains = _explained(analysis, route)
    if product is None or not gains:
        return
    severity = severity_below(max(worst, product ** 0.5), options["error-below"], below)
    if severity is None:
        return  # the stored kernels' scale does not explain the fall
    causes = [item for item in gains if item[1] < options["min-gain"]
              and item[0].layer.path in moved and _shrank(analysis, item[0])] or \
        [item for item in gains if item[1] < options["min-gain"]
         and item[0].layer.path in moved] or gains
    paths = [cause.path for cause, _ in causes]
    reference = "the input's" if what == "signal entering" else "the output layer's"
    yield Problem(
        f"the stored weights of this trained checkpoint shrink the signal: the estimated "
        f"{what} '{node.path}' falls to {number(worst)} of {reference} (the "
        f"initializers kept it above {number(below)}); stored kernels too small for their "
        f"fan-in: {span(paths)} (gain {number_range([gain for _, gain in causes])})",
        layer=paths[0], layers=paths, severity=severity,
        evidence={"min_estimate": worst, "where": node.path, "quantity": what,
                  "explained": product ** 0.5, "moved_layers": moved[:20],
                  "gains": {cause.path: gain for cause, gain in causes}})


def _shrank(analysis, node) -> bool:
    """Whether the layer's stored kernel has a smaller second moment than its initializer
    gives: a trained LSTM at its Glorot scale has a small gain from its gates' slopes, not
    from a kernel too small for its fan-in."""
    expected = analysis.estimate[node.id].weight_second_moment
    have = analysis.weights_estimate[node.id].weight_second_moment
    return bool(expected and have is not None and have < expected)
