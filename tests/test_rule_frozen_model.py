"""GL404 frozen-model: a compiled model whose every layer with weights is frozen is
flagged; the same model saved without an optimizer, a frozen base under a trainable head,
and a frozen BatchNormalization are not."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import keras2, keras3, rule_findings

PREFIX = Path(__file__).stem
CODE = "GL404"
LIBRARY = {"keras": keras3, "h5": keras2}


def small_cnn(keras):
    return keras.Sequential([
        keras.Input((16, 16, 3)),
        keras.layers.Conv2D(8, 3, activation="relu", name="conv"),
        keras.layers.BatchNormalization(name="norm"),
        keras.layers.GlobalAveragePooling2D(name="pool"),
        keras.layers.Dense(4, activation="softmax", name="head"),
    ])


def frozen(keras, compiled=True, head_trainable=False, only_norm=False):
    model = small_cnn(keras)
    if only_norm:
        model.get_layer("norm").trainable = False
    else:
        model.trainable = False
        if head_trainable:
            model.get_layer("head").trainable = True
    if compiled:
        model.compile(optimizer="adam", loss="categorical_crossentropy")
    return model


@pytest.mark.parametrize("format", ["keras", "h5"])
def test_a_compiled_model_with_every_layer_frozen_is_an_error(save_model, format):
    path = save_model(f"{PREFIX}-all", lambda: frozen(LIBRARY[format]()), format)
    found = rule_findings(path, CODE)
    assert len(found) == 1
    assert found[0].severity == "error"
    assert found[0].layers == ["conv", "norm", "head"]


@pytest.mark.parametrize("name, options", [
    ("uncompiled", {"compiled": False}),
    ("trainable-head", {"head_trainable": True}),
    ("frozen-norm", {"only_norm": True}),
])
def test_near_misses_are_not_flagged(save_model, name, options):
    path = save_model(f"{PREFIX}-{name}", lambda: frozen(keras3(), **options))
    assert rule_findings(path, CODE) == []
