"""GL201 small-initializer: kernels drawn too narrow for their fan-in shrink the signal layer
after layer; a single narrow layer, or narrow layers followed by normalization, do not."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import keras2, keras3, rule_findings

PREFIX = Path(__file__).stem
CODE = "GL201"
LIBRARY = {"keras": keras3, "keras2": keras2, "h5": keras2}


def findings(path, code=CODE):
    return rule_findings(path, code)


def narrow_mlp(keras, depth, width=128, stddev=0.01, normalize=False):
    layers = [keras.Input((width,))]
    for i in range(depth):
        layers.append(keras.layers.Dense(
            width, activation="relu", name=f"hidden_{i}",
            kernel_initializer=keras.initializers.RandomNormal(stddev=stddev)))
        if normalize:
            layers.append(keras.layers.BatchNormalization(name=f"norm_{i}"))
    layers.append(keras.layers.Dense(10, activation="softmax", name="output"))
    return keras.Sequential(layers)


@pytest.mark.parametrize("format", ["keras", "keras2", "h5"])
def test_ten_narrow_layers_are_an_error(save_model, format):
    keras = LIBRARY[format]
    path = save_model(f"{PREFIX}-narrow10", lambda: narrow_mlp(keras(), 10), format)
    found = findings(path)
    assert len(found) == 1
    finding = found[0]
    assert finding.severity == "error"
    assert finding.layer == "hidden_0"
    # The Glorot output head (fan_in * E[w^2] = 128 * 2/138) is not narrow.
    assert finding.layers == [f"hidden_{i}" for i in range(10)]
    assert finding.evidence["initializer"] == "RandomNormal"
    assert finding.evidence["fan_in_times_variance"] == pytest.approx(128 * 0.01 ** 2)
    # Each ReLU layer multiplies the second moment by 128 * 1e-4 / 2 = 0.0064, so after ten
    # layers the signal's scale is 0.0064 ** (10 / 2).
    assert finding.evidence["min_forward_scale"] == pytest.approx(0.0064 ** 5, rel=1e-6)
    assert finding.evidence["min_gradient"] < 1e-3


def test_a_trained_checkpoint_past_its_initialization_is_not_flagged(save_model):
    # The same narrow initializers, but weights that training moved to a He scale.
    def build():
        import numpy as np

        keras = keras3()
        model = narrow_mlp(keras, 10)
        rng = np.random.default_rng(0)
        for layer in model.layers:
            kernel, bias = layer.get_weights()
            layer.set_weights([rng.normal(0.0, np.sqrt(2.0 / kernel.shape[0]), kernel.shape),
                               bias])
        return model

    path = save_model(f"{PREFIX}-narrow10-trained", build)
    assert findings(path) == []
    assert findings(save_model(f"{PREFIX}-narrow10-untrained",
                               lambda: narrow_mlp(keras3(), 10)))  # the near-miss


def test_one_narrow_layer_is_not_flagged(save_model):
    # One layer shrinks the scale to sqrt(0.0064) = 0.08: above the 1e-2 warning line.
    path = save_model(f"{PREFIX}-narrow1", lambda: narrow_mlp(keras3(), 1))
    assert findings(path) == []


def test_narrow_layers_followed_by_normalization_are_not_flagged(save_model):
    path = save_model(f"{PREFIX}-narrow10-bn", lambda: narrow_mlp(keras3(), 10, normalize=True))
    assert findings(path) == []


def test_he_initialized_stack_is_not_flagged(save_model):
    def build():
        keras = keras3()
        return keras.Sequential(
            [keras.Input((128,))]
            + [keras.layers.Dense(128, activation="relu", kernel_initializer="he_normal")
               for _ in range(10)]
            + [keras.layers.Dense(10, activation="softmax")])

    path = save_model(f"{PREFIX}-he10", build)
    assert findings(path) == []


def zero_output_head():
    keras = keras3()
    return keras.Sequential([
        keras.Input((32,)),
        keras.layers.Dense(32, activation="relu", kernel_initializer="he_normal",
                           name="hidden_0"),
        keras.layers.Dense(32, activation="relu", kernel_initializer="he_normal",
                           name="hidden_1"),
        keras.layers.Dense(10, activation="softmax", kernel_initializer="zeros",
                           name="output"),
    ])


def zero_residual_branch_ends():
    keras = keras3()
    layers = keras.layers
    inputs = keras.Input((32,))
    x = layers.Dense(32, activation="relu", kernel_initializer="he_normal", name="stem")(inputs)
    for i in range(3):
        h = layers.Dense(32, activation="relu", kernel_initializer="he_normal",
                         name=f"block_{i}_a")(x)
        h = layers.Dense(32, kernel_initializer="zeros", name=f"block_{i}_b")(h)
        x = layers.Add(name=f"add_{i}")([x, h])
    return keras.Model(inputs, layers.Dense(10, activation="softmax", name="output")(x))


@pytest.mark.parametrize("name, build", [("zero-head", zero_output_head),
                                         ("zero-residual", zero_residual_branch_ends)])
def test_zero_init_practices_are_not_small_initializers(save_model, name, build):
    # A zero output head and zero-initialized residual branch ends (Fixup, SkipInit) are
    # working practices that GL204 exempts on purpose: the gradient is zero for the first
    # step only, and the signal passes the identity; nothing shrinks layer after layer.
    path = save_model(f"{PREFIX}-{name}", build)
    assert findings(path) == []


def small_tanh(optimizer):
    """Four tanh layers with RandomNormal(0.03): the estimate puts the signal entering the
    output layer near 3e-3 of the input's and the first layer's gradient near 7e-3."""
    def build():
        keras = keras3()
        model = keras.Sequential(
            [keras.Input((64,))]
            + [keras.layers.Dense(64, activation="tanh", name=f"dense_{i}",
                                  kernel_initializer=keras.initializers.RandomNormal(stddev=0.03))
               for i in range(4)]
            + [keras.layers.Dense(10, activation="softmax", name="output")])
        model.compile(optimizer=optimizer(keras), loss="sparse_categorical_crossentropy")
        return model

    return build


def test_an_adaptive_optimizer_moves_the_thresholds(save_model):
    # Measured on digits (bench/adaptive_optimizer.py): this model stays at chance with SGD
    # and trains to 91% with Adam, whose steps do not shrink with a uniformly small gradient.
    sgd = findings(save_model(f"{PREFIX}-small-tanh-sgd",
                              small_tanh(lambda k: k.optimizers.SGD(0.05))))
    adam = findings(save_model(f"{PREFIX}-small-tanh-adam",
                               small_tanh(lambda k: k.optimizers.Adam(1e-3))))
    assert [finding.severity for finding in sgd] == ["warning"]
    assert adam == []


def test_layers_of_different_gains_are_stated_as_a_range(save_model):
    # A single fan_in * E[w^2] for layers that differ tenfold misled (a MobileNet-style model
    # quoted 0.4 where its depthwise layers were at 0.005); one scale keeps a single value.
    def build():
        keras = keras3()
        model = narrow_mlp(keras, 10)
        for i in range(5, 10):
            layer = model.get_layer(f"hidden_{i}")
            layer.kernel_initializer = keras.initializers.RandomNormal(stddev=0.001)
        return keras.Sequential.from_config(model.get_config())

    path = save_model(f"{PREFIX}-two-gains", build)
    (finding,) = findings(path)
    assert "fan_in * E[w^2] = 1.28e-04 to 0.0128" in finding.message, finding.message
    assert finding.evidence["fan_in_times_variance_range"] == pytest.approx(
        [128 * 0.001 ** 2, 128 * 0.01 ** 2])
    (single,) = findings(save_model(f"{PREFIX}-narrow10", lambda: narrow_mlp(keras3(), 10)))
    assert "fan_in * E[w^2] = 0.0128, where" in single.message
