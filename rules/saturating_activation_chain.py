"""Sigmoid, tanh, hard-sigmoid or softsign activations stacked so deep that the gradient vanishes.

## What it flags
A chain of saturating activations on the gradient's route from the loss to a layer, deep
enough that the estimated gradient at that layer's pre-activations falls below
`warning-below` (1e-2) of the output layer's, or below `error-below` (1e-3) for an error.
Shallow stacks are not flagged, and neither are the sigmoid gates inside LSTM/GRU cells or a
sigmoid gate on a side branch (squeeze-and-excitation): the gradient reaches the main input
through the `Multiply` as well. The activations must cause the fall themselves: the product
of their slopes E[phi'(z)^2] along the route must fall below `warning-below` too. A tanh
stack initialized with `RandomNormal(stddev=0.01)` has tiny pre-activations, where tanh is
linear (slope 1): its gradient vanishes because of the initializer, which GL201 reports.

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
ReLU-family activations (ReLU, GELU, SiLU) with `HeNormal` init in hidden layers (the fix
`gradlint fix --select GL101` applies: it changes the function the model computes, so it is
applied only on request), or add
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
from gradlint.findings import Edit, Fix, Problem, number, severity_below, span
from gradlint.rules._fixes import initializer_edit

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


def _slopes(analysis, route) -> float:
    """What the saturating activations on `route` alone do to the gradient: the product of
    their E[phi'(z)^2]. Tanh on the small pre-activations of a RandomNormal(0.01) stack
    keeps a slope of 1: the gradient falls there, but because of the weights."""
    product = 1.0
    for node_id in route:
        node = analysis.node(node_id)
        slope = analysis.estimate[node_id].activation_slope
        activation = node.layer.activation
        if slope is None or node_id in analysis.estimate.head or node.layer.family.recurrent \
                or activation is None or activation.name not in activations.SATURATING:
            continue
        product *= slope
    return product


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
        route = analysis.gradient_route(node_id)
        chain = saturating_units(analysis, route)
        if len(chain) < options["min-layers"]:
            continue
        slopes = _slopes(analysis, route)
        if slopes >= options["warning-below"]:
            continue  # the units are not saturated: the fall is the weights' (GL201)
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
                      "activations": names, "activation_slopes": slopes},
            fix=_activation_swap(analysis, chain, node.path))
        return


def _activation_swap(analysis, chain, at) -> Fix | None:
    """ReLU with He init for the chain's layers: changes the function the model computes, so
    `gradlint fix` applies it only on request (``--select GL101``)."""
    edits, seen = [], set()
    for node_id in chain:
        node = analysis.node(node_id)
        if node.layer.family.applies_activation:
            if node.layer.class_name != "Activation" or not node.inputs:
                return None  # a layer class of its own (ELU, Softmax): not a setting
            weighted = analysis.node(node.inputs[0])
            activation_layer = node.layer
        else:
            weighted, activation_layer = node, node.layer
        if id(activation_layer) in seen:
            continue
        seen.add(id(activation_layer))
        old = activation_layer.config.get("activation")
        edits.append(Edit("activation", old if isinstance(old, str) else str(
            activation_layer.activation), "relu", layer=activation_layer.path))
        if weighted.layer.weighted:
            edit = initializer_edit(analysis, weighted, "he_normal")
            if edit is not None:
                edits.append(edit)
    if not edits:
        return None
    return Fix(scope="layer", edits=edits, safe=False, quantity="gradient", at=at,
               description=f"use ReLU with He init in {len(seen)} layers")
