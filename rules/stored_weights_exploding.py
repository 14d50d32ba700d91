"""Trained checkpoints whose stored weights blow up the signal or kernel gradient, where the initializers did not.

## What it flags
Files whose stored weights are not the initializers' draw (as for GL206) where the estimate
from the stored weights has the signal entering a weighted layer or leaving an output, or a
layer's kernel gradient, above `warning-above` (1e2) of its starting value, or above
`error-above` (1e3) for an error, while the initializers' estimate stays below
`warning-above`. The layers that training moved with a stored gain above `min-gain` (1.5)
on the route, not followed by normalization, must explain the growth themselves.

## Why it hurts gradient flow
Weights that grew during training (a learning rate too large, no weight decay) multiply the
signal and the gradient by more than one at every layer, so the next run from this
checkpoint starts with overshooting updates and NaN losses (Pascanu et al. 2013). The
thresholds and the explanation by layer gains are GL203's, which judges the initializers:
a file saved before training is GL203's alone. Growth the layers' gains do not explain is
left out, as in GL203: batch statistics make the gradient grow by themselves (Yang et al.
2019). So is growth after the estimate's signal has already fallen below `1 / error-above`
at an earlier weighted layer: there the trained biases silence the ReLUs of the estimate's
Gaussian input and then drive the signal alone. A public CIFAR-10 CNN (59.6% test accuracy,
the probe measures no growth) was flagged that way, with "gains" up to 137.

## Example
A checkpoint whose hidden kernels grew to 8x their He scale:

    for layer in model.layers[:-1]:
        kernel, bias = layer.get_weights()
        layer.set_weights([kernel * 8.0, bias])

## Use instead
Restart from an earlier checkpoint or re-initialize, lower the learning rate, clip gradients
(`clipnorm=1.0`), add weight decay or normalization.

## Options
- `error-above` (1e3), `warning-above` (1e2): thresholds on the stored-weights estimate.
- `min-gain` (1.5): a stored layer gain above which the layer is named as a cause.

## References
Pascanu, Mikolov & Bengio, *On the difficulty of training recurrent neural networks*,
ICML 2013. Yang et al., *A Mean Field Theory of Batch Normalization*, ICLR 2019.
"""

from gradlint import verdicts
from gradlint.findings import Problem, number, severity_above, span
from gradlint.rules._stored import moved_layers, stored_gain

CODE = "GL207"
NAME = "stored-weights-exploding"
SEVERITY = "error"
PRECISION = "high"
GROUPS = ("weights", "exploding")
ALIASES = ("exploded-checkpoint",)
OPTIONS = {"error-above": 1e3, "warning-above": 1e2, "min-gain": 1.5}
CLAIMS = "exploding"
# GL203's: a measured first/last kernel-gradient ratio that confirms growth (GL902's warning).
CONFIRM_RATIO_ABOVE = 3e2


def confirm(finding, measurements, options):
    """The probe (which runs the stored weights) confirms NaN/Inf, a signal above the rule's
    warning threshold, or a first/last ratio above `CONFIRM_RATIO_ABOVE`."""
    return verdicts.exploding(finding, measurements, options["warning-above"],
                              max(options["warning-above"], CONFIRM_RATIO_ABOVE))


def check(analysis, options):
    if analysis.weights_estimate is None:
        return
    above = options["warning-above"]
    start, _, _ = analysis.largest(analysis.estimate)
    if start is not None and start > above:
        return  # the initializers already make it grow: GL203's finding
    worst, node, what = analysis.largest(analysis.weights_estimate)
    if worst is None or severity_above(worst, options["error-above"], above) is None:
        return
    moved = moved_layers(analysis)
    if not moved:
        return
    if _collapses_first(analysis, node, 1.0 / options["error-above"]):
        return
    route = set(analysis.gradient_route(node.id) if what == "kernel gradient of"
                else analysis.signal_route(node.id))
    causes, explained = [], 1.0
    for candidate in analysis.weighted_nodes():
        if candidate.id not in route or candidate.layer.path not in moved \
                or analysis.followed_by_normalization(candidate.id):
            continue
        gain = stored_gain(analysis, candidate)
        if gain is not None and gain > options["min-gain"]:
            causes.append((candidate, gain))
            explained *= gain
    if not causes:
        return
    severity = severity_above(min(worst, explained ** 0.5), options["error-above"], above)
    if severity is None:
        return  # growth the stored kernels do not explain
    paths = [cause.path for cause, _ in causes]
    yield Problem(
        f"the stored weights of this trained checkpoint make the signal grow: the estimated "
        f"{what} '{node.path}' grows to {number(worst)} of its starting value (the "
        f"initializers kept it below {number(above)}); stored kernels too large for their "
        f"fan-in: {span(paths)} (gain up to {number(max(gain for _, gain in causes))})",
        layer=paths[0], layers=paths, severity=severity,
        evidence={"max_estimate": worst, "where": node.path, "quantity": what,
                  "explained": explained ** 0.5, "moved_layers": moved[:20],
                  "gains": {cause.path: gain for cause, gain in causes}})


def _collapses_first(analysis, node, below: float) -> bool:
    """Whether the stored-weights estimate has the signal leaving a weighted layer upstream
    of `node` fall below `below` before it grows: the growth then comes from the stored
    biases feeding a signal the estimate has already lost (trained biases that silence the
    ReLUs of a Gaussian input, not of the data the kernels were trained on)."""
    estimate = analysis.weights_estimate
    for upstream in analysis.signal_route(node.id):
        if upstream == node.id or not analysis.node(upstream).layer.family.is_weighted(
                analysis.node(upstream).layer):
            continue
        scale = estimate[upstream].forward_scale
        if scale is not None and scale < below:
            return True
    return False
