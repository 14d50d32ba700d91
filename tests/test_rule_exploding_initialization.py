"""GL203 exploding-initialization: kernels drawn so wide that the estimated signal grows by
orders of magnitude are flagged; He-initialized and shallow wide stacks are not."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from conftest import keras2, keras3, rule_findings

PREFIX = Path(__file__).stem
CODE = "GL203"
LIBRARY = {"keras": keras3, "keras2": keras2, "h5": keras2}


def findings(path, code=CODE):
    return rule_findings(path, code)


def wide_mlp(keras, depth, stddev=0.5, width=64):
    layers = [keras.Input((width,))]
    layers += [keras.layers.Dense(width, activation="relu", name=f"hidden_{i}",
                                  kernel_initializer=keras.initializers.RandomNormal(
                                      stddev=stddev))
               for i in range(depth)]
    layers.append(keras.layers.Dense(10, activation="softmax", name="output"))
    return keras.Sequential(layers)


@pytest.mark.parametrize("format", ["keras", "h5"])
def test_ten_wide_layers_are_an_error(save_model, format):
    keras = LIBRARY[format]
    path = save_model(f"{PREFIX}-wide10", lambda: wide_mlp(keras(), 10), format)
    found = findings(path)
    assert len(found) == 1
    finding = found[0]
    assert finding.severity == "error"
    assert finding.layer == "hidden_0"
    assert [f"hidden_{i}" for i in range(10)] == finding.layers[:10]
    # RandomNormal(0.5) at fan-in 64 with ReLU multiplies the second moment by
    # 64 * 0.25 / 2 = 8 per layer; the Glorot head adds 64 * 2 / 74.
    expected = math.sqrt(8) ** 10 * math.sqrt(64 * 2 / 74)
    assert finding.evidence["max_estimate"] == pytest.approx(expected, rel=1e-6)
    assert finding.evidence["where"] == "output"


def test_two_wide_layers_are_not_flagged(save_model):
    # sqrt(8) ** 2 * 1.3 ~ 10: well under the 1e2 warning line.
    path = save_model(f"{PREFIX}-wide2", lambda: wide_mlp(keras3(), 2))
    assert findings(path) == []


def test_deep_he_relu_stack_is_not_flagged(save_model):
    def build():
        keras = keras3()
        return keras.Sequential(
            [keras.Input((64,))]
            + [keras.layers.Dense(64, activation="relu", kernel_initializer="he_normal")
               for _ in range(20)]
            + [keras.layers.Dense(10, activation="softmax")])

    path = save_model(f"{PREFIX}-he20", build)
    assert findings(path) == []


def test_moderately_wide_stack_is_a_warning(save_model):
    # stddev 0.25 at fan-in 64 with ReLU: x2 in second moment per layer, so 14 layers give
    # sqrt(2) ** 14 = 128 (times the head's 1.3): between the 1e2 and 1e3 lines.
    path = save_model(f"{PREFIX}-wide14-quarter", lambda: wide_mlp(keras3(), 14, stddev=0.25))
    found = findings(path)
    assert [f.severity for f in found] == ["warning"]
    assert 1e2 < found[0].evidence["max_estimate"] < 1e3
