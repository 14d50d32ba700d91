"""GL206 stored-weights-vanishing: a trained checkpoint whose stored kernels shrank is
flagged; a file saved before training (its stored weights the initializers' draw) is GL201's
alone, and healthy trained weights are not flagged."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import keras2, keras3, rule_findings

PREFIX = Path(__file__).stem
CODE = "GL206"
LIBRARY = {"keras": keras3, "h5": keras2}


def mlp(keras, factor=None, depth=8, initializer="he_normal"):
    """A ReLU MLP; with `factor`, its hidden kernels are redrawn at `factor` times the He
    scale and its biases moved off zero, as training leaves them."""
    import numpy as np

    model = keras.Sequential(
        [keras.Input((64,))]
        + [keras.layers.Dense(64, activation="relu", kernel_initializer=initializer,
                              name=f"hidden_{i}") for i in range(depth)]
        + [keras.layers.Dense(10, activation="softmax", name="output")])
    if factor is not None:
        rng = np.random.default_rng(0)
        for layer in model.layers[:-1]:
            kernel, bias = layer.get_weights()
            layer.set_weights([rng.normal(0.0, np.sqrt(2.0 / kernel.shape[0]), kernel.shape)
                               * factor, bias + rng.normal(0.0, 0.01, bias.shape)])
    return model


@pytest.mark.parametrize("format", ["keras", "h5"])
def test_a_checkpoint_whose_kernels_shrank_is_an_error(save_model, format):
    path = save_model(f"{PREFIX}-shrunk", lambda: mlp(LIBRARY[format](), 0.05), format)
    found = rule_findings(path, CODE)
    assert len(found) == 1
    assert found[0].severity == "error"
    assert found[0].layers == [f"hidden_{i}" for i in range(8)]
    assert found[0].evidence["min_estimate"] < 1e-3
    # Each layer's stored gain: 64 * (0.05^2 * 2 / 64) * 0.5 = 0.0025.
    assert found[0].evidence["gains"]["hidden_0"] == pytest.approx(0.0025, rel=0.2)
    assert rule_findings(path, "GL201") == []  # He initializers: nothing at the start


def test_a_file_saved_before_training_is_small_initializers_alone(save_model):
    def build():
        keras = keras3()
        return mlp(keras, initializer=keras.initializers.RandomNormal(stddev=0.01))

    path = save_model(f"{PREFIX}-untrained-narrow", build)
    assert rule_findings(path, CODE) == []
    assert len(rule_findings(path, "GL201")) == 1


def test_healthy_trained_weights_are_not_flagged(save_model):
    path = save_model(f"{PREFIX}-trained-healthy", lambda: mlp(keras3(), 1.3))
    assert rule_findings(path, CODE) == []


def test_shrunk_kernels_followed_by_normalization_are_not_flagged(save_model):
    # Batch normalization after each layer undoes the kernels' scale.
    def build():
        import numpy as np

        keras = keras3()
        layers = [keras.Input((64,))]
        for i in range(8):
            layers += [keras.layers.Dense(64, name=f"hidden_{i}"),
                       keras.layers.BatchNormalization(name=f"norm_{i}"),
                       keras.layers.Activation("relu", name=f"relu_{i}")]
        model = keras.Sequential(layers + [keras.layers.Dense(10, activation="softmax",
                                                              name="output")])
        rng = np.random.default_rng(0)
        for i in range(8):
            layer = model.get_layer(f"hidden_{i}")
            kernel, bias = layer.get_weights()
            layer.set_weights([rng.normal(0.0, 0.05 * np.sqrt(2.0 / 64), kernel.shape),
                               rng.normal(0.0, 0.01, bias.shape)])
        return model

    path = save_model(f"{PREFIX}-shrunk-normalized", build)
    assert rule_findings(path, CODE) == []
