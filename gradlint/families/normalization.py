"""Normalization layers: batch statistics (BatchNormalization) and per-sample statistics
(LayerNormalization, GroupNormalization, RMSNormalization, UnitNormalization), and the
preprocessing `Normalization` layer.

BatchNormalization in training mode normalizes each channel by the mean and variance of the
batch (over its samples and positions). The output's second moment is E[gamma^2] +
E[beta^2], its constant part E[beta^2]; backward, the gradient is divided by the batch
variance, which is the input's *varying* part (`Signal.varying`): a channel's constant
offset, which a ReLU's positive mean puts there, is subtracted, not normalized. This is the
mechanism of Yang et al. (*A Mean Field Theory of Batch Normalization*, ICLR 2019): for a
dense-BN-ReLU chain the gradient grows by E[relu'^2] / Var(relu) = pi / (pi - 1) = 1.47 per
layer at initialization, where an estimate that ignores the batch sees 1. The batch's own
projection (the Jacobian removes the batch mean and the normalized direction) keeps
(N - 2) / N of the gradient's second moment, N = batch size x positions.

In inference mode (`estimate_mode = "inference"`) the moving statistics are used instead:
zero mean and unit variance at initialization, the stored ones in a trained model.

Per-sample normalization divides by the sample's own statistics over its features: the
gradient is divided by the input's variance, and the units' constant offsets survive as a
share of the output.
"""

from __future__ import annotations

import math

from gradlint import initializers
from gradlint.families import Family, Forward, Signal
from gradlint.families.weighted import settled
from gradlint.layer_catalog import finite_number, positions, real

BATCH = {"BatchNormalization": "normalization", "SyncBatchNormalization": "normalization"}
PER_SAMPLE = {name: "normalization" for name in (
    "LayerNormalization", "GroupNormalization", "RMSNormalization", "UnitNormalization")}
PREPROCESSING = {"Normalization": "normalization"}


def _epsilon(config: dict) -> float:
    value = real(config.get("epsilon"))
    return max(value, 0.0) if value is not None else 1e-3


def _moments(layer, role: str, key: str, default: str, enabled: bool, source: str,
             ) -> tuple[float, float]:
    """(E[v^2], E[v]) of gamma or beta (or a moving statistic)."""
    if source == "weights":
        stats = layer.weight(role)
        if stats is not None:
            return stats.second_moment, stats.mean
    if not enabled:
        return (1.0, 1.0) if role in ("gamma", "moving_variance") else (0.0, 0.0)
    init = initializers.parse(layer.config.get(key, default))
    if init is None:
        return (1.0, 1.0) if default == "ones" else (0.0, 0.0)
    second = init.second_moment(1.0, 1.0)
    if second is None:
        return (1.0, 1.0) if default == "ones" else (0.0, 0.0)
    return second, init.mean_value()


class NormalizationFamily(Family):
    name = "normalization"
    classes = {**BATCH, **PER_SAMPLE, **PREPROCESSING}
    normalizes = True

    def batch_statistics(self, layer) -> bool:
        return layer.class_name.rsplit(">", 1)[-1] in BATCH

    def check_config(self, class_name, config):
        epsilon = config.get("epsilon")
        if epsilon is not None and not (type(epsilon) is float and 0.0 <= epsilon < math.inf):
            finite_number("epsilon", epsilon, 0.0)

    def weight_roles(self, layer, count_2d):
        config = layer.config
        roles = []
        if config.get("scale", True):
            roles.append("gamma")
        if config.get("center", True):
            roles.append("beta")
        return roles + ["moving_mean", "moving_variance"]

    def scale(self, layer, source: str) -> tuple[tuple[float, float], tuple[float, float]]:
        config = layer.config
        gamma = _moments(layer, "gamma", "gamma_initializer", "ones",
                         config.get("scale", True) is not False, source)
        beta = _moments(layer, "beta", "beta_initializer", "zeros",
                        config.get("center", True) is not False, source)
        return gamma, beta

    def _inference(self, layer, context) -> bool:
        return context.mode == "inference" and self.batch_statistics(layer)

    def forward(self, node, inputs, context):
        layer = node.layer
        signal = inputs[0] if inputs else Signal()
        (gamma, gamma_mean), (beta, beta_mean) = self.scale(layer, context.source)
        name = layer.class_name.rsplit(">", 1)[-1]
        epsilon = _epsilon(layer.config)
        if self._inference(layer, context):
            moving_mean = _moments(layer, "moving_mean", "moving_mean_initializer", "zeros",
                                   True, context.source)
            variance = _moments(layer, "moving_variance", "moving_variance_initializer",
                                "ones", True, context.source)[1]
            divisor = max(variance, 0.0) + epsilon or 1e-30
            centred = signal.second - 2.0 * signal.mean * moving_mean[1] + moving_mean[0]
            constant = signal.constant - 2.0 * signal.mean * moving_mean[1] + moving_mean[0]
            mean = beta_mean + gamma_mean * (signal.mean - moving_mean[1]) / math.sqrt(divisor)
            return Forward(Signal(settled(gamma * centred / divisor + beta), mean,
                                  max(gamma * max(constant, 0.0) / divisor + beta,
                                      mean * mean)))
        if self.batch_statistics(layer):
            varying = signal.varying
            kept = varying / (varying + epsilon) if varying + epsilon > 0 else 0.0
            return Forward(Signal(settled(gamma * kept + beta), beta_mean,
                                  max(beta, beta_mean * beta_mean)))
        if name in PREPROCESSING:
            return Forward(Signal(1.0, 0.0, 0.0))
        variance = signal.variance
        if name == "RMSNormalization":
            share = signal.constant / signal.second if signal.second > 0 else 0.0
            mean = gamma_mean * signal.mean / math.sqrt(signal.second) if signal.second > 0 \
                else 0.0
            return Forward(Signal(gamma, mean, max(gamma * share, mean * mean)))
        if name == "UnitNormalization":
            width = _width(node)
            return Forward(Signal(1.0 / width, 0.0, 0.0))
        share = (signal.constant - signal.mean * signal.mean) / variance if variance > 0 else 0.0
        share = min(max(share, 0.0), 1.0)
        return Forward(Signal(settled(gamma + beta), beta_mean,
                              max(gamma * share + beta, beta_mean * beta_mean)))

    def centres_gradient(self, node, context):
        return self.batch_statistics(node.layer) and not self._inference(node.layer, context)

    def coherent_backward(self, node, backs, forward, context):
        # The coherent part that adds up in a kernel's gradient is the one shared by the
        # whole batch (each sample's own sums to nothing over the batch); batch statistics
        # subtract exactly that mean from the gradient.
        if self.batch_statistics(node.layer) and context.mode == "training":
            return [0.0] * len(backs)
        return super().coherent_backward(node, backs, forward, context)

    def backward(self, node, gradient, gradient_pre, inputs, forward, context):
        layer = node.layer
        signal = inputs[0] if inputs else Signal()
        (gamma, _), _ = self.scale(layer, context.source)
        epsilon = _epsilon(layer.config)
        name = layer.class_name.rsplit(">", 1)[-1]
        if self._inference(layer, context):
            variance = _moments(layer, "moving_variance", "moving_variance_initializer",
                                "ones", True, context.source)[1]
            return [gradient * gamma / (max(variance, 0.0) + epsilon or 1e-30)]
        if self.batch_statistics(layer):
            shape = node.input_shapes[0] if node.input_shapes else None
            count = context.batch_size * positions(shape)
            projection = max(count - 2.0, 1.0) / count if count > 2 else 1.0 / count
            floor = max(1e-6 * signal.second, 1e-30)
            return [gradient * gamma * projection / (max(signal.varying, floor) + epsilon)]
        if name == "UnitNormalization":
            return [gradient / (_width(node) * max(signal.second, 1e-30))]
        if name == "RMSNormalization":
            return [gradient * gamma / (max(signal.second, 1e-30) + epsilon)]
        floor = max(1e-6 * signal.second, 1e-30)
        return [gradient * gamma / (max(signal.variance, floor) + epsilon)]


def _width(node) -> float:
    """The features a per-sample normalization spans (the last axis)."""
    shape = node.output_shape
    return float(shape[-1]) if shape and type(shape[-1]) is int and shape[-1] > 0 else 1.0


FAMILIES = [NormalizationFamily()]
