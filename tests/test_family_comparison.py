"""The comparison family: Keras 3 stores an Embedding's `mask_zero` mask as a `NotEqual`
operation, which GL002 called a layer whose computation is not in the file. It is
understood now, and passes no gradient back (its output is boolean)."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

from conftest import keras3
import gradlint
from gradlint.config import Settings

PREFIX = Path(__file__).stem


def masked_lstm():
    keras = keras3()
    keras.utils.set_random_seed(0)
    inputs = keras.Input((12,), dtype="int32")
    hidden = keras.layers.Embedding(50, 8, mask_zero=True, name="embedding")(inputs)
    hidden = keras.layers.LSTM(8, name="lstm")(hidden)
    return keras.Model(inputs, keras.layers.Dense(3, name="output")(hidden))


def custom_op_model():
    """The near miss: an operation gradlint has no family for stays a GL002 unknown."""
    keras = keras3()
    inputs = keras.Input((6,))
    hidden = keras.layers.Dense(4, name="dense")(inputs)
    return keras.Model(inputs, keras.ops.cumsum(hidden, axis=-1))


def test_a_mask_is_understood_and_measured_layers_agree(save_model):
    path = save_model(f"{PREFIX}-masked", masked_lstm)
    report = gradlint.lint(str(path), probe=True, settings=dataclasses.replace(
        Settings(), probe=True, probe_seeds=2, batch_size=32)).to_dict()["files"][0]
    assert not [f for f in report["findings"] if f["code"] == "GL002"], report["findings"]
    layers = {layer["path"]: layer for layer in report["layers"]}
    assert layers["not_equal"]["family"] == "comparison"
    for name in ("embedding", "lstm"):
        estimate = layers[name]["estimate"]["kernel_gradient"]
        measured = layers[name]["measured"]["kernel_gradient"]
        assert abs(math.log10(estimate / measured)) <= 1.0, (name, estimate, measured)


def test_an_operation_without_a_family_is_still_unknown(save_model):
    path = save_model(f"{PREFIX}-cumsum", custom_op_model)
    codes = [f.code for f in gradlint.lint(str(path)).files[0].findings]
    assert "GL002" in codes
