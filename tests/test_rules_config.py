"""The static rules on configs saved by real Keras (tests/data/configs/), without TensorFlow:
for each rule, the case its Keras test module flags and its near-miss, with that module's
assertions. The Keras tests stay the end-to-end ones (a real file, read with its weights);
tests/test_configs_match_keras.py keeps these configs what Keras writes. GL103 (stored
biases) and GL205-GL207 (stored weights) need the weights, so only their Keras tests run."""

from __future__ import annotations

import math

import pytest

from config_models import rule_findings_from_config as findings

ALL_FORMATS = ["keras", "keras2", "h5"]


# -- GL101 saturating-activation-chain ---------------------------------------------------------

@pytest.mark.parametrize("format", ALL_FORMATS)
def test_gl101_deep_sigmoid_mlp_is_an_error(format):
    (finding,) = findings(f"gl101-sigmoid20-{format}", "GL101")
    assert finding.severity == "error"
    assert finding.layer == "hidden_0"
    assert finding.layers == [f"hidden_{i}" for i in range(20)]
    assert finding.evidence["saturating_layers"] == 20
    assert finding.evidence["activations"] == ["sigmoid"]
    assert 1e-16 < finding.evidence["gradient"] < 0.25 ** 19


def test_gl101_same_estimate_from_every_format():
    gradients = [findings(f"gl101-sigmoid20-{format}", "GL101")[0].evidence["gradient"]
                 for format in ALL_FORMATS]
    assert gradients[1] == pytest.approx(gradients[0], rel=1e-9)
    assert gradients[2] == pytest.approx(gradients[0], rel=1e-9)


@pytest.mark.parametrize("name", ["sigmoid3", "tanh20", "lstm"])
def test_gl101_near_misses_are_not_flagged(name):
    assert findings(f"gl101-{name}-keras", "GL101") == []


# -- GL102 output-loss-mismatch ----------------------------------------------------------------

GL102_CASES = {
    "softmax-1": "error",
    "softmax-1-layer": "error",
    "sigmoid-1": None,
    "softmax-3-logits": "warning",
    "softmax-3": None,
    "linear-3-logits": None,
    "sigmoid-1-categorical": "warning",
}


@pytest.mark.parametrize("format", ["keras", "h5"])
@pytest.mark.parametrize("case", GL102_CASES)
def test_gl102_output_and_loss(case, format):
    expected = GL102_CASES[case]
    found = findings(f"gl102-{case}-{format}", "GL102")
    assert [f.severity for f in found] == ([expected] if expected else []), found
    if expected:
        assert found[0].layer in ("output", "output_activation")


# -- GL201 small-initializer -------------------------------------------------------------------

@pytest.mark.parametrize("format", ALL_FORMATS)
def test_gl201_ten_narrow_layers_are_an_error(format):
    (finding,) = findings(f"gl201-narrow10-{format}", "GL201")
    assert finding.severity == "error"
    assert finding.layer == "hidden_0"
    assert finding.layers == [f"hidden_{i}" for i in range(10)]
    assert finding.evidence["initializer"] == "RandomNormal"
    assert finding.evidence["fan_in_times_variance"] == pytest.approx(128 * 0.01 ** 2)
    assert finding.evidence["min_forward_scale"] == pytest.approx(0.0064 ** 5, rel=1e-6)
    assert finding.evidence["min_gradient"] < 1e-3


@pytest.mark.parametrize("name", ["narrow1", "narrow10-bn"])
def test_gl201_near_misses_are_not_flagged(name):
    assert findings(f"gl201-{name}-keras", "GL201") == []


# -- GL202 initializer-activation-mismatch -----------------------------------------------------

@pytest.mark.parametrize("format", ["keras", "h5"])
def test_gl202_thirty_relu_layers_with_glorot_are_an_error(format):
    (finding,) = findings(f"gl202-relu30-glorot-{format}", "GL202")
    assert finding.severity == "error"
    assert finding.layer == "hidden_0"
    assert finding.layers == [f"hidden_{i}" for i in range(30)]
    assert finding.evidence["activation"] == "relu"
    assert finding.evidence["initializer"] == "GlorotUniform"
    assert finding.evidence["suggested_initializer"] == "HeNormal"
    assert "HeNormal" in finding.message
    assert 1e-7 < finding.evidence["compounded_gain"] < 1e-3


@pytest.mark.parametrize("name", ["relu30-he", "relu3-glorot"])
def test_gl202_near_misses_are_not_flagged(name):
    assert findings(f"gl202-{name}-keras", "GL202") == []


# -- GL203 exploding-initialization ------------------------------------------------------------

@pytest.mark.parametrize("format", ["keras", "h5"])
def test_gl203_ten_wide_layers_are_an_error(format):
    (finding,) = findings(f"gl203-wide10-{format}", "GL203")
    assert finding.severity == "error"
    assert finding.layer == "hidden_0"
    assert [f"hidden_{i}" for i in range(10)] == finding.layers[:10]
    expected = math.sqrt(8) ** 10 * math.sqrt(64 * 2 / 74)
    assert finding.evidence["max_estimate"] == pytest.approx(expected, rel=1e-6)
    assert finding.evidence["where"] == "output"


def test_gl203_two_wide_layers_are_not_flagged():
    assert findings("gl203-wide2-keras", "GL203") == []


# -- GL204 constant-initializer ----------------------------------------------------------------

@pytest.mark.parametrize("format", ALL_FORMATS)
def test_gl204_zero_kernel_on_a_hidden_layer_is_an_error(format):
    (finding,) = findings(f"gl204-zeros-hidden-{format}", "GL204")
    assert finding.severity == "error"
    assert finding.layer == "hidden_1"
    assert finding.layers == ["hidden_1"]
    assert finding.evidence["initializer"] == "Zeros"
    assert finding.evidence["value"] == 0.0
    assert "no gradient" in finding.message


@pytest.mark.parametrize("name", ["random", "zeros-output"])
def test_gl204_near_misses_are_not_flagged(name):
    assert findings(f"gl204-{name}-keras", "GL204") == []


# -- GL301 deep-plain-network ------------------------------------------------------------------

@pytest.mark.parametrize("format", ["keras", "h5"])
def test_gl301_deep_plain_stack_is_flagged(format):
    (finding,) = findings(f"gl301-plain24-{format}", "GL301")
    assert finding.severity == "warning"
    assert finding.layer == "hidden_0"
    assert finding.evidence["weighted_layers_on_route"] == 25
    assert finding.layers == [f"hidden_{i}" for i in range(24)] + ["output"]


def test_gl301_a_stack_whose_estimate_holds_is_not_flagged():
    assert findings("gl301-plain24-he-keras", "GL301") == []


@pytest.mark.parametrize("depth, flagged", [(18, False), (19, True)])
def test_gl301_threshold_counts_the_output_layer(depth, flagged):
    found = findings(f"gl301-plain{depth}-keras", "GL301")
    assert bool(found) is flagged
    if flagged:
        assert found[0].evidence["weighted_layers_on_route"] == 20


# -- GL302 missing-normalization ---------------------------------------------------------------

@pytest.mark.parametrize("format", ["keras", "keras2"])
def test_gl302_long_unnormalized_run_is_flagged(format):
    (finding,) = findings(f"gl302-run16-{format}", "GL302")
    assert finding.severity == "warning"
    assert finding.layer == "hidden_0"
    assert finding.evidence["weighted_layers_in_run"] == 16
    assert finding.layers == [f"hidden_{i}" for i in range(15)] + ["output"]


@pytest.mark.parametrize("run, flagged", [(11, False), (12, True)])
def test_gl302_threshold_is_twelve_weighted_layers(run, flagged):
    found = findings(f"gl302-run{run}-keras", "GL302")
    assert bool(found) is flagged
    if flagged:
        assert found[0].evidence["weighted_layers_in_run"] == 12


def test_gl302_normalization_every_six_layers_is_not_flagged():
    assert findings("gl302-run24-bn6-keras", "GL302") == []


# -- GL401 ungated-recurrent-layer -------------------------------------------------------------

@pytest.mark.parametrize("format", ALL_FORMATS)
def test_gl401_simple_rnn_over_100_steps_is_an_error(format):
    (finding,) = findings(f"gl401-simple-100-{format}", "GL401")
    assert finding.severity == "error"
    assert finding.layer == "rnn"
    assert finding.layers == ["rnn"]
    assert finding.evidence == {"sequence_length": 100, "cell": "SimpleRNN"}
    assert "LSTM" in finding.message


def test_gl401_simple_rnn_over_20_steps_is_a_warning():
    found = findings("gl401-simple-20-keras", "GL401")
    assert [(f.severity, f.evidence["sequence_length"]) for f in found] == [("warning", 20)]


def test_gl401_lstm_is_not_flagged():
    assert findings("gl401-lstm-100-keras", "GL401") == []


# -- GL402 recurrent-without-clipping ----------------------------------------------------------

@pytest.mark.parametrize("format", ALL_FORMATS)
def test_gl402_lstm_with_unclipped_adam_is_flagged(format):
    (finding,) = findings(f"gl402-lstm-adam-{format}", "GL402")
    assert finding.severity == "info"
    assert finding.evidence["growth_through_time"] == 1.0
    assert finding.layer == "recurrent"
    assert finding.layers == ["recurrent"]
    assert finding.evidence["optimizer"].lower() == "adam"


@pytest.mark.parametrize("name", ["lstm-clipnorm-keras", "lstm-clipnorm-h5",
                                  "lstm-uncompiled-keras"])
def test_gl402_near_misses_are_not_flagged(name):
    assert findings(f"gl402-{name}", "GL402") == []


# -- GL403 large-learning-rate -----------------------------------------------------------------

@pytest.mark.parametrize("format", ALL_FORMATS)
@pytest.mark.parametrize("name, optimizer, rate, limit", [
    ("adam-0.1", "adam", 0.1, 1e-2),
    ("sgd-0.5", "sgd", 0.5, 1e-1),
    ("sgd-schedule-0.5", "sgd", 0.5, 1e-1),
])
def test_gl403_large_rates_are_flagged(format, name, optimizer, rate, limit):
    (finding,) = findings(f"gl403-{name}-{format}", "GL403")
    assert finding.severity == "warning"
    assert finding.evidence["optimizer"].lower() == optimizer
    assert finding.evidence["learning_rate"] == pytest.approx(rate, rel=1e-6)
    assert finding.evidence["limit"] == limit


def test_gl403_schedule_is_named():
    assert "ExponentialDecay" in findings("gl403-sgd-schedule-0.5-keras", "GL403")[0].message


@pytest.mark.parametrize("name", ["sgd-0.1-keras", "sgd-0.1-keras2", "sgd-0.1-h5",
                                  "adam-1e-3-keras", "uncompiled-keras"])
def test_gl403_near_misses_are_not_flagged(name):
    assert findings(f"gl403-{name}", "GL403") == []


# -- GL404 frozen-model ------------------------------------------------------------------------

@pytest.mark.parametrize("format", ["keras", "h5"])
def test_gl404_a_compiled_model_with_every_layer_frozen_is_an_error(format):
    (finding,) = findings(f"gl404-all-{format}", "GL404")
    assert finding.severity == "error"
    assert finding.layers == ["conv", "norm", "head"]


@pytest.mark.parametrize("name", ["uncompiled", "trainable-head"])
def test_gl404_near_misses_are_not_flagged(name):
    assert findings(f"gl404-{name}-keras", "GL404") == []


# -- GL405 float16-gradient-underflow ----------------------------------------------------------

def test_gl405_keras3_file_without_loss_scaling_is_flagged():
    (finding,) = findings("gl405-k3-deep-keras", "GL405")
    assert finding.severity == "error"
    assert finding.layer == "hidden_0"
    assert "output" not in finding.layers
    assert finding.evidence["policy"] == "mixed_float16"
    assert 1e-9 < finding.evidence["min_gradient"] < 1e-6


def test_gl405_a_saved_loss_scale_optimizer_is_not_flagged():
    assert findings("gl405-k3-loss-scale-optimizer-keras", "GL405") == []
