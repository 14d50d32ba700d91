"""Merge layers: Add, Subtract, Average, Multiply, Maximum, Minimum, Concatenate, Dot.

Independent summands: variances add and means add (Subtract negates the second); where a
tensor feeds several layers, the backward pass adds their gradients (a residual block's
input gets the shortcut's gradient and the branch's). A product (a squeeze-and-excitation
gate, a GLU) multiplies second moments, so a sigmoid gate near 0.5 passes a quarter of the
signal, not all of it; backward, each factor receives the gradient times the other factors'
second moments, summed over the positions it was broadcast to (a (1, 1, C) gate on a
(7, 7, C) map collects 49 positions' gradients); where the gradient is the same at every
position (`Forward.coherent`), the other factor's constant part adds up coherently.
"""

from __future__ import annotations

import math

from gradlint.families import Family, Forward, Signal
from gradlint.families.weighted import settled
from gradlint.layer_catalog import MAX_SIZE, positions, problem, whole

SUMS = {"Add": "add", "Subtract": "add"}
# Keras 3 operations with no layer of the same name: `x / 6.0` is a `Divide`.
QUOTIENTS = {"Divide": "divide", "TrueDivide": "divide"}
# Keras 1's single `Merge` layer, by its `mode`; a function as the mode, or "cos" (a
# normalized product), is left to the opaque family.
KERAS1_MODES = {"sum": "add", "mul": "multiply", "ave": "average", "max": "maximum",
                "concat": "concatenate", "dot": "dot"}


def _channels(shape) -> int | None:
    if shape and shape[-1]:
        channels = whole(shape[-1])
        return channels if channels is not None and 0 < channels <= MAX_SIZE else None
    return None


def _sum(inputs: list[Signal], signs: list[float]) -> Signal:
    mean = sum(sign * s.mean for sign, s in zip(signs, inputs))
    varying = sum(s.varying for s in inputs)
    spread = sum(max(s.constant - s.mean * s.mean, 0.0) for s in inputs)
    constant = spread + mean * mean
    return Signal(settled(varying + constant), mean, constant)


def _residual_law(inputs: list[Signal]) -> tuple | None:
    """("relu+normal", m, v, mean, variance) for the sum of one ReLU output, relu(N(m, v)),
    and Gaussian terms (a ResNet v1 block's shortcut and its branch's BatchNorm output):
    the ReLU after it integrates that sum exactly (`activations.relu_of_rectified_sum`)."""
    rectified = [s for s in inputs if s.law is not None and s.law[0] == "relu"]
    if len(rectified) != 1 or len(inputs) < 2 or \
            any(s.law is not None for s in inputs if s is not rectified[0]):
        return None
    others = [s for s in inputs if s is not rectified[0]]
    mean = sum(s.mean for s in others)
    variance = sum(s.variance for s in others)
    _, m, v = rectified[0].law
    return ("relu+normal", m, v, mean, variance)


def _terms(layer, inputs: list[Signal]) -> list[tuple[int, Signal]]:
    """A sum's terms by argument position: its tensors, and the scalar arguments of a
    Keras 3 operation (`x + 3.0` shifts the mean by 3) as constant signals."""
    if not layer.constants:
        return list(enumerate(inputs))
    taken = {position for position, _ in layer.constants}
    free = (position for position in range(len(inputs) + len(taken)) if position not in taken)
    terms = [(next(free), signal) for signal in inputs]
    terms += [(position, Signal(value * value, value, value * value))
              for position, value in layer.constants]
    return sorted(terms, key=lambda term: term[0])


def _constant_factor(layer, kind: str) -> float | None:
    """What a Keras 3 product or quotient operation with scalar arguments multiplies its
    one tensor by (`x * (1 / 6)`, `x / 6.0`); None for any other merge."""
    if not layer.constants or kind not in ("multiply", "divide"):
        return None
    factor = math.prod(value for _, value in layer.constants)
    if kind == "divide":
        if [position for position, _ in layer.constants] != [1] or factor == 0.0:
            return None  # a constant divided by the tensor is not a scaling
        factor = 1.0 / factor
    return factor if math.isfinite(factor) else None


def _broadcast(node, index: int) -> float:
    """How many output positions one element of input `index` was broadcast to."""
    shape = node.input_shapes[index] if index < len(node.input_shapes) else None
    output = node.output_shape
    if not shape or not output or len(shape) != len(output):
        return 1.0
    ratio = float(positions(output)) / float(positions(shape))
    return ratio if math.isfinite(ratio) and ratio >= 1.0 else 1.0


class MergeFamily(Family):
    name = "merge"
    classes = {**SUMS, **QUOTIENTS, "Average": "average", "Multiply": "multiply",
               "Maximum": "maximum", "Minimum": "maximum", "Concatenate": "concatenate",
               "Dot": "dot"}

    def covers(self, class_name, config):
        return class_name in self.classes or (
            class_name == "Merge" and isinstance(config.get("mode"), str)
            and config["mode"] in KERAS1_MODES)

    def kind_of_layer(self, class_name, config):
        if class_name.rsplit(">", 1)[-1] == "Merge":
            return KERAS1_MODES.get(config.get("mode"), "add")
        return super().kind_of_layer(class_name, config)

    def kind_of(self, layer) -> str:
        return self.kind_of_layer(layer.class_name, layer.config)

    def check_config(self, class_name, config):
        if self.kind_of_layer(class_name, config) == "concatenate":
            axis = config.get("axis", -1)
            number = axis if type(axis) is int else whole(axis)
            if number is None or abs(number) > MAX_SIZE:
                raise problem("axis", "a whole number", axis)

    def sums(self, layer) -> bool:
        # `x + 3.0` shifts a tensor; it joins no two routes
        return self.kind_of(layer) == "add" and not layer.constants

    def multiplies(self, layer) -> bool:
        return self.kind_of(layer) == "multiply" and not layer.constants

    def output_shape(self, layer, inputs):
        first = inputs[0] if inputs else None
        kind = self.kind_of(layer)
        if first is None:
            return None
        if kind == "concatenate":
            axis = whole(layer.config.get("axis", -1))
            if axis is None or any(shape is None for shape in inputs):
                return None
            if any(not -len(shape) <= axis < len(shape) for shape in inputs):
                return None
            parts = [shape[axis] for shape in inputs]
            result = list(first)
            result[axis] = None if any(part is None for part in parts) else sum(parts)
            return tuple(result)
        if kind == "dot":
            return None
        # Broadcasting: the input with the most positions gives the shape.
        known = [shape for shape in inputs if shape is not None and len(shape) == len(first)]
        return max(known, key=positions) if known else first

    def forward(self, node, inputs, context):
        kind = self.kind_of(node.layer)
        if not inputs:
            return Forward(Signal())
        factor = _constant_factor(node.layer, kind)
        if factor is not None and len(inputs) == 1:
            signal = inputs[0]
            return Forward(Signal(settled(signal.second * factor * factor),
                                  signal.mean * factor,
                                  settled(signal.constant * factor * factor)))
        if kind == "divide":
            return Forward(inputs[0], passed_through=True)
        if kind == "add":
            terms = _terms(node.layer, inputs)
            subtract = node.layer.class_name.endswith("Subtract")
            total = _sum([term for _, term in terms],
                         [-1.0 if subtract and position else 1.0 for position, _ in terms])
            return Forward(Signal(total.second, total.mean, total.constant,
                                  _residual_law(inputs) if not subtract else None))
        if kind == "average":
            total = _sum(inputs, [1.0] * len(inputs))
            n = float(len(inputs))
            return Forward(Signal(total.second / (n * n), total.mean / n,
                                  total.constant / (n * n)))
        if kind == "multiply":
            return Forward(Signal(settled(math.prod(s.second for s in inputs)),
                                  math.prod(s.mean for s in inputs),
                                  settled(math.prod(s.constant for s in inputs))))
        if kind == "maximum":
            return Forward(Signal(max(s.second for s in inputs), max(s.mean for s in inputs),
                                  max(s.constant for s in inputs)))
        if kind == "concatenate":
            widths = [(_channels(shape) or 1) for shape in
                      (node.input_shapes + [None] * len(inputs))[:len(inputs)]]
            total = float(sum(widths)) or 1.0
            return Forward(Signal(sum(w * s.second for w, s in zip(widths, inputs)) / total,
                                  sum(w * s.mean for w, s in zip(widths, inputs)) / total,
                                  sum(w * s.constant for w, s in zip(widths, inputs)) / total))
        # Dot: a sum over the contracted axis.
        width = _channels(node.input_shapes[0] if node.input_shapes else None) or 1
        return Forward(Signal(settled(math.prod(s.second for s in inputs) * width), 0.0, 0.0))

    def spread(self, node):
        kind = self.kind_of(node.layer)
        if kind == "average":
            count = len(node.inputs)
            return 1.0 / (count * count)
        if kind == "maximum":
            return 1.0 / len(node.inputs)
        return None

    def shape_gain(self, node, index):
        return _broadcast(node, index)

    def backward(self, node, gradient, gradient_pre, inputs, forward, context):
        kind = self.kind_of(node.layer)
        factor = _constant_factor(node.layer, kind)
        if factor is not None and len(node.inputs) == 1:
            return [settled(gradient * factor * factor)]
        if kind in ("multiply", "dot"):
            seconds = [s.second for s in inputs]
            backs = []
            for i in range(len(node.inputs)):
                others = math.prod(s for j, s in enumerate(seconds) if j != i)
                spread = _broadcast(node, i)
                back = gradient * spread * others
                if spread > 1.0 and kind == "multiply":
                    # A gate summed over the positions it scales: the other factors'
                    # constant part meets the gradient's coherent part in every one.
                    constant = math.prod(s.constant for j, s in enumerate(inputs) if j != i)
                    coherent = min(forward.coherent, gradient)
                    back += spread * (spread - 1.0) * constant * coherent
                backs.append(settled(back))
            return backs
        return [gradient * _broadcast(node, i) for i in range(len(node.inputs))]


FAMILIES = [MergeFamily()]
