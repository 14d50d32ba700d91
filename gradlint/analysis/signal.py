"""The gradient-gain estimate: mean-field signal propagation over the whole model graph.

Forward, each tensor carries a `Signal`: its second moment s = E[x^2], its mean, and the
part of s that is constant across a batch, starting from unit-variance inputs; a weighted
layer's pre-activation variance is q = fan_in * E[w^2] * s_in + E[b^2], and its output's
moments are Gaussian expectations of the activation (Poole et al. 2016; Schoenholz et al.
2017; He et al. 2015). Backward, each tensor carries g = E[(dL/dx)^2] per element, one at
the output layer's pre-activations; a weighted layer passes
g_in = fan_out * E[w^2] * E[phi'(z)^2] * g_out to its input. Where a tensor feeds several
layers, their gradients add (a residual block's input gets the identity's gradient and the
branch's). What each kind of layer does, forward and backward, lives in its family
(`gradlint.families`); this module only drives the two passes. Both visit every node and
edge once, in topological order, so the cost is linear in layers plus edges.

The estimate is for one mode of running the model: "training" (the default: batch
statistics in BatchNormalization at `batch_size` samples, dropout active) or "inference"
(moving statistics, no dropout).

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

from gradlint.families import Context, Forward, Signal
from gradlint.graph import Layer, ModelGraph
from gradlint.layer_catalog import positions

EPSILON = 1e-30


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
    """The estimate for every node of a graph, from one source ("initializers" or "weights")
    in one mode ("training" at `batch_size`, or "inference")."""

    source: str
    nodes: list[NodeEstimate] = field(default_factory=list)
    reference: int | None = None  # the output weighted layer's node id
    head: set[int] = field(default_factory=set)  # nodes whose activation belongs to the loss
    passed_through: list[int] = field(default_factory=list)
    mode: str = "training"
    batch_size: int = 32

    def __getitem__(self, node_id: int) -> NodeEstimate:
        return self.nodes[node_id]


def is_weighted(layer: Layer) -> bool:
    return layer.weighted


def stored_kernel_problem(layer: Layer) -> str | None:
    """Why the layer's stored kernel cannot be the kernel of that layer (a 1-D kernel for a
    Conv1D or an LSTM, a dimension beyond `MAX_SIZE`), or None when it fits or none is
    stored. The estimate then ignores that tensor for that layer."""
    return layer.family.stored_kernel_problem(layer)


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
            family = node.layer.family
            if node.layer.weighted or family.wraps:
                if reference is None:
                    reference = node_id
                break
            if not (family.applies_activation or family.reshapes_only) or len(node.inputs) != 1:
                break
            node_id = node.inputs[0]
    if reference is None:
        reference = _nearest_weighted(graph)
    return head, reference


def _nearest_weighted(graph: ModelGraph) -> int | None:
    """The weighted layer fewest layers from an output, for a model whose outputs end in
    something else (a GPT-2 or DistilBERT backbone ends in a LayerNormalization): the
    reference that kernel gradients are relative to, here and in the probe."""
    frontier, seen = list(graph.outputs), set(graph.outputs)
    while frontier:
        for node_id in frontier:
            if graph.nodes[node_id].layer.weighted:
                return node_id
        following = []
        for node_id in frontier:
            for source in graph.nodes[node_id].inputs:
                if source not in seen:
                    seen.add(source)
                    following.append(source)
        frontier = following
    return None


def estimate(graph: ModelGraph, source: str = "initializers", mode: str = "training",
             batch_size: int = 32) -> SignalEstimate:
    """Propagate signal and gradient scales through `graph`."""
    context = Context(source=source, mode=mode, batch_size=batch_size, graph=graph)
    result = SignalEstimate(source=source, mode=mode, batch_size=batch_size)
    count = len(graph.nodes)
    signals: list[Signal] = [Signal()] * count
    forwards: list[Forward | None] = [None] * count

    for node in graph.nodes:
        inputs = [signals[i] for i in node.inputs]
        first = inputs[0] if inputs else Signal()
        record = NodeEstimate(forward_scale=1.0, input_scale=_root(first.second))
        forward = node.layer.family.forward(node, inputs, context)
        forwards[node.id] = forward
        signal = forward.signal
        signal = Signal(_settled(signal.second), signal.mean if signal.mean == signal.mean else 0.0,
                        min(_settled(signal.constant), _settled(signal.second)), signal.law)
        signals[node.id] = signal
        if forward.passed_through:
            record.passed_through = True
            result.passed_through.append(node.id)
        kernel = forward.kernel
        if kernel is not None:
            record.weight_second_moment = kernel.weight
            record.fan_in, record.fan_out = kernel.fan_in, kernel.fan_out
        record.activation_slope = forward.slope
        record.forward_scale = _root(signal.second)
        record.forward_mean = signal.mean
        if forward.pre_activation is not None:
            record.pre_activation_scale = _root(_settled(forward.pre_activation))
        result.nodes.append(record)

    head, reference = _loss_head(graph)
    result.reference, result.head = reference, head
    gradient_out = [0.0] * count
    gradient_pre = [0.0] * count
    # The same backward pass through an ideal network of the same shape: every layer keeps
    # the gradient's scale, pooling, upsampling and broadcasting still spread it, and where a
    # tensor feeds several layers the largest share counts. Dividing by it factors out what
    # the graph's shape does to a per-element gradient (a global average pool over 7x7
    # positions divides it by 49), so `gradient` says what weights, activations and
    # normalization did.
    ideal_out = [0.0] * count
    # The part of each gradient that is the same at every position of a sample: a loss
    # on one vector per sample is, a loss per position is not (1/P of it).
    coherent_out = [0.0] * count
    seeds = _loss_seeds(graph)
    for output, seed in zip(graph.outputs, seeds):
        gradient_out[output] += seed
        ideal_out[output] = max(ideal_out[output], seed)
        coherent_out[output] += seed / max(
            float(positions(graph.nodes[output].output_shape)), 1.0)
    for node in reversed(graph.nodes):
        family = node.layer.family
        g = gradient_out[node.id]
        ideal = ideal_out[node.id]
        forward = forwards[node.id]
        slope = result.nodes[node.id].activation_slope
        h = min(coherent_out[node.id], g)
        if slope is not None and node.id not in head:
            g_pre = _settled(slope * g)
            # A product, not a power: a hostile slope of 1e308 overflows to inf, not raises.
            kept = forward.slope_mean * forward.slope_mean \
                if forward.slope_mean is not None else slope
            h_pre = min(_settled(kept * h), g_pre)
        else:
            g_pre, h_pre = g, h
        gradient_pre[node.id] = g_pre
        forward.coherent, forward.coherent_pre, forward.gradient_pre = h, h_pre, g_pre
        if not node.inputs or (g == 0.0 and ideal == 0.0):
            continue
        spread = family.spread(node)
        if spread is not None:
            backs = [g * spread] * len(node.inputs)
            ideals = [ideal * spread] * len(node.inputs)
        else:
            inputs = [signals[i] for i in node.inputs]
            backs = family.backward(node, g, g_pre, inputs, forward, context)
            ideals = [ideal * family.shape_gain(node, i) for i in range(len(node.inputs))]
        coherent = family.coherent_backward(node, backs, forward, context)
        for source_id, back, ideal_back, part in zip(node.inputs, backs, ideals, coherent):
            gradient_out[source_id] = _settled(gradient_out[source_id] + back)
            ideal_out[source_id] = max(ideal_out[source_id], ideal_back)
            coherent_out[source_id] = _settled(coherent_out[source_id] + part)

    kernel_squares: list[float | None] = [None] * count
    readers = graph.consumers()
    for node in graph.nodes:
        forward = forwards[node.id]
        kernel = forward.kernel if forward is not None else None
        if kernel is None:
            continue
        signal_in = signals[node.inputs[0]] if node.inputs else Signal()
        if _centred(node, readers[node.id], graph, context):
            # The kernel's gradient sums input x gradient over the batch; against a
            # gradient that sums to zero there, the input's constant part adds nothing
            # (MobileNetV3's Rescaling offset of -1 before its first conv and BN put that
            # conv 2.2 decades high).
            signal_in = Signal(signal_in.varying, 0.0, 0.0)
        kernel_squares[node.id] = _settled(node.layer.family.kernel_square(
            node, forward, signal_in, gradient_pre[node.id]))
    reference_kernel = kernel_squares[reference] if reference is not None else None
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


def _loss_seeds(graph: ModelGraph) -> list[float]:
    """The second moment of each output's loss gradient per element, the largest 1.

    Keras averages a loss over the batch and the positions, and mean squared error (the
    probe's loss for an output that is not a softmax) also over the units: a (T, H) sequence
    output's elements get 1/(T H) of the loss gradient that one unit of an (H,) output
    gets, a softmax's classes 1/T. A keras-hub backbone's pooled and sequence outputs,
    probed together, differ so by T: counting them alike put BERT's inner kernels 1.7
    decades high. With one output only the ratio of layers matters, and the seed is 1."""
    weights = []
    for output in graph.outputs:
        node = graph.nodes[output]
        shape = node.output_shape
        count = float(positions(shape))
        units = shape[-1] if shape and len(shape) >= 2 and type(shape[-1]) is int and \
            shape[-1] > 0 else 1
        activation = node.layer.activation.name if node.layer.activation else "linear"
        weights.append(1.0 / (count * (1.0 if activation == "softmax" else float(units))) ** 2)
    largest = max(weights, default=1.0)
    return [weight / largest for weight in weights]


def _centred(node, readers: list[int], graph, context) -> bool:
    """Whether the gradient at `node`'s pre-activation sums to zero over the batch: it
    applies no activation and every reader centres the gradient it hands back."""
    activation = node.layer.activation
    if activation is not None and activation.name != "linear" or not readers:
        return False
    return all(graph.nodes[reader].layer.family.centres_gradient(graph.nodes[reader], context)
               for reader in readers)


def _settled(value: float) -> float:
    """A forward or backward second moment as the propagation keeps it: NaN, which only an
    overflow (an inf meeting a zero or another inf) produces, is taken as +inf."""
    return value if value == value else math.inf


def _root(value: float) -> float:
    """The square root of a second moment; a rounding error below zero counts as zero."""
    return math.sqrt(value) if value >= 0.0 else (0.0 if value < 0.0 else math.inf)
