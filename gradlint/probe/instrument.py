"""Watching a Keras model while it runs: which layer call produced what, and what its
activation did.

Each layer (nested models flattened into path names as the model graph names them) gets an
instance-level wrapper around its `call`, and layers with an `activation` attribute get one
around the activation, so that the probe sees every call's output and the pre-activations of
sigmoid/tanh and ReLU units without rebuilding the model. Statistics are reduced to a few
numbers right away, off the gradient (`backends`). `restore` puts the original methods back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

SATURATION_BOUND = 5.0  # |z| beyond which sigmoid'/tanh' is below 0.007 / 2e-4
SMOOTH_SATURATING = frozenset({"sigmoid", "tanh", "softsign"})
HARD_SATURATING = {"hard_sigmoid": (0.0, 1.0), "hard_tanh": (-1.0, 1.0)}
DYING = frozenset({"relu", "relu6"})
CONTAINERS = frozenset({"Functional", "Sequential", "Model"})
ACTIVATION_LAYERS = frozenset({"Activation", "ReLU", "LeakyReLU", "ELU", "PReLU", "Softmax",
                               "ThresholdedReLU"})
RECURRENT_CLASSES = frozenset({"SimpleRNN", "LSTM", "GRU", "RNN", "Bidirectional", "ConvLSTM1D",
                               "ConvLSTM2D", "ConvLSTM3D", "CuDNNLSTM", "CuDNNGRU"})
GATED_CELLS = frozenset({"LSTM", "GRU", "LSTMCell", "GRUCell", "CuDNNLSTM", "CuDNNGRU",
                         "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D", "ConvLSTM1DCell",
                         "ConvLSTM2DCell", "ConvLSTM3DCell", "PeepholeLSTMCell"})
KERNEL_NAMES = frozenset({"kernel", "depthwise_kernel", "pointwise_kernel", "embeddings"})
# Layers that normalize by the statistics of the batch in training mode: Keras 3's and
# tf-keras's classes and the names tf-keras exports them under.
BATCH_STATISTICS = frozenset({"BatchNormalization", "BatchNormalizationV1",
                              "BatchNormalizationV2", "SyncBatchNormalization"})


def activation_name(function: Any) -> str | None:
    """The canonical name of an activation function object, or None if it is the identity."""
    from gradlint import activations

    name = getattr(function, "__name__", None) or type(function).__name__
    normalized = activations.normalize(str(name))
    if normalized is None or normalized.name == "linear":
        return None
    return normalized.name


def patch(patches: list, owner: Any, name: str, value: Any) -> None:
    """Set `owner.name` (bypassing Keras's attribute tracking), recording in `patches` how
    to undo it."""
    had = name in vars(owner)
    patches.append((owner, name, vars(owner).get(name), had))
    object.__setattr__(owner, name, value)


def undo_patches(patches: list) -> None:
    """Put back, newest first, what `patch` changed: the old value, or no attribute."""
    for owner, name, value, had in reversed(patches):
        if had:
            object.__setattr__(owner, name, value)
        else:
            try:
                object.__delattr__(owner, name)
            except AttributeError:
                pass


def leaf_layers(model: Any, prefix: str = "",
                traced: frozenset[str] = frozenset()) -> list[tuple[str, Any]]:
    """(path, layer) for every layer that is not a container model, in model order. A layer
    whose sublayers the static graph traced (paths in `traced` below its own: a keras-hub
    transformer block rebuilt with --custom-objects) is replaced by those sublayers, so
    that each is measured under the path the estimate gives it."""
    found = []
    for layer in getattr(model, "layers", []) or []:
        name = getattr(layer, "name", "layer")
        if type(layer).__name__ == "InputLayer":
            continue
        path = prefix + name
        if type(layer).__name__ in CONTAINERS and hasattr(layer, "layers"):
            found.extend(leaf_layers(layer, f"{path}/", traced))
        elif any(inner.startswith(path + "/") for inner in traced):
            found.extend(leaf_layers(_Sublayers(layer), f"{path}/", traced))
        else:
            found.append((path, layer))
    return found


class _Sublayers:
    """A layer's own sublayers, listed as a container lists its layers."""

    def __init__(self, layer: Any):
        flatten = getattr(layer, "_flatten_layers", None)
        try:
            self.layers = list(flatten(include_self=False, recursive=False)) \
                if callable(flatten) else list(getattr(layer, "layers", []) or [])
        except Exception:  # a layer that cannot list its sublayers is measured whole
            self.layers = []


def batch_statistics_layers(model: Any) -> list[str]:
    """Paths of the layers that normalize by the batch's statistics when the model trains.

    A frozen BatchNormalization (trainable=False) uses its moving statistics even in
    training mode, in Keras 3 and in tf-keras, so it does not count; a subclass does."""
    found = []
    for path, layer in leaf_layers(model):
        inner = getattr(layer, "layer", None) if type(layer).__name__ == "TimeDistributed" \
            else None
        for candidate in (layer, inner):
            if candidate is None or not getattr(candidate, "trainable", True):
                continue
            if any(base.__name__ in BATCH_STATISTICS for base in type(candidate).__mro__):
                found.append(path)
                break
    return found


def variable_role(variable: Any) -> str:
    name = str(getattr(variable, "path", None) or getattr(variable, "name", ""))
    return name.rsplit("/", 1)[-1].split(":", 1)[0]


def kernel_variables(layer: Any) -> list[Any]:
    """A layer's main kernels: what the static estimate's kernel gradient describes."""
    try:
        variables = list(layer.trainable_weights)
    except Exception:  # a layer that cannot list its weights has none to measure
        return []
    kernels = [v for v in variables if variable_role(v) in KERNEL_NAMES]
    if not kernels:
        kernels = [v for v in variables if len(getattr(v, "shape", ())) >= 2
                   and variable_role(v) != "recurrent_kernel"]
    return kernels


def cell_class(layer: Any) -> str:
    inner = getattr(layer, "forward_layer", None) or layer
    cell = getattr(inner, "cell", None)
    if cell is not None:
        cells = getattr(cell, "cells", None)
        if cells:
            cell = cells[-1]
        return type(cell).__name__
    return type(inner).__name__


def is_recurrent(layer: Any) -> bool:
    return type(layer).__name__ in RECURRENT_CLASSES or hasattr(layer, "cell")


@dataclass
class _CallStats:
    class_name: str
    scales: list[float] = field(default_factory=list)
    input_scales: list[float] = field(default_factory=list)
    activation: str | None = None
    saturated: float = 0.0
    counted: float = 0.0
    alive: Any = None  # per unit: any nonzero output seen
    nonfinite: bool = False


class Instrument:
    """Wraps a model's layers; `begin()` before each forward pass, `collect()` after."""

    def __init__(self, backend, model,
                 activations_by_path: dict[str, str | None] | None = None,
                 traced: frozenset[str] = frozenset()):
        self.backend = backend  # a `backends.Backend`: the pass and the reductions
        self.model = model
        self.activations_by_path = activations_by_path or {}
        self.layers = leaf_layers(model, traced=traced)
        self.scale_of: dict[int, tuple] = {}
        self.stack: list[str] = []
        self.calls: dict[str, _CallStats] = {}
        self.call_counts: dict[str, int] = {}
        self.order: list[str] = []
        self.weighted: set[str] = set()  # paths whose input scale is recorded
        self._patched: list[tuple[Any, str, Any, bool]] = []
        for path, layer in self.layers:
            self._wrap_call(path, layer)
            target = getattr(layer, "layer", None) if type(layer).__name__ == "TimeDistributed" \
                else layer
            if target is not None and not is_recurrent(layer) and \
                    type(layer).__name__ not in ACTIVATION_LAYERS:
                self._wrap_activation(target)

    # -- patching -----------------------------------------------------------------------
    def _set(self, owner, name, value) -> None:
        patch(self._patched, owner, name, value)

    def restore(self) -> None:
        undo_patches(self._patched)
        self._patched.clear()

    def _wrap_call(self, path: str, layer) -> None:
        original = layer.call
        instrument = self

        recurrent = is_recurrent(layer)

        def call(*args, **kwargs):
            node_path = instrument._enter(path, layer)
            if recurrent and args and hasattr(args[0], "shape"):
                # The backend watches the input sequence for its per-step gradient.
                args = (instrument.backend.watch_sequence(node_path, layer, args[0]),) + \
                    tuple(args[1:])
            try:
                outputs = original(*args, **kwargs)
            finally:
                instrument.stack.pop()
            instrument._record_call(node_path, layer, args, kwargs, outputs)
            return outputs

        self._set(layer, "call", call)

    def _wrap_activation(self, layer) -> None:
        function = getattr(layer, "activation", None)
        if not callable(function):
            return
        name = activation_name(function)
        if name is None or (name not in SMOOTH_SATURATING and name not in HARD_SATURATING
                            and name not in DYING):
            return
        instrument = self

        def activation(x, *args, **kwargs):
            y = function(x, *args, **kwargs)
            if instrument.stack:
                instrument._record_activation(instrument.stack[-1], name, x, y, None)
            return y

        activation.__name__ = getattr(function, "__name__", name)
        self._set(layer, "activation", activation)

    # -- recording ------------------------------------------------------------------------
    def has_recurrent(self) -> bool:
        return any(is_recurrent(layer) for _, layer in self.layers)

    def begin(self) -> None:
        self.calls = {}
        self.call_counts = {}
        self.stack = []
        self.scale_of = {}  # id of an output tensor of this pass -> (tensor, its deviation)

    def _enter(self, path: str, layer) -> str:
        index = self.call_counts.get(path, 0)
        self.call_counts[path] = index + 1
        node_path = path if index == 0 else f"{path}@{index}"
        self._stats(node_path, layer)
        self.stack.append(node_path)
        if path not in self.order:
            self.order.append(path)
        return node_path

    def _stats(self, node_path: str, layer) -> _CallStats:
        stats = self.calls.get(node_path)
        if stats is None:
            stats = self.calls[node_path] = _CallStats(type(layer).__name__)
        return stats

    def _eager(self, tensor) -> bool:
        """A tensor with a value now (not a symbol inside a loop or a compiled function)."""
        return self.backend.concrete(tensor) is not None

    def _record_call(self, node_path: str, layer, args, kwargs, outputs) -> None:
        ops = self.backend
        output = outputs[0] if isinstance(outputs, (list, tuple)) and outputs else outputs
        inputs = args[0] if args else kwargs.get("inputs")
        if isinstance(inputs, (list, tuple)) and len(inputs) == 1:
            inputs = inputs[0]
        stats = self._stats(node_path, layer)
        if not self._eager(output) or not ops.is_floating(output):
            return
        with ops.paused():
            # The output's RMS, sqrt(E[x^2]), as the estimate's forward scale is; the rules
            # on the signal entering a layer read its standard deviation.
            scale = ops.rms(output)
            deviation = ops.std(output)
            # A NaN or an infinity anywhere makes both non-finite too.
            stats.nonfinite = stats.nonfinite or not math.isfinite(scale) or \
                not math.isfinite(deviation)
            stats.scales.append(scale)
            self.scale_of[id(output)] = (output, deviation)  # kept alive: ids stay unique
            if node_path.split("@", 1)[0] in self.weighted and self._eager(inputs) \
                    and ops.is_floating(inputs):
                # Usually the tensor another layer just produced: its deviation is known.
                known = self.scale_of.get(id(inputs))
                stats.input_scales.append(known[1] if known is not None else ops.std(inputs))
            if type(layer).__name__ in ACTIVATION_LAYERS:
                name = self._activation_layer_name(node_path, layer)
                if name is not None:
                    self._record_activation(node_path, name, inputs, output, stats)

    def _activation_layer_name(self, node_path: str, layer) -> str | None:
        path = node_path.split("@", 1)[0]
        name = self.activations_by_path.get(path)
        if name is None:
            class_name = type(layer).__name__
            if class_name == "Activation":
                name = activation_name(getattr(layer, "activation", None))
            elif class_name == "ReLU":
                slope = float(getattr(layer, "negative_slope", 0.0) or 0.0)
                name = "relu" if slope == 0.0 else None
        if name in SMOOTH_SATURATING or name in HARD_SATURATING or name in DYING:
            return name
        return None

    def _record_activation(self, node_path: str, name: str, pre, post, stats) -> None:
        ops = self.backend
        if not (self._eager(post) and self._eager(pre)):
            return
        if stats is None:
            stats = self._stats(node_path, None)
        with ops.paused():
            stats.activation = name
            if name in SMOOTH_SATURATING:
                count, size = ops.count_beyond(pre, SATURATION_BOUND)
                stats.saturated += count
                stats.counted += size
            elif name in HARD_SATURATING:
                low, high = HARD_SATURATING[name]
                count, size = ops.count_outside(post, low, high)
                stats.saturated += count
                stats.counted += size
            elif name in DYING:
                if len(post.shape) == 0:
                    return
                alive = ops.alive(post)
                stats.alive = alive if stats.alive is None or stats.alive.shape != alive.shape \
                    else (stats.alive | alive)

    def collect(self) -> dict[str, dict[str, Any]]:
        """Per call: forward scale, activation, saturated and dead fractions of this pass."""
        self.scale_of = {}
        result = {}
        for node_path, stats in self.calls.items():
            scale = _pooled(stats.scales)
            input_scale = _pooled(stats.input_scales)
            saturated = stats.saturated / stats.counted if stats.counted else None
            dead = None
            if stats.alive is not None and stats.alive.size:
                dead = float(1.0 - stats.alive.mean())
            result[node_path] = {"class_name": stats.class_name, "forward_scale": scale,
                                 "input_scale": input_scale,
                                 "activation": stats.activation, "saturated": saturated,
                                 "dead": dead, "nonfinite": stats.nonfinite}
        return result


def _pooled(scales: list[float]) -> float | None:
    """One RMS (or standard deviation, for zero-mean pieces) from several equal-sized pieces
    (a wrapper's time steps)."""
    if not scales:
        return None
    if len(scales) == 1:
        return scales[0]
    return math.sqrt(sum(s * s for s in scales) / len(scales))
