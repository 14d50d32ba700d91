"""Sigmoid, tanh, hard-sigmoid or softsign activations stacked so deep that the gradient vanishes.

## What it flags
A chain of saturating activations on the gradient's route from the loss to a layer, deep
enough that the estimated gradient at that layer's pre-activations falls below
`warning-below` (1e-2) of the output layer's, or below `error-below` (1e-3) for an error.
Shallow stacks are not flagged, and neither are the sigmoid gates inside LSTM/GRU cells or a
sigmoid gate on a side branch (squeeze-and-excitation): the gradient reaches the main input
through the `Multiply` as well.

## Why it hurts gradient flow
The sigmoid's derivative is at most 0.25 and the tanh's at most 1, falling fast once units
leave the linear region. Each layer multiplies the backpropagated gradient by
fan_out * Var(W) * E[phi'(z)^2], so a stack of sigmoid layers with Glorot init loses about a
factor of four per layer: for 20 such layers of width 64 gradlint's estimate of the
first/last kernel-gradient ratio is 6.6e-13, and tf.GradientTape measures 4e-13 to 5e-13 on
the same untrained model (tests/test_estimate_accuracy.py). Glorot & Bengio (2010) saw deep sigmoid networks stall for this reason.

## Example
    model = keras.Sequential([keras.Input((64,))] +
                             [keras.layers.Dense(64, activation="sigmoid") for _ in range(10)] +
                             [keras.layers.Dense(10, activation="softmax")])

## Use instead
ReLU-family activations (ReLU, GELU, SiLU) with `HeNormal` init in hidden layers, or add
normalization (`BatchNormalization`, `LayerNormalization`) and residual connections. Keep
sigmoid for outputs and gates.

## Options
- `error-below` (1e-3), `warning-below` (1e-2): thresholds on the estimated gradient
  relative to the output layer's.
- `min-layers` (4): saturating activations on the route before the rule fires. Glorot &
  Bengio (2010) saw the top hidden layer of a 4-to-5-layer sigmoid network saturate and
  training stall; with Glorot init the estimate for 3 sigmoid layers of width 64 is 6e-3
  (tf.GradientTape measures the same), a depth that trains fine.

## References
Glorot & Bengio, *Understanding the difficulty of training deep feedforward neural networks*,
AISTATS 2010. Schoenholz et al., *Deep Information Propagation*, ICLR 2017.
"""

from gradlint import activations, verdicts
from gradlint.analysis import is_weighted
from gradlint.findings import Problem, number, severity_below, span

CODE = "GL101"
NAME = "saturating-activation-chain"
SEVERITY = "error"
PRECISION = "high"
GROUPS = ("activation", "vanishing")
ALIASES = ("sigmoid-chain",)
OPTIONS = {"error-below": 1e-3, "warning-below": 1e-2, "min-layers": 4}
CLAIMS = "vanishing"


def confirm(finding, measurements, options):
    """The probe confirms the chain below the rule's own warning threshold."""
    return verdicts.vanishing(finding, measurements, options["warning-below"])


def saturating_units(analysis, node_ids) -> list[int]:
    """The nodes among `node_ids` that apply a saturating activation, counting a weighted
    layer and the activation layer right after it once, and leaving out the loss's own
    output activation and the gates inside recurrent cells."""
    head = analysis.estimate.head
    found = []
    for node_id in node_ids:
        node = analysis.node(node_id)
        if node_id in head:
            continue
        if node.layer.family.applies_activation:
            producer = analysis.node(node.inputs[0]) if node.inputs else None
            if producer is not None and is_weighted(producer.layer):
                continue
            activation = node.layer.activation
        elif is_weighted(node.layer) and not node.layer.family.recurrent:
            activation = analysis.effective_activation(node)
        else:
            continue
        if activation is not None and activation.name in activations.SATURATING:
            found.append(node_id)
    return found


def check(analysis, options):
    estimate = analysis.estimate
    for node_id in saturating_units(analysis, range(len(analysis.graph.nodes))):
        node = analysis.node(node_id)
        gradient = estimate[node_id].gradient
        if gradient is None or analysis.routes.behind_learnable_scale[node_id]:
            continue
        severity = severity_below(gradient, options["error-below"], options["warning-below"])
        if severity is None:
            continue
        chain = saturating_units(analysis, analysis.gradient_route(node_id))
        if len(chain) < options["min-layers"]:
            continue
        paths = [analysis.node(n).path for n in chain]
        names = sorted({str(analysis.effective_activation(analysis.node(n)))
                        if not analysis.node(n).layer.family.applies_activation
                        else str(analysis.node(n).layer.activation) for n in chain})
        yield Problem(
            f"{len(chain)} saturating activations ({', '.join(names)}) from {span(paths)} "
            f"to the output: the estimated gradient at '{node.path}' is {number(gradient)} of "
            "the output layer's",
            layer=node.path, layers=paths, severity=severity,
            evidence={"gradient": gradient, "saturating_layers": len(chain),
                      "activations": names})
        return
