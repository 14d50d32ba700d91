"""GL301 deep-plain-network: 20 or more weighted layers on the gradient's shortest route with
no shortcut are flagged when the estimate moves by 10x or more along it (normalization is not
a shortcut); a ReLU/He stack whose estimate holds, and residual and densely connected stacks
of the same depth, are not."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import keras2, keras3, rule_findings

PREFIX = Path(__file__).stem
CODE = "GL301"
LIBRARY = {"keras": keras3, "keras2": keras2, "h5": keras2}


def findings(path, code=CODE):
    return rule_findings(path, code)


def plain(keras, depth, width=32, normalize=False, init="glorot_uniform"):
    layers = [keras.Input((width,))]
    for i in range(depth):
        layers.append(keras.layers.Dense(width, activation="relu",
                                         kernel_initializer=init, name=f"hidden_{i}"))
        if normalize:
            layers.append(keras.layers.BatchNormalization(name=f"norm_{i}"))
    layers.append(keras.layers.Dense(10, activation="softmax", name="output"))
    return keras.Sequential(layers)


@pytest.mark.parametrize("format", ["keras", "h5"])
def test_deep_plain_stack_is_flagged(save_model, format):
    keras = LIBRARY[format]
    path = save_model(f"{PREFIX}-plain24", lambda: plain(keras(), 24), format)
    found = findings(path)
    assert len(found) == 1
    finding = found[0]
    assert finding.severity == "warning"
    assert finding.layer == "hidden_0"
    assert finding.evidence["weighted_layers_on_route"] == 25
    assert finding.layers == [f"hidden_{i}" for i in range(24)] + ["output"]


def test_a_stack_whose_estimate_holds_is_not_flagged(save_model):
    # He init keeps a ReLU stack's signal: 24 layers deep, the estimate moves by less than
    # 10x, so the depth alone is no evidence of a gradient at risk.
    path = save_model(f"{PREFIX}-plain24-he", lambda: plain(keras3(), 24, init="he_normal"))
    assert findings(path) == []


@pytest.mark.parametrize("depth, flagged", [(18, False), (19, True)])
def test_threshold_counts_the_output_layer(save_model, depth, flagged):
    # 19 hidden layers and the output layer make the 20 weighted layers of the default.
    path = save_model(f"{PREFIX}-plain{depth}", lambda: plain(keras3(), depth))
    found = findings(path)
    assert bool(found) is flagged
    if flagged:
        assert found[0].evidence["weighted_layers_on_route"] == 20


def test_normalization_is_not_a_shortcut(save_model):
    path = save_model(f"{PREFIX}-plain24-bn",
                      lambda: plain(keras3(), 24, normalize=True, init="he_normal"))
    found = findings(path)
    assert [f.evidence["weighted_layers_on_route"] for f in found] == [25]


def residual(blocks=12, width=32):
    keras = keras3()
    layers = keras.layers
    inputs = keras.Input((width,))
    x = layers.Dense(width, activation="relu", kernel_initializer="he_normal", name="stem")(inputs)
    for i in range(blocks):
        h = layers.Dense(width, activation="relu", kernel_initializer="he_normal",
                         name=f"block_{i}_a")(x)
        h = layers.BatchNormalization(name=f"block_{i}_norm")(h)
        h = layers.Dense(width, kernel_initializer="he_normal", name=f"block_{i}_b")(h)
        x = layers.Add(name=f"add_{i}")([x, h])
    return keras.Model(inputs, layers.Dense(10, activation="softmax", name="output")(x))


def densely_connected(blocks=24, growth=8):
    keras = keras3()
    layers = keras.layers
    inputs = keras.Input((16,))
    x = layers.Dense(16, activation="relu", kernel_initializer="he_normal", name="stem")(inputs)
    for i in range(blocks):
        h = layers.Dense(growth, activation="relu", kernel_initializer="he_normal",
                         name=f"dense_block_{i}")(x)
        x = layers.Concatenate(name=f"concat_{i}")([x, h])
    return keras.Model(inputs, layers.Dense(10, activation="softmax", name="output")(x))


@pytest.mark.parametrize("name, build", [("residual", residual),
                                         ("densely-connected", densely_connected)])
def test_stacks_with_shortcuts_are_not_flagged(save_model, name, build):
    # Both have 26 weighted layers along their longest route.
    path = save_model(f"{PREFIX}-{name}", build)
    assert findings(path) == []
