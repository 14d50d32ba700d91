"""Layers that multiply by a fixed scale: `Rescaling`, LayerScale (ConvNeXt's per-channel
gamma, stored as a weight and configured by `init_values`) and Keras's own
`CustomScaleLayer` of InceptionResNetV2, which adds a scaled branch to its shortcut
(``inputs[0] + inputs[1] * scale``).

Passing these through unchanged is what made the estimate wrong on ConvNeXt (a stored
gamma of 1e-6 read as 1: +5 decades) and on InceptionResNetV2 (branches scaled by 0.1-0.2
read as 1: a gradient "growing to 1e29"). The stored value wins; the configured one is used
when weights are not read.
"""

from __future__ import annotations

import numbers

from gradlint.families import Family, Forward, Signal
from gradlint.families.weighted import settled
from gradlint.layer_catalog import problem, real

LAYER_SCALE = frozenset({"LayerScale"})
SCALED_SUM = frozenset({"CustomScaleLayer"})


def _number(value, default: float) -> float:
    number = real(value) if isinstance(value, numbers.Real) and not isinstance(value, bool) \
        else None
    return default if number is None else number


class ScaleFamily(Family):
    name = "scale"
    classes = {"Rescaling": "rescaling", "LayerScale": "scale", "CustomScaleLayer": "scale"}

    def check_config(self, class_name, config):
        keys = ("scale", "offset") if class_name == "Rescaling" else ("init_values", "scale")
        for key in keys:
            value = config.get(key)
            if isinstance(value, (bool, numbers.Real)) and real(value) is None:
                raise problem(key, "a finite number or a list of them", value)

    def weight_roles(self, layer, count_2d):
        return ["gamma"]

    def starts_small(self, layer) -> bool:
        return layer.class_name.rsplit(">", 1)[-1] in LAYER_SCALE

    def sums_two(self, layer) -> bool:
        return layer.class_name.rsplit(">", 1)[-1] in SCALED_SUM

    def factor(self, layer, context) -> tuple[float, float]:
        """(E[scale^2], E[scale]) of the multiplier."""
        name = layer.class_name.rsplit(">", 1)[-1]
        if name in LAYER_SCALE:
            if context.source == "weights" and layer.weights:
                stats = layer.weights[0]
                return stats.second_moment, stats.mean
            value = _number(layer.config.get("init_values"), 1.0)
            return value * value, value
        value = _number(layer.config.get("scale"), 1.0)
        return value * value, value

    def forward(self, node, inputs, context):
        layer = node.layer
        square, mean_scale = self.factor(layer, context)
        first = inputs[0] if inputs else Signal()
        if self.sums_two(layer) and len(inputs) >= 2:
            branch = inputs[1]
            mean = first.mean + mean_scale * branch.mean
            varying = first.varying + square * branch.varying
            constant = (first.constant - first.mean * first.mean) + \
                square * (branch.constant - branch.mean * branch.mean) + mean * mean
            return Forward(Signal(settled(varying + constant), mean, max(constant, mean * mean)))
        if layer.class_name.rsplit(">", 1)[-1] == "Rescaling":
            offset = _number(layer.config.get("offset"), 0.0)
            second = square * first.second + offset * offset + 2 * mean_scale * offset * first.mean
            constant = square * first.constant + offset * offset + \
                2 * mean_scale * offset * first.mean
            mean = mean_scale * first.mean + offset
            return Forward(Signal(settled(second), mean, max(constant, mean * mean)))
        return Forward(Signal(settled(square * first.second), mean_scale * first.mean,
                              settled(square * first.constant)))

    def backward(self, node, gradient, gradient_pre, inputs, forward, context):
        square, _ = self.factor(node.layer, context)
        if self.sums_two(node.layer) and len(node.inputs) >= 2:
            return [gradient, gradient * square] + [0.0] * (len(node.inputs) - 2)
        return [gradient * square] * len(node.inputs)


FAMILIES = [ScaleFamily()]
