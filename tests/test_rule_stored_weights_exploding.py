"""GL207 stored-weights-exploding: a trained checkpoint whose stored kernels grew is
flagged; a file saved before training is GL203's alone, and healthy trained weights are not
flagged."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import keras2, keras3, rule_findings
from test_rule_stored_weights_vanishing import mlp

PREFIX = Path(__file__).stem
CODE = "GL207"
LIBRARY = {"keras": keras3, "h5": keras2}


@pytest.mark.parametrize("format", ["keras", "h5"])
def test_a_checkpoint_whose_kernels_grew_is_an_error(save_model, format):
    path = save_model(f"{PREFIX}-grown", lambda: mlp(LIBRARY[format](), 8.0, depth=4), format)
    found = rule_findings(path, CODE)
    assert len(found) == 1
    assert found[0].severity == "error"
    # The output layer was not moved: only the grown hidden layers are named.
    assert found[0].layers == [f"hidden_{i}" for i in range(4)]
    assert found[0].evidence["max_estimate"] > 1e3
    assert rule_findings(path, "GL203") == []


def test_a_file_saved_before_training_is_exploding_initialization_alone(save_model):
    def build():
        keras = keras3()
        return mlp(keras, depth=8, initializer=keras.initializers.RandomNormal(stddev=0.5))

    path = save_model(f"{PREFIX}-untrained-wide", build)
    assert rule_findings(path, CODE) == []
    assert len(rule_findings(path, "GL203")) == 1


def test_healthy_trained_weights_are_not_flagged(save_model):
    path = save_model(f"{PREFIX}-trained-healthy", lambda: mlp(keras3(), 1.3, depth=4))
    assert rule_findings(path, CODE) == []


def test_growth_after_the_estimate_lost_the_signal_is_not_flagged(save_model):
    # The near miss: grown kernels behind a first layer whose trained biases (-10) silence
    # every ReLU of the estimate's Gaussian input. What grows after it is the biases alone
    # (which is what flagged a healthy public CIFAR-10 CNN); the dead layer is GL103's.
    def build():
        model = mlp(keras3(), 8.0, depth=6)
        kernel, bias = model.get_layer("hidden_0").get_weights()
        model.get_layer("hidden_0").set_weights([kernel / 8.0, bias - 10.0])
        for layer in model.layers[1:-1]:
            kernel, bias = layer.get_weights()
            layer.set_weights([kernel, bias + 0.5])
        return model

    path = save_model(f"{PREFIX}-silenced-then-grown", build)
    assert rule_findings(path, CODE) == []
    assert [finding.layer for finding in rule_findings(path, "GL103")] == ["hidden_0"]
