"""The adaptive pooling family: Keras 3's AdaptiveAveragePooling/AdaptiveMaxPooling layers are
understood (no GL002), and the estimate follows their windows, which the test lists from
the saved model's own configuration by Keras's rule (window i of n over L positions starts
at floor(i * L / n) and ends at ceil((i + 1) * L / n)), independently of the family's
closed form."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from conftest import keras3, rule_findings

PREFIX = Path(__file__).stem
INPUT = (16, 12, 3)  # 16 -> 5 overlaps (windows of 4 and 5), 12 -> 4 does not (windows of 3)


def windows(length: int, outputs: int) -> list[int]:
    return [-(-(i + 1) * length // outputs) - i * length // outputs for i in range(outputs)]


def linear_model(pooling: str):
    """A zero-mean input to the pooling (linear conv, no bias): its constant part is 0."""
    keras = keras3()
    layer = {"avg": keras.layers.AdaptiveAveragePooling2D,
             "max": keras.layers.AdaptiveMaxPooling2D}[pooling]
    return keras.Sequential([
        keras.Input(INPUT),
        keras.layers.Conv2D(8, 3, padding="same", use_bias=False, name="conv"),
        layer((5, 4), name="adaptive"),
        keras.layers.Flatten(name="flat"),
        keras.layers.Dense(10, activation="softmax", name="head"),
    ])


def lint(path):
    import gradlint

    result = gradlint.lint(str(path)).files[0]
    assert result.error is None, result.error
    return result, {entry["path"]: entry for entry in result.layers}


def axes(path):
    """(input length, output length) per spatial axis of the saved adaptive layer, from the
    file's own configuration."""
    from gradlint.readers import read_model

    graph = read_model(str(path))
    node = next(node for node in graph.nodes if node.path == "adaptive")
    output_size = node.layer.config["output_size"]
    return node, list(zip(node.input_shapes[0][1:-1], output_size))


def test_average_is_understood_and_follows_its_windows(save_model):
    path = save_model(f"{PREFIX}-avg", lambda: linear_model("avg"))
    result, layers = lint(path)
    assert rule_findings(path, "GL002") == []
    assert layers["adaptive"]["family"] == "adaptive_pooling"
    assert layers["adaptive"]["kind"] == "adaptive_pool_avg"

    node, pairs = axes(path)
    assert pairs == [(16, 5), (12, 4)]
    # Forward: the input's constant part is 0, so the second moment is divided by the mean
    # window size's reciprocal, axis by axis.
    shrink = math.prod(sum(1 / w for w in windows(L, n)) / n for L, n in pairs)
    ratio = layers["adaptive"]["estimate"]["forward_scale"] / \
        layers["conv"]["estimate"]["forward_scale"]
    assert ratio == pytest.approx(math.sqrt(shrink), rel=2e-3)
    # Backward: each position gets sum over its windows of g / w^2; averaged over positions.
    spread = math.prod(sum(1 / w for w in windows(L, n)) / L for L, n in pairs)
    assert node.layer.family.spread(node) == pytest.approx(spread, rel=1e-12)
    # The overlapping axis is not plain pooling with window L / n.
    assert spread != pytest.approx((5 * 4 / (16 * 12)) ** 2, rel=1e-2)
    # The layer no longer hides the head's fan-in: the shape is known downstream.
    assert node.output_shape == (None, 5, 4, 8)


def test_adaptive_then_global_average_is_global_average(save_model):
    """With windows that do not overlap, adaptive average pooling followed by global average
    pooling computes exactly global average pooling: the estimates must agree (this one has
    a ReLU and a bias, so the constant part is not 0)."""
    def build(adaptive: bool):
        keras = keras3()
        middle = [keras.layers.AdaptiveAveragePooling2D((4, 3), name="adaptive")] \
            if adaptive else []
        return keras.Sequential(
            [keras.Input(INPUT),
             keras.layers.Conv2D(8, 3, padding="same", activation="relu",
                                 bias_initializer="ones", name="conv")]
            + middle
            + [keras.layers.GlobalAveragePooling2D(name="gap"),
               keras.layers.Dense(10, activation="softmax", name="head")])

    _, with_adaptive = lint(save_model(f"{PREFIX}-gap-adaptive", lambda: build(True)))
    _, plain = lint(save_model(f"{PREFIX}-gap-plain", lambda: build(False)))
    pairs = [("conv", "forward_scale"), ("conv", "kernel_gradient"), ("gap", "forward_scale"),
             ("head", "forward_scale")]
    for path, key in pairs:
        assert with_adaptive[path]["estimate"][key] == pytest.approx(
            plain[path]["estimate"][key], rel=2e-3), (path, key)


def test_near_misses_max_pooling_and_bad_sizes(save_model):
    from gradlint.families import family_of
    from gradlint.layer_catalog import ConfigValueError

    path = save_model(f"{PREFIX}-max", lambda: linear_model("max"))
    _, layers = lint(path)
    assert rule_findings(path, "GL002") == []
    assert layers["adaptive"]["kind"] == "adaptive_pool_max"
    # Max pooling keeps the second moment (no 1 / w), and sends each window's gradient to
    # one position: P_out / P_in, not the average's sum of 1 / w.
    assert layers["adaptive"]["estimate"]["forward_scale"] == \
        layers["conv"]["estimate"]["forward_scale"]
    node, pairs = axes(path)
    assert node.layer.family.spread(node) == pytest.approx(
        math.prod(n / L for L, n in pairs), rel=1e-12)

    family = family_of("AdaptiveAveragePooling2D", {})
    for bad in (0, [4], [4, -1], [4, 2.5], "4"):
        with pytest.raises(ConfigValueError, match="output_size"):
            family.check_config("AdaptiveAveragePooling2D", {"output_size": bad})
    family.check_config("AdaptiveAveragePooling2D", {"output_size": [4, 3]})
    # A name that only looks like it is still someone's custom layer.
    assert family_of("AdaptivePooling2D", {}).name == "opaque"
