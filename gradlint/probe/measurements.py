"""What the probe measured, as plain data: no TensorFlow or Keras here, so that rules,
verdicts and reports can read measurements without importing either.

Every number is the median over the probe's seeds (each seed draws a new synthetic batch and
new targets; the weights are the file's). Kernel measurements belong to a layer (a shared
layer has one kernel); forward measurements belong to one call of a layer and are keyed by
the call's path as the model graph names it (``encoder/dense_1``, ``shared@1``).
"""

from __future__ import annotations

import math
import re
import statistics
from dataclasses import dataclass, field
from typing import Any


def median(values) -> float | None:
    """The median of the finite values, NaN when every value is NaN, None when there are none."""
    values = [float(v) for v in values if v is not None]
    if not values:
        return None
    finite = [v for v in values if not math.isnan(v)]
    if not finite:
        return math.nan
    return float(statistics.median(finite))


@dataclass
class KernelMeasurement:
    """A weighted layer's main kernel (kernel, depthwise and pointwise kernels, embeddings):
    the norm of the loss gradient with respect to it, and the kernel's own norm."""

    path: str
    class_name: str
    gradient_norm: float | None = None
    weight_norm: float | None = None
    gradient_to_weight: float | None = None
    relative: float | None = None  # gradient_norm over the reference layer's, per seed
    units_identical: bool | None = None  # every unit's gradient the same (constant kernels)
    nonfinite: bool = False
    embedding: bool = False


@dataclass
class CallMeasurement:
    """One call of a layer: its output's scale and, for activations that can saturate or die,
    what the pre-activations did."""

    path: str
    class_name: str
    forward_scale: float | None = None  # RMS of the output, sqrt(E[x^2]), as the estimate's
    input_scale: float | None = None  # standard deviation of the input (weighted layers)
    activation: str | None = None  # the nonlinearity measured inside or at this call
    saturated_fraction: float | None = None  # sigmoid/tanh family: |z| beyond the bound
    dead_fraction: float | None = None  # ReLU family: units zero over the whole batch
    nonfinite: bool = False


@dataclass
class RecurrentMeasurement:
    """A recurrent layer call: the loss gradient's norm with respect to its input at each time
    step, in processing order (the first step processed is the farthest from the output)."""

    path: str
    class_name: str
    cell: str
    gated: bool
    steps: list[float] = field(default_factory=list)
    bidirectional: bool = False

    @property
    def length(self) -> int:
        return len(self.steps)

    @property
    def ratio(self) -> float | None:
        """The farthest step's gradient over the nearest step's (for a bidirectional layer,
        the weakest step's over the strongest's)."""
        if len(self.steps) < 2:
            return None
        if self.bidirectional:
            strongest = max(self.steps)
            return min(self.steps) / strongest if strongest > 0 else None
        last = self.steps[-1]
        if not last or not math.isfinite(last):
            return None
        return self.steps[0] / last

    @property
    def decay_per_step(self) -> float | None:
        ratio = self.ratio
        if ratio is None:
            return None
        span = (len(self.steps) // 2 if self.bidirectional else len(self.steps) - 1) or 1
        if ratio <= 0:
            return 0.0
        return ratio ** (1.0 / span)


@dataclass
class Measurements:
    """Everything one probe run measured on one model."""

    kernels: dict[str, KernelMeasurement] = field(default_factory=dict)
    calls: dict[str, CallMeasurement] = field(default_factory=dict)
    recurrent: dict[str, RecurrentMeasurement] = field(default_factory=dict)
    reference: str | None = None  # the layer whose kernel gradient the ratios divide by
    order: list[str] = field(default_factory=list)  # weighted layers, inputs to outputs
    nonfinite: list[str] = field(default_factory=list)  # "loss", "output", layer paths
    loss: str = ""
    loss_source: str = ""
    loss_value: float | None = None
    seeds: int = 0
    batch: int = 0
    training_mode: bool = True
    loader: str = "keras"
    backend: str = "tensorflow"  # the Keras backend whose gradient machinery measured it
    input_shapes: list[tuple] = field(default_factory=list)
    batch_statistics: bool = False  # the model normalizes by batch statistics (BatchNorm)
    notes: list[str] = field(default_factory=list)  # what the probe could not measure, and why

    def kernel(self, path: str) -> KernelMeasurement | None:
        """The kernel of the layer a call's path names (``dense@1``, ``encoder@1/dense``)."""
        return self.kernels.get(re.sub(r"@\d+(?=/|$)", "", path))

    def call(self, path: str) -> CallMeasurement | None:
        return self.calls.get(path)

    def weighted(self, include_embeddings: bool = False) -> list[KernelMeasurement]:
        """Kernel measurements in the order of the model, inputs first."""
        found = [self.kernels[p] for p in self.order if p in self.kernels]
        return [k for k in found if include_embeddings or not k.embedding]

    def first_and_last(self) -> tuple[KernelMeasurement | None, KernelMeasurement | None]:
        """The weighted layer nearest the inputs and the reference layer (nearest the loss)."""
        layers = [k for k in self.weighted() if k.gradient_norm is not None]
        if not layers:
            return None, None
        last = self.kernels.get(self.reference) if self.reference else None
        return layers[0], last or layers[-1]

    def first_last_ratio(self) -> float | None:
        """The first weighted layer's kernel-gradient norm over the reference layer's (the
        median of the per-seed ratios); None for a model with one weighted layer, and when
        both are zero (0/0: see `gradient_absent`)."""
        first, last = self.first_and_last()
        if first is None or last is None or first is last:
            return None
        if first.relative is not None and math.isnan(first.relative):
            return None
        return first.relative

    def gradient_absent(self) -> bool:
        """No gradient at all: the first weighted layer's and the reference layer's kernel
        gradients are both exactly zero (every unit dead before the output, say)."""
        first, last = self.first_and_last()
        return first is not None and last is not None and first.gradient_norm == 0.0 and \
            last.gradient_norm == 0.0

    def head_input_scale(self) -> float | None:
        """The standard deviation of the signal entering the reference layer: how much of the
        standard-normal input reaches the output."""
        if self.reference is None:
            return None
        call = self.calls.get(self.reference)
        return call.input_scale if call is not None else None

    def largest_input_scale(self) -> tuple[float | None, str | None]:
        """The largest standard deviation entering any weighted layer, and where."""
        best, where = None, None
        for path, call in self.calls.items():
            kernel = self.kernel(path)
            if kernel is None or kernel.embedding or call.input_scale is None:
                continue
            if best is None or not math.isfinite(call.input_scale) or call.input_scale > best:
                best, where = call.input_scale, path
                if not math.isfinite(best):
                    break
        return best, where


def measured_entry(measurements: Measurements | None, path: str) -> dict[str, Any] | None:
    """The JSON contract's per-layer ``measured`` object for one layer call, or None when the
    probe did not run or the layer has no kernel."""
    if measurements is None:
        return None
    kernel = measurements.kernel(path)
    if kernel is None:
        return None
    call = measurements.call(path)
    entry = {
        "kernel_gradient": _rounded(kernel.relative),
        "kernel_gradient_norm": _rounded(kernel.gradient_norm),
        "gradient_to_weight": _rounded(kernel.gradient_to_weight),
        "forward_scale": _rounded(call.forward_scale) if call is not None else None,
        "saturated_fraction": _rounded(call.saturated_fraction) if call is not None else None,
        "dead_fraction": _rounded(call.dead_fraction) if call is not None else None,
    }
    recurrent = measurements.recurrent.get(path)
    if recurrent is not None and recurrent.steps:
        # The loss gradient's norm at each input time step, in processing order.
        entry["input_gradient_by_step"] = [_rounded(value) for value in recurrent.steps]
    return entry


def _rounded(value: float | None) -> float | None:
    if value is None:
        return None
    value = float(value)
    if not math.isfinite(value):
        return value
    return float(f"{value:.4g}")
