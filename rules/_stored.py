"""What the stored-weights rules share (GL206, GL207): whether a file's stored weights are a
trained checkpoint rather than the initializers' draw, and each layer's gain under them.
Which findings to report stays in each rule."""

from __future__ import annotations

import math

# A sample second moment of n independent draws has a relative standard deviation of
# sqrt(2 / n) (normal; uniform: sqrt(0.8 / n)); four of them, and never less than 50%, is
# what a draw cannot explain.
SAMPLING_SIGMAS = 4.0
MIN_TOLERANCE = 0.5


def moved_layers(analysis) -> list[str]:
    """Paths of the weighted layers whose stored weights are not a draw of their
    initializers: a kernel's second moment outside the initializer's by more than sampling
    explains, or a non-zero bias where the initializer is Zeros."""
    moved, seen = [], set()
    stored = analysis.weights_estimate
    if stored is None:
        return moved
    for node in analysis.weighted_nodes():
        layer = node.layer
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        kernel, bias = layer.weight("kernel"), layer.weight("bias")
        expected = analysis.estimate[node.id].weight_second_moment
        have = stored[node.id].weight_second_moment
        if kernel is not None and kernel.finite and expected and have is not None \
                and kernel.size > 0:
            tolerance = max(MIN_TOLERANCE, SAMPLING_SIGMAS * math.sqrt(2.0 / kernel.size))
            if have > expected * (1.0 + tolerance) or have < expected / (1.0 + tolerance):
                moved.append(layer.path)
                continue
        initializer = layer.bias_initializer
        if bias is not None and bias.finite and initializer is not None \
                and initializer.is_constant and initializer.constant == 0.0 \
                and (bias.std > 0.0 or bias.mean != 0.0):
            moved.append(layer.path)
    return moved


def stored_gain(analysis, node) -> float | None:
    """fan_in * E[w^2] of the stored kernel times E[phi'^2] of the activation at a centred
    pre-activation (the initializer estimate's: 0.5 for ReLU): by how much the layer scales
    the signal's second moment. The stored estimate's own slope is not used: it carries the
    kernel's overall mean times the fan-in, which makes trained ReLU layers look dead."""
    record = analysis.weights_estimate[node.id]
    if record.fan_in is None or record.weight_second_moment is None:
        return None
    slope = analysis.estimate[node.id].activation_slope
    if slope is None or not math.isfinite(slope) or slope <= 0.0:
        slope = 1.0
    following = analysis.consumers[node.id]
    if len(following) == 1 and analysis.node(following[0]).layer.family.applies_activation:
        after = analysis.estimate[following[0]].activation_slope
        if after is not None and math.isfinite(after) and after > 0.0:
            slope *= after
    return record.fan_in * record.weight_second_moment * slope
