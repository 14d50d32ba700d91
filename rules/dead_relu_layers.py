"""ReLU layers whose stored biases are so negative that (nearly) every unit is dead.

## What it flags
Hidden layers with a ReLU or ReLU6 activation (their own, or an `Activation`/`ReLU` layer
right after them) where more than `warning-above` (0.7) of the units have a stored bias so
negative that their pre-activation is above zero for fewer than 1% of inputs, or more than
`error-above` (0.99) for an error. A unit's pre-activation is its bias plus a term of
variance fan_in * E[w^2] * s (s: the input's second moment, taken as at least 1), and the
biases spread as the stored mean and standard deviation say. Layers followed by
normalization, output layers and layers without a stored bias are not judged.

## Why it hurts gradient flow
A ReLU unit whose pre-activation is negative for every input outputs zero and passes zero
gradient: its weights never change again, and when a layer is dead, every layer before it
gets no gradient either ("dying ReLU"; Lu et al. 2019). A large learning rate can push a
trained checkpoint's biases there. The thresholds are GL904's, which measures dead units
with `--probe` (70% for a warning, as AutoTrainer and DeepDiagnosis; 99% for an error).
Measured with `gradlint --probe` on a 4-layer ReLU MLP with He-scale kernels and every bias
set to one value (tests/test_rule_dead_relu_layers.py): at -5 this rule finds every unit
dead, and so does the probe (GL904: 100%); at -0.1 neither finds any. At -2 the probe finds
100% dead from the second layer on and this rule nothing: with the input's scale taken as at
least 1, the rule sees a unit that fires for 8% of inputs, not the collapse after it, so it
errs on the lenient side.

The bias is judged, not the stored-weights estimate's mean, because the estimate multiplies
the kernel's overall mean by the fan-in: in the dev split of the labelled corpus, 7 of the
32 healthy files (6 of its 7 Keras 3 files, CNNs with a reported accuracy) store kernels
whose mean is just below zero, which the estimate turns into dead layers that are not
there.

## Example
    keras.layers.Dense(64, activation="relu",
                       bias_initializer=keras.initializers.Constant(-5.0))

## Use instead
Zero biases, a lower learning rate (or gradient clipping) if units died during training,
LeakyReLU, ELU or GELU (never exactly zero), or normalization before the activation.

## Options
- `warning-above` (0.7), `error-above` (0.99): the fraction of dead units (GL904's).

## References
Lu et al., *Dying ReLU and Initialization: Theory and Numerical Examples*, 2019. Zhang et
al., *AutoTrainer*, ICSE 2021.
"""

import math

from gradlint import verdicts
from gradlint.findings import Problem, number, severity_above, span

CODE = "GL103"
NAME = "dead-relu-layers"
SEVERITY = "error"
PRECISION = "high"
GROUPS = ("activation", "weights", "vanishing")
ALIASES = ("dead-relu-biases",)
OPTIONS = {"warning-above": 0.7, "error-above": 0.99}
CLAIMS = "vanishing"
RELUS = ("relu", "relu6")
# A unit is dead when its pre-activation is above zero for fewer than 1% of inputs: its bias
# is below -2.33 standard deviations of the rest of its pre-activation.
# The standard normal's 99% quantile, NormalDist().inv_cdf(0.99) (the statistics module
# costs 8 ms to import, on every run).
DEAD_QUANTILE = 2.3263478740408408
# A dead layer passes no gradient: the probe confirms below GL101's and GL201's warning line.
CONFIRM_BELOW = 1e-2


def confirm(finding, measurements, options):
    """The probe confirms a dead layer's missing kernel gradient or the collapsed signal."""
    return verdicts.vanishing(finding, measurements, CONFIRM_BELOW)


def dead_fraction(analysis, node) -> float | None:
    """The fraction of the layer's units whose stored bias keeps them below zero for 99% of
    inputs, or None."""
    kernel, bias = node.layer.weight("kernel"), node.layer.weight("bias")
    estimate = analysis.weights_estimate
    if kernel is None or bias is None or estimate is None or not bias.finite \
            or not kernel.finite:
        return None
    record = estimate[node.id]
    if record.fan_in is None:
        return None
    scale = record.input_scale if record.input_scale is not None else 1.0
    second = max(scale * scale, 1.0) if math.isfinite(scale) else math.inf
    spread = math.sqrt(record.fan_in * kernel.second_moment * second)
    if not math.isfinite(spread):
        return None
    line = -DEAD_QUANTILE * spread  # a bias below this leaves the unit dead
    if bias.std <= 0.0:
        return 1.0 if bias.mean < line else 0.0
    return 0.5 * (1.0 + math.erf((line - bias.mean) / (bias.std * math.sqrt(2.0))))


def dead_layers(analysis, above: float):
    """(node, dead fraction) of the hidden ReLU layers with more than `above` of their units
    dead under their stored biases."""
    found, seen = [], set()
    head = analysis.estimate.head
    for node in analysis.weighted_nodes():
        if id(node.layer) in seen or node.id in head or node.layer.family.takes_indices:
            continue
        seen.add(id(node.layer))
        if analysis.effective_activation(node).name not in RELUS or \
                analysis.followed_by_normalization(node.id):
            continue
        dead = dead_fraction(analysis, node)
        if dead is not None and dead > above:
            found.append((node, dead))
    return found


def check(analysis, options):
    if analysis.weights_estimate is None:
        return
    dead = dead_layers(analysis, options["warning-above"])
    if not dead:
        return
    worst_node, worst = max(dead, key=lambda item: item[1])
    severity = severity_above(worst, options["error-above"], options["warning-above"])
    paths = [node.path for node, _ in dead]
    bias = worst_node.layer.weight("bias")
    yield Problem(
        f"{span(paths)} {'has' if len(paths) == 1 else 'have'} stored biases so negative "
        f"that their ReLU units are dead: {worst:.0%} of the units of '{worst_node.path}' "
        f"(mean bias {number(bias.mean)}) are below zero for 99% of inputs and pass no "
        "gradient",
        layer=paths[0], layers=paths, severity=severity,
        evidence={"max_dead_fraction": worst, "where": worst_node.path,
                  "bias_mean": bias.mean,
                  "dead_fraction": {node.path: dead for node, dead in dead}})
