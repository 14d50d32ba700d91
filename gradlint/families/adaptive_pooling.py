"""Adaptive pooling (`AdaptiveAveragePooling1D/2D/3D`, `AdaptiveMaxPooling1D/2D/3D`, recent
Keras 3 only): pooling whose configuration names the output's spatial size
(`output_size`) instead of a window; the windows follow from the input's size.

The windows (Keras docs: "the kernel size and stride are automatically computed to achieve
the target output size"; `keras.src.backend.tensorflow.nn`, the same rule as PyTorch's
adaptive pooling): along an axis of L input positions pooled to n outputs, window i covers
positions floor(i * L / n) up to, not including, ceil((i + 1) * L / n). When n divides L
that is plain pooling with window and stride L / n; otherwise the windows overlap and have
two sizes, c = ceil(L / n) and c + 1. Their sizes add up to L + n - gcd(L, n) (the floors
telescope to L, and the ceilings add one wherever n does not divide i * L), which gives how
many have each size without listing them. A window over several axes is the product of
one window per axis, so everything below is a product over the axes.

What that does to the estimate, per element, for independent positions:

- average pooling, forward: a mean over a window of w positions keeps the channel's
  constant part and divides the part that varies by w (as global average pooling does,
  `gradlint.families.pooling`): second = constant + varying * mean_over_windows(1 / w);
- average pooling, backward: each output sends gradient / w to each of its w positions, so
  an input position receives sum over the windows holding it of g / w^2, which averaged
  over the L input positions is g * sum_windows(1 / w) / L; with n dividing L it is the
  1 / k^2 of `AveragePooling` with window k;
- max pooling, backward: each window sends its whole gradient to one position:
  g * n / L (the 1 / k of `MaxPooling`); forward the second moment is kept, as the pooling
  family does for local max pooling (the maximum of a window is larger than a typical
  entry, which this leaves out).

Measured (`gradlint --probe`, 3 seeds, batch 4; untrained Conv2D(32, 3, relu) on 16x16x3
-> adaptive pooling -> Flatten -> Dense(10, softmax); the conv's kernel gradient relative to
the head's, estimate against measurement): average to 4x4 0.323 against 0.316 (3.11 when
the layer was opaque), to 5x5 (overlapping windows) 0.260 against 0.264 (2.00), to 1x1
0.302 against 0.594 (43.8); max to 4x4 0.777 against 0.353 (3.11). The 1x1 and max
figures are those of GlobalAveragePooling2D and MaxPooling2D(4) on the same model: the
gap is the pooling family's, not this one's. Details: `docs/families.md`.
"""

from __future__ import annotations

import math

from gradlint.families import Family, Forward, Signal
from gradlint.layer_catalog import bounded, channels_last, sizes, spatial_rank, tuple_of

AVERAGE = {f"AdaptiveAveragePooling{rank}D": "adaptive_pool_avg" for rank in (1, 2, 3)}
MAX = {f"AdaptiveMaxPooling{rank}D": "adaptive_pool_max" for rank in (1, 2, 3)}


def window_sums(length: int, outputs: int) -> tuple[float, float]:
    """Along one axis of `length` positions pooled to `outputs` windows: (the sum over the
    windows of 1 / size, the number of windows). Exact, without listing the windows."""
    small = -(-length // outputs)
    big_count = length + outputs - math.gcd(length, outputs) - outputs * small
    return (outputs - big_count) / small + big_count / (small + 1), float(outputs)


class AdaptivePoolingFamily(Family):
    name = "adaptive_pooling"
    classes = {**AVERAGE, **MAX}

    def check_config(self, class_name, config):
        value = config.get("output_size")
        if value is not None:
            sizes("output_size", value, spatial_rank(class_name))

    def _axes(self, layer, shape) -> list[tuple[int, int]] | None:
        """(input length, output length) per spatial axis, or None when one is unknown."""
        rank = spatial_rank(layer.class_name.rsplit(">", 1)[-1])
        if shape is None or len(shape) != rank + 2:
            return None
        output = tuple_of(layer.config.get("output_size"), rank) \
            if layer.config.get("output_size") is not None else None
        if output is None or len(output) != rank:
            return None
        spatial = shape[1:-1] if channels_last(layer.config) else shape[2:]
        if any(type(length) is not int or length < 1 for length in spatial):
            return None
        return list(zip(spatial, output))

    def _average(self, layer) -> bool:
        return layer.class_name.rsplit(">", 1)[-1] in AVERAGE

    def output_shape(self, layer, inputs):
        first = inputs[0] if inputs else None
        rank = spatial_rank(layer.class_name.rsplit(">", 1)[-1])
        value = layer.config.get("output_size")
        output = tuple_of(value, rank) if value is not None else None
        if first is None or len(first) != rank + 2 or output is None or len(output) != rank:
            return None
        if channels_last(layer.config):
            return bounded((first[0],) + tuple(output) + (first[-1],))
        return bounded((first[0], first[1]) + tuple(output))

    def forward(self, node, inputs, context):
        signal = inputs[0] if inputs else Signal()
        axes = self._axes(node.layer, node.input_shapes[0] if node.input_shapes else None)
        if axes is None:
            return Forward(signal, passed_through=True)
        if not self._average(node.layer):
            return Forward(signal)
        shrink = 1.0
        for length, outputs in axes:
            total, windows = window_sums(length, outputs)
            shrink *= total / windows
        return Forward(Signal(signal.constant + signal.varying * shrink, signal.mean,
                              signal.constant))

    def spread(self, node):
        axes = self._axes(node.layer, node.input_shapes[0] if node.input_shapes else None)
        if axes is None:
            return 1.0
        spread = 1.0
        for length, outputs in axes:
            total, windows = window_sums(length, outputs)
            spread *= (total if self._average(node.layer) else windows) / length
        return spread


FAMILIES = [AdaptivePoolingFamily()]
