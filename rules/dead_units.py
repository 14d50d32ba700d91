"""The probe measured most of a layer's ReLU units dead: zero for every sample of the batch.

## What it flags
Runs only with `--probe`. Layers with a ReLU or ReLU6 activation (their own, or an
`Activation`/`ReLU` layer) where more than `warning-above` (0.7) of the units output zero for
every sample of the synthetic batch (every position too, for convolutions: a unit is a
channel), or at least `error-above` (0.99, the whole layer) for an error. The output layer is
not flagged. Measured here on keras.applications models with `weights=None`: no dead units in
ResNet50, MobileNetV2 or DenseNet121 (BatchNormalization centres every channel first); the
deepest layers of a 20-layer ReLU MLP with He init reach 0.5 on a batch of 4, because deep
ReLU layers map different inputs to similar codes, which is why the threshold is not lower.

## Why it hurts gradient flow
A ReLU unit whose input is negative for every sample outputs zero and passes zero gradient:
its weights never change again and, when most units of a layer are dead, the layers before it
get almost no gradient either ("dying ReLU"). AutoTrainer and DeepDiagnosis both flag a layer
when 70% or more of its units are dead; AutoTrainer's authors saw the problem in only half of
the runs of one model, which is why the probe reports medians over several batches.

## Example
    keras.layers.Dense(64, activation="relu",
                       bias_initializer=keras.initializers.Constant(-5.0))

## Use instead
Leaky ReLU, ELU or GELU (never exactly zero), He initialization with zero biases,
normalization before the activation, and a lower learning rate if units die during training.

## Options
- `warning-above` (0.7): the dead fraction that gives a warning (AutoTrainer, DeepDiagnosis).
- `error-above` (0.99): the fraction that gives an error (the whole layer is dead).

## References
Zhang et al., *AutoTrainer*, ICSE 2021. Wardat et al., *DeepDiagnosis*, ICSE 2022. Lu et
al., *Dying ReLU and Initialization: Theory and Numerical Examples*, 2019.
"""

from gradlint.findings import Problem, span

CODE = "GL904"
NAME = "dead-units"
SEVERITY = "warning"
PRECISION = "high"
GROUPS = ("probe", "activation", "vanishing")
ALIASES = ("dying-relu",)
OPTIONS = {"warning-above": 0.7, "error-above": 0.99}
PROBE = True


def _exempt(analysis) -> set[str]:
    measured = analysis.measurements
    exempt = {measured.reference} if measured.reference else set()
    graph = analysis.graph
    if graph is not None:
        exempt.update(graph.nodes[output].path for output in graph.outputs)
    return exempt


def check(analysis, options):
    measured = analysis.measurements
    if measured is None:
        return
    exempt = _exempt(analysis)
    flagged = [(call.dead_fraction, call) for call in measured.calls.values()
               if call.dead_fraction is not None and call.path not in exempt
               and call.dead_fraction > options["warning-above"]]
    if not flagged:
        return
    worst, call = max(flagged, key=lambda item: item[0])
    severity = "error" if worst >= options["error-above"] else "warning"
    paths = [c.path for _, c in flagged]
    yield Problem(
        f"{worst:.0%} of the units of '{call.path}' are dead on the probe's batch (zero for "
        f"every sample, so they pass no gradient)"
        + (f"; {len(paths)} layers are more than {options['warning-above']:.0%} dead: "
           f"{span(paths)}" if len(paths) > 1 else ""),
        layer=call.path, layers=paths, severity=severity,
        evidence={"dead_fraction": worst, "batch": measured.batch,
                  "layers": {c.path: f for f, c in flagged}})
