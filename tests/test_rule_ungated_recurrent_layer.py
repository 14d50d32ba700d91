"""GL401 ungated-recurrent-layer: SimpleRNN (also inside Bidirectional and as RNN(SimpleRNNCell))
is a warning, an error from 50 known time steps; LSTM and GRU are not flagged."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import keras2, keras3, rule_findings

PREFIX = Path(__file__).stem
CODE = "GL401"
LIBRARY = {"keras": keras3, "keras2": keras2, "h5": keras2}


def findings(path, code=CODE):
    return rule_findings(path, code)


def recurrent(keras, steps, kind="SimpleRNN"):
    layers = keras.layers
    if kind == "Bidirectional":
        core = layers.Bidirectional(layers.SimpleRNN(16), name="rnn")
    elif kind == "RNN":
        core = layers.RNN(layers.SimpleRNNCell(16), name="rnn")
    else:
        core = getattr(layers, kind)(16, name="rnn")
    return keras.Sequential([keras.Input((steps, 8)), core, layers.Dense(1, name="output")])


@pytest.mark.parametrize("format", ["keras", "keras2", "h5"])
def test_simple_rnn_over_100_steps_is_an_error(save_model, format):
    keras = LIBRARY[format]
    path = save_model(f"{PREFIX}-simple-100", lambda: recurrent(keras(), 100), format)
    found = findings(path)
    assert len(found) == 1
    finding = found[0]
    assert finding.severity == "error"
    assert finding.layer == "rnn"
    assert finding.layers == ["rnn"]
    assert finding.evidence == {"sequence_length": 100, "cell": "SimpleRNN"}
    assert "LSTM" in finding.message


def test_simple_rnn_over_20_steps_is_a_warning(save_model):
    path = save_model(f"{PREFIX}-simple-20", lambda: recurrent(keras3(), 20))
    found = findings(path)
    assert [(f.severity, f.evidence["sequence_length"]) for f in found] == [("warning", 20)]


@pytest.mark.parametrize("steps, severity", [(49, "warning"), (50, "error")])
def test_error_starts_at_50_steps(save_model, steps, severity):
    path = save_model(f"{PREFIX}-simple-{steps}", lambda: recurrent(keras3(), steps))
    assert [f.severity for f in findings(path)] == [severity]


def test_unknown_length_is_a_warning(save_model):
    path = save_model(f"{PREFIX}-simple-none", lambda: recurrent(keras3(), None))
    found = findings(path)
    assert [(f.severity, f.evidence["sequence_length"]) for f in found] == [("warning", None)]
    assert "not fixed" in found[0].message


@pytest.mark.parametrize("format", ["keras", "h5"])
@pytest.mark.parametrize("kind, steps, severity, cell", [
    ("Bidirectional", 60, "error", "SimpleRNN"),
    ("RNN", 30, "warning", "SimpleRNNCell"),
])
def test_wrapped_simple_rnn_is_flagged(save_model, format, kind, steps, severity, cell):
    keras = LIBRARY[format]
    path = save_model(f"{PREFIX}-{kind.lower()}-{steps}",
                      lambda: recurrent(keras(), steps, kind), format)
    found = findings(path)
    assert [(f.severity, f.layer) for f in found] == [(severity, "rnn")]
    assert found[0].evidence == {"sequence_length": steps, "cell": cell}


def test_every_simple_rnn_is_named(save_model):
    def build():
        keras = keras3()
        return keras.Sequential([
            keras.Input((80, 8)),
            keras.layers.SimpleRNN(16, return_sequences=True, name="rnn_0"),
            keras.layers.SimpleRNN(16, name="rnn_1"),
            keras.layers.Dense(1),
        ])

    path = save_model(f"{PREFIX}-stacked", build)
    assert sorted(f.layer for f in findings(path)) == ["rnn_0", "rnn_1"]


@pytest.mark.parametrize("format", ["keras", "h5"])
@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_gated_layers_are_not_flagged(save_model, format, kind):
    keras = LIBRARY[format]
    path = save_model(f"{PREFIX}-{kind.lower()}-100", lambda: recurrent(keras(), 100, kind),
                      format)
    assert findings(path) == []
