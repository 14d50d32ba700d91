"""An initializer scaled for a different activation than the layer uses, in a stack deep enough to matter.

## What it flags
- ReLU-family activations (ReLU, leaky ReLU, ELU, GELU, SiLU) with Glorot or LeCun scaling:
  ReLU zeroes half of its input, so these initializers lose half of the signal's variance per
  layer;
- sigmoid or tanh activations with He scaling, which doubles the pre-activation variance and
  drives units into saturation.

Only flagged when what the mismatched layers do by themselves, compounded over a run that no
normalization layer interrupts, shrinks the signal and the gradient below `warning-below`
(1e-2) or grows them above its inverse (1e2); beyond `error-below` (1e-3, or 1e3) it is an
error. A few mismatched layers, or mismatched layers each followed by normalization, train
fine. Each layer's factor is the geometric mean of its forward variance gain
fan_in * E[w^2] * E[phi^2] / q and its backward gain fan_out * E[w^2] * E[phi'^2]: 0.5 for a
square ReLU layer with Glorot init. Tanh with He init lands in the chaotic phase of
Poole et al. (2016), where gradients grow instead. The message names the initializer that
fits.

## Why it hurts gradient flow
He et al. (2015) showed that a 30-layer ReLU network with Xavier (Glorot) initialization
stalls while the same network with their initialization trains: with Glorot scaling each ReLU
layer multiplies both the forward variance and the backward gradient variance by about 0.5,
so 30 layers shrink them by 1e-9. gradlint's estimate for a 30-layer ReLU MLP with Glorot
init puts the forward signal below 1e-4.

## Example
    keras.Sequential([keras.Input((256,))] +
                     [keras.layers.Dense(256, activation="relu") for _ in range(30)] +
                     [keras.layers.Dense(10)])      # Dense defaults to GlorotUniform

## Use instead
`kernel_initializer="he_normal"` for ReLU-family layers; `"glorot_uniform"` for sigmoid and
tanh; `"lecun_normal"` for SELU. Normalization layers after each block also remove the
mismatch's effect.

Fix (`gradlint fix`): every mismatched layer's kernel is re-initialized with the
initializer its activation needs, and re-drawn.

## Options
- `error-below` (1e-3), `warning-below` (1e-2): thresholds on the compounded factor (their
  inverses for growth).
- `adaptive-factor` (0.1): when the saved optimizer adapts its step sizes (Adam, AdamW,
  Nadam, RMSprop, Adagrad and kin), the thresholds for shrinking are multiplied by it; a
  file saved without a compile configuration gets its error threshold multiplied (an error
  must fail under any optimizer). Measured in `bench/adaptive_optimizer.py`, see GL201.

## References
He et al., *Delving Deep into Rectifiers*, ICCV 2015.
"""

import math

from gradlint import activations, initializers, verdicts
from gradlint.findings import (Problem, adaptive_thresholds, number, severity_above,
                               severity_below, span)
from gradlint.rules._fixes import initializer_fix

CODE = "GL202"
NAME = "initializer-activation-mismatch"
SEVERITY = "error"
PRECISION = "high"
GROUPS = ("initialization", "vanishing")
ALIASES = ()
OPTIONS = {"error-below": 1e-3, "warning-below": 1e-2, "adaptive-factor": 0.1}
CLAIMS = "vanishing"


def confirm(finding, measurements, options):
    """The probe confirms the mismatch below the rule's own warning threshold."""
    return verdicts.vanishing(finding, measurements, options["warning-below"])

RELU_LIKE = frozenset({"relu", "leaky_relu", "elu", "gelu", "swish", "mish", "celu",
                       "relu6", "hard_swish"})


def _mismatch(analysis, node):
    initializer = node.layer.kernel_initializer
    if initializer is None or node.layer.family.takes_indices or node.layer.family.recurrent:
        return None
    family = initializer.family
    activation = analysis.effective_activation(node)
    if activation.name in RELU_LIKE and family in ("glorot", "lecun"):
        return activation
    if activation.name in activations.SATURATING and activation.name != "softsign" \
            and family == "he":
        return activation
    return None


def layer_gain(analysis, node) -> float | None:
    """The factor by which one layer scales the signal's and the gradient's variance (the
    geometric mean of fan_in * E[w^2] * E[phi^2] / q and fan_out * E[w^2] * E[phi'^2])."""
    record = analysis.estimate[node.id]
    if record.weight_second_moment is None or not record.fan_in or not record.fan_out:
        return None
    q = record.pre_activation_scale ** 2 if record.pre_activation_scale else 0.0
    q = q if q > 0.0 else 1.0
    moment = activations.moments(analysis.effective_activation(node), q)
    forward = record.fan_in * record.weight_second_moment * moment.second / q
    backward = record.fan_out * record.weight_second_moment * moment.derivative_second
    return math.sqrt(max(forward, 0.0) * max(backward, 0.0))


def check(analysis, options):
    outputs = set(analysis.graph.outputs)
    mismatched = {}
    for node in analysis.weighted_nodes():
        if node.id in outputs:
            continue
        activation = _mismatch(analysis, node)
        gain = layer_gain(analysis, node) if activation is not None else None
        if gain is not None:
            mismatched[node.id] = (node, activation, gain)
    if not mismatched:
        return
    # What the mismatched layers do by themselves, compounded along each run that no
    # normalization layer interrupts (normalization undoes the mismatch): one pass from the
    # outputs back, each node's product being its own gain times that of the next node in
    # its run.
    routes = analysis.routes
    log_gain: dict[int, float] = {}  # logarithms: 5,000 layers of 0.5 underflow a float
    for node in reversed(analysis.graph.nodes):
        following = routes.next_in_run[node.id]
        total = log_gain.get(following, 0.0) if following is not None else 0.0
        if node.id in mismatched:
            total += math.log(max(mismatched[node.id][2], 1e-300))
        log_gain[node.id] = total
    worst = max(mismatched, key=lambda n: abs(log_gain[n]))
    worst_effect = math.exp(max(min(0.5 * log_gain[worst], 700.0), -745.0))
    worst_run = [n for n in routes.route(worst, stop_at_normalization=True) if n in mismatched]
    if worst_effect < 1.0:
        severity = severity_below(worst_effect, *adaptive_thresholds(analysis, options))
    else:
        severity = severity_above(worst_effect, 1.0 / options["error-below"],
                                  1.0 / options["warning-below"])
    if severity is None:
        return
    nodes = [mismatched[n][0] for n in worst_run]
    first, activation, _ = mismatched[worst_run[0]]
    initializer = first.layer.kernel_initializer
    name = initializer.name
    if name.lower().replace("_", "") == "variancescaling":
        name = f"VarianceScaling ({initializer.family}-scaled)"
    fits = initializers.suggestion_for(activation.name)
    direction = "shrink" if worst_effect < 1.0 else "grow"
    paths = [node.path for node in nodes]
    yield Problem(
        f"{span(paths)} pair {activation} with {name}, which is scaled for another "
        f"activation: together these layers {direction} the signal and the gradient to "
        f"{number(worst_effect)}; use {fits} instead",
        layer=first.path, layers=paths, severity=severity,
        evidence={"activation": str(activation), "initializer": name,
                  "suggested_initializer": fits, "compounded_gain": worst_effect,
                  "per_layer_gain": mismatched[worst_run[0]][2]},
        # Every mismatched layer, not only this run's: a fixed run must not leave another
        # run to fire next.
        fix=initializer_fix(analysis, [entry[0] for entry in mismatched.values()],
                            "gradient", first.path))
