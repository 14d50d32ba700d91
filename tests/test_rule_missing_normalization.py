"""GL302 missing-normalization: 12 or more weighted layers in a row with no normalization layer
or shortcut, over which the estimate moves by a decade, are flagged; the same depth broken up
by normalization, bridged by residual shortcuts, or kept level by He initialization, is
not."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import keras2, keras3, rule_findings

PREFIX = Path(__file__).stem
CODE = "GL302"
LIBRARY = {"keras": keras3, "keras2": keras2, "h5": keras2}


def findings(path, code=CODE):
    return rule_findings(path, code)


# Glorot with ReLU halves the signal's second moment at every layer: over 12 layers the
# estimated signal falls 1.8 decades, the evidence the rule needs. With He it keeps.
def stack(keras, depth, normalize_every=None, width=32, initializer="glorot_uniform"):
    layers = [keras.Input((width,))]
    for i in range(depth):
        layers.append(keras.layers.Dense(width, activation="relu",
                                         kernel_initializer=initializer, name=f"hidden_{i}"))
        if normalize_every and (i + 1) % normalize_every == 0:
            layers.append(keras.layers.BatchNormalization(name=f"norm_{i}"))
    layers.append(keras.layers.Dense(10, activation="softmax", name="output"))
    return keras.Sequential(layers)


@pytest.mark.parametrize("format", ["keras", "keras2"])
def test_long_unnormalized_run_is_flagged(save_model, format):
    keras = LIBRARY[format]
    path = save_model(f"{PREFIX}-run16", lambda: stack(keras(), 15), format)
    found = findings(path)
    assert len(found) == 1
    finding = found[0]
    assert finding.severity == "warning"
    assert finding.layer == "hidden_0"
    assert finding.evidence["weighted_layers_in_run"] == 16
    assert finding.layers == [f"hidden_{i}" for i in range(15)] + ["output"]


@pytest.mark.parametrize("depth, flagged", [(10, False), (11, True)])
def test_threshold_is_twelve_weighted_layers(save_model, depth, flagged):
    path = save_model(f"{PREFIX}-run{depth + 1}", lambda: stack(keras3(), depth))
    found = findings(path)
    assert bool(found) is flagged
    if flagged:
        assert found[0].evidence["weighted_layers_in_run"] == 12


def test_a_long_run_the_estimate_keeps_level_is_not_flagged(save_model):
    # He-initialized ReLU layers keep signal and gradient: 21 layers in a row, no evidence.
    path = save_model(f"{PREFIX}-run21-he",
                      lambda: stack(keras3(), 20, initializer="he_normal"))
    assert findings(path) == []


def test_normalization_every_six_layers_is_not_flagged(save_model):
    path = save_model(f"{PREFIX}-run24-bn6", lambda: stack(keras3(), 24, normalize_every=6))
    assert findings(path) == []


def test_run_is_measured_from_the_last_normalization(save_model):
    # Normalization after hidden_5 only: hidden_6 … hidden_18 and the output make 14.
    def build():
        keras = keras3()
        layers = [keras.Input((32,))]
        for i in range(19):
            layers.append(keras.layers.Dense(32, activation="relu", name=f"hidden_{i}",
                                             kernel_initializer="glorot_uniform"))
            if i == 5:
                layers.append(keras.layers.LayerNormalization(name="norm"))
        layers.append(keras.layers.Dense(10, activation="softmax", name="output"))
        return keras.Sequential(layers)

    path = save_model(f"{PREFIX}-norm-after-6", build)
    found = findings(path)
    assert len(found) == 1
    assert found[0].evidence["weighted_layers_in_run"] == 14
    assert found[0].layers[0] == "hidden_6"


def residual_without_normalization(blocks=12, width=32):
    keras = keras3()
    layers = keras.layers
    inputs = keras.Input((width,))
    x = layers.Dense(width, activation="relu", kernel_initializer="he_normal", name="stem")(inputs)
    for i in range(blocks):
        h = layers.Dense(width, activation="relu", kernel_initializer="he_normal",
                         name=f"block_{i}_a")(x)
        h = layers.Dense(width, kernel_initializer="he_normal", name=f"block_{i}_b")(h)
        x = layers.Add(name=f"add_{i}")([x, h])
    return keras.Model(inputs, layers.Dense(10, activation="softmax", name="output")(x))


def test_residual_shortcuts_bridge_the_run(save_model):
    path = save_model(f"{PREFIX}-residual", residual_without_normalization)
    assert findings(path) == []
