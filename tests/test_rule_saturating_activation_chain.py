"""GL101 saturating-activation-chain: deep sigmoid/tanh stacks are flagged; shallow stacks,
the gates inside LSTM cells and a squeeze-and-excitation sigmoid gate are not."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import keras2, keras3, rule_findings

PREFIX = Path(__file__).stem
CODE = "GL101"
LIBRARY = {"keras": keras3, "keras2": keras2, "h5": keras2}


def findings(path, code=CODE):
    return rule_findings(path, code)


def saturating_mlp(keras, depth, activation="sigmoid", width=64):
    layers = [keras.Input((width,))]
    layers += [keras.layers.Dense(width, activation=activation, name=f"hidden_{i}")
               for i in range(depth)]
    layers.append(keras.layers.Dense(10, activation="softmax", name="output"))
    return keras.Sequential(layers)


@pytest.mark.parametrize("format", ["keras", "keras2", "h5"])
def test_deep_sigmoid_mlp_is_an_error(save_model, format):
    keras = LIBRARY[format]
    path = save_model(f"{PREFIX}-sigmoid20", lambda: saturating_mlp(keras(), 20), format)
    found = findings(path)
    assert len(found) == 1
    finding = found[0]
    assert finding.severity == "error"
    assert finding.layer == "hidden_0"
    assert finding.layers == [f"hidden_{i}" for i in range(20)]
    assert finding.evidence["saturating_layers"] == 20
    assert finding.evidence["activations"] == ["sigmoid"]
    # sigmoid' <= 1/4 and a square Glorot layer has fan_out * Var(W) = 1, so 19 hidden steps
    # (and a narrowing output head) leave at most 0.25**19 of the output's gradient; the
    # mean-field value is about 0.236 per layer.
    gradient = finding.evidence["gradient"]
    assert 1e-16 < gradient < 0.25 ** 19
    assert "hidden_0" in finding.message


def test_same_estimate_from_every_format(save_model):
    gradients = []
    for format in ("keras", "keras2", "h5"):
        keras = LIBRARY[format]
        path = save_model(f"{PREFIX}-sigmoid20", lambda: saturating_mlp(keras(), 20), format)
        gradients.append(findings(path)[0].evidence["gradient"])
    assert gradients[1] == pytest.approx(gradients[0], rel=1e-9)
    assert gradients[2] == pytest.approx(gradients[0], rel=1e-9)


def test_hard_sigmoid_chain_is_flagged(save_model):
    path = save_model(f"{PREFIX}-hard-sigmoid20",
                      lambda: saturating_mlp(keras3(), 20, "hard_sigmoid"))
    found = findings(path)
    assert [f.severity for f in found] == ["error"]
    assert found[0].evidence["activations"] == ["hard_sigmoid"]
    assert found[0].layers[0] == "hidden_0"


def activation_layer_chain(depth=12, width=64):
    keras = keras3()
    inputs = keras.Input((width,))
    x = inputs
    for i in range(depth):
        x = keras.layers.Dense(width, name=f"hidden_{i}")(x)
        x = keras.layers.Activation("sigmoid", name=f"sigmoid_{i}")(x)
    outputs = keras.layers.Dense(10, activation="softmax", name="output")(x)
    return keras.Model(inputs, outputs)


def test_sigmoid_given_as_activation_layers_is_flagged(save_model):
    path = save_model(f"{PREFIX}-activation-layers", activation_layer_chain)
    found = findings(path)
    assert [f.severity for f in found] == ["error"]
    assert found[0].layers == [f"hidden_{i}" for i in range(12)]


def test_activation_layers_are_counted_once(save_model):
    # Twelve Dense layers each followed by one Activation("sigmoid"): twelve saturating
    # activations, not twenty-four.
    path = save_model(f"{PREFIX}-activation-layers", activation_layer_chain)
    found = findings(path)
    assert found[0].evidence["saturating_layers"] == 12


@pytest.mark.parametrize("depth", [2, 3])
def test_shallow_sigmoid_mlp_is_not_flagged(save_model, depth):
    path = save_model(f"{PREFIX}-sigmoid{depth}", lambda: saturating_mlp(keras3(), depth))
    assert findings(path) == []


def test_deep_tanh_mlp_with_glorot_is_not_flagged(save_model):
    # tanh with Glorot at width 64 sits near the critical line (chi ~ 1): measured first/last
    # kernel-gradient ratio ~1.5 on this stack, nothing vanishes.
    path = save_model(f"{PREFIX}-tanh20", lambda: saturating_mlp(keras3(), 20, "tanh"))
    assert findings(path) == []


def lstm_model():
    keras = keras3()
    return keras.Sequential([
        keras.Input((50, 8)),
        keras.layers.LSTM(32, return_sequences=True, name="lstm_0"),
        keras.layers.LSTM(32, name="lstm_1"),
        keras.layers.Dense(1, activation="sigmoid", name="output"),
    ])


def test_lstm_gates_are_not_a_chain(save_model):
    path = save_model(f"{PREFIX}-lstm", lstm_model)
    assert findings(path) == []


def squeeze_excitation_cnn():
    keras = keras3()
    layers = keras.layers
    inputs = keras.Input((16, 16, 3))
    x = inputs
    for i in range(6):
        x = layers.Conv2D(16, 3, padding="same", activation="relu",
                          kernel_initializer="he_normal", name=f"conv_{i}")(x)
        gate = layers.GlobalAveragePooling2D(keepdims=True, name=f"squeeze_{i}")(x)
        gate = layers.Conv2D(4, 1, activation="relu", name=f"reduce_{i}")(gate)
        gate = layers.Conv2D(16, 1, activation="sigmoid", name=f"gate_{i}")(gate)
        x = layers.Multiply(name=f"excite_{i}")([x, gate])
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    return keras.Model(inputs, layers.Dense(10, activation="softmax", name="output")(x))


def test_squeeze_excitation_gates_are_not_a_chain(save_model):
    path = save_model(f"{PREFIX}-se-cnn", squeeze_excitation_cnn)
    assert findings(path) == []


def test_sigmoid_output_on_relu_mlp_is_not_flagged(save_model):
    def build():
        keras = keras3()
        return keras.Sequential([
            keras.Input((32,)),
            keras.layers.Dense(32, activation="relu", kernel_initializer="he_normal"),
            keras.layers.Dense(32, activation="relu", kernel_initializer="he_normal"),
            keras.layers.Dense(1, activation="sigmoid", name="output"),
        ])

    path = save_model(f"{PREFIX}-binary-classifier", build)
    assert findings(path) == []
