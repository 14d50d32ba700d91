"""The probe measured most of a layer's sigmoid or tanh units saturated.

## What it flags
Runs only with `--probe`. Layers with a sigmoid, tanh, softsign, hard-sigmoid or hard-tanh
activation where more than `warning-above` (0.5) of the pre-activations on the synthetic
batch lie beyond ±5 (for the hard variants: on the flat part), or more than `error-above`
(0.9) for an error. The output layer is not flagged (its activation belongs to the loss), and
neither is a gate whose output only multiplies another branch (squeeze-and-excitation,
attention gates): the gradient reaches the main input through the product. Measured here,
the sigmoid gates of keras.applications EfficientNetB0 (`weights=None`) have no saturated
pre-activations, and a Glorot-initialized sigmoid or tanh MLP none either.

## Why it hurts gradient flow
Beyond ±5, the sigmoid's derivative is below 0.007 and the tanh's below 2e-4: a saturated
unit passes almost no gradient, so a layer that is mostly saturated blocks the gradient to
everything before it and its own weights barely move. DeepDiagnosis (Wardat et al. 2022)
flags a layer when more than half of its units are saturated; Glorot & Bengio (2010) watched
the top sigmoid layer of a deep network saturate early in training and stall it.

## Example
    keras.Sequential([keras.Input((64,))] +
                     [keras.layers.Dense(64, activation="tanh",
                                         kernel_initializer=keras.initializers.RandomNormal(stddev=1.0))
                      for _ in range(4)] + [keras.layers.Dense(1)])

## Use instead
An initializer that keeps the pre-activation variance near one (`GlorotUniform` for sigmoid
and tanh), normalization before the activation, or a ReLU-family activation.

## Options
- `warning-above` (0.5): the saturated fraction of a layer that gives a warning
  (DeepDiagnosis's threshold).
- `error-above` (0.9): the fraction that gives an error.

## References
Wardat, Cruz & Rajan, *DeepDiagnosis: Automatically Diagnosing Faults and Recommending
Actionable Fixes in Deep Learning Programs*, ICSE 2022. Glorot & Bengio, AISTATS 2010.
"""

from gradlint.findings import Problem, span

CODE = "GL903"
NAME = "saturated-activations"
SEVERITY = "warning"
PRECISION = "high"
GROUPS = ("probe", "activation", "vanishing")
ALIASES = ()
OPTIONS = {"warning-above": 0.5, "error-above": 0.9}
PROBE = True


def exempt_paths(analysis) -> set[str]:
    """Output layers (and the activations after them) and gates that only multiply."""
    measured = analysis.measurements
    exempt = {measured.reference} if measured.reference else set()
    graph = analysis.graph
    if graph is None:
        return exempt
    for output in graph.outputs:
        node = graph.nodes[output]
        while True:
            exempt.add(node.path)
            if (node.layer.family.applies_activation or node.layer.family.reshapes_only) and len(node.inputs) == 1:
                node = graph.nodes[node.inputs[0]]
                continue
            break
    for node in graph.nodes:
        following = analysis.consumers[node.id]
        if following and all(graph.nodes[c].layer.family.multiplies(graph.nodes[c].layer)
                             for c in following):
            exempt.add(node.path)
    return exempt


def check(analysis, options):
    measured = analysis.measurements
    if measured is None:
        return
    exempt = exempt_paths(analysis)
    flagged = [(call.saturated_fraction, call) for call in measured.calls.values()
               if call.saturated_fraction is not None and call.path not in exempt
               and call.saturated_fraction > options["warning-above"]]
    if not flagged:
        return
    worst, call = max(flagged, key=lambda item: item[0])
    severity = "error" if worst > options["error-above"] else "warning"
    paths = [c.path for _, c in flagged]
    yield Problem(
        f"{worst:.0%} of the {call.activation} pre-activations of '{call.path}' are saturated "
        f"on the probe's batch (beyond ±5): they pass almost no gradient"
        + (f"; {len(paths)} layers are more than {options['warning-above']:.0%} saturated: "
           f"{span(paths)}" if len(paths) > 1 else ""),
        layer=call.path, layers=paths, severity=severity,
        evidence={"saturated_fraction": worst, "activation": call.activation,
                  "layers": {c.path: f for f, c in flagged}})
