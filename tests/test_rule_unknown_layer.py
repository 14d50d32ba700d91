"""GL002 unknown-layer: custom layers and Lambda layers are reported as pass-throughs, and a
subclassed model saved without its layer graph is reported as such; models made only of
Keras layers are not flagged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import gradlint

import conftest
from conftest import keras2, keras3

PREFIX = Path(__file__).stem
CODE = "GL002"


def lint_result(path):
    result = gradlint.lint(path).files[0]
    assert result.error is None, result.error
    return result


def findings(path, code=CODE):
    return [finding for finding in lint_result(path).findings if finding.code == code]


def scale_layer_class(keras):
    """A registered custom layer (defined once per Keras flavour and session)."""
    return conftest.scale_layer_class(keras, PREFIX, f"{PREFIX}_Scale")


def with_custom_layer(keras):
    inputs = keras.Input((8,))
    x = keras.layers.Dense(16, activation="relu", name="hidden")(inputs)
    x = scale_layer_class(keras)(0.01, name="scale")(x)
    return keras.Model(inputs, keras.layers.Dense(1, name="output")(x))


@pytest.mark.parametrize("format, keras", [("keras", keras3), ("keras2", keras2),
                                           ("h5", keras2)])
def test_custom_layer_is_reported(save_model, format, keras):
    path = save_model(f"{PREFIX}-custom", lambda: with_custom_layer(keras()), format)
    found = findings(path)
    assert len(found) == 1
    finding = found[0]
    assert finding.severity == "info"
    assert finding.layer == "scale"
    assert finding.layers == ["scale"]
    assert finding.evidence["class"].endswith("Scale")
    assert "pass" in finding.message


def test_custom_layer_is_passed_through_by_the_estimate(save_model):
    path = save_model(f"{PREFIX}-custom", lambda: with_custom_layer(keras3()), "keras")
    layers = {layer["path"]: layer for layer in lint_result(path).layers}
    # The custom layer multiplies by 0.01 at run time; the estimate cannot know and passes the
    # scale through unchanged.
    assert layers["scale"]["estimate"]["forward_scale"] == \
        pytest.approx(layers["hidden"]["estimate"]["forward_scale"])


def test_lambda_layer_is_reported(save_model):
    def build():
        keras = keras3()
        inputs = keras.Input((8,))
        x = keras.layers.Dense(16, name="hidden")(inputs)
        x = keras.layers.Lambda(lambda t: t * 2.0, name="double")(x)
        return keras.Model(inputs, keras.layers.Dense(1, name="output")(x))

    path = save_model(f"{PREFIX}-lambda", build)
    found = findings(path)
    assert [(f.severity, f.layer) for f in found] == [("info", "double")]
    assert "Lambda" in found[0].message


def subclassed_model():
    keras = keras3()
    name = f"{PREFIX}_Subclassed"
    key = f"{PREFIX}>{name}"
    model_class = keras.saving.get_custom_objects().get(key)
    if model_class is None:
        @keras.saving.register_keras_serializable(package=PREFIX, name=name)
        class Subclassed(keras.Model):
            def __init__(self, units=8, **kwargs):
                super().__init__(**kwargs)
                self.units = units
                self.hidden = keras.layers.Dense(units, activation="relu")
                self.out = keras.layers.Dense(1)

            def call(self, inputs):
                return self.out(self.hidden(inputs))

            def get_config(self):
                return {"units": self.units}

        model_class = Subclassed
    model = model_class()
    model(np.zeros((1, 4), dtype="float32"))
    return model


def test_subclassed_model_without_graph_is_reported(save_model):
    path = save_model(f"{PREFIX}-subclassed", subclassed_model)
    result = lint_result(path)
    found = [f for f in result.findings if f.code == CODE]
    assert len(found) == 1
    assert found[0].severity == "info"
    assert found[0].evidence["model_class"].endswith("Subclassed")
    assert "layer graph" in found[0].message
    assert "only its stored weights were checked" in found[0].message
    # Not unreadable: the file's weights are still there to check.
    assert gradlint.lint(path).exit_code() == 0
    # Without them, it does not claim they were checked.
    (unweighted,) = [f for f in gradlint.lint(path, weights=False).files[0].findings
                     if f.code == CODE]
    assert "nothing of it was checked" in unweighted.message


def test_keras_layers_only_are_not_flagged(save_model):
    def build():
        keras = keras3()
        inputs = keras.Input((8, 8, 3))
        x = keras.layers.Conv2D(8, 3, activation="relu", name="conv")(inputs)
        x = keras.layers.Dropout(0.1, name="dropout")(x)
        x = keras.layers.Flatten(name="flatten")(x)
        return keras.Model(inputs, keras.layers.Dense(1, name="output")(x))

    path = save_model(f"{PREFIX}-builtin", build)
    assert findings(path) == []
