"""A hidden Dense layer so narrow that every gradient reaching the layers before it passes through a handful of directions.

## What it flags
A `Dense` layer with fewer than `min-units` (4) units whose output feeds further layers (an
output layer may be as narrow as its targets).

## Why it hurts gradient flow
The gradient reaching the layers before the bottleneck is the bottleneck's kernel (units x
inputs) times the gradient at its output, so it has rank at most `units`: with 2 units, all
earlier kernels are updated along at most 2 directions per example, and a ReLU unit that dies
there cuts half of it.

## Example
    keras.Sequential([keras.Input((16,)),
                      keras.layers.Dense(16, activation="relu"),
                      keras.layers.Dense(2, activation="relu"),   # flagged
                      keras.layers.Dense(1)])

## Use instead
A wider hidden layer (`Dense(4)` or more), or a shortcut around the bottleneck.

## Options
- `min-units` (4): hidden Dense layers narrower than this are flagged.

## References
The example plugin of docs/plugins.md; the threshold is illustrative.
"""

from gradlint.findings import Problem

CODE = "XMP101"
NAME = "narrow-bottleneck"
SEVERITY = "warning"
PRECISION = "medium"
GROUPS = ("architecture", "example")
ALIASES = ("bottleneck",)
OPTIONS = {"min-units": 4}


def check(analysis, options):
    graph = analysis.graph
    outputs = set(graph.outputs)
    for node in graph.nodes:
        layer = node.layer
        units = layer.config.get("units")
        if layer.class_name != "Dense" or node.id in outputs or not isinstance(units, int):
            continue
        if units < options["min-units"]:
            yield Problem(f"'{node.path}' has {units} unit{'s' if units != 1 else ''}, fewer "
                          f"than {options['min-units']}: the gradient of every layer before it "
                          f"passes through {units} direction{'s' if units != 1 else ''}",
                          layer=node.path, evidence={"units": units})
