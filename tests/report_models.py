"""Small real Keras 3 models for the report and CI-gate tests (renderers, baseline,
pre-commit). Each test module saves them through the `save_model` fixture under its own name
prefix; `probe_fields` fills the probe's data contract into a real lint result's dict, for
renderer tests that need probe data without running the probe."""

from __future__ import annotations

import copy

from conftest import keras3


def deep_sigmoid(depth: int = 10):
    """`depth` sigmoid layers, hidden_1 … hidden_<depth>: GL101 (error) at hidden_1."""
    keras = keras3()
    return keras.Sequential([keras.Input((32,))]
                            + [keras.layers.Dense(32, activation="sigmoid", name=f"hidden_{i}")
                               for i in range(1, depth + 1)]
                            + [keras.layers.Dense(4, activation="softmax", name="classifier")],
                            name="deep_sigmoid")


def deeper_sigmoid():
    """The same stack with two more sigmoid layers: GL101 still at hidden_1, with another
    message."""
    return deep_sigmoid(12)


def shallow_sigmoid():
    """Three sigmoid layers: a near miss for GL101, used to make a new finding appear."""
    keras = keras3()
    return keras.Sequential([keras.Input((32,))]
                            + [keras.layers.Dense(32, activation="sigmoid", name=f"hidden_{i}")
                               for i in range(1, 3)]
                            + [keras.layers.Dense(4, activation="softmax", name="classifier")],
                            name="shallow_sigmoid")


def relu_he():
    """A healthy ReLU/He stack: no findings."""
    keras = keras3()
    return keras.Sequential([keras.Input((32,))]
                            + [keras.layers.Dense(32, activation="relu",
                                                  kernel_initializer="he_normal",
                                                  name=f"dense_{i}") for i in range(1, 4)]
                            + [keras.layers.Dense(1, name="head")], name="relu_he")


def simple_rnn():
    """A SimpleRNN over 60 steps whose recurrent kernel amplifies (16 units x 0.5^2 = 4 per
    step), compiled with Adam at 0.1 and no clipping: GL401 (error), GL402 and GL403
    (warnings), three findings in one file, two on the same layer."""
    keras = keras3()
    model = keras.Sequential([
        keras.Input((60, 8)),
        keras.layers.SimpleRNN(16, name="rnn", recurrent_initializer=(
            keras.initializers.RandomNormal(stddev=0.5))),
        keras.layers.Dense(1, name="score")], name="simple_rnn")
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.1), loss="mse")
    return model


def probe_fields(file: dict, *, seeds: int = 3) -> dict:
    """A copy of one file's report dict with the probe's data contract filled in: per layer
    `measured`, per file `probe`, per finding a `probe` verdict. The numbers follow the
    static estimate, scaled, as a measurement near it would."""
    file = copy.deepcopy(file)
    file["probe"] = {"ran": True, "error": None, "seeds": seeds, "batch": 8,
                     "training_mode": True, "loss": "categorical_crossentropy",
                     "seconds": 2.4}
    for index, layer in enumerate(file["layers"]):
        estimate = layer.get("estimate") or {}
        if not layer.get("weighted") or estimate.get("kernel_gradient") is None:
            layer["measured"] = None
            continue
        kernel = float(estimate["kernel_gradient"]) * (1.6 if index % 2 else 0.7)
        layer["measured"] = {
            "kernel_gradient": kernel,
            "kernel_gradient_norm": kernel * 3e-3,
            "gradient_to_weight": kernel * 1e-3,
            "forward_scale": float(estimate.get("forward_scale") or 1.0) * 0.9,
            "saturated_fraction": 0.62 if layer.get("activation") == "sigmoid" else None,
            "dead_fraction": 0.05 if layer.get("activation") == "relu" else None,
        }
    for number, finding in enumerate(file["findings"]):
        finding["probe"] = {
            "verdict": "confirmed" if number % 2 == 0 else "not-confirmed",
            "summary": "first/last kernel-gradient ratio 3.1e-07 measured over 3 seeds",
            "measured": {"ratio": 3.1e-07, "first_norm": 2.2e-09},
        }
    return file
