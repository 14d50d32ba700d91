"""The model graph: the one representation every reader produces and every rule reads.

A graph node is one *call* of a layer. A layer called twice (a shared layer) gives two
nodes that point at the same `Layer`; nested models are flattened so that their layers
appear with path names such as ``encoder/dense_1``. Wrappers (`Bidirectional`,
`TimeDistributed`, `RNN(cell)`) stay one node whose layer keeps the wrapped layer in
`Layer.inner`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator


@dataclass(frozen=True)
class Activation:
    """A normalized activation function: a canonical name and its one parameter, if any."""

    name: str
    parameter: float | None = None

    def __str__(self) -> str:
        if self.parameter is None:
            return self.name
        return f"{self.name}({self.parameter:g})"


@dataclass
class WeightStats:
    """Summary statistics of one stored weight tensor, computed without keeping the data."""

    role: str  # "kernel", "bias", "recurrent_kernel", "gamma", ...
    shape: tuple[int, ...]
    mean: float
    std: float
    zero_fraction: float
    finite: bool
    nonfinite_count: int = 0
    # Where the tensor is stored: its HDF5 dataset's path in the weights file, so that
    # `gradlint fix` rewrites exactly that dataset.
    dataset: str | None = field(default=None, compare=False)

    @property
    def size(self) -> int:
        total = 1
        for dim in self.shape:
            total *= dim
        return total

    @property
    def second_moment(self) -> float:
        return self.std * self.std + self.mean * self.mean


# Optimizers whose steps are invariant to rescaling the gradient (by their lower-case names).
ADAPTIVE_OPTIMIZERS = frozenset({"adam", "adamw", "adamax", "nadam", "rmsprop", "adagrad",
                                 "adadelta", "adafactor", "lion", "lamb"})


@dataclass
class TrainingConfig:
    """What the saved compile configuration says about the optimizer and the loss."""

    optimizer: str | None = None
    learning_rate: float | None = None
    learning_rate_schedule: str | None = None
    clipnorm: float | None = None
    clipvalue: float | None = None
    global_clipnorm: float | None = None
    loss: Any = None
    # The saved optimizer configuration as stored, wrapper included (a LossScaleOptimizer's
    # `inner_optimizer`, Keras 3's `loss_scale_factor`): what GL405 reads.
    optimizer_config: Any = field(default=None, repr=False, compare=False)

    @property
    def clips_gradients(self) -> bool:
        return any(value for value in (self.clipnorm, self.clipvalue, self.global_clipnorm))

    @property
    def adapts_step_sizes(self) -> bool:
        """Whether the optimizer divides each parameter's step by its own gradient's running
        scale (Adam and its kin), so that a gradient uniformly smaller by some factor still
        takes steps of the usual size (Kingma & Ba 2015, section 2.1)."""
        name = (self.optimizer or "").lower().replace("_", "")
        return name in ADAPTIVE_OPTIMIZERS


@dataclass
class Layer:
    """One layer of the model, however many times it is called."""

    path: str
    class_name: str
    kind: str
    config: dict[str, Any]
    activation: Activation | None = None
    kernel_initializer: Any = None
    bias_initializer: Any = None
    inner: Layer | None = None
    weights: list[WeightStats] = field(default_factory=list)
    custom: bool = False
    module: str | None = None
    family: Any = None  # its `gradlint.families.Family`, found from the class name
    # A Keras 3 operation's scalar arguments (`x + 3.0` is an `Add` of one tensor and 3.0),
    # as (argument position, value).
    constants: tuple[tuple[int, float], ...] = ()

    def __post_init__(self):
        if self.family is None:
            from gradlint.families import family_of

            self.family = family_of(self.class_name, self.config)

    @property
    def weighted(self) -> bool:
        """Whether the layer has a kernel that the estimate sizes and the probe measures."""
        return self.family.is_weighted(self)

    @property
    def effective(self) -> Layer:
        """The layer that does the work: the wrapped layer of a `TimeDistributed`."""
        layer = self
        while layer.inner is not None and layer.family.wraps:
            layer = layer.inner
        return layer

    def weight(self, role: str) -> WeightStats | None:
        for stats in self.weights:
            if stats.role == role:
                return stats
        return None

    @property
    def params(self) -> int:
        return sum(stats.size for stats in self.weights)


@dataclass
class Node:
    """One call of a layer: its inputs are the ids of the nodes that produced them."""

    id: int
    layer: Layer
    call_index: int
    inputs: list[int] = field(default_factory=list)
    input_shapes: list[tuple | None] = field(default_factory=list)
    output_shape: tuple | None = None

    @property
    def path(self) -> str:
        if self.call_index == 0:
            return self.layer.path
        return f"{self.layer.path}@{self.call_index}"


@dataclass
class ModelGraph:
    """A whole model: nodes in topological order, its inputs, outputs and training setup."""

    name: str
    format: str
    nodes: list[Node] = field(default_factory=list)
    inputs: list[int] = field(default_factory=list)
    outputs: list[int] = field(default_factory=list)
    training: TrainingConfig | None = None
    keras_version: str | None = None
    model_class: str = "Functional"
    graph_stored: bool = True
    weights_read: bool = False
    notes: list[str] = field(default_factory=list)
    # Weights found in a file whose layer graph is not stored (subclassed models): checked
    # for themselves, outside any graph.
    detached_layers: list[Layer] = field(default_factory=list)

    def layers(self) -> Iterator[Layer]:
        """Every distinct layer once, in the order of its first call, then detached ones."""
        seen: set[int] = set()
        for node in self.nodes:
            if id(node.layer) not in seen:
                seen.add(id(node.layer))
                yield node.layer
        yield from self.detached_layers

    def consumers(self) -> list[list[int]]:
        """For each node id, the ids of the nodes that read its output."""
        result: list[list[int]] = [[] for _ in self.nodes]
        for node in self.nodes:
            for source in node.inputs:
                result[source].append(node.id)
        return result

    @property
    def params(self) -> int | None:
        if not self.weights_read:
            return None
        return sum(layer.params for layer in self.layers())
