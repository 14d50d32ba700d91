"""GL102 output-loss-mismatch: a softmax over one unit, probabilities fed to a from_logits
loss, and categorical cross-entropy on one unit are flagged; their correct counterparts are
not."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import keras2, keras3, rule_findings

PREFIX = Path(__file__).stem
CODE = "GL102"
LIBRARY = {"keras": keras3, "h5": keras2}


def model(units, activation, loss=None, separate=False):
    def build(keras):
        layers = [keras.Input((20,)), keras.layers.Dense(16, activation="relu")]
        if separate:
            layers += [keras.layers.Dense(units, name="output"),
                       keras.layers.Activation(activation, name="output_activation")]
        else:
            layers.append(keras.layers.Dense(units, activation=activation, name="output"))
        built = keras.Sequential(layers)
        if loss is not None:
            built.compile(optimizer="adam", loss=loss(keras))
        return built
    return build


CASES = {
    "softmax-1": (model(1, "softmax", lambda k: "binary_crossentropy"), "error"),
    "softmax-1-layer": (model(1, "softmax", separate=True), "error"),
    "sigmoid-1": (model(1, "sigmoid", lambda k: "binary_crossentropy"), None),
    "softmax-3-logits": (model(3, "softmax", lambda k: k.losses.CategoricalCrossentropy(
        from_logits=True)), "warning"),
    "softmax-3": (model(3, "softmax", lambda k: k.losses.CategoricalCrossentropy()), None),
    "linear-3-logits": (model(3, "linear", lambda k: k.losses.CategoricalCrossentropy(
        from_logits=True)), None),
    "sigmoid-1-categorical": (model(1, "sigmoid", lambda k: "categorical_crossentropy"),
                              "warning"),
}


@pytest.mark.parametrize("format", ["keras", "h5"])
@pytest.mark.parametrize("case", CASES)
def test_output_and_loss(save_model, case, format):
    build, expected = CASES[case]
    path = save_model(f"{PREFIX}-{case}", lambda: build(LIBRARY[format]()), format)
    found = rule_findings(path, CODE)
    assert [f.severity for f in found] == ([expected] if expected else []), found
    if expected:
        assert found[0].layer in ("output", "output_activation")
