"""GL405 float16-gradient-underflow: float16 layers whose estimated gradient falls below
float16's normal range, saved with an optimizer that does not scale the loss, are flagged;
a saved LossScaleOptimizer or loss_scale_factor, float32, a shallow model or a file without
an optimizer are not."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import keras2, keras3, rule_findings

PREFIX = Path(__file__).stem
CODE = "GL405"


def sigmoid_mlp(keras, depth, layer_dtype=None):
    """Sigmoid hidden layers (float16 under the policy) and a float32 softmax head, as the
    Keras mixed-precision guide recommends."""
    layers = [keras.Input((64,))]
    layers += [keras.layers.Dense(64, activation="sigmoid", dtype=layer_dtype,
                                  name=f"hidden_{i}") for i in range(depth)]
    layers.append(keras.layers.Dense(10, activation="softmax", dtype="float32", name="output"))
    return keras.Sequential(layers)


def keras3_mixed(depth=8, compile_with=None, compiled=True, **compile_options):
    def build():
        keras = keras3()
        keras.mixed_precision.set_dtype_policy("mixed_float16")
        try:
            model = sigmoid_mlp(keras, depth)
            if compiled:
                optimizer = compile_with(keras) if compile_with else "adam"
                model.compile(optimizer=optimizer, loss="categorical_crossentropy",
                              **compile_options)
        finally:
            keras.mixed_precision.set_dtype_policy("float32")
        return model
    return build


def test_keras3_file_without_loss_scaling_is_flagged(save_model):
    # Compiled with auto_scale_loss=True (the default), but Keras 3.15 saves neither that
    # flag nor the model's policy: reloaded, the model compiles a plain Adam.
    path = save_model(f"{PREFIX}-k3-deep", keras3_mixed())
    found = rule_findings(path, CODE)
    assert len(found) == 1
    finding = found[0]
    assert finding.severity == "error"
    assert finding.layer == "hidden_0"
    assert "output" not in finding.layers  # float32
    assert finding.evidence["policy"] == "mixed_float16"
    # Measured RMS gradient at the first layer's output: 1.6e-7 for this loss; the estimate
    # at its pre-activation is a sigmoid slope (about 0.2) below.
    assert 1e-9 < finding.evidence["min_gradient"] < 1e-6


def test_a_saved_loss_scale_optimizer_is_not_flagged(save_model):
    def wrapped(keras):
        return keras.optimizers.LossScaleOptimizer(keras.optimizers.Adam())

    path = save_model(f"{PREFIX}-k3-loss-scale-optimizer", keras3_mixed(compile_with=wrapped))
    assert rule_findings(path, CODE) == []


def test_a_saved_loss_scale_factor_is_not_flagged(save_model):
    # Kept in the file only with auto_scale_loss=False: otherwise compile wraps the optimizer
    # in a LossScaleOptimizer, which sets the inner loss_scale_factor to None, and that is
    # what is saved (flagged below).
    factor = lambda keras: keras.optimizers.Adam(loss_scale_factor=1024.0)  # noqa: E731
    path = save_model(f"{PREFIX}-k3-loss-scale-factor",
                      keras3_mixed(compile_with=factor, auto_scale_loss=False))
    assert rule_findings(path, CODE) == []
    dropped = save_model(f"{PREFIX}-k3-loss-scale-factor-auto",
                         keras3_mixed(compile_with=factor))
    assert len(rule_findings(dropped, CODE)) == 1


def test_shallow_model_keeps_gradients_in_range(save_model):
    # Two sigmoid layers: measured RMS gradient 1.2e-3, estimated 2.6e-4 at 'hidden_0'.
    path = save_model(f"{PREFIX}-k3-shallow", keras3_mixed(depth=2))
    assert rule_findings(path, CODE) == []


def test_file_without_an_optimizer_is_not_judged(save_model):
    path = save_model(f"{PREFIX}-k3-uncompiled", keras3_mixed(compiled=False))
    assert rule_findings(path, CODE) == []


def test_float32_model_is_not_flagged(save_model):
    def build():
        keras = keras3()
        model = sigmoid_mlp(keras, 8)
        model.compile(optimizer="adam", loss="categorical_crossentropy")
        return model

    path = save_model(f"{PREFIX}-k3-float32", build)
    assert rule_findings(path, CODE) == []


def test_tf_keras_h5_with_float16_layers_and_plain_optimizer_is_flagged(save_model):
    # Only the layers are mixed_float16, so tf-keras does not wrap the optimizer.
    def build():
        keras = keras2()
        model = sigmoid_mlp(keras, 8, layer_dtype="mixed_float16")
        model.compile(optimizer="adam", loss="categorical_crossentropy")
        return model

    path = save_model(f"{PREFIX}-tk-layers", build, "h5")
    assert [finding.severity for finding in rule_findings(path, CODE)] == ["error"]


def test_tf_keras_h5_with_global_policy_saves_its_loss_scale_optimizer(save_model):
    def build():
        keras = keras2()
        keras.mixed_precision.set_global_policy("mixed_float16")
        try:
            model = sigmoid_mlp(keras, 8)
            model.compile(optimizer="adam", loss="categorical_crossentropy")
        finally:
            keras.mixed_precision.set_global_policy("float32")
        return model

    path = save_model(f"{PREFIX}-tk-global", build, "h5")
    assert rule_findings(path, CODE) == []
