"""GL103 dead-relu-layers: hidden ReLU layers whose stored biases leave their units dead are
flagged; small negative biases, and the stored-weights estimate's false collapse of trained
kernels with a slightly negative mean, are not."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import keras2, keras3, rule_findings

PREFIX = Path(__file__).stem
CODE = "GL103"
LIBRARY = {"keras": keras3, "h5": keras2}


def biased_mlp(keras, bias, spread=0.0, depth=4):
    """A ReLU MLP with He-scale kernels whose hidden biases are `bias` (+ spread * N(0, 1)):
    the state a learning rate too large can leave a checkpoint in."""
    import numpy as np

    model = keras.Sequential(
        [keras.Input((32,))]
        + [keras.layers.Dense(64, activation="relu", name=f"hidden_{i}") for i in range(depth)]
        + [keras.layers.Dense(10, activation="softmax", name="output")])
    rng = np.random.default_rng(0)
    for layer in model.layers[:-1]:
        kernel, b = layer.get_weights()
        layer.set_weights([rng.normal(0.0, np.sqrt(2.0 / kernel.shape[0]), kernel.shape),
                           bias + spread * rng.normal(0.0, 1.0, b.shape)])
    return model


@pytest.mark.parametrize("format", ["keras", "h5"])
def test_biases_of_minus_five_kill_every_unit(save_model, format):
    path = save_model(f"{PREFIX}-minus5", lambda: biased_mlp(LIBRARY[format](), -5.0), format)
    found = rule_findings(path, CODE)
    assert len(found) == 1
    assert found[0].severity == "error"
    assert found[0].layers == [f"hidden_{i}" for i in range(4)]
    assert found[0].evidence["max_dead_fraction"] == 1.0


def test_most_units_dead_is_a_warning(save_model):
    # Biases N(-4, 1) against a pre-activation spread of sqrt(2): about 76% of the units are
    # below zero for 99% of inputs (the probe measures 100% from the second layer on).
    path = save_model(f"{PREFIX}-minus4-spread", lambda: biased_mlp(keras3(), -4.0, 1.0))
    found = rule_findings(path, CODE)
    assert [finding.severity for finding in found] == ["warning"]
    assert 0.7 < found[0].evidence["max_dead_fraction"] < 0.99


def test_small_negative_biases_are_not_flagged(save_model):
    path = save_model(f"{PREFIX}-minus0.1", lambda: biased_mlp(keras3(), -0.1))
    assert rule_findings(path, CODE) == []


def test_a_slightly_negative_kernel_mean_is_not_a_dead_layer(save_model):
    # Trained CNNs in the corpus store kernels whose mean is a little below zero at a large
    # fan-in; the stored-weights estimate multiplies that mean by the fan-in and finds the
    # layer dead, which it is not. The rule judges the biases.
    def build():
        import numpy as np

        keras = keras3()
        model = keras.Sequential([keras.Input((256,)),
                                  keras.layers.Dense(1024, activation="relu", name="wide"),
                                  keras.layers.Dense(128, activation="relu", name="hidden"),
                                  keras.layers.Dense(10, activation="softmax", name="output")])
        rng = np.random.default_rng(0)
        wide, hidden = model.get_layer("wide"), model.get_layer("hidden")
        wide.set_weights([rng.normal(0.0, np.sqrt(2.0 / 256), (256, 1024)),
                          rng.normal(0.0, 0.01, 1024)])
        hidden.set_weights([rng.normal(-0.01, 0.03, (1024, 128)),
                            rng.normal(-0.004, 0.007, 128)])
        return model

    path = save_model(f"{PREFIX}-negative-kernel-mean", build)
    from gradlint.analysis import analyse
    from gradlint.readers import read_model

    analysis = analyse(read_model(str(path)))
    hidden = analysis.node_at("hidden")
    assert analysis.weights_estimate[hidden.id].activation_slope < 0.01  # the estimate's view
    assert rule_findings(path, CODE) == []
