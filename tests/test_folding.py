"""One finding per cause (`gradlint.folding`): a deep plain ReLU/Glorot stack gets GL202 with
GL301 and GL302 inside it, a sigmoid stack GL101, a tanh stack with tiny weights GL201 and
not GL101; ignoring the cause brings the conditions back as findings of their own."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import keras3, run_gradlint

PREFIX = Path(__file__).stem


def mlp(activation, initializer, depth, width=64):
    def build():
        keras = keras3()
        keras.utils.set_random_seed(0)
        layers = [keras.Input((width,))]
        layers += [keras.layers.Dense(width, activation=activation,
                                      kernel_initializer=initializer(keras), name=f"dense_{i}")
                   for i in range(depth)]
        layers.append(keras.layers.Dense(10, activation="softmax", name="output"))
        return keras.Sequential(layers)

    return build


GLOROT = lambda keras: "glorot_uniform"  # noqa: E731
HE = lambda keras: "he_normal"  # noqa: E731
TINY = lambda keras: keras.initializers.RandomNormal(stddev=0.01)  # noqa: E731


def report(path, *args):
    completed = run_gradlint("--output-format", "json", *args, str(path))
    return json.loads(completed.stdout)["files"][0]["findings"]


def test_a_relu_glorot_stack_gets_one_finding_with_its_conditions_inside(save_model):
    path = save_model(f"{PREFIX}-relu-glorot-30", mlp("relu", GLOROT, 30))
    findings = report(path)
    assert [f["code"] for f in findings] == ["GL202"]
    assert sorted(r["code"] for r in findings[0]["related"]) == ["GL301", "GL302"]
    assert all(r["related"] == [] and r["layers"] for r in findings[0]["related"])
    text = run_gradlint(str(path)).stdout
    assert "(also: GL301, GL302)" in text or "(also: GL302, GL301)" in text
    assert "Found 1 finding" in text


def test_ignoring_the_cause_leaves_the_conditions_standing(save_model):
    path = save_model(f"{PREFIX}-relu-glorot-30", mlp("relu", GLOROT, 30))
    findings = report(path, "--ignore", "GL202")
    assert sorted(f["code"] for f in findings) == ["GL301", "GL302"]


def test_a_sigmoid_stack_blames_the_activation(save_model):
    path = save_model(f"{PREFIX}-sigmoid-20", mlp("sigmoid", GLOROT, 20))
    findings = report(path)
    assert [f["code"] for f in findings] == ["GL101"]
    assert sorted(r["code"] for r in findings[0]["related"]) == ["GL301", "GL302"]


def test_a_tanh_stack_with_tiny_weights_blames_the_initializer(save_model):
    # tanh is linear on the tiny pre-activations RandomNormal(0.01) gives: its slope is 1,
    # so the fall is the weights', and GL101 must not name the activation.
    path = save_model(f"{PREFIX}-tanh-tiny-10", mlp("tanh", TINY, 10))
    findings = report(path)
    assert [f["code"] for f in findings] == ["GL201"]


def test_a_relu_he_stack_of_the_same_depth_gets_nothing(save_model):
    path = save_model(f"{PREFIX}-relu-he-30", mlp("relu", HE, 30))
    assert report(path) == []
