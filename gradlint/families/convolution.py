"""Convolutions (Conv1D-3D) and transposed convolutions.

A convolution's fan-in is kernel positions x input channels (/ groups); its fan-out, as
the backward pass sees it, is kernel positions x filters / (groups x strides): with a
stride, each input position feeds fewer outputs. A transposed convolution swaps the two.
Physics otherwise in `gradlint.families.weighted`.
"""

from __future__ import annotations

import math

from gradlint.families.weighted import WeightedFamily
from gradlint.layer_catalog import (MAX_SIZE, MISSING, channels_last, count, problem,
                                    size_of, small_sizes, sizes, spatial_output, spatial_rank,
                                    tuple_of, window_product)

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


FAMILIES = [ConvolutionFamily()]
