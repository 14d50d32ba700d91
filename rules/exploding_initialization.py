"""Initializers that make the estimated signal or gradient grow by orders of magnitude across the model.

## What it flags
Models whose estimated forward signal (entering a weighted layer or leaving an output) or
kernel gradient (a weighted layer's, relative to the output layer's: what the probe
measures) grows above `warning-above` (1e2) of its starting value, or above `error-above`
(1e3) for an error. The finding names the layers whose initializer gain
fan_in * E[w^2] * E[phi'^2] exceeds one.

The kernel gradient is judged rather than the per-element gradient because of batch
normalization in training mode: its batch statistics make the per-element gradient grow by
about pi / (pi - 1) per ReLU layer at initialization (Yang et al. 2019), 700x at
keras.applications ResNet50's first convolution, while the kernel gradients that the
optimizer applies grow 33x (measured: 30-34x at batch 2-16), and ResNet50 trains well.

## Why it hurts gradient flow
The mirror image of a vanishing gradient: with weights drawn too wide, each layer multiplies
the signal and the gradient by more than one, so updates overshoot, losses become NaN and
training diverges in the first steps (Pascanu et al. 2013). `RandomNormal(stddev=0.5)` at
fan-in 64 multiplies the variance by 16 per linear layer.

## Example
    keras.layers.Dense(64, activation="relu",
                       kernel_initializer=keras.initializers.RandomNormal(stddev=0.5))

## Use instead
A variance-scaling initializer (`HeNormal`, `GlorotUniform`), normalization layers, and
gradient clipping (`clipnorm=1.0` on the optimizer) as a safety net.

## Options
- `error-above` (1e3), `warning-above` (1e2): thresholds on the estimate.
- `min-gain` (1.5): per-layer gain above which a layer is named as a cause.

## References
Pascanu, Mikolov & Bengio, *On the difficulty of training recurrent neural networks*,
ICML 2013. He et al., ICCV 2015.
"""

from gradlint import verdicts
from gradlint.findings import Problem, number, severity_above, span

CODE = "GL203"
NAME = "exploding-initialization"
SEVERITY = "error"
GROUPS = ("initialization", "exploding")
ALIASES = ()
OPTIONS = {"error-above": 1e3, "warning-above": 1e2, "min-gain": 1.5}
CLAIMS = "exploding"
# A measured first/last kernel-gradient ratio that confirms growth: GL902's warning (3e2);
# keras.applications ResNet50 measures up to 113 and trains well.
CONFIRM_RATIO_ABOVE = 3e2


def confirm(finding, measurements, options):
    """The probe confirms growth by NaN/Inf, a signal above the rule's own warning threshold
    entering some layer, or a first/last ratio above `CONFIRM_RATIO_ABOVE`."""
    return verdicts.exploding(finding, measurements, options["warning-above"],
                              max(options["warning-above"], CONFIRM_RATIO_ABOVE))


def check(analysis, options):
    estimate = analysis.estimate
    candidates = []
    for node in analysis.weighted_nodes():
        record = estimate[node.id]
        if record.input_scale is not None and not node.layer.family.takes_indices:
            candidates.append((record.input_scale, node, "signal entering"))
        if record.kernel_gradient is not None:
            candidates.append((record.kernel_gradient, node, "kernel gradient of"))
    for output in analysis.graph.outputs:
        candidates.append((estimate[output].forward_scale, analysis.node(output), "output of"))
    if not candidates:
        return
    worst, worst_node, where = max(candidates, key=lambda item: item[0])
    severity = severity_above(worst, options["error-above"], options["warning-above"])
    if severity is None:
        return
    causes = []
    for node in analysis.weighted_nodes():
        record = estimate[node.id]
        if record.weight_second_moment is None or record.activation_slope is None:
            continue
        slope = record.activation_slope
        if record.fan_in * record.weight_second_moment * max(slope, 0.5) > options["min-gain"]:
            causes.append(node.path)
    causes = causes or [worst_node.path]
    yield Problem(
        f"the estimated {where} '{worst_node.path}' grows to {number(worst)} of its starting "
        f"value; layers drawn too wide: {span(causes)}",
        layer=causes[0], layers=causes, severity=severity,
        evidence={"max_estimate": worst, "where": worst_node.path})
