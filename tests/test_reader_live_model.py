"""`gradlint.lint(model)` with a live Keras model gives the same findings, layers and
estimates as linting the file the same model was saved to."""

from __future__ import annotations

import numpy as np
import pytest

import gradlint

from conftest import keras2, keras3

PREFIX = "test_reader_live_model"
BUILT: dict[str, object] = {}


def build_deep_sigmoid():
    keras = keras3()
    layers = keras.layers
    inputs = keras.Input((32,), name="features")
    x = inputs
    for index in range(8):
        x = layers.Dense(32, activation="sigmoid", name=f"sigmoid_{index}")(x)
    outputs = layers.Dense(1, name="out")(x)
    model = keras.Model(inputs, outputs, name="deep_sigmoid")
    model.compile(keras.optimizers.SGD(learning_rate=0.9), "mse")
    return model


def build_recurrent():
    keras = keras3()
    layers = keras.layers
    model = keras.Sequential([
        keras.Input((20, 4)),
        layers.SimpleRNN(8, return_sequences=True, name="simple"),
        layers.Bidirectional(layers.SimpleRNN(4), name="bi"),
        layers.Dense(1, kernel_initializer="zeros", name="out"),
    ], name="recurrent")
    model.compile(keras.optimizers.Adam(learning_rate=1e-3), "mse")
    return model


def build_graph_features():
    """Two inputs, a shared layer, a nested model, activation layers and two outputs."""
    keras = keras3()
    layers = keras.layers
    enc_in = keras.Input((12,), name="enc_in")
    encoded = layers.Dense(8, activation="tanh", name="enc_dense")(enc_in)
    encoder = keras.Model(enc_in, encoded, name="encoder")
    left = keras.Input((12,), name="left")
    right = keras.Input((12,), name="right")
    shared = layers.Dense(12, activation="relu", kernel_initializer="he_normal", name="shared")
    x = layers.Concatenate(name="merge")([encoder(shared(left)), shared(right)])
    x = layers.BatchNormalization(name="norm")(x)
    x = layers.LeakyReLU(negative_slope=0.2, name="leaky")(x)
    first = layers.Dense(2, name="first_out")(x)
    second = layers.Softmax(name="second_out")(layers.Dense(3, name="logits")(x))
    model = keras.Model([left, right], [first, second], name="graph_features")
    model.compile(keras.optimizers.Adam(learning_rate=0.1), ["mse", "categorical_crossentropy"])
    return model


def build_custom_and_broken():
    keras = keras3()
    layers = keras.layers
    if "gate" not in BUILT:
        @keras.saving.register_keras_serializable(package=PREFIX)
        class Gate(layers.Layer):
            def call(self, x):
                return x * keras.ops.sigmoid(x)

        BUILT["gate"] = Gate
    inputs = keras.Input((6,), name="x")
    x = layers.Dense(6, activation="relu", name="before")(inputs)
    x = BUILT["gate"](name="gate")(x)
    outputs = layers.Dense(1, name="out")(x)
    model = keras.Model(inputs, outputs, name="custom_and_broken")
    kernel = model.get_layer("before").kernel.numpy()
    kernel[2, 3] = np.nan
    model.get_layer("before").kernel.assign(kernel)
    return model


def build_nested_called_twice():
    keras = keras3()
    layers = keras.layers
    tower = keras.Sequential([keras.Input((4,)), layers.Dense(4, activation="tanh", name="proj")],
                             name="tower")
    a = keras.Input((4,), name="a")
    b = keras.Input((4,), name="b")
    return keras.Model([a, b], layers.Add(name="sum")([tower(a), tower(b)]), name="siamese")


def build_tf_keras():
    keras = keras2()
    layers = keras.layers
    inputs = keras.Input((16,), name="x")
    x = inputs
    for index in range(6):
        x = layers.Dense(16, activation="tanh", name=f"tanh_{index}")(x)
    outputs = layers.Dense(1, activation="sigmoid", name="out")(x)
    model = keras.Model(inputs, outputs, name="tf_keras_live")
    model.compile(keras.optimizers.Adam(learning_rate=0.1), "binary_crossentropy")
    return model


CASES = {
    "deep_sigmoid": (build_deep_sigmoid, "keras"),
    "recurrent": (build_recurrent, "keras"),
    "graph_features": (build_graph_features, "keras"),
    "custom_and_broken": (build_custom_and_broken, "keras"),
    "tf_keras": (build_tf_keras, "keras2"),
}


@pytest.fixture(scope="module")
def saved(save_model):
    """The model object of a case and the file it was saved to."""
    def get(case: str):
        build, format = CASES[case]

        def keep():
            BUILT[case] = build()
            return BUILT[case]

        path = save_model(f"{PREFIX}-{case}", keep, format)
        return BUILT[case], path

    return get


def _findings(file_result):
    return sorted((f["code"], f["name"], f["severity"], f["layer"] or "", tuple(f["layers"]),
                   f["message"], repr(sorted(f["evidence"].items())))
                  for f in file_result["findings"])


def _model(file_result):
    model = dict(file_result["model"])
    model.pop("keras_version", None)
    return model


def _both(model, path, **options):
    live = gradlint.lint(model, **options).to_dict()["files"][0]
    saved = gradlint.lint(str(path), **options).to_dict()["files"][0]
    return live, saved


@pytest.mark.parametrize("case", sorted(CASES))
def test_live_model_gives_the_same_findings(saved, case):
    model, path = saved(case)
    live, from_file = _both(model, path)
    assert from_file["error"] is None and live["error"] is None
    assert from_file["findings"], "each case is built to have findings"
    assert _findings(live) == _findings(from_file)


@pytest.mark.parametrize("case", sorted(CASES))
def test_live_model_gives_the_same_layers_and_estimates(saved, case):
    model, path = saved(case)
    live, from_file = _both(model, path)
    assert live["layers"] == from_file["layers"]
    assert _model(live) == _model(from_file)
    assert live["model"]["params"] == model.count_params()


@pytest.mark.parametrize("case", ["deep_sigmoid", "graph_features"])
def test_live_model_without_weights(saved, case):
    model, path = saved(case)
    live, from_file = _both(model, path, weights=False)
    assert _findings(live) == _findings(from_file)
    assert live["layers"] == from_file["layers"]
    assert live["model"]["params"] is None


def test_live_model_findings_are_the_expected_ones(saved):
    """The comparison above is not vacuous: the live model's findings name its layers."""
    model, _ = saved("custom_and_broken")
    codes = {(f.code, f.layer) for f in gradlint.lint(model).findings}
    assert ("GL002", "gate") in codes
    assert ("GL205", "before") in codes
    deep, _ = saved("deep_sigmoid")
    assert "GL101" in {f.code for f in gradlint.lint(deep).findings}


def test_live_model_called_twice_nested(save_model):
    """A nested model called twice: the live adapter and the file agree, weights included."""
    def keep():
        BUILT["siamese"] = build_nested_called_twice()
        return BUILT["siamese"]

    path = save_model(f"{PREFIX}-siamese", keep)
    model = BUILT["siamese"]
    live, from_file = _both(model, path)
    assert _findings(live) == _findings(from_file)
    assert live["layers"] == from_file["layers"]
    assert live["model"]["params"] == from_file["model"]["params"] == model.count_params()


def test_live_model_report_path_and_format(saved):
    model, _ = saved("deep_sigmoid")
    report = gradlint.lint(model)
    result = report.to_dict()["files"][0]
    assert result["path"] == f"<{model.name}>"
    assert result["model"]["name"] == model.name
    assert report.exit_code() == 1
