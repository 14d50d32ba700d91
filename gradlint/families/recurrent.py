"""Recurrent layers: SimpleRNN, LSTM, GRU (and their CuDNN and cell forms), RNN(cell),
Bidirectional, ConvLSTM.

The input kernel's pre-activation and the cell's activation are sized like a dense layer's
(`gradlint.families.weighted`, fan_out = gates x units). What is recurrent is how many time
steps the loss gradient reaches. Going back one step keeps a fraction rho^2 of the
gradient's second moment: for an LSTM, E[f^2] of the forget gate f = sigmoid(z_f), whose
bias starts at 1 with `unit_forget_bias` (Jozefowicz et al. 2015); for a GRU, E[u^2] of the
update gate; for a SimpleRNN, units x E[w_rec^2] x E[tanh'(z)^2] (Pascanu et al. 2013).
Over T steps the gradient then reaches sum_k rho^(2k) steps' worth:

- with ``return_sequences=True`` every step receives the loss gradient and carries it
  back, so each step's state gradient is that sum times one step's, and the kernel's
  gradient sums it over T steps;
- with ``return_sequences=False`` only the last step receives it: the kernel's gradient
  has the sum alone, and the per-step input gradient is that sum spread over T steps;
- an initial state (a seq2seq decoder's, from its encoder) receives what the first step
  passes back (`RecurrentFamily.state_gradient`).

A sequence length the file does not fix counts as `DEFAULT_STEPS`, the length the probe
feeds such a model.
"""

from __future__ import annotations

from gradlint import activations, initializers
from gradlint.families import Forward, Signal
from gradlint.families.weighted import WeightedFamily, settled
from gradlint.graph import Activation
from gradlint.layer_catalog import MAX_SIZE, MISSING, channels_last, count, spatial_output, \
    spatial_rank, tuple_of, whole

DEFAULT_STEPS = 32
GATES = {"LSTM": 4, "LSTMCell": 4, "GRU": 3, "GRUCell": 3, "CuDNNLSTM": 4, "CuDNNGRU": 3,
         "ConvLSTM1D": 4, "ConvLSTM2D": 4, "ConvLSTM3D": 4}
GATED_CELLS = frozenset(GATES)
UNGATED_CELLS = frozenset({"SimpleRNN", "SimpleRNNCell"})
# Recurrent layers and cells whose `units` the shapes and the estimate read.
UNITS_CLASSES = frozenset({"SimpleRNN", "LSTM", "GRU", "CuDNNLSTM", "CuDNNGRU",
                           "SimpleRNNCell", "LSTMCell", "GRUCell"})
SIGMOID = Activation("sigmoid")
TANH = Activation("tanh")


def cell_class(layer) -> str:
    """The class that runs each step: the wrapped cell or layer of RNN and Bidirectional."""
    if layer.inner is not None and layer.class_name in ("Bidirectional", "RNN"):
        return layer.inner.class_name.rsplit(">", 1)[-1]
    return layer.class_name.rsplit(">", 1)[-1]


def _describing(layer):
    return layer.inner if layer.inner is not None else layer


class RecurrentFamily(WeightedFamily):
    name = "recurrent"
    classes = {name: "recurrent" for name in (
        "SimpleRNN", "LSTM", "GRU", "RNN", "CuDNNLSTM", "CuDNNGRU", "ConvLSTM1D",
        "ConvLSTM2D", "ConvLSTM3D", "Bidirectional")}
    recurrent = True

    def gated(self, layer) -> bool:
        return cell_class(layer) in GATED_CELLS

    def weight_roles(self, layer, count_2d):
        return ["kernel", "recurrent_kernel", "bias"]

    def expected_kernel_rank(self, layer):
        name = cell_class(layer)
        if name.startswith("ConvLSTM"):
            return spatial_rank(name) + 2, name
        return 2, name

    def check_config(self, class_name, config):
        # A ConvLSTM's sizes are the convolutions' (`_conv_lstm_output`); the units of
        # LSTM, GRU and SimpleRNN are checked as the cells' are (`UNITS_CLASSES`).
        if not class_name.startswith("ConvLSTM") and class_name not in UNITS_CLASSES:
            for key in ("units", "filters"):
                if config.get(key) is not None:
                    count(key, config[key])
        check_units(class_name, config)

    def returns_sequences(self, layer) -> bool:
        if layer.config.get("return_sequences"):
            return True
        return bool(layer.class_name == "Bidirectional" and layer.inner is not None
                    and layer.inner.config.get("return_sequences"))

    def output_shape(self, layer, inputs):
        first = inputs[0] if inputs else None
        if first is None:
            return None
        return _output(layer.class_name, layer.config, first,
                       layer.inner if layer.inner is not None else None)

    def kernel_shape(self, layer, input_shape):
        if layer.class_name.startswith("ConvLSTM"):
            return _conv_lstm_kernel(layer.config, layer.class_name, input_shape)
        effective = _describing(layer)
        units = effective.config.get("units")
        channels = input_shape[-1] if input_shape else None
        if units is None or channels is None:
            return None
        units = whole(units)
        if units is None or not 0 <= units <= MAX_SIZE or type(channels) is not int:
            return None
        return (channels, GATES.get(effective.class_name, 1) * units)

    def steps(self, node) -> int:
        shape = node.input_shapes[0] if node.input_shapes else None
        steps = shape[1] if shape and len(shape) >= 3 else None
        return steps if type(steps) is int and steps > 0 else DEFAULT_STEPS

    def retention(self, layer, pre_activation: float) -> float:
        """rho^2: the share of the gradient's second moment that one step back keeps."""
        effective = _describing(layer)
        config = effective.config
        name = cell_class(layer)
        units = whole(config.get("units")) or 1
        gates = GATES.get(effective.class_name, 1)
        recurrent = initializers.parse(config.get("recurrent_initializer", "orthogonal"))
        second = recurrent.second_moment(units, gates * units, (units, gates * units)) \
            if recurrent is not None else None
        gain = units * (second if second is not None else 1.0 / gates)
        if name in ("LSTM", "LSTMCell", "CuDNNLSTM") or name.startswith("ConvLSTM"):
            forget_bias = 1.0 if config.get("unit_forget_bias", True) else 0.0
            return activations.moments(SIGMOID, pre_activation + 0.25 * gain,
                                       forget_bias).second
        if name in ("GRU", "GRUCell", "CuDNNGRU"):
            return activations.moments(SIGMOID, pre_activation + 0.25 * gain).second
        # SimpleRNN: the state's own variance settles where it feeds itself.
        state = 0.5
        for _ in range(8):
            state = activations.moments(TANH, pre_activation + gain * state).second
        slope = activations.moments(TANH, pre_activation + gain * state).derivative_second
        return gain * slope

    def reach(self, node, forward: Forward) -> float:
        """sum_k rho^(2k) over the layer's time steps."""
        kernel_q = forward.pre_activation or 0.0
        rho = min(max(self.retention(node.layer, kernel_q), 0.0), 1.0)
        steps = self.steps(node)
        if rho >= 1.0:
            return float(steps)
        return (1.0 - rho ** steps) / (1.0 - rho)

    def recurrent_gain(self, layer) -> float:
        """units x E[w_rec^2] per gate: how much of the state's second moment one gate's
        recurrent pre-activation receives."""
        effective = _describing(layer)
        config = effective.config
        units = whole(config.get("units")) or 1
        gates = GATES.get(effective.class_name, 1)
        recurrent = initializers.parse(config.get("recurrent_initializer", "orthogonal"))
        second = recurrent.second_moment(units, gates * units, (units, gates * units)) \
            if recurrent is not None else None
        return units * (second if second is not None else 1.0 / gates)

    def cell(self, layer, input_q: float) -> tuple[float, float] | None:
        """(E[h^2], mean E[d h / d z]^2 over the gates' pre-activations) of a gated cell at
        its steady state, for gate pre-activations of variance `input_q` from the input
        kernel plus the recurrent kernel's share of the state; None for a SimpleRNN.

        LSTM: h = o tanh(c), c = f c' + i g with i, f, o = sigmoid (the forget gate's bias
        starts at 1) and g = tanh; E[c^2] settles at E[i^2] E[g^2] / (1 - E[f^2]). The
        gradient reaching each gate's pre-activation is h's times o tanh'(c) i g' (for g),
        o tanh'(c) g sigmoid' (for i), o tanh'(c) c' sigmoid' (for f) and tanh(c) sigmoid'
        (for o). GRU: h = u h' + (1 - u) n, n = tanh(W x + r U h'): n's pre-activation gets
        (1 - u) tanh', u's (h' - n) sigmoid', r's little (taken as n's times E[r^2] and the
        state's share)."""
        name = cell_class(layer)
        gain = self.recurrent_gain(layer)
        config = _describing(layer).config
        lstm = name in ("LSTM", "LSTMCell", "CuDNNLSTM") or name.startswith("ConvLSTM")
        gru = name in ("GRU", "GRUCell", "CuDNNGRU")
        if not (lstm or gru):
            return None
        state = 0.1
        for _ in range(12):
            q = input_q + gain * state
            gate = activations.moments(SIGMOID, q)
            candidate = activations.moments(TANH, q)
            if lstm:
                forget = activations.moments(
                    SIGMOID, q, 1.0 if config.get("unit_forget_bias", True) else 0.0)
                cell_second = gate.second * candidate.second / max(1.0 - forget.second, 1e-3)
                squashed = activations.moments(TANH, cell_second)
                state = gate.second * squashed.second
            else:
                state = (gate.second * state + (1.0 - 2 * gate.mean + gate.second)
                         * candidate.second)
        q = input_q + gain * state
        gate = activations.moments(SIGMOID, q)
        candidate = activations.moments(TANH, q)
        if lstm:
            squashed = activations.moments(TANH, cell_second)
            carry = gate.second * squashed.derivative_second  # o^2 tanh'(c)^2
            slopes = (carry * gate.second * candidate.derivative_second,
                      carry * candidate.second * gate.derivative_second,
                      carry * cell_second * gate.derivative_second,
                      squashed.second * gate.derivative_second)
        else:
            keep = 1.0 - 2 * gate.mean + gate.second  # E[(1 - u)^2]
            new = keep * candidate.derivative_second
            slopes = (new, 2 * state * gate.derivative_second,
                      new * gate.second * gain * state)
        return state, sum(slopes) / len(slopes)

    def forward(self, node, inputs, context):
        result = super().forward(node, inputs, context)
        if result.passed_through:
            return result
        cell = self.cell(node.layer, result.pre_activation or 0.0)
        signal = result.signal
        if cell is not None:
            state, slope = cell
            result.slope = slope
            result.slope_mean = None  # the gates' mix: coherence kept in proportion
            signal = Signal(state, 0.0, 0.0)
        # Each unit's state varies from sample to sample; its batch mean is near zero.
        result.signal = Signal(signal.second, signal.mean, signal.mean * signal.mean)
        return result

    def backward(self, node, gradient, gradient_pre, inputs, forward, context):
        kernel = forward.kernel
        if kernel is None:
            return [gradient] * len(node.inputs)
        reach = self.reach(node, forward)
        factor = reach if self.returns_sequences(node.layer) else reach / self.steps(node)
        back = settled(kernel.fan_out * kernel.weight * gradient_pre * factor)
        return [back] + [settled(self.state_gradient(node, gradient, forward))] * \
            (len(node.inputs) - 1)

    def state_gradient(self, node, gradient: float, forward: Forward) -> float:
        """The gradient reaching an initial state (`initial_state=[h, c]`, the inputs after
        the first: a seq2seq decoder's, from its encoder's final states). The state before
        the first step receives what every step passes back, one step more: rho^2 times
        the reach with ``return_sequences``, rho^(2T) from the last step alone without."""
        kept = min(max(self.retention(node.layer, forward.pre_activation or 0.0), 0.0), 1.0)
        if self.returns_sequences(node.layer):
            return gradient * kept * self.reach(node, forward)
        return gradient * kept ** self.steps(node)

    def kernel_positions(self, node, forward: Forward | None = None):
        if forward is None or forward.kernel is None:
            return float(self.steps(node))
        reach = self.reach(node, forward)
        return reach * self.steps(node) if self.returns_sequences(node.layer) else reach


def check_units(class_name: str, config: dict) -> None:
    if class_name in UNITS_CLASSES:
        units = config.get("units", MISSING)
        if not (type(units) is int and 1 <= units <= MAX_SIZE):
            count("units", units)


def _output(class_name: str, config: dict, shape: tuple, inner) -> tuple | None:
    if class_name == "Bidirectional" and inner is not None:
        single = _output(inner.class_name, inner.config, shape, None)
        if single is None:
            return None
        if config.get("merge_mode", "concat") == "concat" and single[-1] is not None:
            return single[:-1] + (single[-1] * 2,)
        return single
    units = config.get("units") or config.get("filters")
    if units is None and inner is not None:
        units = inner.config.get("units")
    if class_name.startswith("ConvLSTM"):
        return _conv_lstm_output(config, shape)
    if units is not None:
        units = whole(units)
        if units is None or not 0 <= units <= MAX_SIZE:
            return None
    if config.get("return_sequences"):
        return shape[:2] + (units,)
    return (shape[0], units)


def _conv_lstm_output(config: dict, shape: tuple) -> tuple | None:
    """A ConvLSTM's output: each step's convolution over its input's spatial axes (the
    time axis after the batch), for every step with ``return_sequences``."""
    filters = whole(config.get("filters"))
    if len(shape) < 4 or filters is None or not 1 <= filters <= MAX_SIZE:
        return None
    step = spatial_output(config, (shape[0],) + tuple(shape[2:]), "window", channels=filters)
    if step is None:
        return None
    return (step[0], shape[1]) + step[1:] if config.get("return_sequences") else step


def _conv_lstm_kernel(config: dict, class_name: str, input_shape) -> tuple | None:
    """The input kernel: the window, the input's channels, and the four gates' filters."""
    rank = spatial_rank(class_name)
    window = tuple_of(config.get("kernel_size"), rank)
    filters = whole(config.get("filters"))
    if window is None or filters is None or not input_shape or len(input_shape) != rank + 3:
        return None
    channels = input_shape[-1] if channels_last(config) else input_shape[2]
    if type(channels) is not int:
        return None
    return window + (channels, GATES[class_name] * filters)


class RecurrentCellFamily(RecurrentFamily):
    """A cell (LSTMCell ...) is never a node of its own: RNN(cell) is. Only its config is
    checked here; as a node it would be an unknown layer."""

    name = "recurrent_cell"
    classes = {name: "unknown" for name in ("SimpleRNNCell", "LSTMCell", "GRUCell")}
    weighted = False
    recurrent = False
    unknown = True

    def check_config(self, class_name, config):
        check_units(class_name, config)

    def output_shape(self, layer, inputs):
        return None

    def forward(self, node, inputs, context):
        return Forward(inputs[0] if inputs else Signal(), passed_through=True)

    def backward(self, node, gradient, gradient_pre, inputs, forward, context):
        return [gradient] * len(node.inputs)


FAMILIES = [RecurrentFamily(), RecurrentCellFamily()]
