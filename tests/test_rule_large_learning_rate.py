"""GL403 large-learning-rate: a saved optimizer whose learning rate (or a schedule's largest)
is above its family's limit is flagged; rates at or below the limit, and uncompiled models,
are not."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import keras2, keras3, rule_findings

PREFIX = Path(__file__).stem
CODE = "GL403"
LIBRARY = {"keras": keras3, "keras2": keras2, "h5": keras2}


def findings(path, code=CODE):
    return rule_findings(path, code)


def compiled(keras, optimizer):
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4, name="hidden"),
                              keras.layers.Dense(1, name="output")])
    if optimizer is not None:
        model.compile(optimizer=optimizer(keras), loss="mse")
    return model


OPTIMIZERS = {
    "adam-0.1": lambda k: k.optimizers.Adam(learning_rate=0.1),
    "adam-0.01": lambda k: k.optimizers.Adam(learning_rate=0.01),
    "adam-1e-3": lambda k: k.optimizers.Adam(learning_rate=1e-3),
    "adamw-0.02": lambda k: k.optimizers.AdamW(learning_rate=0.02),
    "rmsprop-0.05": lambda k: k.optimizers.RMSprop(learning_rate=0.05),
    "sgd-0.1": lambda k: k.optimizers.SGD(learning_rate=0.1, momentum=0.9),
    "sgd-0.5": lambda k: k.optimizers.SGD(learning_rate=0.5),
    "sgd-schedule-0.5": lambda k: k.optimizers.SGD(
        learning_rate=k.optimizers.schedules.ExponentialDecay(0.5, 1000, 0.9)),
    "sgd-schedule-0.05": lambda k: k.optimizers.SGD(
        learning_rate=k.optimizers.schedules.ExponentialDecay(0.05, 1000, 0.9)),
}


def path_for(save_model, name, format="keras"):
    keras = LIBRARY[format]
    return save_model(f"{PREFIX}-{name}", lambda: compiled(keras(), OPTIMIZERS[name]), format)


@pytest.mark.parametrize("format", ["keras", "keras2", "h5"])
@pytest.mark.parametrize("name, optimizer, rate, limit", [
    ("adam-0.1", "adam", 0.1, 1e-2),
    ("sgd-0.5", "sgd", 0.5, 1e-1),
    ("sgd-schedule-0.5", "sgd", 0.5, 1e-1),
])
def test_large_rates_are_flagged(save_model, format, name, optimizer, rate, limit):
    found = findings(path_for(save_model, name, format))
    assert len(found) == 1
    finding = found[0]
    assert finding.severity == "warning"
    assert finding.evidence["optimizer"].lower() == optimizer
    assert finding.evidence["learning_rate"] == pytest.approx(rate, rel=1e-6)
    assert finding.evidence["limit"] == limit


def test_schedule_is_named(save_model):
    found = findings(path_for(save_model, "sgd-schedule-0.5"))
    assert "ExponentialDecay" in found[0].message


@pytest.mark.parametrize("name, rate, limit", [("adamw-0.02", 0.02, 1e-2),
                                               ("rmsprop-0.05", 0.05, 1e-2)])
def test_other_families_have_their_limits(save_model, name, rate, limit):
    found = findings(path_for(save_model, name))
    assert [(f.evidence["learning_rate"], f.evidence["limit"]) for f in found] == \
        [(pytest.approx(rate, rel=1e-6), limit)]


@pytest.mark.parametrize("name", ["adam-1e-3", "adam-0.01", "sgd-schedule-0.05"])
def test_usual_rates_are_not_flagged(save_model, name):
    assert findings(path_for(save_model, name)) == []


@pytest.mark.parametrize("format", ["keras", "keras2", "h5"])
def test_sgd_at_0_1_is_not_flagged(save_model, format):
    # He et al. (2016) train ResNets with SGD at 0.1; the rule's own table puts SGD's limit
    # at 1e-1. Keras stores the rate as float32, 0.10000000149011612.
    assert findings(path_for(save_model, "sgd-0.1", format)) == []


def test_uncompiled_model_is_not_flagged(save_model):
    path = save_model(f"{PREFIX}-uncompiled", lambda: compiled(keras3(), None))
    assert findings(path) == []
