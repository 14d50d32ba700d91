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
        relu = activation.name == "relu" and activation.parameter in (None, 0.0)
        if relu and signal.law is not None and signal.law[0] == "relu+normal":
            # A residual block's sum of a ReLU output and a Gaussian branch: skewed
            # (gradlint.activations.relu_of_rectified_sum).
            _, m, v, mean, variance = signal.law
            out = activations.relu_of_rectified_sum(
                m, v, mean, variance, signal.constant - signal.mean * signal.mean)
        else:
            out = activations.propagate(activation, signal.second, signal.mean,
                                        signal.constant)
        mean = out.mean if out.mean == out.mean else 0.0
        law = None
        if relu:
            fitted = activations.fitted_rectified(mean, out.second) \
                if signal.law is not None else (signal.mean, signal.variance)
            law = ("relu",) + tuple(fitted) if fitted is not None else None
        return Forward(Signal(settled(out.second), mean, out.constant, law),
                       pre_activation=signal.second, slope=out.derivative_second,
                       slope_mean=out.derivative_mean)

    def backward(self, node, gradient, gradient_pre, inputs, forward, context):
        return [gradient_pre]


FAMILIES = [ActivationFamily()]
