"""The gradient-gain estimate: mean-field signal propagation over the whole model graph.

Forward, each tensor carries its per-unit second moment s = E[x^2] and mean, starting from
unit-variance inputs; a weighted layer's pre-activation variance is
q = fan_in * E[w^2] * s_in + E[b^2], and its output's moments are Gaussian expectations of
the activation at q (Poole et al. 2016; Schoenholz et al. 2017; He et al. 2015).
Backward, each tensor carries g = E[(dL/dx)^2] per element, one at the output layer's
pre-activations; a weighted layer passes g_in = fan_out * E[w^2] * E[phi'(z)^2] * g_out to its
input. Where a tensor feeds several layers, their gradients add (a residual block's input
gets the identity's gradient and the branch's). Normalization layers reset the forward scale
and divide the gradient by the input's standard deviation. Both passes visit every node and
edge once, in topological order, so the cost is linear in layers plus edges.

Reported per node: `forward_scale`, the RMS of its output for unit-variance inputs;
`gradient`, the RMS of the loss gradient at its pre-activations relative to the output
layer's, with what pooling and upsampling do to a per-element gradient factored out (so that
it measures what weights, activations and normalization do); and, for weighted layers,
`kernel_gradient`, the norm of the kernel's gradient relative to the output layer's kernel's,
which is what `tf.GradientTape` measures.

The estimate can use the initializers' variances (how training starts; the rules judge
this one) or the stored weights' statistics (where a trained model stands).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from gradlint import activations, layer_catalog
from gradlint.graph import Activation, Layer, ModelGraph, Node

LINEAR = Activation("linear")
EPSILON = 1e-30
RECURRENT_GATES = {"LSTM": 4, "LSTMCell": 4, "GRU": 3, "GRUCell": 3, "CuDNNLSTM": 4,
                   "CuDNNGRU": 3, "ConvLSTM1D": 4, "ConvLSTM2D": 4, "ConvLSTM3D": 4}
HEAD_KINDS = frozenset({"activation", "pass_through"})


@dataclass
class NodeEstimate:
    """What the estimate says about one node (one layer call)."""

    forward_scale: float
    forward_mean: float = 0.0
    pre_activation_scale: float | None = None
    gradient: float | None = None
    kernel_gradient: float | None = None
    input_scale: float | None = None
    activation_slope: float | None = None  # E[phi'(z)^2] at the pre-activation variance
    weight_second_moment: float | None = None
    fan_in: float | None = None
    fan_out: float | None = None
    passed_through: bool = False

    def to_dict(self) -> dict:
        return {
            "forward_scale": _rounded(self.forward_scale),
            "gradient": _rounded(self.gradient),
            "kernel_gradient": _rounded(self.kernel_gradient),
        }


def _rounded(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None if value is None else (float("inf") if value > 0 else 0.0)
    return float(f"{value:.4g}")


@dataclass
class SignalEstimate:
    """The estimate for every node of a graph, from one source ("initializers" or "weights")."""

    source: str
    nodes: list[NodeEstimate] = field(default_factory=list)
    reference: int | None = None  # the output weighted layer's node id
    head: set[int] = field(default_factory=set)  # nodes whose activation belongs to the loss
    passed_through: list[int] = field(default_factory=list)

    def __getitem__(self, node_id: int) -> NodeEstimate:
        return self.nodes[node_id]


@dataclass
class _Kernel:
    """A weighted layer's parameters as the propagation needs them."""

    weight: float  # E[w^2] of the main kernel
    bias: float = 0.0
    fan_in: float = 1.0
    fan_out: float = 1.0
    entries: float = 1.0
    second_stage: float = 1.0  # separable convolutions: pointwise fan_in * E[w^2]
    second_stage_back: float = 1.0


def _kernel_shape(layer: Layer, node: Node, source: str) -> tuple | None:
    stats = layer.weight("kernel")
    if stats is not None and stats.shape:
        return stats.shape
    effective = layer.inner if layer.inner is not None else layer
    input_shape = node.input_shapes[0] if node.input_shapes else None
    if layer.kind == "wrapper" and input_shape:
        input_shape = (input_shape[0],) + tuple(input_shape[2:])
    if layer.kind == "recurrent":
        units = effective.config.get("units")
        channels = input_shape[-1] if input_shape else None
        if units is None or channels is None:
            return None
        gates = RECURRENT_GATES.get(effective.class_name, 1)
        return (channels, gates * int(units))
    return layer_catalog.kernel_shape(effective.class_name, effective.kind, effective.config,
                                      input_shape)


def _second_moment(layer: Layer, role: str, initializer, fan_in, fan_out, source: str,
                   shape: tuple | None = None):
    if source == "weights":
        stats = layer.weight(role)
        if stats is not None:
            return stats.second_moment
    if initializer is None:
        return None
    return initializer.second_moment(fan_in, fan_out, shape)


def _strides(config: dict, rank: int) -> float:
    strides = config.get("strides") or 1
    if isinstance(strides, int):
        return float(strides) ** rank
    return float(math.prod(int(s) for s in strides))


def _kernel(layer: Layer, node: Node, source: str) -> _Kernel | None:
    effective = layer.inner if layer.inner is not None else layer
    kind = effective.kind if layer.kind == "wrapper" else layer.kind
    shape = _kernel_shape(layer, node, source)
    if shape is None or any(d is None for d in shape):
        return None
    keras_fan_in, keras_fan_out = layer_catalog.keras_fans(shape)
    init = layer.kernel_initializer
    weight = _second_moment(layer, "kernel", init, keras_fan_in, keras_fan_out, source, shape)
    if weight is None:
        return None
    bias_init = layer.bias_initializer
    use_bias = effective.config.get("use_bias", True)
    bias = (_second_moment(layer, "bias", bias_init, keras_fan_in, keras_fan_out, source) or 0.0) \
        if use_bias else 0.0
    entries = float(math.prod(shape))
    config = effective.config
    if kind in ("dense", "embedding"):
        return _Kernel(weight, bias, shape[0] if kind == "dense" else 1.0, shape[-1], entries)
    if kind == "recurrent":
        return _Kernel(weight, bias, shape[0], shape[1], entries)
    rank = len(shape) - 2
    receptive = float(math.prod(shape[:-2]))
    strides = _strides(config, rank)
    if kind == "conv":
        groups = float(config.get("groups", 1) or 1)
        return _Kernel(weight, bias, receptive * shape[-2],
                       receptive * shape[-1] / groups / strides, entries)
    if kind == "conv_transpose":
        return _Kernel(weight, bias, receptive * shape[-1] / strides, receptive * shape[-2],
                       entries)
    if kind in ("depthwise", "separable"):
        multiplier = float(shape[-1])
        kernel = _Kernel(weight, bias, receptive, receptive * multiplier / strides, entries)
        if kind == "separable":
            pointwise_fan_in = shape[-2] * multiplier
            filters = float(config.get("filters", 1))
            pointwise = _second_moment(
                layer, "pointwise_kernel", _pointwise_initializer(layer), pointwise_fan_in,
                filters, source)
            if pointwise is None:
                return None
            kernel.second_stage = pointwise_fan_in * pointwise
            kernel.second_stage_back = filters * pointwise
            kernel.entries += pointwise_fan_in * filters
        return kernel
    return None


def _pointwise_initializer(layer: Layer):
    from gradlint import initializers

    return initializers.parse(layer.config.get("pointwise_initializer", "glorot_uniform"))


def _normalization_scale(layer: Layer, source: str) -> tuple[float, float]:
    """E[gamma^2] and E[beta^2] of a normalization layer."""
    from gradlint import initializers

    config = layer.config
    gamma = beta = None
    if source == "weights":
        g, b = layer.weight("gamma"), layer.weight("beta")
        gamma = g.second_moment if g is not None else None
        beta = b.second_moment if b is not None else None
    if gamma is None:
        if config.get("scale", True) is False:
            gamma = 1.0
        else:
            init = initializers.parse(config.get("gamma_initializer", "ones"))
            gamma = init.second_moment(1.0, 1.0) if init is not None else 1.0
            gamma = 1.0 if gamma is None else gamma
    if beta is None:
        init = initializers.parse(config.get("beta_initializer", "zeros"))
        beta = init.second_moment(1.0, 1.0) if init is not None and config.get("center", True) \
            else 0.0
        beta = beta or 0.0
    return gamma, beta


def _pool_size(config: dict, rank: int) -> float:
    pool = config.get("pool_size") or 2
    if isinstance(pool, int):
        return float(pool) ** rank
    return float(math.prod(int(p) for p in pool))


def _activation(layer: Layer) -> Activation:
    return layer.activation if layer.activation is not None else LINEAR


def _loss_head(graph: ModelGraph) -> tuple[set[int], int | None]:
    """Nodes between the output weighted layers and the loss, whose activation belongs to the
    loss (a softmax with cross-entropy passes the logits' gradient through unchanged)."""
    head: set[int] = set()
    reference = None
    for output in graph.outputs:
        node_id = output
        while True:
            head.add(node_id)
            node = graph.nodes[node_id]
            if node.layer.kind in layer_catalog.WEIGHTED_KINDS or node.layer.kind == "wrapper":
                if reference is None:
                    reference = node_id
                break
            if node.layer.kind not in HEAD_KINDS or len(node.inputs) != 1:
                break
            node_id = node.inputs[0]
    return head, reference


def is_weighted(layer: Layer) -> bool:
    if layer.kind == "wrapper":
        return layer.inner is not None and layer.inner.kind in layer_catalog.WEIGHTED_KINDS
    return layer.kind in layer_catalog.WEIGHTED_KINDS


def estimate(graph: ModelGraph, source: str = "initializers") -> SignalEstimate:
    """Propagate signal and gradient scales through `graph`."""
    result = SignalEstimate(source=source)
    count = len(graph.nodes)
    second = [1.0] * count
    mean = [0.0] * count
    pre_activation = [None] * count  # q of weighted and activation nodes
    kernels: list[_Kernel | None] = [None] * count

    for node in graph.nodes:
        layer = node.layer
        kind = layer.kind
        inputs_second = [second[i] for i in node.inputs]
        inputs_mean = [mean[i] for i in node.inputs]
        s_in = inputs_second[0] if inputs_second else 1.0
        m_in = inputs_mean[0] if inputs_mean else 0.0
        record = NodeEstimate(forward_scale=1.0, input_scale=math.sqrt(s_in))
        s_out, m_out = s_in, m_in
        if kind == "input":
            s_out, m_out = 1.0, 0.0
        elif is_weighted(layer):
            kernel = _kernel(layer, node, source)
            kernels[node.id] = kernel
            if kernel is None:
                record.passed_through = True
                result.passed_through.append(node.id)
            else:
                record.weight_second_moment = kernel.weight
                record.fan_in, record.fan_out = kernel.fan_in, kernel.fan_out
                effective_kind = layer.inner.kind if layer.kind == "wrapper" else kind
                if effective_kind == "embedding":
                    q = kernel.weight
                else:
                    q = kernel.fan_in * kernel.weight * s_in * kernel.second_stage + kernel.bias
                pre_activation[node.id] = q
                moment = activations.moments(_activation(layer), q)
                s_out, m_out = moment.second, moment.mean
                record.activation_slope = moment.derivative_second
        elif kind == "activation":
            pre_activation[node.id] = s_in
            moment = activations.moments(_activation(layer), s_in)
            s_out, m_out = moment.second, moment.mean
            record.activation_slope = moment.derivative_second
        elif kind == "normalization":
            gamma, beta = _normalization_scale(layer, source)
            s_out, m_out = gamma + beta, 0.0
        elif kind in ("add", "average"):
            # Independent summands: variances add, means add (Subtract negates the second).
            signs = [-1.0 if layer.class_name == "Subtract" and i else 1.0
                     for i in range(len(inputs_mean))]
            variance = sum(max(s - m * m, 0.0) for s, m in zip(inputs_second, inputs_mean))
            m_out = sum(sign * m for sign, m in zip(signs, inputs_mean))
            s_out = variance + m_out * m_out
            if kind == "average":
                n = max(len(inputs_second), 1)
                s_out, m_out = s_out / (n * n), m_out / n
        elif kind == "multiply":
            s_out, m_out = math.prod(inputs_second), math.prod(inputs_mean)
        elif kind == "maximum":
            s_out, m_out = max(inputs_second or [1.0]), max(inputs_mean or [0.0])
        elif kind == "concatenate":
            widths = [(_channels(graph.nodes[i]) or 1) for i in node.inputs]
            total = float(sum(widths)) or 1.0
            s_out = sum(w * s for w, s in zip(widths, inputs_second)) / total
            m_out = sum(w * m for w, m in zip(widths, inputs_mean)) / total
        elif kind == "dot":
            s_out = math.prod(inputs_second) * (_channels(graph.nodes[node.inputs[0]]) or 1)
            m_out = 0.0
        elif kind == "rescaling":
            scale = _number(layer.config.get("scale"), 1.0)
            offset = _number(layer.config.get("offset"), 0.0)
            s_out = scale * scale * s_in + offset * offset + 2 * scale * offset * m_in
            m_out = scale * m_in + offset
        elif kind in ("unknown", "opaque", "model"):
            record.passed_through = True
            result.passed_through.append(node.id)
        second[node.id], mean[node.id] = s_out, m_out
        record.forward_scale = math.sqrt(max(s_out, 0.0))
        record.forward_mean = m_out
        if pre_activation[node.id] is not None:
            record.pre_activation_scale = math.sqrt(max(pre_activation[node.id], 0.0))
        result.nodes.append(record)

    head, reference = _loss_head(graph)
    result.reference, result.head = reference, head
    gradient_out = [0.0] * count
    gradient_pre = [0.0] * count
    # The same backward pass through an ideal network of the same shape: every layer keeps
    # the gradient's scale, pooling and upsampling still spread it, and where a tensor feeds
    # several layers the largest share counts. Dividing by it factors out what the graph's
    # shape does to a per-element gradient (a global average pool over 7x7 positions divides
    # it by 49), so `gradient` says what weights, activations and normalization did.
    ideal_out = [0.0] * count
    for output in graph.outputs:
        gradient_out[output] += 1.0
        ideal_out[output] = 1.0
    for node in reversed(graph.nodes):
        layer = node.layer
        kind = layer.kind
        g = gradient_out[node.id]
        ideal = ideal_out[node.id]
        slope = result.nodes[node.id].activation_slope
        if slope is not None and node.id not in head:
            g_pre = slope * g
        else:
            g_pre = g
        gradient_pre[node.id] = g_pre
        if not node.inputs or (g == 0.0 and ideal == 0.0):
            continue
        inputs_second = [second[i] for i in node.inputs]
        s_in = inputs_second[0]
        spread = _structural_factor(node)
        if spread is not None:
            backs = [g * spread] * len(node.inputs)
            ideals = [ideal * spread] * len(node.inputs)
        else:
            ideals = [ideal] * len(node.inputs)
            if is_weighted(layer):
                kernel = kernels[node.id]
                effective_kind = layer.inner.kind if layer.kind == "wrapper" else kind
                if effective_kind == "embedding":
                    continue
                if kernel is None:
                    backs = [g]
                else:
                    backs = [kernel.fan_out * kernel.weight * kernel.second_stage_back * g_pre]
            elif kind == "activation":
                backs = [g_pre]
            elif kind == "normalization":
                gamma, _ = _normalization_scale(layer, source)
                variance = max(s_in - mean[node.inputs[0]] ** 2, 1e-6 * s_in, EPSILON)
                epsilon = _number(layer.config.get("epsilon"), 1e-3)
                backs = [g * gamma / (variance + epsilon)]
            elif kind == "multiply" or kind == "dot":
                backs = [g * math.prod(s for j, s in enumerate(inputs_second) if j != i)
                         for i in range(len(node.inputs))]
            elif kind == "rescaling":
                scale = _number(layer.config.get("scale"), 1.0)
                backs = [g * scale * scale]
            else:
                backs = [g] * len(node.inputs)
        for source_id, back, ideal_back in zip(node.inputs, backs, ideals):
            gradient_out[source_id] += back
            ideal_out[source_id] = max(ideal_out[source_id], ideal_back)

    reference_kernel = None
    kernel_squares = [None] * count
    for node in graph.nodes:
        kernel = kernels[node.id]
        if kernel is None:
            continue
        s_in = second[node.inputs[0]] if node.inputs else 1.0
        positions = layer_catalog.positions(
            node.input_shapes[0] if node.layer.kind == "recurrent" and node.input_shapes
            else node.output_shape)
        if node.layer.kind == "wrapper" and node.output_shape and len(node.output_shape) > 2:
            positions = node.output_shape[1] or 1
        kernel_squares[node.id] = kernel.entries * positions * s_in * gradient_pre[node.id]
    if reference is not None:
        reference_kernel = kernel_squares[reference]
    for node in graph.nodes:
        record = result.nodes[node.id]
        ideal = ideal_out[node.id]
        record.gradient = math.sqrt(gradient_pre[node.id] / ideal) if ideal > 0.0 else None
        square = kernel_squares[node.id]
        if square is not None and reference_kernel:
            record.kernel_gradient = math.sqrt(square / reference_kernel)
    return result


def _structural_factor(node: Node) -> float | None:
    """How a layer that only routes values (pooling, upsampling, averaging, repeating)
    scales the per-element gradient second moment on its way back; None for other layers."""
    layer = node.layer
    kind = layer.kind
    input_shape = node.input_shapes[0] if node.input_shapes else None
    if kind in ("pool_max", "pool_avg"):
        rank = max(len(input_shape or (0, 0, 0, 0)) - 2, 1)
        size = _pool_size(layer.config, rank)
        return 1.0 / size if kind == "pool_max" else 1.0 / (size * size)
    if kind in ("global_pool_max", "global_pool_avg"):
        size = float(layer_catalog.positions(input_shape))
        return 1.0 / size if kind == "global_pool_max" else 1.0 / (size * size)
    if kind == "upsampling":
        rank = max(len(input_shape or (0, 0, 0)) - 2, 1)
        size = layer.config.get("size") or 2
        return float(size) ** rank if isinstance(size, int) else float(math.prod(size))
    if kind == "repeat":
        return _number(layer.config.get("n"), 1.0)
    if kind == "average":
        count = len(node.inputs)
        return 1.0 / (count * count)
    if kind == "maximum":
        return 1.0 / len(node.inputs)
    return None


def _channels(node: Node) -> int | None:
    shape = node.output_shape
    if shape and shape[-1]:
        return int(shape[-1])
    return None


def _number(value, default: float) -> float:
    if isinstance(value, (int, float)):
        return float(value)
    return default
