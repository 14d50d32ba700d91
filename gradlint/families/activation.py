"""Activation layers (Activation, ReLU, LeakyReLU, PReLU, ELU, Softmax, ThresholdedReLU) and
Keras 3 activation operations (`keras.ops.silu(x)`, stored as a `Silu`): the activation is
the layer's whole work. Moments in `gradlint.activations`."""

from __future__ import annotations

from gradlint import activations
from gradlint.families import Family, Forward, Signal
from gradlint.families.weighted import LINEAR, settled


class ActivationFamily(Family):
    name = "activation"
    classes = {name: "activation" for name in (
        "Activation", "ReLU", "LeakyReLU", "PReLU", "ELU", "Softmax", "ThresholdedReLU",
        *activations.OPERATION_ACTIVATIONS)}
    applies_activation = True

    def weight_roles(self, layer, count_2d):
        return ["alpha"] if layer.class_name.rsplit(">", 1)[-1] == "PReLU" else \
            ["kernel", "bias"]

    def forward(self, node, inputs, context):
        signal = inputs[0] if inputs else Signal()
        activation = node.layer.activation or LINEAR
        out = activations.propagate(activation, signal.second, signal.mean, signal.constant)
        return Forward(Signal(settled(out.second), out.mean if out.mean == out.mean else 0.0,
                              out.constant),
                       pre_activation=signal.second, slope=out.derivative_second,
                       slope_mean=out.derivative_mean)

    def backward(self, node, gradient, gradient_pre, inputs, forward, context):
        return [gradient_pre]


FAMILIES = [ActivationFamily()]
