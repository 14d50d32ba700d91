"""Whether a saved model is a trained checkpoint, so that re-drawing its kernels would
discard training.

Two tests, either one enough:

1. The optimizer's state says it stepped: Keras 3 and tf-keras archives keep the optimizer's
   variables under ``optimizer/vars`` in ``model.weights.h5`` (the first is its iteration
   count), legacy HDF5 files under ``optimizer_weights`` (``iteration:0`` or
   ``<Optimizer>/iter:0``). An integer scalar above zero there, or a slot variable (a
   momentum) that is not all zeros, means the model was trained.
2. The stored weights are not a draw of their configured initializers: a kernel of at least
   `MIN_VALUES` values whose RMS is off the initializer's by more than `RMS_TOLERANCE`
   (a fresh draw of n values is within about 1/sqrt(2n) of it: 4.4% at 256, so 25% is more
   than five standard errors), or a bias that is not zero where its initializer is. This
   catches a model trained and saved without its optimizer.
"""

from __future__ import annotations

import math

from gradlint import initializers
from gradlint.graph import ModelGraph

MIN_VALUES = 256
RMS_TOLERANCE = 0.25


def optimizer_stepped(weights_file) -> str | None:
    """Why the optimizer state in an open HDF5 weights file says it was trained, or None."""
    import h5py
    import numpy as np

    reasons = []
    for key in ("optimizer", "optimizer_weights"):
        group = weights_file.get(key)
        if not isinstance(group, h5py.Group):
            continue

        def visit(name, item):
            if reasons or not isinstance(item, h5py.Dataset) or item.size == 0 \
                    or item.size > 1 << 22:
                return
            values = np.asarray(item[()])
            if item.shape == () and values.dtype.kind in "iu" and int(values) > 0:
                reasons.append(f"its optimizer state has stepped {int(values)} time"
                               f"{'s' if int(values) != 1 else ''} ({key}/{name})")
            elif item.shape != () and values.dtype.kind == "f" and np.any(values != 0):
                reasons.append(f"its optimizer state holds non-zero slot variables "
                               f"({key}/{name})")

        group.visititems(visit)
    return reasons[0] if reasons else None


def weights_moved(graph: ModelGraph) -> str | None:
    """Why the stored weights are not a draw of their configured initializers, or None."""
    for layer in graph.layers():
        if not layer.weighted or layer.inner is not None:
            continue
        initializer = layer.kernel_initializer
        kernel = layer.weight("kernel")
        if initializer is not None and kernel is not None and kernel.size >= MIN_VALUES \
                and initializer.kind in ("variance_scaling", "fixed") and kernel.finite:
            fan_in, fan_out = initializers.compute_fans(kernel.shape)
            expected = initializer.second_moment(fan_in, fan_out, kernel.shape)
            if expected and expected > 0 and math.isfinite(expected):
                ratio = math.sqrt(kernel.second_moment / expected)
                if abs(ratio - 1.0) > RMS_TOLERANCE:
                    return (f"the stored kernel of '{layer.path}' has an RMS {ratio:.2f} times "
                            f"what its {initializer.name} draws")
        bias = layer.weight("bias")
        bias_initializer = layer.bias_initializer
        zero_bias = bias_initializer is None or (bias_initializer.is_constant
                                                  and bias_initializer.constant == 0.0)
        if bias is not None and zero_bias and bias.finite and \
                (bias.std > 0.0 or bias.mean != 0.0):
            return f"the stored bias of '{layer.path}' is not zero, as its initializer draws it"
    return None
