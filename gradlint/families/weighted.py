"""What every family with a kernel shares: the kernel's second moment and fans, the
pre-activation's moments, and the backward gain through the kernel.

A weighted layer's pre-activation z = W x + b, with W's entries drawn independently of x,
has (Poole et al. 2016; He et al. 2015)

    varying part   fan_in * E[w^2] * (varying part of x)
    constant part  fan_in * E[w^2] * (constant part of x) + E[b^2]
    mean           fan_in * E[w] * E[x] + E[b]

so a bias's mean reaches the activation (a constant bias of -10 silences every ReLU), and a
channel's constant offset stays constant across the batch (what BatchNormalization in
training mode removes). Backward, the input's gradient second moment is
fan_out * E[w^2] * E[phi'(z)^2] times the output's. The family subclasses say what fan-in
and fan-out are for their kernels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from gradlint import activations, initializers
from gradlint.families import Context, Family, Forward, Signal
from gradlint.graph import Activation, Layer, Node
from gradlint.layer_catalog import MAX_SIZE, keras_fans

LINEAR = Activation("linear")
MAX_ANY_RANK = 8


@dataclass
class Kernel:
    """A weighted layer's parameters as the propagation needs them."""

    weight: float  # E[w^2] of the main kernel
    bias: float = 0.0  # E[b^2]
    fan_in: float = 1.0
    fan_out: float = 1.0
    entries: float = 1.0
    second_stage: float = 1.0  # separable convolutions: pointwise fan_in * E[w^2]
    second_stage_back: float = 1.0  # and filters * E[w^2]
    second_stage_entries: float = 0.0  # and the pointwise kernel's entries
    weight_mean: float = 0.0
    bias_mean: float = 0.0
    # The share of the kernel gradient's (position, tap) terms that meet a real input, and
    # the same for its coherent part (`gradlint.families.convolution.border_coverage`).
    coverage: float = 1.0
    coherent_coverage: float = 1.0


def settled(value: float) -> float:
    """A second moment as the propagation keeps it: NaN, which only an overflow produces,
    is taken as +inf."""
    return value if value == value else math.inf


def moment_of(layer: Layer, role: str, initializer, fan_in, fan_out, context: Context,
              shape: tuple | None = None, stored=None) -> tuple[float, float] | None:
    """(E[w^2], E[w]) of one of the layer's tensors: the stored statistics when the estimate
    reads the weights, else the initializer's."""
    if context.source == "weights":
        stats = stored if stored is not None and role == "kernel" else layer.weight(role)
        if stats is not None:
            return stats.second_moment, stats.mean
    if initializer is None:
        return None
    second = initializer.second_moment(fan_in, fan_out, shape)
    if second is None:
        return None
    return second, initializer.mean_value()


def parsed_initializer(layer: Layer, key: str, default: str):
    return initializers.parse(layer.config.get(key, default))


class WeightedFamily(Family):
    """A layer with a kernel: dense, convolutions, embeddings, recurrent layers."""

    weighted = True
    kernel_rank: int | None = None  # how many dimensions the kernel has; None: any

    # --- the kernel --------------------------------------------------------------------
    def expected_kernel_rank(self, layer: Layer) -> tuple[int, str] | None:
        return (self.kernel_rank, layer.class_name) if self.kernel_rank else None

    def stored_kernel_problem(self, layer: Layer) -> str | None:
        """Why the layer's stored kernel cannot be its kernel (a 1-D kernel for a Conv1D,
        a dimension beyond `MAX_SIZE`), or None when it fits or none is stored."""
        stats = layer.weight("kernel")
        if stats is None or not stats.shape:
            return None
        shape = stats.shape
        expected = self.expected_kernel_rank(layer)
        if expected is not None and len(shape) != expected[0]:
            return (f"its stored kernel has shape {tuple(shape)}, but a {expected[1]} kernel "
                    f"has {expected[0]} dimensions")
        if expected is None and len(shape) > MAX_ANY_RANK:
            return f"its stored kernel has {len(shape)} dimensions, more than {MAX_ANY_RANK}"
        if any(type(d) is not int or not 0 <= d <= MAX_SIZE for d in shape):
            return (f"its stored kernel has shape {tuple(shape)}, with a dimension that is not "
                    f"a whole number from 0 to 2**40")
        return None

    def stored_kernel(self, layer: Layer):
        if not layer.weights:
            return None
        stats = layer.weight("kernel")
        if stats is None or not stats.shape or self.stored_kernel_problem(layer) is not None:
            return None
        return stats

    def kernel_input_shape(self, node: Node) -> tuple | None:
        return node.input_shapes[0] if node.input_shapes else None

    def fans(self, layer: Layer, shape: tuple) -> tuple[float, float, float] | None:
        """(fan_in, fan_out, entries) as the propagation counts them."""
        return float(shape[0]), float(shape[-1]), float(math.prod(shape))

    def kernel(self, layer: Layer, node: Node, context: Context) -> Kernel | None:
        stored = self.stored_kernel(layer)
        shape = stored.shape if stored is not None else \
            self.kernel_shape(layer, self.kernel_input_shape(node))
        if shape is None or any(d is None for d in shape):
            return None
        keras_fan_in, keras_fan_out = keras_fans(shape)
        weight = moment_of(layer, "kernel", layer.kernel_initializer, keras_fan_in,
                           keras_fan_out, context, shape, stored)
        if weight is None:
            return None
        bias = (0.0, 0.0)
        if layer.config.get("use_bias", True):
            bias = moment_of(layer, "bias", layer.bias_initializer, keras_fan_in,
                             keras_fan_out, context) or (0.0, 0.0)
        fans = self.fans(layer, shape)
        if fans is None:
            return None
        fan_in, fan_out, entries = fans
        kernel = Kernel(settled(weight[0]), settled(bias[0]), fan_in, fan_out, entries,
                        weight_mean=_finite(weight[1]), bias_mean=_finite(bias[1]))
        return self.refine(layer, node, context, shape, kernel)

    def refine(self, layer: Layer, node: Node, context: Context, shape: tuple,
               kernel: Kernel) -> Kernel | None:
        """A family's own changes to the kernel (a second stage, grouped fans)."""
        return kernel

    # --- the estimate ------------------------------------------------------------------
    def activation(self, layer: Layer) -> Activation:
        return layer.activation if layer.activation is not None else LINEAR

    def pre_activation(self, kernel: Kernel, signal: Signal) -> Signal:
        gain = kernel.fan_in * kernel.weight * kernel.second_stage
        varying = settled(gain * signal.varying)
        constant = settled(gain * signal.constant + kernel.bias)
        mean = kernel.fan_in * kernel.weight_mean * signal.mean * kernel.second_stage + \
            kernel.bias_mean
        mean = mean if math.isfinite(mean) else 0.0
        return Signal(settled(varying + constant), mean, max(constant, mean * mean))

    def forward(self, node: Node, inputs: list[Signal], context: Context) -> Forward:
        layer = node.layer
        kernel = self.kernel(layer, node, context)
        signal_in = inputs[0] if inputs else Signal()
        if kernel is None:
            return Forward(signal_in, passed_through=True)
        z = self.pre_activation(kernel, signal_in)
        out = activations.propagate(self.activation(layer), z.second, z.mean, z.constant)
        return Forward(Signal(settled(out.second), _finite(out.mean), out.constant),
                       pre_activation=z.second, slope=out.derivative_second, kernel=kernel,
                       slope_mean=out.derivative_mean)

    def backward(self, node: Node, gradient: float, gradient_pre: float,
                 inputs: list[Signal], forward: Forward, context: Context) -> list[float]:
        kernel = forward.kernel
        if kernel is None:
            return [gradient] * len(node.inputs)
        return [kernel.fan_out * kernel.weight * kernel.second_stage_back * gradient_pre] + \
            [0.0] * (len(node.inputs) - 1)


def _finite(value: float) -> float:
    return value if math.isfinite(value) else 0.0
