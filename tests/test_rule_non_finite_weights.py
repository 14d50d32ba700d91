"""GL205 non-finite-weights: NaN or Inf written into a saved model's weights is flagged with
the layer and the count; huge but finite values are not, and neither is a run without
weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import gradlint

from conftest import keras2, keras3

PREFIX = Path(__file__).stem
CODE = "GL205"
LIBRARY = {"keras": keras3, "keras2": keras2, "h5": keras2}


def findings(path, code=CODE, **options):
    result = gradlint.lint(path, **options).files[0]
    assert result.error is None, result.error
    return [finding for finding in result.findings if finding.code == code]


def mlp(keras):
    return keras.Sequential([
        keras.Input((16,)),
        keras.layers.Dense(16, activation="relu", name="hidden_0"),
        keras.layers.Dense(16, activation="relu", name="hidden_1"),
        keras.layers.Dense(2, name="output"),
    ])


def poisoned(keras, layer="hidden_1", role=0, nan=3, inf=1, big=0):
    """`mlp` with `nan` NaNs, `inf` infinities and `big` finite 3e38 values written into one
    weight of `layer` before saving."""
    model = mlp(keras)
    weights = model.get_layer(layer).get_weights()
    flat = weights[role].reshape(-1)
    flat[:nan] = np.nan
    flat[nan:nan + inf] = np.inf
    flat[nan + inf:nan + inf + big] = 3e38
    weights[role] = flat.reshape(weights[role].shape)
    model.get_layer(layer).set_weights(weights)
    return model


@pytest.mark.parametrize("format", ["keras", "keras2", "h5"])
def test_nan_and_inf_in_a_kernel_are_an_error(save_model, format):
    keras = LIBRARY[format]
    path = save_model(f"{PREFIX}-nan-kernel", lambda: poisoned(keras()), format)
    found = findings(path)
    assert len(found) == 1
    finding = found[0]
    assert finding.severity == "error"
    assert finding.layer == "hidden_1"
    assert finding.layers == ["hidden_1"]
    assert finding.evidence["nonfinite_values"] == 4
    assert finding.evidence["tensors"] == ["kernel"]


def test_nan_in_a_bias_is_an_error(save_model):
    path = save_model(f"{PREFIX}-nan-bias",
                      lambda: poisoned(keras3(), layer="output", role=1, nan=1, inf=0))
    found = findings(path)
    assert [(f.severity, f.layer) for f in found] == [("error", "output")]
    assert found[0].evidence == {"nonfinite_values": 1, "tensors": ["bias"]}


def test_finite_weights_are_not_flagged(save_model):
    path = save_model(f"{PREFIX}-clean", lambda: mlp(keras3()))
    assert findings(path) == []


def test_huge_finite_values_are_not_flagged(save_model):
    # Two values near float32's maximum overflow a float32 sum of squares, not the weights.
    path = save_model(f"{PREFIX}-huge", lambda: poisoned(keras3(), nan=0, inf=0, big=2))
    assert findings(path) == []


def test_no_weights_means_no_verdict(save_model):
    path = save_model(f"{PREFIX}-nan-kernel", lambda: poisoned(keras3()))
    assert findings(path, weights=False) == []
