"""An output activation that gives the loss no gradient, or a loss that does not match it.

## What it flags
- A softmax over a single unit (`Dense(1, activation="softmax")`, or a `Softmax` layer on a
  last axis of size 1): its output is exactly 1.0 for every input, so no gradient reaches any
  layer (an error).
- A saved loss with `from_logits=True` on an output that already applies softmax or sigmoid:
  the loss squashes probabilities a second time, so its gradient is confined to a narrow
  band and shrinks as the model learns (a warning).
- Categorical cross-entropy on a single sigmoid or linear unit: with one class the loss is
  -log(p) whatever the label, so the gradient carries nothing about the target (a warning).

## Why it hurts gradient flow
The gradient of the loss with respect to the logits is where every other gradient starts.
With softmax over one unit it is zero at every step (the Jacobian of a constant); with
probabilities fed as logits it is at most about 0.46 per unit for a sigmoid and falls with
confidence; with a one-class cross-entropy it pushes the single output up for every sample.
In the labelled corpus (`bench/corpus/`), 9 of the 12 problems visible in the file are the
first bug, from the DeepDiagnosis benchmark (Wardat et al., ICSE 2022), and Keras itself
warns about it at training time.

## Example
    keras.Sequential([keras.Input((20,)), keras.layers.Dense(16, activation="relu"),
                      keras.layers.Dense(1, activation="softmax")])

## Use instead
`Dense(1, activation="sigmoid")` with binary cross-entropy for two classes, or
`Dense(k, activation="softmax")` with categorical cross-entropy for k classes; keep
`from_logits=True` for a linear output only.
"""

from gradlint.findings import Problem

CODE = "GL102"
NAME = "output-loss-mismatch"
SEVERITY = "error"
PRECISION = "very-high"
GROUPS = ("activation", "vanishing")
ALIASES = ("single-unit-softmax",)
OPTIONS = {}
# About the loss's own gradient: the probe's synthetic loss follows the output, so it gives
# no verdict of its own.
CLAIMS = None

PROBABILITIES = ("softmax", "sigmoid")
CATEGORICAL = ("categorical_crossentropy", "categoricalcrossentropy")


def _losses(loss) -> list[tuple[str, dict]]:
    """(name, config) of every loss in a saved compile configuration."""
    if isinstance(loss, str):
        return [(loss.lower(), {})]
    if isinstance(loss, dict):
        if "class_name" in loss:
            config = loss.get("config") if isinstance(loss.get("config"), dict) else {}
            return [(str(loss.get("class_name")).lower(), config)]
        return [item for value in loss.values() for item in _losses(value)]
    if isinstance(loss, (list, tuple)):
        return [item for value in loss for item in _losses(value)]
    return []


def _units(node) -> int | None:
    shape = node.output_shape
    return shape[-1] if shape and type(shape[-1]) is int else None


def _output_activation(analysis, node):
    """The activation the output applies: its own, or that of the layer producing it."""
    layer = node.layer
    if layer.family.applies_activation or layer.weighted:
        return analysis.effective_activation(node) if layer.weighted else layer.activation
    return None


def check(analysis, options):
    graph = analysis.graph
    training = graph.training
    losses = _losses(training.loss) if training is not None else []
    for output in graph.outputs:
        node = analysis.node(output)
        activation = _output_activation(analysis, node)
        name = activation.name if activation is not None else "linear"
        units = _units(node)
        axis = node.layer.config.get("axis", -1) if node.layer.family.applies_activation \
            else -1
        if name == "softmax" and units == 1 and axis in (-1, len(node.output_shape) - 1):
            yield Problem(
                f"'{node.path}' applies softmax over a single unit: its output is 1.0 for "
                "every input, so no gradient reaches any layer; use sigmoid for one unit",
                layer=node.path, layers=[node.path], severity="error",
                evidence={"activation": name, "units": units})
            continue
        for loss, config in losses:
            if config.get("from_logits") and name in PROBABILITIES:
                yield Problem(
                    f"the loss {loss} takes logits (from_logits=True) but '{node.path}' "
                    f"already applies {name}: the loss squashes probabilities again and its "
                    "gradient shrinks; drop the activation or from_logits",
                    layer=node.path, layers=[node.path], severity="warning",
                    evidence={"activation": name, "loss": loss, "from_logits": True})
                break
            if loss in CATEGORICAL and units == 1:
                yield Problem(
                    f"categorical cross-entropy on the single unit of '{node.path}': with "
                    "one class the loss ignores the label; use binary cross-entropy",
                    layer=node.path, layers=[node.path], severity="warning",
                    evidence={"activation": name, "loss": loss, "units": units})
                break
