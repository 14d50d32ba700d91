"""Many weighted layers in a row with neither normalization nor a shortcut between them.

## What it flags
A run of `min-layers` (12) or more weighted layers on the gradient's shortest route from the
loss with no normalization layer (BatchNormalization, LayerNormalization, GroupNormalization,
RMSNormalization, ...) and no shortcut connection. Runs whose layers all use SELU are not
flagged: SELU with LeCun-normal initialization normalizes itself (Klambauer et al. 2017).

## Why it hurts gradient flow
Without normalization, every layer's initialization error compounds: a gain of 0.9 per layer
is 0.28 after 12 layers and 0.04 after 30, and any drift of the weights during training
compounds the same way. Normalization resets the scale of the signal at each layer and, in
the backward pass, divides the gradient by the same scale, which keeps both near one (Ioffe
& Szegedy 2015). VGG-style stacks of 16 or more unnormalized layers needed staged
initialization to train at all (Simonyan & Zisserman 2015).

## Example
    keras.Sequential([keras.Input((64,))] +
                     [keras.layers.Dense(64, activation="relu") for _ in range(14)])

## Use instead
`BatchNormalization` after convolutions, `LayerNormalization` in MLPs, transformers and
recurrent stacks; or residual connections.

A long run is flagged only when the estimate shows what it costs: the signal entering the
run's layers or their kernel gradients change by `min-change` (10x) or more from its first
layer to its last. In the labelled corpus (`bench/corpus/`), eleven tanh MLPs of 9 to 18
layers without normalization trained to 75-87% (DeepDiagnosis, Wardat et al. 2022); their
estimate stays within a decade, and the rule counted them all as false alarms before.

## Options
- `min-layers` (12): the length of an unnormalized run at which the rule looks.
- `min-change` (10): how far the estimate must move over the run.
- `adaptive-factor` (0.1): under an optimizer that adapts its step sizes (Adam and kin,
  see GL201), `min-change` is divided by it (10x becomes 100x).

## References
Ioffe & Szegedy, *Batch Normalization*, ICML 2015. Klambauer et al., *Self-Normalizing Neural
Networks*, NeurIPS 2017. Simonyan & Zisserman, *Very Deep
Convolutional Networks*, ICLR 2015.
"""

from gradlint import verdicts
from gradlint.findings import Problem, min_change, span
from gradlint.rules._fixes import structural

CODE = "GL302"
NAME = "missing-normalization"
SEVERITY = "warning"
PRECISION = "medium"
GROUPS = ("architecture",)
ALIASES = ("no-normalization",)
OPTIONS = {"min-layers": 12, "min-change": 10.0, "adaptive-factor": 0.1}
CLAIMS = "vanishing"
# A condition, not a cause: beside a cause of the same vanishing it is reported inside it.
CONDITION = True


def confirm(finding, measurements, options):
    """The probe confirms the depth when the gradient measurably vanishes or explodes."""
    return verdicts.depth(finding, measurements)


def check(analysis, options):
    routes = analysis.routes
    weighted = analysis.weighted_nodes()
    if not weighted:
        return
    longest = max(weighted, key=lambda node: routes.run_without_normalization[node.id])
    run = routes.run_without_normalization[longest.id]
    if run < options["min-layers"] or run >= 1 << 30:
        return
    weighted_ids = {node.id for node in weighted}
    run_nodes = [analysis.node(n) for n in routes.route(longest.id, stop_at_normalization=True)
                 if n in weighted_ids]
    hidden = [node for node in run_nodes if node.id not in analysis.graph.outputs]
    if hidden and all(analysis.effective_activation(node).name == "selu" for node in hidden):
        return
    change = analysis.estimate_change(run_nodes[0], run_nodes[-1])
    if change is not None and change < min_change(analysis, options):
        return  # the estimate keeps signal and gradient within a decade over the run
    on_route = [node.path for node in run_nodes]
    yield Problem(
        f"{run} weighted layers in a row ({span(on_route)}) with no normalization layer or "
        "shortcut between them",
        layer=longest.path, layers=on_route,
        evidence={"weighted_layers_in_run": run},
        fix=structural("add a normalization layer (BatchNormalization, LayerNormalization) "
                       "or a shortcut in the run"))
