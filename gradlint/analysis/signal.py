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

Hostile values: the configuration's sizes were checked when the graph was built
(`layer_catalog.check_config`); here a size that is still unusable leaves the layer unsized
(passed through), and a stored kernel whose shape does not fit its layer
(`stored_kernel_problem`, e.g. a 1-D kernel for a Conv1D) is ignored for that layer. The
floating point is plain Python floats, which never warn: a value that overflows becomes
+inf and stays infinite downstream, and a NaN (which only an overflow meeting a zero
produces) is taken as +inf on the forward and backward passes, so that the rules see an
exploding estimate rather than a NaN; a kernel-gradient ratio of two infinities is unknown
(None). No square root, division or conversion can raise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from gradlint import activations, layer_catalog
from gradlint.graph import Activation, Layer, ModelGraph, Node
from gradlint.layer_catalog import MAX_SIZE, whole

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


def _kernel_rank(layer: Layer) -> tuple[int, str] | None:
    """How many dimensions the layer's (first) kernel has, and the class that decides it;
    None when any rank will do (EinsumDense)."""
    effective = layer.inner if layer.kind == "wrapper" and layer.inner is not None else layer
    kind = effective.kind
    class_name = effective.class_name
    if kind == "recurrent":
        if layer.inner is not None and class_name in ("Bidirectional", "RNN"):
            class_name = layer.inner.class_name
        if class_name.rsplit(">", 1)[-1].startswith("ConvLSTM"):
            return layer_catalog.spatial_rank(class_name) + 2, class_name
        return 2, class_name
    if kind in ("conv", "conv_transpose", "depthwise", "separable"):
        return layer_catalog.spatial_rank(class_name) + 2, class_name
    if kind == "embedding" or (kind == "dense" and class_name == "Dense"):
        return 2, class_name
    return None


MAX_ANY_RANK = 8


def stored_kernel_problem(layer: Layer) -> str | None:
    """Why the layer's stored kernel cannot be the kernel of that layer (a 1-D kernel for a
    Conv1D or an LSTM, a dimension beyond `MAX_SIZE`), or None when it fits or none is
    stored. The estimate then ignores that tensor for that layer."""
    stats = layer.weight("kernel")
    if stats is None or not stats.shape:
        return None
    shape = stats.shape
    expected = _kernel_rank(layer)
    if expected is not None and len(shape) != expected[0]:
        return (f"its stored kernel has shape {tuple(shape)}, but a {expected[1]} kernel has "
                f"{expected[0]} dimensions")
    if expected is None and len(shape) > MAX_ANY_RANK:
        return f"its stored kernel has {len(shape)} dimensions, more than {MAX_ANY_RANK}"
    if any(type(d) is not int or not 0 <= d <= MAX_SIZE for d in shape):
        return (f"its stored kernel has shape {tuple(shape)}, with a dimension that is not a "
                f"whole number from 0 to 2**40")
    return None


def _stored_kernel(layer: Layer):
    """The stored kernel's statistics when they fit the layer (see `stored_kernel_problem`)."""
    if not layer.weights:
        return None
    stats = layer.weight("kernel")
    if stats is None or not stats.shape or stored_kernel_problem(layer) is not None:
        return None
    return stats


def _kernel_shape(layer: Layer, node: Node, source: str, stored=None) -> tuple | None:
    """The kernel's shape: the stored kernel's (`stored`, when it fits the layer), else
    what the configuration and the input shape give."""
    if stored is not None:
        return stored.shape
    effective = layer.inner if layer.inner is not None else layer
    input_shape = node.input_shapes[0] if node.input_shapes else None
    if layer.kind == "wrapper" and input_shape:
        input_shape = (input_shape[0],) + tuple(input_shape[2:])
    if layer.kind == "recurrent":
        units = effective.config.get("units")
        channels = input_shape[-1] if input_shape else None
        if units is None or channels is None:
            return None
        units = whole(units)
        if units is None or not 0 <= units <= MAX_SIZE or type(channels) is not int:
            return None
        gates = RECURRENT_GATES.get(effective.class_name, 1)
        return (channels, gates * units)
    return layer_catalog.kernel_shape(effective.class_name, effective.kind, effective.config,
                                      input_shape)


def _second_moment(layer: Layer, role: str, initializer, fan_in, fan_out, source: str,
                   shape: tuple | None = None, stored=None):
    if source == "weights":
        stats = stored if role == "kernel" else layer.weight(role)
        if stats is not None:
            return stats.second_moment
    if initializer is None:
        return None
    return initializer.second_moment(fan_in, fan_out, shape)


def _window_product(value, rank: int, default: int) -> float | None:
    """The product of a per-dimension size (strides, pool size, upsampling size) over `rank`
    dimensions, as a float; None when the value is not one (`layer_catalog.sizes`)."""
    value = value or default
    if type(value) is int and 1 <= value <= MAX_SIZE:
        try:
            return float(value) ** rank
        except OverflowError:
            return math.inf
    if isinstance(value, (list, tuple)) and value and \
            all(type(v) is int and 1 <= v <= MAX_SIZE for v in value):
        return layer_catalog._as_float(math.prod(value))
    number = whole(value)
    if number is not None and 1 <= number <= MAX_SIZE:
        return _window_product(number, rank, default)
    if isinstance(value, (list, tuple)) and value:
        numbers = [whole(v) for v in value]
        if all(n is not None and 1 <= n <= MAX_SIZE for n in numbers):
            return layer_catalog._as_float(math.prod(numbers))
    return None


def _strides(config: dict, rank: int) -> float | None:
    return _window_product(config.get("strides"), rank, 1)


def _config_size(config: dict, key: str, default: int) -> float | None:
    """A positive size from the configuration as a float (`default` when missing or null),
    None when it is not a whole number from 1 to `MAX_SIZE`."""
    value = config.get(key)
    if value is None:
        return float(default)
    number = value if type(value) is int else whole(value)
    if number is None or not 1 <= number <= MAX_SIZE:
        return None
    return float(number)


def _kernel(layer: Layer, node: Node, source: str) -> _Kernel | None:
    effective = layer.inner if layer.inner is not None else layer
    kind = effective.kind if layer.kind == "wrapper" else layer.kind
    stored = _stored_kernel(layer)
    shape = _kernel_shape(layer, node, source, stored)
    if shape is None or any(d is None for d in shape):
        return None
    keras_fan_in, keras_fan_out = layer_catalog.keras_fans(shape)
    init = layer.kernel_initializer
    weight = _second_moment(layer, "kernel", init, keras_fan_in, keras_fan_out, source, shape,
                            stored)
    if weight is None:
        return None
    bias_init = layer.bias_initializer
    use_bias = effective.config.get("use_bias", True)
    bias = (_second_moment(layer, "bias", bias_init, keras_fan_in, keras_fan_out, source) or 0.0) \
        if use_bias else 0.0
    # Stored statistics of huge values can be NaN (an overflow inside them): infinite.
    weight, bias = _settled(weight), _settled(bias)
    entries = float(math.prod(shape))
    config = effective.config
    if kind in ("dense", "embedding"):
        return _Kernel(weight, bias, shape[0] if kind == "dense" else 1.0, shape[-1], entries)
    if kind == "recurrent":
        return _Kernel(weight, bias, shape[0], shape[1], entries)
    rank = len(shape) - 2
    receptive = float(math.prod(shape[:-2]))
    strides = _strides(config, rank)
    if strides is None:
        return None
    if kind == "conv":
        groups = _config_size(config, "groups", 1) if config.get("groups") != 0 else 1.0
        if groups is None:
            return None
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
            filters = _config_size(config, "filters", 1)
            if filters is None:
                return None
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
    size = _window_product(config.get("pool_size"), rank, 2)
    return 1.0 if size is None else size


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
        record = NodeEstimate(forward_scale=1.0, input_scale=_root(s_in))
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
                q = _settled(q)
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
        s_out = _settled(s_out)
        m_out = m_out if m_out == m_out else 0.0
        second[node.id], mean[node.id] = s_out, m_out
        record.forward_scale = _root(s_out)
        record.forward_mean = m_out
        if pre_activation[node.id] is not None:
            record.pre_activation_scale = _root(pre_activation[node.id])
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
            g_pre = _settled(slope * g)
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
                variance = max(s_in - _square(mean[node.inputs[0]]), 1e-6 * s_in, EPSILON)
                epsilon = max(_number(layer.config.get("epsilon"), 1e-3), 0.0)
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
            gradient_out[source_id] = _settled(gradient_out[source_id] + back)
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
        kernel_squares[node.id] = _settled(
            kernel.entries * positions * s_in * gradient_pre[node.id])
    if reference is not None:
        reference_kernel = kernel_squares[reference]
    for node in graph.nodes:
        record = result.nodes[node.id]
        ideal = ideal_out[node.id]
        record.gradient = _root(gradient_pre[node.id] / ideal) if ideal > 0.0 else None
        square = kernel_squares[node.id]
        if square is not None and reference_kernel:
            ratio = square / reference_kernel
            # Two infinite kernel gradients have no ratio.
            record.kernel_gradient = _root(ratio) if ratio == ratio else None
    return result


def _settled(value: float) -> float:
    """A forward or backward second moment as the propagation keeps it: NaN, which only an
    overflow (an inf meeting a zero or another inf) produces, is taken as +inf."""
    return value if value == value else math.inf


def _root(value: float) -> float:
    """The square root of a second moment; a rounding error below zero counts as zero."""
    return math.sqrt(value) if value >= 0.0 else (0.0 if value < 0.0 else math.inf)


def _square(value: float) -> float:
    try:
        return value ** 2
    except OverflowError:
        return math.inf


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
        size = _window_product(layer.config.get("size"), rank, 2)
        return 1.0 if size is None else size
    if kind == "repeat":
        return max(_number(layer.config.get("n"), 1.0), 0.0)
    if kind == "average":
        count = len(node.inputs)
        return 1.0 / (count * count)
    if kind == "maximum":
        return 1.0 / len(node.inputs)
    return None


def _channels(node: Node) -> int | None:
    shape = node.output_shape
    if shape and shape[-1]:
        channels = whole(shape[-1])
        return channels if channels is not None and 0 < channels <= MAX_SIZE else None
    return None


def _number(value, default: float) -> float:
    """A finite real number from the configuration, else `default`."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = layer_catalog.real(value)
        return default if number is None else number
    return default
