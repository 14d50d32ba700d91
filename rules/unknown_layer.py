"""A layer (or a whole model) whose computation is not in the file is treated as a pass-through.

## What it flags
- custom layers (a `registered_name` outside Keras, or a class gradlint does not know), and
  `Lambda` layers, whose code is never read or run: the estimate passes the signal and the
  gradient through them unchanged;
- subclassed models and custom model classes (keras-hub backbones, for instance), which save
  only their constructor arguments: the file has no layer graph to analyse, although the stored
  weights are still checked (GL204, GL205).

## Why it matters
The estimate and the graph rules are only as complete as the graph. A custom attention block
that divides its output by 100 would hide a vanishing gradient from every static rule.

## Example
    inputs = keras.Input((32,))
    x = MyGatedBlock(64)(inputs)          # registered with @keras.saving.register_keras_serializable
    model = keras.Model(inputs, keras.layers.Dense(1)(x))

## Use instead
Nothing needs to change in the model. Run `gradlint --probe --custom-objects mypackage.layers`
to measure the real gradient through the custom code, or ignore this rule for the layer with
`per-layer-ignores`. For a subclassed model, `gradlint --custom-objects mypackage` (the module
that registers its class; never one the file names) rebuilds the model with Keras from its
stored configuration, without running it, and analyses the rebuilt graph.
"""

from gradlint.findings import Problem

CODE = "GL002"
NAME = "unknown-layer"
SEVERITY = "info"
PRECISION = "very-high"
GROUPS = ("file",)
ALIASES = ("custom-layer",)
OPTIONS = {}


def check(analysis, options):
    graph = analysis.graph
    if not graph.graph_stored:
        checked = "only its stored weights were checked" if graph.weights_read else \
            "nothing of it was checked (its stored weights were not read)"
        yield Problem(
            f"the file stores model class '{graph.model_class}' without its layer graph (a "
            f"subclassed or custom model), so {checked}; 'gradlint --custom-objects "
            "<module>', with the module that registers the class, rebuilds it for the whole "
            "analysis (add --probe to measure its gradients)",
            evidence={"model_class": graph.model_class})
        return
    for layer in graph.layers():
        if not layer.family.understood(layer) or layer.custom:
            what = layer.family.unknown_what(layer)
            yield Problem(
                f"'{layer.path}' is {what} (class {layer.class_name}); its code is not read, "
                "so the estimate passes the signal through it unchanged",
                layer=layer.path, layers=[layer.path],
                evidence={"class": layer.class_name})
