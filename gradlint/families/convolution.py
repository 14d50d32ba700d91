"""Convolutions (Conv1D-3D) and transposed convolutions.

A convolution's fan-in is kernel positions x input channels (/ groups); its fan-out, as
the backward pass sees it, is kernel positions x filters / (groups x strides): with a
stride, each input position feeds fewer outputs. A transposed convolution swaps the two.
Physics otherwise in `gradlint.families.weighted`.

Borders. Those fans hold in the middle of a large feature map. At its border a "same"
convolution's window reaches into the zero padding, and a "valid" one reaches an input's
border pixels with fewer taps, so fewer (output, tap) pairs carry signal than outputs x taps
(`border_coverage`). A 3x3 "same" convolution on a 6x6 map keeps 79% of its pairs, on 3x3
only 60%, on 14x14 91%: the forward second moment, the input gradient's and the kernel
gradient's all shrink by that share. It is geometry, not a fit: measured on ResNet50 at
96x96 (stage 4 at 6x6), the second moment of a 3x3 convolution's output is 0.83 of the
borderless estimate and its input gradient's 0.81, where the coverage is 0.79. A
ZeroPadding layer right before a "valid" convolution is counted as that convolution's own
padding. The estimate is uniform over positions, so it is exact for one layer; a long
stack of unnormalized "same" convolutions on a small map gathers its signal in the middle
and shrinks more slowly (eight 3x3 He/ReLU layers on 4x4: 0.82 per layer measured, 0.69
estimated).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from gradlint.families.weighted import WeightedFamily
from gradlint.layer_catalog import (MAX_SIZE, MISSING, border_pairs, channels_last, count,
                                    problem, size_of, small_sizes, sizes, spatial_output,
                                    spatial_rank, tuple_of, window_product)

CONVOLUTION = {name: "conv" for name in (
    "Conv1D", "Conv2D", "Conv3D", "Convolution1D", "Convolution2D", "Convolution3D")}
TRANSPOSED = {name: "conv_transpose" for name in (
    "Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose", "Convolution1DTranspose",
    "Convolution2DTranspose",
    "Convolution3DTranspose", "Deconvolution2D", "Deconvolution3D")}


def check_window(config: dict, rank: int) -> None:
    kernel = config.get("kernel_size", MISSING)
    if not small_sizes(kernel, rank):
        sizes("kernel_size", kernel, rank)
    for key in ("strides", "dilation_rate"):
        value = config.get(key)
        if value is not None and not small_sizes(value, rank):
            sizes(key, value, rank, 1)


def input_channels(config: dict, input_shape: tuple | None) -> int | None | bool:
    """The input's channels; False when the shape holds an unusable entry."""
    if not input_shape:
        return None
    channels = input_shape[-1] if channels_last(config) else (
        input_shape[1] if len(input_shape) > 1 else None)
    if channels is not None and (type(channels) is not int or not 0 <= channels <= MAX_SIZE):
        return False
    return channels


def window_and_channels(layer, input_shape) -> tuple[tuple[int, ...], int] | None:
    """The kernel's window and the input's channels, when the config and shape give them."""
    channels = input_channels(layer.config, input_shape)
    window = tuple_of(layer.config.get("kernel_size"), spatial_rank(layer.class_name))
    if channels is False or channels is None or window is None:
        return None
    return window, channels


def receptive_and_strides(layer, shape: tuple) -> tuple[float, float] | None:
    """A sliding kernel's positions per output (its receptive field) and the product of its
    strides, as floats; None when the strides are unusable."""
    strides = window_product(layer.config.get("strides"), len(shape) - 2, 1)
    if strides is None:
        return None
    return float(math.prod(shape[:-2])), strides


@dataclass(frozen=True)
class Coverage:
    """The share of a sliding kernel's (output, tap) pairs that meet a real input:
    `forward` per output position, `backward` per input position (against the borderless
    taps / strides), and `coherent` the mean over taps of (outputs it meets / outputs)^2,
    for a kernel gradient whose terms add coherently."""

    forward: float = 1.0
    backward: float = 1.0
    coherent: float = 1.0


FULL = Coverage()
# Beyond this many positions along an axis the border's share is below 1e-4 of the pairs:
# counting it would cost time for nothing.
LARGE_AXIS = 1 << 16


def _axis_coverage(size: int, kernel: int, stride: int, dilation: int, padding: str,
                   explicit: tuple[int, int] = (0, 0)) -> tuple[float, float, float] | None:
    """(pairs / (outputs x taps), pairs / (inputs x taps / stride), mean squared share of
    outputs per tap) along one axis, counting as real input only what lies inside the
    `explicit` zero padding of a ZeroPadding layer before the convolution."""
    span = dilation * (kernel - 1) + 1
    if padding == "same":
        outputs = -(-size // stride)
        before = max((outputs - 1) * stride + span - size, 0) // 2
    elif padding == "causal":
        outputs, before = size, span - 1
    elif padding == "valid":
        outputs, before = (size - span) // stride + 1, 0
    else:
        return None
    low, high = explicit[0], size - 1 - explicit[1]
    if outputs <= 0 or high < low:
        return None
    pairs = 0
    squares = 0.0
    for tap in range(kernel):
        offset = tap * dilation - before
        first = max(0, -((offset - low) // stride))
        last = min(outputs - 1, (high - offset) // stride)
        met = max(last - first + 1, 0)
        pairs += met
        squares += (met / outputs) ** 2
    real = high - low + 1
    return (pairs / (outputs * kernel), pairs * stride / (real * kernel), squares / kernel)


def explicit_padding(node, graph, rank: int) -> tuple[tuple[int, int], ...] | None:
    """The zero padding a ZeroPadding layer right before `node` adds, per spatial axis: a
    "valid" convolution after it is a "same" one, borders and all."""
    if graph is None or not node.inputs:
        return None
    source = node.inputs[0]
    before = graph.nodes[source] if source < len(graph.nodes) and \
        graph.nodes[source].id == source else None
    if before is None or before.layer.class_name != f"ZeroPadding{rank}D":
        return None
    pads = border_pairs(before.layer.config.get("padding", 1), rank)
    if pads is None or any(side > LARGE_AXIS for pair in pads for side in pair):
        return None
    return pads


def border_coverage(layer, node, graph=None) -> Coverage:
    """How much of a convolution's window meets real input over the whole feature map
    (`Coverage`); full coverage where the shape or config does not say."""
    input_shape = node.input_shapes[0] if node.input_shapes else None
    if not input_shape or layer.class_name in TRANSPOSED:
        return FULL
    rank = spatial_rank(layer.class_name)
    spatial = input_shape[1:-1] if channels_last(layer.config) else input_shape[2:]
    kernel = tuple_of(layer.config.get("kernel_size"), rank)
    strides = tuple_of(layer.config.get("strides"), rank, 1)
    dilation = tuple_of(layer.config.get("dilation_rate"), rank, 1)
    padding = str(layer.config.get("padding", "valid")).lower()
    if kernel is None or strides is None or dilation is None or len(spatial) != rank:
        return FULL
    explicit = explicit_padding(node, graph, rank) or ((0, 0),) * rank
    forward = backward = coherent = 1.0
    for size, k, stride, d, pads in zip(spatial, kernel, strides, dilation, explicit):
        if type(size) is not int or size > LARGE_AXIS or k > LARGE_AXIS:
            continue
        axis = _axis_coverage(size, k, stride, d, padding, pads)
        if axis is None:
            return FULL
        forward, backward, coherent = forward * axis[0], backward * axis[1], coherent * axis[2]
    return Coverage(forward, backward, coherent)


def cover_borders(kernel, layer, node, context):
    """`kernel` with its fans and kernel-gradient share scaled by the border coverage."""
    coverage = border_coverage(layer, node, context.graph)
    kernel.fan_in *= coverage.forward
    kernel.fan_out *= coverage.backward
    kernel.coverage = coverage.forward
    kernel.coherent_coverage = coverage.coherent
    return kernel


class ConvolutionFamily(WeightedFamily):
    name = "convolution"
    classes = {**CONVOLUTION, **TRANSPOSED}

    def expected_kernel_rank(self, layer):
        return spatial_rank(layer.class_name) + 2, layer.class_name

    def check_config(self, class_name, config):
        check_window(config, spatial_rank(class_name))
        filters = config.get("filters", MISSING)
        if not (type(filters) is int and 1 <= filters <= MAX_SIZE):
            filters = count("filters", filters)
        groups = config.get("groups")
        if class_name in CONVOLUTION and groups is not None and \
                not (type(groups) is int and groups == 1):
            if filters % count("groups", groups):
                raise problem("groups", f"a whole number that divides 'filters' ({filters})",
                              groups)

    def output_shape(self, layer, inputs):
        first = inputs[0] if inputs else None
        if first is None:
            return None
        filters = size_of(layer.config, "filters", 0, minimum=0)
        if filters is None:
            return None
        return spatial_output(layer.config, first, "window", channels=filters,
                              transpose=layer.class_name in TRANSPOSED)

    def kernel_shape(self, layer, input_shape):
        config = layer.config
        found = window_and_channels(layer, input_shape)
        if found is None:
            return None
        kernel, channels = found
        groups = config.get("groups", 1) or 1
        groups = groups if type(groups) is int and 1 <= groups <= MAX_SIZE else \
            size_of({"groups": groups}, "groups")
        filters = size_of(config, "filters", 0, minimum=0)
        if groups is None or filters is None:
            return None
        if layer.class_name in TRANSPOSED:
            return kernel + (filters, channels)
        return kernel + (channels // groups, filters)

    def fans(self, layer, shape):
        window = receptive_and_strides(layer, shape)
        if window is None:
            return None
        receptive, strides = window
        entries = float(math.prod(shape))
        if layer.class_name in TRANSPOSED:
            return receptive * shape[-1] / strides, receptive * shape[-2], entries
        groups = size_of(layer.config, "groups", 1) if layer.config.get("groups") != 0 else 1
        if groups is None:
            return None
        return receptive * shape[-2], receptive * shape[-1] / groups / strides, entries

    def refine(self, layer, node, context, shape, kernel):
        return cover_borders(kernel, layer, node, context)


FAMILIES = [ConvolutionFamily()]
