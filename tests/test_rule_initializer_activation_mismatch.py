"""GL202 initializer-activation-mismatch: ReLU with Glorot scaling in a deep plain stack (He
et al. 2015) and sigmoid with He scaling are flagged, with the initializer that fits; the same
stack with He init, with normalization, or only a few layers deep is not."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import keras2, keras3, rule_findings

PREFIX = Path(__file__).stem
CODE = "GL202"
LIBRARY = {"keras": keras3, "keras2": keras2, "h5": keras2}


def findings(path, code=CODE):
    return rule_findings(path, code)


def mlp(keras, depth, activation="relu", initializer="glorot_uniform", width=128,
        normalize=False):
    layers = [keras.Input((width,))]
    for i in range(depth):
        layers.append(keras.layers.Dense(width, activation=activation, name=f"hidden_{i}",
                                         kernel_initializer=initializer))
        if normalize:
            layers.append(keras.layers.BatchNormalization(name=f"norm_{i}"))
    layers.append(keras.layers.Dense(10, activation="softmax", name="output"))
    return keras.Sequential(layers)


@pytest.mark.parametrize("format", ["keras", "h5"])
def test_thirty_relu_layers_with_glorot_are_an_error(save_model, format):
    keras = LIBRARY[format]
    path = save_model(f"{PREFIX}-relu30-glorot", lambda: mlp(keras(), 30), format)
    found = findings(path)
    assert len(found) == 1
    finding = found[0]
    assert finding.severity == "error"
    assert finding.layer == "hidden_0"
    assert finding.layers == [f"hidden_{i}" for i in range(30)]
    assert finding.evidence["activation"] == "relu"
    assert finding.evidence["initializer"] == "GlorotUniform"
    assert finding.evidence["suggested_initializer"] == "HeNormal"
    assert "HeNormal" in finding.message
    # Glorot + ReLU halves the second moment per layer: the scale after 30 layers is about
    # 0.5 ** 15 = 3e-5 (tf.GradientTape measures the forward signal there at ~1e-5).
    assert 1e-7 < finding.evidence["compounded_gain"] < 1e-3


def test_thirty_relu_layers_with_he_are_not_flagged(save_model):
    path = save_model(f"{PREFIX}-relu30-he", lambda: mlp(keras3(), 30, initializer="he_normal"))
    assert findings(path) == []


def test_thirty_relu_glorot_layers_with_normalization_are_not_flagged(save_model):
    path = save_model(f"{PREFIX}-relu30-glorot-bn", lambda: mlp(keras3(), 30, normalize=True))
    assert findings(path) == []


def test_a_few_relu_glorot_layers_are_not_flagged(save_model):
    path = save_model(f"{PREFIX}-relu3-glorot", lambda: mlp(keras3(), 3))
    assert findings(path) == []


def test_deep_sigmoid_with_he_names_glorot(save_model):
    path = save_model(f"{PREFIX}-sigmoid20-he",
                      lambda: mlp(keras3(), 20, "sigmoid", "he_normal", width=64))
    found = findings(path)
    assert [f.severity for f in found] == ["error"]
    assert found[0].evidence["initializer"] == "HeNormal"
    assert found[0].evidence["suggested_initializer"] == "GlorotUniform"
    assert found[0].layers == [f"hidden_{i}" for i in range(20)]


def zero_layer_then_relu_glorot():
    keras = keras3()
    return keras.Sequential([
        keras.Input((16,)),
        keras.layers.Dense(16, activation="relu", kernel_initializer="zeros", name="zeros"),
        keras.layers.Dense(16, activation="relu", name="hidden"),
        keras.layers.Dense(2, name="output"),
    ])


def test_one_mismatched_layer_is_not_blamed_for_a_zero_kernel(save_model):
    # One ReLU/Glorot layer loses a factor of 2 in variance; the estimate at it is zero only
    # because the layer before it has a zero kernel (GL204's finding, not a mismatch).
    path = save_model(f"{PREFIX}-after-zeros", zero_layer_then_relu_glorot)
    assert findings(path) == []
