"""Attention layers: MultiHeadAttention, GroupedQueryAttention (exported as
GroupQueryAttention), Attention, AdditiveAttention.

MultiHeadAttention is modelled as the four projections it holds (query, key, value: an
EinsumDense each from the input's d features to H heads x d_k; output: from H x d_v back),
with the softmax at initialization over query-key scores of variance sigma^2 = s_q s_k (Keras
divides q . k by sqrt(d_k)). For Gaussian scores the softmax weights are log-normal, so
sum_j a_j^2 = e^(sigma^2) / T_v: each output position averages T_v e^(-sigma^2) values'
worth (near-uniform attention, the rank-collapse regime of Noci et al., *Signal
Propagation in Transformers*, NeurIPS 2022). Then, per element:

- forward: the attention output keeps the values' constant part and e^(sigma^2) / T_v of
  their varying part; the output projection multiplies by H d_v E[w_o^2];
- backward: each value receives T_q e^(sigma^2) / T_v^2 of the output gradient's second
  moment; the scores' gradient a (u - mean u), with u = g . v, reaches the queries with
  T_v E[a^2] d_v g s_v s_k / d_k (the keys likewise, with s_q);
- the kernel gradient, which the probe measures over all four kernels together, is the sum
  of the four projections' squared norms.

Keras builds each projection as an EinsumDense whose initializer sees the einsum's own fans:
d in and H d_k out for the query (E[w^2] = 2 / (d + H d_k) with Glorot; measured on a
saved model: 1/64 for d = 64, H d_k = 64), H d_v in and d out for the output.
The other attention classes are not modelled: they pass the query's signal through and hand
the gradient to each input unchanged, with no kernel estimate.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

from gradlint.families import Family, Forward, Signal
from gradlint.families.weighted import Kernel, moment_of, settled
from gradlint.layer_catalog import count, size_of


@dataclass
class _Projections:
    """Second moments and fans of a MultiHeadAttention's four kernels."""

    kernel: Kernel  # the value projection, as the rules read a weighted layer's gain
    query: float
    key: float
    value: float
    output: float
    d_query: int
    d_value: int
    heads: int
    key_dim: int
    value_dim: int
    d_out: int
    t_query: float
    t_value: float
    attended: float = 1.0  # s of the attention output, before the output projection
    concentration: float = 1.0  # T_v sum_j a_j^2 = e^(sigma^2), at least 1
    value_second: float = 1.0
    key_second: float = 1.0
    query_second: float = 1.0
    at: tuple[float, float, float, float] | None = None  # set by the backward pass

    # What the estimate's records read of a kernel: the value projection's.
    @property
    def weight(self) -> float:
        return self.kernel.weight

    @property
    def fan_in(self) -> float:
        return self.kernel.fan_in

    @property
    def fan_out(self) -> float:
        return self.kernel.fan_out


def _last(shape) -> int | None:
    if shape and type(shape[-1]) is int and shape[-1] > 0:
        return shape[-1]
    return None


def _steps(shape) -> float:
    if shape and len(shape) >= 3 and type(shape[1]) is int and shape[1] > 0:
        return float(shape[1])
    return 1.0


class AttentionFamily(Family):
    name = "attention"
    classes = {name: "attention" for name in (
        "MultiHeadAttention", "Attention", "AdditiveAttention", "GroupQueryAttention",
        "GroupedQueryAttention")}

    def multi_head(self, layer) -> bool:
        return layer.class_name.rsplit(">", 1)[-1] == "MultiHeadAttention"

    def is_weighted(self, layer):
        return self.multi_head(layer)

    def counts_for_depth(self, layer):
        return self.multi_head(layer)

    def weight_roles(self, layer, count_2d):
        roles = []
        for name in ("query", "key", "value", "output"):
            roles.append(f"{name}_kernel")
            if layer.config.get("use_bias", True):
                roles.append(f"{name}_bias")
        return roles

    def check_config(self, class_name, config):
        out = config.get("output_shape")
        if isinstance(out, (bool, numbers.Real)):
            count("output_shape", out)
        if class_name == "MultiHeadAttention":
            for key in ("num_heads", "key_dim"):
                count(key, config.get(key))
            if config.get("value_dim") is not None:
                count("value_dim", config.get("value_dim"))

    def output_shape(self, layer, inputs):
        first = inputs[0] if inputs else None
        if first is None:
            return None
        config = layer.config
        if not self.multi_head(layer) or not isinstance(config.get("output_shape"), int):
            return first
        units = size_of(config, "output_shape")
        return first[:-1] + (units,) if units is not None else None

    # --- the estimate ----------------------------------------------------------------------
    def projections(self, node, context) -> _Projections | None:
        layer = node.layer
        config = layer.config
        shapes = node.input_shapes or []
        query_shape = shapes[0] if shapes else None
        value_shape = shapes[1] if len(shapes) > 1 else query_shape
        d_query, d_value = _last(query_shape), _last(value_shape)
        heads, key_dim = size_of(config, "num_heads"), size_of(config, "key_dim")
        value_dim = size_of(config, "value_dim", key_dim) if config.get("value_dim") else key_dim
        if None in (d_query, d_value, heads, key_dim, value_dim):
            return None
        d_out = _last(node.output_shape) or d_query
        init = layer.kernel_initializer

        def second(role, shape):
            fan_in, fan_out = float(shape[0]), float(shape[1])
            found = moment_of(layer, role, init, fan_in, fan_out, context, shape)
            return None if found is None else settled(found[0])

        query = second("query_kernel", (d_query, heads * key_dim))
        key = second("key_kernel", (d_value, heads * key_dim))
        value = second("value_kernel", (d_value, heads * value_dim))
        output = second("output_kernel", (heads * value_dim, d_out))
        if None in (query, key, value, output):
            return None
        kernel = Kernel(value, 0.0, float(d_value), float(heads * value_dim),
                        float(d_value * heads * value_dim))
        return _Projections(kernel, query, key, value, output, d_query, d_value, heads,
                            key_dim, value_dim, d_out, _steps(query_shape), _steps(value_shape))

    def forward(self, node, inputs, context):
        query_in = inputs[0] if inputs else Signal()
        if not self.multi_head(node.layer):
            return Forward(query_in)
        parts = self.projections(node, context)
        if parts is None:
            return Forward(query_in, passed_through=True)
        value_in = inputs[1] if len(inputs) > 1 else query_in
        key_in = inputs[2] if len(inputs) > 2 else value_in
        gain = parts.d_value * parts.value
        values = Signal(settled(gain * value_in.second), 0.0, settled(gain * value_in.constant))
        parts.value_second = values.second
        parts.key_second = settled(parts.d_value * parts.key * key_in.second)
        parts.query_second = settled(parts.d_query * parts.query * query_in.second)
        score_variance = min(parts.query_second * parts.key_second, 50.0)
        parts.concentration = min(math.exp(score_variance), parts.t_value)
        parts.attended = settled(values.constant +
                                 values.varying * parts.concentration / parts.t_value)
        out = settled(parts.heads * parts.value_dim * parts.output * parts.attended)
        constant = settled(parts.heads * parts.value_dim * parts.output * values.constant)
        return Forward(Signal(out, 0.0, min(constant, out)), pre_activation=out, slope=1.0, slope_mean=1.0,
                       kernel=parts)

    def backward(self, node, gradient, gradient_pre, inputs, forward, context):
        parts = forward.kernel
        if not isinstance(parts, _Projections):
            return [gradient] * len(node.inputs)
        at_output = parts.d_out * parts.output * gradient_pre  # per element of the heads
        weight_square = parts.concentration / (parts.t_value ** 2)  # E[a^2]
        at_values = at_output * parts.t_query * weight_square
        at_scores = parts.value_dim * at_output * parts.value_second * weight_square * \
            parts.t_value / parts.key_dim
        at_queries = at_scores * parts.key_second
        at_keys = at_scores * parts.query_second * parts.t_query / parts.t_value
        heads = parts.heads
        to_query = heads * parts.key_dim * parts.query * at_queries
        to_value = heads * parts.value_dim * parts.value * at_values
        to_key = heads * parts.key_dim * parts.key * at_keys
        backs = [to_query]
        if len(node.inputs) > 1:
            backs.append(to_value + (to_key if len(node.inputs) == 2 else 0.0))
        else:
            backs[0] += to_value + to_key
        if len(node.inputs) > 2:
            backs.append(to_key)
        backs += [0.0] * (len(node.inputs) - len(backs))
        parts.at = (at_output, at_values, at_queries, at_keys)
        return [settled(b) for b in backs]

    def kernel_square(self, node, forward, signal_in, gradient_pre):
        parts = forward.kernel
        if not isinstance(parts, _Projections) or parts.at is None:
            return 0.0
        at_output, at_values, at_queries, at_keys = parts.at
        value_in = parts.value_second / max(parts.d_value * parts.value, 1e-300)
        key_in = parts.key_second / max(parts.d_value * parts.key, 1e-300)
        query_in = signal_in.second
        heads = parts.heads
        output = heads * parts.value_dim * parts.d_out * parts.t_query * parts.attended * \
            gradient_pre
        value = parts.d_value * heads * parts.value_dim * parts.t_value * value_in * at_values
        query = parts.d_query * heads * parts.key_dim * parts.t_query * query_in * at_queries
        key = parts.d_value * heads * parts.key_dim * parts.t_value * key_in * at_keys
        return output + value + query + key


FAMILIES = [AttentionFamily()]
