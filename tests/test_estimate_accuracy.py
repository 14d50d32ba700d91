"""The gradient-gain estimate against tf.GradientTape on the same untrained saved models.

For each plain MLP or CNN stack the test saves the model, reads gradlint's JSON estimate, then
loads the file with Keras and measures, on standard-normal inputs with random one-hot targets
(categorical cross-entropy, batch 64, median over 3 seeds):

- the first/last kernel-gradient ratio, ||dL/dW_first|| / ||dL/dW_last||, against
  `estimate.kernel_gradient` of the first weighted layer divided by the last's;
- every hidden weighted layer's forward activation scale against `estimate.forward_scale`
  (which is sqrt(E[x^2])), both as the root mean square and as the standard deviation of
  the layer's output.

Each must agree within one order of magnitude (1.0 in log10). A second test checks that for an
untrained file the estimate from the stored weights agrees with the one from the initializers
within half a decade.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest

import gradlint

from conftest import keras3

PREFIX = Path(__file__).stem
SEEDS = (0, 1, 2)
BATCH = 64
CLASSES = 10
DECADE = 1.0
STORED_TOLERANCE = 0.5


def mlp(depth, activation, width, initializer="glorot_uniform"):
    def build():
        keras = keras3()
        keras.utils.set_random_seed(0)
        layers = [keras.Input((width,))]
        layers += [keras.layers.Dense(width, activation=activation,
                                      kernel_initializer=initializer(keras)
                                      if callable(initializer) else initializer,
                                      name=f"hidden_{i}")
                   for i in range(depth)]
        layers.append(keras.layers.Dense(CLASSES, activation="softmax", name="output"))
        return keras.Sequential(layers)

    return build


def cnn(depth, activation, initializer, filters=16, size=16, pools=()):
    """`depth` 3x3 convolutions; with `pools`, MaxPooling after the listed ones and a
    GlobalAveragePooling head, otherwise a Flatten head."""
    def build():
        keras = keras3()
        keras.utils.set_random_seed(0)
        layers = [keras.Input((size, size, 3))]
        for i in range(depth):
            layers.append(keras.layers.Conv2D(filters, 3, padding="same", activation=activation,
                                              kernel_initializer=initializer, name=f"conv_{i}"))
            if i in pools:
                layers.append(keras.layers.MaxPooling2D(name=f"pool_{i}"))
        layers.append(keras.layers.GlobalAveragePooling2D(name="gap") if pools
                      else keras.layers.Flatten(name="flatten"))
        layers.append(keras.layers.Dense(CLASSES, activation="softmax", name="output"))
        return keras.Sequential(layers)

    return build


CASES = {
    "mlp-sigmoid20-w64": mlp(20, "sigmoid", 64),
    "mlp-relu30-glorot-w128": mlp(30, "relu", 128),
    "mlp-relu20-he-w64": mlp(20, "relu", 64, "he_normal"),
    "mlp-tanh20-w64": mlp(20, "tanh", 64),
    "mlp-relu10-normal0.01-w128": mlp(10, "relu", 128,
                                      lambda k: k.initializers.RandomNormal(stddev=0.01)),
    "mlp-relu10-normal0.5-w64": mlp(10, "relu", 64,
                                    lambda k: k.initializers.RandomNormal(stddev=0.5)),
    "mlp-tanh10-normal0.5-w64": mlp(10, "tanh", 64,
                                    lambda k: k.initializers.RandomNormal(stddev=0.5)),
    "cnn-relu10-he": cnn(10, "relu", "he_normal"),
    "cnn-tanh10-glorot": cnn(10, "tanh", "glorot_uniform"),
    "cnn-relu8-he-pooling": cnn(8, "relu", "he_normal", pools=(2, 5)),
}


def weighted_entries(path) -> list[dict]:
    result = gradlint.lint(path).to_dict()["files"][0]
    assert result["error"] is None, result["error"]
    return [layer for layer in result["layers"] if layer["weighted"]]


def measure(path) -> dict:
    """What tf.GradientTape measures on the saved model: the first/last kernel-gradient ratio
    and, per weighted layer, the output's root mean square and standard deviation (medians
    over SEEDS)."""
    import tensorflow as tf

    keras = keras3()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = keras.saving.load_model(path, compile=False)
    weighted = [layer for layer in model.layers if getattr(layer, "kernel", None) is not None]
    kernels = [layer.kernel for layer in weighted]
    ratios, rms, std = [], [], []
    for seed in SEEDS:
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((BATCH,) + tuple(model.inputs[0].shape[1:])).astype("float32")
        y = np.eye(CLASSES, dtype="float32")[rng.integers(0, CLASSES, BATCH)]
        values = []
        with tf.GradientTape() as tape:
            # Layer by layer through the Sequential stack, keeping each weighted layer's output.
            h = tf.constant(x)
            for layer in model.layers:
                h = layer(h)
                if layer in weighted:
                    values.append(np.asarray(h, dtype="float64"))
            loss = tf.reduce_mean(keras.losses.categorical_crossentropy(y, h))
        np.testing.assert_allclose(np.asarray(h), np.asarray(model(x)), rtol=1e-4, atol=1e-6)
        gradients = tape.gradient(loss, kernels)
        norms = [float(tf.norm(g)) for g in gradients]
        ratios.append(norms[0] / norms[-1])
        rms.append([math.sqrt(float(np.mean(v * v))) for v in values])
        std.append([float(np.std(v)) for v in values])
    return {"names": [layer.name for layer in weighted],
            "ratio": float(np.median(ratios)),
            "rms": np.median(rms, axis=0), "std": np.median(std, axis=0)}


def compare(path) -> dict:
    """log10(estimate / measured) for the kernel-gradient ratio and each hidden layer's
    forward scale."""
    entries = weighted_entries(path)
    measured = measure(path)
    assert [entry["path"] for entry in entries] == measured["names"]
    first, last = entries[0]["estimate"], entries[-1]["estimate"]
    estimate = first["kernel_gradient"] / last["kernel_gradient"]
    hidden = entries[:-1]
    forward = np.array([entry["estimate"]["forward_scale"] for entry in hidden])
    return {
        "ratio_estimate": estimate,
        "ratio_measured": measured["ratio"],
        "ratio": math.log10(estimate / measured["ratio"]),
        "forward_rms": np.log10(forward / measured["rms"][:-1]),
        "forward_std": np.log10(forward / measured["std"][:-1]),
        "names": [entry["path"] for entry in hidden],
    }


@pytest.mark.parametrize("case", list(CASES))
def test_estimate_within_a_decade_of_gradient_tape(save_model, case):
    path = save_model(f"{PREFIX}-{case}", CASES[case])
    result = compare(path)
    assert abs(result["ratio"]) <= DECADE, (
        f"kernel-gradient ratio: estimated {result['ratio_estimate']:.3g}, "
        f"measured {result['ratio_measured']:.3g} ({result['ratio']:+.2f} decades)")
    for kind in ("forward_rms", "forward_std"):
        worst = int(np.argmax(np.abs(result[kind])))
        assert abs(result[kind][worst]) <= DECADE, (
            f"{kind} of {result['names'][worst]}: {result[kind][worst]:+.2f} decades")


@pytest.mark.parametrize("case", list(CASES))
def test_stored_weights_estimate_matches_initializers(save_model, case):
    path = save_model(f"{PREFIX}-{case}", CASES[case])
    result = gradlint.lint(path).to_dict()["files"][0]
    compared = 0
    weighted = 0
    for layer in result["layers"]:
        weighted += layer["weighted"]
        estimate = layer["estimate"]
        stored = estimate["stored_weights"]
        assert stored is not None, layer["path"]
        for key in ("forward_scale", "gradient", "kernel_gradient"):
            if estimate[key] is None:
                assert stored[key] is None, (layer["path"], key)
                continue
            assert estimate[key] > 0 and stored[key] > 0, (layer["path"], key)
            difference = abs(math.log10(stored[key] / estimate[key]))
            assert difference <= STORED_TOLERANCE, (layer["path"], key, difference)
            compared += 1
    assert compared >= 3 * weighted

