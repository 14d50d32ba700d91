"""GL402 recurrent-without-clipping: a recurrent model compiled with an optimizer that sets no
clipnorm, clipvalue or global_clipnorm gets advice (info), and a warning where the estimate
shows the gradient growing through time; clipped, uncompiled and non-recurrent models get
nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import keras2, keras3, rule_findings

PREFIX = Path(__file__).stem
CODE = "GL402"
LIBRARY = {"keras": keras3, "keras2": keras2, "h5": keras2}


def findings(path, code=CODE):
    return rule_findings(path, code)


def recurrent(keras, optimizer=None, kind="LSTM"):
    model = keras.Sequential([
        keras.Input((30, 8)),
        getattr(keras.layers, kind)(16, name="recurrent"),
        keras.layers.Dense(1, name="output"),
    ])
    if optimizer is not None:
        model.compile(optimizer=optimizer(keras), loss="mse")
    return model


@pytest.mark.parametrize("format", ["keras", "keras2", "h5"])
def test_lstm_with_unclipped_adam_is_flagged(save_model, format):
    keras = LIBRARY[format]
    path = save_model(f"{PREFIX}-lstm-adam",
                      lambda: recurrent(keras(), lambda k: k.optimizers.Adam()), format)
    found = findings(path)
    assert len(found) == 1
    finding = found[0]
    # An LSTM's gates keep less than all of the gradient at each step back: advice only.
    assert finding.severity == "info"
    assert finding.evidence["growth_through_time"] == 1.0
    assert finding.layer == "recurrent"
    assert finding.layers == ["recurrent"]
    assert finding.evidence["optimizer"].lower() == "adam"


def test_a_recurrent_kernel_that_amplifies_is_a_warning(save_model):
    # 64 units x RandomNormal(0.3)^2 = 5.8 per step, far past tanh's damping: over 100 steps
    # the estimate's rho^(2T) is astronomically above min-growth.
    def build():
        keras = keras3()
        model = keras.Sequential([
            keras.Input((100, 8)),
            keras.layers.SimpleRNN(64, name="recurrent", recurrent_initializer=(
                keras.initializers.RandomNormal(stddev=0.3))),
            keras.layers.Dense(1, name="output")])
        model.compile(optimizer=keras.optimizers.Adam(), loss="mse")
        return model

    found = findings(save_model(f"{PREFIX}-rnn-amplifying", build))
    assert [finding.severity for finding in found] == ["warning"]
    assert found[0].evidence["growth_through_time"] >= 100
    assert "can grow" in found[0].message


@pytest.mark.parametrize("format", ["keras", "h5"])
def test_lstm_with_clipnorm_is_not_flagged(save_model, format):
    keras = LIBRARY[format]
    path = save_model(f"{PREFIX}-lstm-clipnorm",
                      lambda: recurrent(keras(), lambda k: k.optimizers.Adam(clipnorm=1.0)),
                      format)
    assert findings(path) == []


@pytest.mark.parametrize("name, optimizer", [
    ("clipvalue", lambda k: k.optimizers.SGD(clipvalue=0.5)),
    ("global-clipnorm", lambda k: k.optimizers.RMSprop(global_clipnorm=1.0)),
])
def test_other_clipping_settings_are_accepted(save_model, name, optimizer):
    path = save_model(f"{PREFIX}-gru-{name}", lambda: recurrent(keras3(), optimizer, "GRU"))
    assert findings(path) == []


def test_uncompiled_lstm_is_not_flagged(save_model):
    path = save_model(f"{PREFIX}-lstm-uncompiled", lambda: recurrent(keras3()))
    assert findings(path) == []


def test_compiled_model_without_recurrent_layers_is_not_flagged(save_model):
    def build():
        keras = keras3()
        model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4),
                                  keras.layers.Dense(1)])
        model.compile(optimizer=keras.optimizers.Adam(), loss="mse")
        return model

    path = save_model(f"{PREFIX}-dense-adam", build)
    assert findings(path) == []
