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

The causes are the layers with a gain above `min-gain` on the route the gradient takes from
where it is largest to the loss, except layers followed by normalization (which undoes
their scale); their gains together must explain a growth above the threshold. Growth they
do not explain is not flagged: batch normalization in training mode makes the gradient grow
by itself.

Fix (`gradlint fix`): the layers drawn too wide are re-initialized with the initializer
their activation needs, and re-drawn.

## Options
- `error-above` (1e3), `warning-above` (1e2): thresholds on the estimate.
- `min-gain` (1.5): per-layer gain above which a layer is named as a cause.

## References
Pascanu, Mikolov & Bengio, *On the difficulty of training recurrent neural networks*,
ICML 2013. He et al., ICCV 2015.
"""

from gradlint import verdicts
from gradlint.findings import Problem, number, severity_above, span
from gradlint.rules._fixes import initializer_fix

CODE = "GL203"
NAME = "exploding-initialization"
SEVERITY = "error"
PRECISION = "high"
GROUPS = ("initialization", "exploding")
ALIASES = ()
OPTIONS = {"error-above": 1e3, "warning-above": 1e2, "min-gain": 1.5}
CLAIMS = "exploding"
# A measured first/last kernel-gradient ratio that confirms growth: GL902's warning (3e2);
# keras.applications ResNet50 measures up to 113 and trains well.
CONFIRM_RATIO_ABOVE = 3e2
# The estimate a fix's "estimate after" compares, for each place growth is found.
QUANTITIES = {"signal entering": "input_scale", "kernel gradient of": "kernel_gradient",
              "output of": "forward_scale"}


def confirm(finding, measurements, options):
    """The probe confirms growth by NaN/Inf, a signal above the rule's own warning threshold
    entering some layer, or a first/last ratio above `CONFIRM_RATIO_ABOVE`."""
    return verdicts.exploding(finding, measurements, options["warning-above"],
                              max(options["warning-above"], CONFIRM_RATIO_ABOVE))


def _following_slope(analysis, node_id: int) -> float:
    """E[phi'^2] of an activation layer right after the node (``Dense`` then ``LeakyReLU``),
    else 1."""
    following = analysis.consumers[node_id]
    if len(following) == 1 and analysis.node(following[0]).layer.family.applies_activation:
        slope = analysis.estimate[following[0]].activation_slope
        return slope if slope is not None else 1.0
    return 1.0


def check(analysis, options):
    estimate = analysis.estimate
    worst, worst_node, where = analysis.largest(estimate)
    if worst is None:
        return
    severity = severity_above(worst, options["error-above"], options["warning-above"])
    if severity is None:
        return
    # The causes are the wide layers on the route that carries the growth (from the inputs
    # to a grown signal, from a grown gradient to the loss), and together they must explain
    # a growth above the threshold.
    route = set(analysis.gradient_route(worst_node.id) if where == "kernel gradient of"
                else analysis.signal_route(worst_node.id))
    causes, explained = [], 1.0
    for node in analysis.weighted_nodes():
        record = estimate[node.id]
        if node.id not in route or record.weight_second_moment is None \
                or record.activation_slope is None:
            continue
        if analysis.followed_by_normalization(node.id):
            continue  # normalization undoes the layer's scale: it cannot be the cause
        gain = record.fan_in * record.weight_second_moment * \
            max(record.activation_slope * _following_slope(analysis, node.id), 0.5)
        if gain > options["min-gain"]:
            causes.append(node.path)
            explained *= gain
    if not causes or severity_above(explained ** 0.5, options["error-above"],
                                    options["warning-above"]) is None:
        # Growth that wide layers do not explain comes from batch statistics (Yang et al.
        # 2019), which models such as ResNet152 train through.
        return
    yield Problem(
        f"the estimated {where} '{worst_node.path}' grows to {number(worst)} of its starting "
        f"value; layers drawn too wide: {span(causes)}",
        layer=causes[0], layers=causes, severity=severity,
        evidence={"max_estimate": worst, "where": worst_node.path},
        fix=initializer_fix(analysis, [analysis.node_at(path) for path in causes],
                            QUANTITIES[where], worst_node.path))
