"""GL204 constant-initializer: Zeros/Ones/Constant kernels, and stored kernels whose values are
all equal, are flagged; zero kernels on the output layer and at the end of a residual branch
(zero-init residuals) are not."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import gradlint

from conftest import keras2, keras3, rule_findings

PREFIX = Path(__file__).stem
CODE = "GL204"
LIBRARY = {"keras": keras3, "keras2": keras2, "h5": keras2}


def findings(path, code=CODE):
    return rule_findings(path, code)


def mlp(keras, hidden_initializer="he_normal", output_initializer="glorot_uniform", at=1):
    """Three ReLU layers; `hidden_<at>` gets `hidden_initializer`, the others HeNormal."""
    layers = [keras.Input((16,))]
    for i in range(3):
        layers.append(keras.layers.Dense(
            16, activation="relu", name=f"hidden_{i}",
            kernel_initializer=hidden_initializer if i == at else "he_normal"))
    layers.append(keras.layers.Dense(10, activation="softmax", name="output",
                                     kernel_initializer=output_initializer))
    return keras.Sequential(layers)


@pytest.mark.parametrize("format", ["keras", "keras2", "h5"])
def test_zero_kernel_on_a_hidden_layer_is_an_error(save_model, format):
    keras = LIBRARY[format]
    path = save_model(f"{PREFIX}-zeros-hidden", lambda: mlp(keras(), "zeros"), format)
    found = findings(path)
    assert len(found) == 1
    finding = found[0]
    assert finding.severity == "error"
    assert finding.layer == "hidden_1"
    assert finding.layers == ["hidden_1"]
    assert finding.evidence["initializer"] == "Zeros"
    assert finding.evidence["value"] == 0.0
    assert "no gradient" in finding.message


@pytest.mark.parametrize("name, initializer, value", [
    ("ones", "ones", 1.0),
    ("constant", None, 0.3),
])
def test_ones_and_constant_kernels_are_errors(save_model, name, initializer, value):
    def build():
        keras = keras3()
        init = initializer or keras.initializers.Constant(value)
        return mlp(keras, init)

    path = save_model(f"{PREFIX}-{name}", build)
    found = findings(path)
    assert [(f.severity, f.layer) for f in found] == [("error", "hidden_1")]
    assert found[0].evidence["value"] == pytest.approx(value)


def test_random_kernels_are_not_flagged(save_model):
    path = save_model(f"{PREFIX}-random", lambda: mlp(keras3()))
    assert findings(path) == []


def test_zero_kernel_on_the_output_layer_is_not_flagged(save_model):
    path = save_model(f"{PREFIX}-zeros-output", lambda: mlp(keras3(), output_initializer="zeros"))
    assert findings(path) == []


def residual_mlp_with_zero_branch_ends():
    keras = keras3()
    layers = keras.layers
    inputs = keras.Input((16,))
    x = layers.Dense(16, activation="relu", kernel_initializer="he_normal", name="stem")(inputs)
    for i in range(3):
        h = layers.Dense(16, activation="relu", kernel_initializer="he_normal",
                         name=f"block_{i}_a")(x)
        h = layers.Dense(16, kernel_initializer="zeros", name=f"block_{i}_b")(h)
        x = layers.Add(name=f"add_{i}")([x, h])
    return keras.Model(inputs, layers.Dense(10, activation="softmax", name="output")(x))


def residual_cnn_with_zero_branch_end():
    keras = keras3()
    layers = keras.layers
    inputs = keras.Input((8, 8, 4))
    x = layers.Conv2D(8, 3, padding="same", kernel_initializer="he_normal", name="stem")(inputs)
    h = layers.Conv2D(8, 3, padding="same", activation="relu", kernel_initializer="he_normal",
                      name="branch_a")(x)
    h = layers.Conv2D(8, 3, padding="same", kernel_initializer="zeros", name="branch_b")(h)
    h = layers.BatchNormalization(name="branch_norm")(h)
    x = layers.Activation("relu", name="block_out")(layers.Add(name="add")([x, h]))
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    return keras.Model(inputs, layers.Dense(2, name="output")(x))


@pytest.mark.parametrize("name, build", [
    ("residual-mlp", residual_mlp_with_zero_branch_ends),
    ("residual-cnn", residual_cnn_with_zero_branch_end),
])
def test_zero_kernel_ending_a_residual_branch_is_not_flagged(save_model, name, build):
    path = save_model(f"{PREFIX}-{name}", build)
    assert findings(path) == []


def with_stored_kernel(value):
    def build():
        keras = keras3()
        model = mlp(keras)
        layer = model.get_layer("hidden_1")
        kernel, bias = layer.get_weights()
        layer.set_weights([np.full_like(kernel, value), bias])
        return model

    return build


@pytest.mark.parametrize("value", [0.5, 0.2, 0.1])
def test_stored_constant_kernel_is_flagged(save_model, value):
    # The initializer is HeNormal, but the stored kernel has one value throughout (a file
    # written after the weights were overwritten, or a broken conversion). 0.2 and 0.1 are
    # not exact in float32, so their float32 sums carry round-off.
    path = save_model(f"{PREFIX}-stored-{value}", with_stored_kernel(value))
    found = findings(path)
    assert [(f.severity, f.layer) for f in found] == [("error", "hidden_1")]
    assert found[0].evidence["value"] == pytest.approx(value, rel=1e-6)
    assert found[0].evidence["size"] == 16 * 16


def test_stored_constant_kernel_needs_the_weights(save_model):
    path = save_model(f"{PREFIX}-stored-0.5", with_stored_kernel(0.5))
    report = gradlint.lint(path, weights=False)
    assert [f for f in report.files[0].findings if f.code == CODE] == []
