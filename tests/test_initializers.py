"""The initializer table: each initializer's configuration, as Keras serializes it, mapped to the
second moment E[w^2] of the kernels it draws. Checked against kernels drawn by the real Keras
initializers (Keras 3 and tf-keras) at dense and convolution shapes."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gradlint import initializers, layer_catalog

from conftest import keras2, keras3

# Large enough that the sample E[w^2] is within about 0.5 % of its expectation; the two
# 4-D shapes have fan_out > fan_in and fan_in > fan_out.
SHAPES = [(400, 300), (300, 400), (3, 3, 64, 128), (3, 3, 128, 64), (5, 96, 64)]
SEED = 7


def drawn_second_moment(initializer, shape) -> float:
    values = np.asarray(initializer(shape, dtype="float32"), dtype="float64")
    assert values.shape == shape
    return float(np.mean(values * values))


def tolerance(shape) -> float:
    # The sample mean of w^2 for zero-mean normal draws has relative standard deviation
    # sqrt(2 / n) (less for uniform or shifted draws); allow five of them.
    return 5.0 * math.sqrt(2.0 / math.prod(shape))


def estimated(serialized, shape) -> float:
    fan_in, fan_out = layer_catalog.keras_fans(shape)
    parsed = initializers.parse(serialized)
    assert parsed is not None and parsed.kind != "unknown", serialized
    return parsed.second_moment(fan_in, fan_out, tuple(shape))


RANDOM = {
    "GlorotUniform": lambda k: k.GlorotUniform(seed=SEED),
    "GlorotNormal": lambda k: k.GlorotNormal(seed=SEED),
    "HeNormal": lambda k: k.HeNormal(seed=SEED),
    "HeUniform": lambda k: k.HeUniform(seed=SEED),
    "LecunNormal": lambda k: k.LecunNormal(seed=SEED),
    "LecunUniform": lambda k: k.LecunUniform(seed=SEED),
    "RandomNormal(0.1, 0.3)": lambda k: k.RandomNormal(mean=0.1, stddev=0.3, seed=SEED),
    "RandomNormal()": lambda k: k.RandomNormal(seed=SEED),
    "TruncatedNormal(0, 0.2)": lambda k: k.TruncatedNormal(mean=0.0, stddev=0.2, seed=SEED),
    "TruncatedNormal(0.5, 0.2)": lambda k: k.TruncatedNormal(mean=0.5, stddev=0.2, seed=SEED),
    "RandomUniform(-0.3, 0.1)": lambda k: k.RandomUniform(minval=-0.3, maxval=0.1, seed=SEED),
    "RandomUniform()": lambda k: k.RandomUniform(seed=SEED),
}
for _mode in ("fan_in", "fan_out", "fan_avg"):
    for _distribution in ("truncated_normal", "untruncated_normal", "uniform"):
        RANDOM[f"VarianceScaling(1.7, {_mode}, {_distribution})"] = (
            lambda k, mode=_mode, distribution=_distribution: k.VarianceScaling(
                scale=1.7, mode=mode, distribution=distribution, seed=SEED))


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("name", list(RANDOM))
def test_random_initializers_keras3(name, shape):
    keras = keras3()
    initializer = RANDOM[name](keras.initializers)
    serialized = keras.initializers.serialize(initializer)
    assert estimated(serialized, shape) == pytest.approx(
        drawn_second_moment(initializer, shape), rel=tolerance(shape))


@pytest.mark.parametrize("name", ["GlorotUniform", "HeNormal", "LecunUniform",
                                  "TruncatedNormal(0, 0.2)",
                                  "VarianceScaling(1.7, fan_out, truncated_normal)",
                                  "VarianceScaling(1.7, fan_avg, uniform)"])
def test_random_initializers_tf_keras(name):
    keras = keras2()
    shape = (3, 3, 64, 128)
    initializer = RANDOM[name](keras.initializers)
    serialized = keras.initializers.serialize(initializer)
    assert estimated(serialized, shape) == pytest.approx(
        drawn_second_moment(initializer, shape), rel=tolerance(shape))


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("gain", [1.0, 1.5])
def test_orthogonal(shape, gain):
    keras = keras3()
    initializer = keras.initializers.Orthogonal(gain=gain, seed=SEED)
    serialized = keras.initializers.serialize(initializer)
    # Keras flattens the kernel to (prod(shape[:-1]), shape[-1]) and makes its rows or
    # columns orthonormal, so E[w^2] = gain^2 / max(prod(shape[:-1]), shape[-1]).
    assert estimated(serialized, shape) == pytest.approx(
        drawn_second_moment(initializer, shape), rel=1e-4)


@pytest.mark.parametrize("shape", [(400, 300), (300, 400), (64, 64)], ids=str)
def test_identity(shape):
    keras = keras3()
    initializer = keras.initializers.Identity()
    serialized = keras.initializers.serialize(initializer)
    assert estimated(serialized, shape) == pytest.approx(
        drawn_second_moment(initializer, shape), rel=1e-6)


def test_identity_gain_from_tf_keras():
    # Keras 3's Identity does not serialize its gain; tf-keras's does.
    keras = keras2()
    shape = (300, 200)
    initializer = keras.initializers.Identity(gain=2.0)
    serialized = keras.initializers.serialize(initializer)
    assert estimated(serialized, shape) == pytest.approx(
        drawn_second_moment(initializer, shape), rel=1e-6)


@pytest.mark.parametrize("keras", [keras3, keras2], ids=["keras3", "tf_keras"])
@pytest.mark.parametrize("make, value", [
    (lambda k: k.initializers.Zeros(), 0.0),
    (lambda k: k.initializers.Ones(), 1.0),
    (lambda k: k.initializers.Constant(0.3), 0.3),
    (lambda k: k.initializers.Constant(-2.0), -2.0),
])
def test_constant_initializers(keras, make, value):
    module = keras()
    initializer = make(module)
    serialized = module.initializers.serialize(initializer)
    shape = (3, 3, 8, 16)
    assert estimated(serialized, shape) == pytest.approx(
        drawn_second_moment(initializer, shape), rel=1e-6, abs=0.0)
    parsed = initializers.parse(serialized)
    assert parsed.is_constant and parsed.constant == pytest.approx(value)


@pytest.mark.parametrize("serialized, family", [
    ("glorot_uniform", "glorot"),
    ("he_normal", "he"),
    ("lecun_normal", "lecun"),
    ({"class_name": "VarianceScaling",
      "config": {"scale": 2.0, "mode": "fan_in", "distribution": "truncated_normal"}}, "he"),
    ({"class_name": "VarianceScaling",
      "config": {"scale": 1.0, "mode": "fan_avg", "distribution": "uniform"}}, "glorot"),
    ({"class_name": "VarianceScaling",
      "config": {"scale": 0.1, "mode": "fan_in", "distribution": "normal"}}, None),
    ("random_normal", None),
])
def test_families(serialized, family):
    assert initializers.parse(serialized).family == family


@pytest.mark.parametrize("serialized", ["glorot_uniform", "GlorotUniform",
                                        {"class_name": "GlorotUniform", "config": {"seed": None}},
                                        {"class_name": "VarianceScaling",
                                         "config": {"scale": 1.0, "mode": "fan_avg",
                                                    "distribution": "uniform"}}])
def test_spellings_of_glorot_agree(serialized):
    assert estimated(serialized, (100, 50)) == pytest.approx(2.0 / 150.0)


def test_random_normal_and_uniform_defaults():
    # Keras's RandomNormal and RandomUniform defaults: stddev 0.05; minval -0.05, maxval 0.05.
    assert estimated("random_normal", (10, 10)) == pytest.approx(0.05 ** 2)
    assert estimated("random_uniform", (10, 10)) == pytest.approx(0.1 ** 2 / 12.0)


def test_unknown_initializer_has_no_moment():
    parsed = initializers.parse({"class_name": "my_package>Fancy", "config": {}})
    assert parsed.kind == "unknown"
    assert parsed.second_moment(10.0, 10.0) is None
    assert initializers.parse(None) is None


@pytest.mark.parametrize("activation, expected", [
    ("relu", "HeNormal"), ("gelu", "HeNormal"), ("selu", "LecunNormal"),
    ("tanh", "GlorotUniform"), ("sigmoid", "GlorotUniform"),
])
def test_suggestions(activation, expected):
    assert initializers.suggestion_for(activation) == expected
