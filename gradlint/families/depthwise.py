"""Depthwise and separable convolutions.

A depthwise convolution filters each channel alone: fan-in is the kernel's positions, and it
does not count as a layer of depth (with the pointwise convolution after it, it replaces one
standard convolution: Howard et al. 2017; Chollet 2017). A separable convolution is the two
in one layer: the pointwise stage multiplies the forward second moment by its own
fan_in * E[w^2] and the backward one by filters * E[w^2].
"""

from __future__ import annotations

import math
from dataclasses import replace

from gradlint import initializers
from gradlint.families import Signal
from gradlint.families.convolution import (check_window, cover_borders,
                                           receptive_and_strides, window_and_channels)
from gradlint.families.weighted import WeightedFamily, moment_of
from gradlint.layer_catalog import (MAX_SIZE, MISSING, count, size_of, spatial_output,
                                    spatial_rank)

DEPTHWISE = {"DepthwiseConv1D": "depthwise", "DepthwiseConv2D": "depthwise"}
SEPARABLE = {name: "separable" for name in (
    "SeparableConv1D", "SeparableConv2D", "SeparableConvolution1D", "SeparableConvolution2D")}


class DepthwiseFamily(WeightedFamily):
    name = "depthwise"
    classes = {**DEPTHWISE, **SEPARABLE}

    def separable(self, layer) -> bool:
        return layer.class_name.rsplit(">", 1)[-1] in SEPARABLE

    def counts_for_depth(self, layer):
        return self.separable(layer)

    def weight_roles(self, layer, count_2d):
        return ["kernel", "pointwise_kernel", "bias"] if self.separable(layer) else \
            ["kernel", "bias"]

    def expected_kernel_rank(self, layer):
        return spatial_rank(layer.class_name) + 2, layer.class_name

    def check_config(self, class_name, config):
        check_window(config, spatial_rank(class_name))
        if class_name in SEPARABLE:
            filters = config.get("filters", MISSING)
            if not (type(filters) is int and 1 <= filters <= MAX_SIZE):
                count("filters", filters)
        multiplier = config.get("depth_multiplier")
        if multiplier is not None and not (type(multiplier) is int
                                           and 1 <= multiplier <= MAX_SIZE):
            count("depth_multiplier", multiplier)

    def output_shape(self, layer, inputs):
        first = inputs[0] if inputs else None
        if first is None:
            return None
        if self.separable(layer):
            channels = size_of(layer.config, "filters", 0, minimum=0)
            if channels is None:
                return None
            return spatial_output(layer.config, first, "window", channels=channels)
        multiplier = size_of(layer.config, "depth_multiplier", 1)
        if multiplier is None:
            return None
        return spatial_output(layer.config, first, "window", multiplier=multiplier)

    def kernel_shape(self, layer, input_shape):
        found = window_and_channels(layer, input_shape)
        if found is None:
            return None
        kernel, channels = found
        multiplier = size_of(layer.config, "depth_multiplier", 1)
        return kernel + (channels, multiplier) if multiplier is not None else None

    def fans(self, layer, shape):
        window = receptive_and_strides(layer, shape)
        if window is None:
            return None
        receptive, strides = window
        return receptive, receptive * float(shape[-1]) / strides, float(math.prod(shape))

    def refine(self, layer, node, context, shape, kernel):
        kernel = cover_borders(kernel, layer, node, context)
        if not self.separable(layer):
            return kernel
        pointwise_fan_in = shape[-2] * float(shape[-1])
        filters = size_of(layer.config, "filters", 1)
        if filters is None:
            return None
        pointwise = moment_of(
            layer, "pointwise_kernel",
            initializers.parse(layer.config.get("pointwise_initializer", "glorot_uniform")),
            pointwise_fan_in, filters, context)
        if pointwise is None:
            return None
        kernel.second_stage = pointwise_fan_in * pointwise[0]
        kernel.second_stage_back = filters * pointwise[0]
        kernel.second_stage_entries = pointwise_fan_in * filters
        return kernel

    def kernel_square(self, node, forward, signal_in, gradient_pre):
        """A separable convolution's two kernels meet different signals: the depthwise
        kernel its input and the gradient the pointwise stage hands back; the pointwise
        kernel the depthwise output (fan_in * E[w^2] of the input: about 2 / channels
        under Glorot, so a small share) and the layer's gradient. Counting every entry at
        the layer's input and output put Xception's separable kernels ten times too
        high."""
        kernel = forward.kernel
        if not kernel.second_stage_entries:
            return super().kernel_square(node, forward, signal_in, gradient_pre)
        back = kernel.second_stage_back
        depthwise = super().kernel_square(
            node, replace(forward, coherent_pre=forward.coherent_pre * back), signal_in,
            gradient_pre * back)
        gain = kernel.fan_in * kernel.weight
        between = Signal(signal_in.second * gain, signal_in.mean, signal_in.constant * gain)
        pointwise = replace(kernel, entries=kernel.second_stage_entries, coverage=1.0,
                            coherent_coverage=1.0)
        return depthwise + super().kernel_square(
            node, replace(forward, kernel=pointwise), between, gradient_pre)


FAMILIES = [DepthwiseFamily()]
