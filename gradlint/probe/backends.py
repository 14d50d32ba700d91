"""What the probe asks of a Keras backend: one small interface, one implementation per
backend, so that the measurement (`measure`) and the instrument (`instrument`) are shared.

A backend does three things:

- `step`: one forward and backward pass in training mode, with its own gradient machinery
  (`tf.GradientTape` for TensorFlow; `jax.value_and_grad` over `model.stateless_call` for
  JAX), returning the loss, whether each output is finite, the loss gradient for each
  kernel variable asked for and for each recurrent layer's input sequence, as NumPy arrays;
- `concrete`: the value of a tensor seen during that pass, off the gradient, when it has
  one (an eager tensor at the top level, not a symbol inside a loop or a compiled
  function), so that the instrument can reduce it to a few numbers;
- the reductions the instrument needs (RMS, standard deviation, saturated counts, live
  units), in the backend's own array operations.

The recurrent input gradient is taken differently: TensorFlow's tape differentiates with
respect to the input tensor the layer was called with; JAX differentiates only with respect
to function arguments, so the layer's input gets a zero of its shape added (the shapes come
from one plain forward pass first, on models that have recurrent layers) and the gradient
with respect to that zero is the input's.

Nothing here imports TensorFlow or JAX at module level: each backend is given the module
the probe imported (`environment.import_keras`).
"""

from __future__ import annotations

import abc
import contextlib
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np


@dataclass
class SparseRows:
    """The rows of a sparse gradient (an Embedding's, from TensorFlow), summed by index:
    its norm is the dense gradient's, and it has no per-unit layout to compare."""

    values: np.ndarray


@dataclass
class Step:
    """One pass: the loss, finiteness of each output, and the gradients as NumPy arrays
    (None where a variable does not reach the loss)."""

    loss: float
    outputs_finite: list[bool]
    gradients: list[Any]  # np.ndarray | SparseRows | None, one per variable asked for
    sequences: list[tuple[str, Any, np.ndarray]] = field(default_factory=list)


def for_module(module: Any, keras: Any) -> "Backend":
    """The backend for the framework module `environment.import_keras` returned."""
    name = getattr(module, "__name__", "")
    if name.split(".")[0] == "jax":
        return JaxBackend(module)
    return TensorFlowBackend(module)


class Backend(abc.ABC):
    """The interface; see the module's docstring. Each backend defines the abstract
    methods; the others have defaults both share."""

    name = ""

    def __init__(self, module: Any):
        self.module = module
        self.recurrent_inputs: list[tuple[str, Any, Any]] = []

    # -- the pass ---------------------------------------------------------------------
    @abc.abstractmethod
    def convert(self, array: np.ndarray) -> Any:
        """One backend's own."""

    @abc.abstractmethod
    def step(self, model, feed, inputs, variables, loss_of: Callable, instrument) -> Step:
        """One backend's own."""

    def watch_sequence(self, node_path: str, layer: Any, inputs: Any) -> Any:
        """A recurrent layer's input, as the layer should receive it: watched for its
        gradient."""
        return inputs

    @contextlib.contextmanager
    def paused(self):
        """Keep what runs inside off the gradient."""
        yield

    # -- what the instrument reads --------------------------------------------------------
    @abc.abstractmethod
    def concrete(self, tensor: Any) -> Any | None:
        """One backend's own."""

    @abc.abstractmethod
    def is_floating(self, tensor: Any) -> bool:
        """One backend's own."""

    @abc.abstractmethod
    def rms(self, x) -> float:
        """One backend's own."""

    @abc.abstractmethod
    def std(self, x) -> float:
        """One backend's own."""

    @abc.abstractmethod
    def count_beyond(self, z, bound: float) -> tuple[float, float]:
        """One backend's own."""

    @abc.abstractmethod
    def count_outside(self, y, low: float, high: float) -> tuple[float, float]:
        """One backend's own."""

    @abc.abstractmethod
    def alive(self, y) -> np.ndarray:
        """One backend's own."""


def to_numpy(value: Any) -> np.ndarray:
    if hasattr(value, "numpy"):
        return np.asarray(value.numpy())
    return np.asarray(value)


class TensorFlowBackend(Backend):
    name = "tensorflow"

    def __init__(self, module):
        super().__init__(module)
        self.tape = None
        self._pausing = False

    def convert(self, array):
        return self.module.convert_to_tensor(array)

    def step(self, model, feed, inputs, variables, loss_of, instrument) -> Step:
        tf = self.module
        self.recurrent_inputs = []
        with tf.GradientTape() as tape:
            self.tape = tape
            instrument.begin()
            for tensor in inputs:
                if tensor.dtype.is_floating:
                    tape.watch(tensor)
            outputs = model(feed, training=True)
            outputs_list = _as_list(outputs)
            total = loss_of(outputs_list)
        self.tape = None
        recurrent = self.recurrent_inputs
        targets = list(variables) + [tensor for _, _, tensor in recurrent]
        gradients = tape.gradient(total, targets) if targets else []
        arrays = [self._array(g) for g in gradients]
        finite = [bool(tf.reduce_all(tf.math.is_finite(tf.cast(o, tf.float32))))
                  for o in outputs_list]
        sequences = [(path, layer, arrays[len(variables) + i])
                     for i, (path, layer, _) in enumerate(recurrent)
                     if arrays[len(variables) + i] is not None]
        loss = float(total.numpy()) if hasattr(total, "numpy") else float(total)
        self.recurrent_inputs = []
        return Step(loss, finite, arrays[:len(variables)], sequences)

    def _array(self, gradient):
        tf = self.module
        if gradient is None:
            return None
        if isinstance(gradient, tf.IndexedSlices):
            unique, positions = tf.unique(gradient.indices)
            values = tf.math.unsorted_segment_sum(gradient.values, positions, tf.size(unique))
            return SparseRows(np.asarray(tf.cast(values, tf.float32).numpy()))
        return np.asarray(tf.cast(gradient, tf.float32).numpy())

    def watch_sequence(self, node_path, layer, inputs):
        if self.concrete(inputs) is not None and self.is_floating(inputs) and \
                len(inputs.shape) >= 3:
            self.recurrent_inputs.append((node_path, layer, inputs))
        return inputs

    @contextlib.contextmanager
    def paused(self):
        """Statistics are not part of the loss: keep them off the tape (re-entrant)."""
        if self.tape is None or self._pausing:
            yield
            return
        self._pausing = True
        try:
            with self.tape.stop_recording():
                yield
        finally:
            self._pausing = False

    def concrete(self, tensor):
        if hasattr(tensor, "numpy") and self.module.executing_eagerly():
            return tensor
        return None

    def is_floating(self, tensor) -> bool:
        return bool(tensor.dtype.is_floating)

    def _f32(self, x):
        return self.module.cast(x, self.module.float32)

    def rms(self, x) -> float:
        tf = self.module
        return float(tf.sqrt(tf.reduce_mean(tf.square(self._f32(x)))).numpy())

    def std(self, x) -> float:
        return float(self.module.math.reduce_std(self._f32(x)).numpy())

    def count_beyond(self, z, bound):
        tf = self.module
        z = self._f32(z)
        count = tf.reduce_sum(tf.cast(tf.abs(z) > bound, tf.float32))
        return float(count.numpy()), float(tf.size(z).numpy())

    def count_outside(self, y, low, high):
        tf = self.module
        y = self._f32(y)
        count = tf.reduce_sum(tf.cast((y <= low) | (y >= high), tf.float32))
        return float(count.numpy()), float(tf.size(y).numpy())

    def alive(self, y):
        tf = self.module
        y = self._f32(y)
        axes = list(range(len(y.shape) - 1))
        alive = tf.reduce_any(tf.not_equal(y, 0.0), axis=axes) if axes else \
            tf.not_equal(y, 0.0)
        return alive.numpy()


class JaxBackend(Backend):
    name = "jax"

    def __init__(self, module):
        super().__init__(module)
        import jax.numpy as jnp

        self.jnp = jnp
        self.deltas: dict[str, Any] | None = None  # node path -> the zero added to its input
        self.shapes: dict[str, tuple] = {}  # node path -> (shape, dtype), from a plain pass
        self.layers: dict[str, Any] = {}
        self.order: list[str] = []

    def convert(self, array):
        return self.jnp.asarray(array)

    def step(self, model, feed, inputs, variables, loss_of, instrument) -> Step:
        jax = self.module
        trainable = list(model.trainable_variables)
        non_trainable = [v.value for v in model.non_trainable_variables]
        index = {id(v): i for i, v in enumerate(trainable)}
        if self.deltas is None:
            self.deltas = {}
            if instrument.has_recurrent():
                # The shapes of the recurrent inputs, from one plain pass (only here).
                self.shapes, self.order = {}, []
                instrument.begin()
                model.stateless_call([v.value for v in trainable], non_trainable, feed,
                                     training=True)
                self.deltas = {path: self.jnp.zeros(shape, dtype)
                               for path, (shape, dtype) in self.shapes.items()}
        deltas = self.deltas

        def forward(values, zeros):
            self.active = zeros
            outputs, _ = model.stateless_call(values, non_trainable, feed, training=True)
            outputs_list = _as_list(outputs)
            total = loss_of(outputs_list)
            finite = [self.jnp.all(self.jnp.isfinite(
                jax.lax.stop_gradient(o).astype("float32"))) for o in outputs_list]
            return total, finite

        instrument.begin()
        try:
            (total, finite), (grads, sequence_grads) = jax.value_and_grad(
                forward, argnums=(0, 1), has_aux=True)([v.value for v in trainable], deltas)
        finally:
            self.active = None
        arrays = []
        for variable in variables:
            position = index.get(id(variable))
            arrays.append(None if position is None else
                          np.asarray(grads[position], dtype=np.float32))
        sequences = [(path, self.layers[path], np.asarray(sequence_grads[path], np.float32))
                     for path in self.order if path in sequence_grads]
        return Step(float(total), [bool(f) for f in finite], arrays, sequences)

    active: dict[str, Any] | None = None

    def watch_sequence(self, node_path, layer, inputs):
        if not self.is_floating(inputs) or len(inputs.shape) < 3:
            return inputs
        if self.active is not None:
            zero = self.active.get(node_path)
            if zero is not None and tuple(zero.shape) == tuple(inputs.shape):
                return inputs + zero.astype(inputs.dtype)
            return inputs
        if self.concrete(inputs) is not None and node_path not in self.shapes:
            self.shapes[node_path] = (tuple(inputs.shape), inputs.dtype)
            self.layers[node_path] = layer
            self.order.append(node_path)
        return inputs

    def concrete(self, tensor):
        jax = self.module
        if not hasattr(tensor, "shape") or not hasattr(tensor, "dtype"):
            return None
        try:
            value = jax.lax.stop_gradient(tensor)
        except TypeError:
            return None
        if isinstance(value, jax.core.Tracer):  # inside a scan or a compiled function
            return None
        return value

    def is_floating(self, tensor) -> bool:
        try:
            return bool(self.jnp.issubdtype(tensor.dtype, self.jnp.floating))
        except TypeError:
            return False

    def _f32(self, x):
        return self.jnp.asarray(self.concrete(x) if self.concrete(x) is not None else x,
                                dtype=self.jnp.float32)

    def rms(self, x) -> float:
        jnp = self.jnp
        return float(jnp.sqrt(jnp.mean(jnp.square(self._f32(x)))))

    def std(self, x) -> float:
        return float(self.jnp.std(self._f32(x)))

    def count_beyond(self, z, bound):
        z = self._f32(z)
        return float(self.jnp.sum(self.jnp.abs(z) > bound)), float(z.size)

    def count_outside(self, y, low, high):
        y = self._f32(y)
        return float(self.jnp.sum((y <= low) | (y >= high))), float(y.size)

    def alive(self, y):
        jnp = self.jnp
        y = self._f32(y)
        axes = tuple(range(y.ndim - 1))
        return np.asarray(jnp.any(y != 0.0, axis=axes) if axes else y != 0.0)


def _as_list(outputs) -> list:
    if isinstance(outputs, dict):
        return list(outputs.values())
    if isinstance(outputs, (list, tuple)):
        return list(outputs)
    return [outputs]
