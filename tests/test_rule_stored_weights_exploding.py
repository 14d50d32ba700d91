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
