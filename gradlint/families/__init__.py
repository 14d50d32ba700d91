"""Layer families: everything gradlint knows about one kind of layer, in one module each.

A family covers a set of Keras classes (with their Keras 1 and 2 aliases) and is the single
home of what the rest of gradlint asks about them:

- `check_config`: which configuration values are usable (run once, when the graph is built);
- `output_shape` and `kernel_shape`: what Keras would build, from the config alone;
- `forward` and `backward`: the layer's part of the mean-field estimate
  (`gradlint.analysis.signal`), forward moments in, backward gain out, with `spread`,
  `shape_gain` and `coherent_backward` for what routing, broadcasting and batch-shared
  gradients do, and `kernel_square` for the kernel's gradient;
- `counts_for_depth`, `normalizes`: how the layer counts on the routes
  (`gradlint.analysis.routes`);
- `weight_roles`: what the stored weights of the layer are (kernel, bias, gamma ...);
- `takes_indices`, `is_weighted`: what the probe feeds it, and whether it records a kernel
  gradient for it.

The estimate, the routes, the weight reader, the rules and the probe ask a layer's family;
none of them compares class names or kinds. Adding a family is one module in this package
(it is found by `family_of` through `FAMILIES`) plus its test; `docs/families.md` walks
through an example.

Each family module defines one or more `Family` subclasses and lists their instances in a
module-level `FAMILIES`. Their `classes` map the Keras class names they cover to a `kind`,
the finer name the JSON report shows (``conv_transpose`` in the convolution family).
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gradlint.graph import Layer, Node


@dataclass
class Signal:
    """What the estimate knows about a tensor, per element, for unit-variance inputs.

    `second` is E[x^2]; `mean` is E[x]; `constant` is E_units[mu_u^2], the part of the second
    moment that does not vary across the samples of a batch (mu_u is unit u's mean over the
    batch and its positions). The rest, `second - constant`, is what batch statistics see:
    BatchNormalization in training mode divides by it, and global average pooling shrinks
    it while keeping the constant part. constant >= mean^2 always."""

    second: float = 1.0
    mean: float = 0.0
    constant: float = 0.0
    # Where the tensor is not Gaussian in a way that matters to a ReLU after it: ("relu", m,
    # v) for relu(N(m, v)); ("relu+normal", m, v, mean, variance) for that plus an
    # independent Gaussian (a post-activation residual block's sum). None: Gaussian. A
    # family that builds a new signal leaves it None.
    law: tuple | None = None

    @property
    def varying(self) -> float:
        """The per-sample part of the second moment (what a batch's variance measures)."""
        return max(self.second - self.constant, 0.0)

    @property
    def variance(self) -> float:
        """E[x^2] - E[x]^2."""
        return max(self.second - self.mean * self.mean, 0.0)


@dataclass
class Forward:
    """One node's forward result: its output signal and what the backward pass reuses."""

    signal: Signal
    pre_activation: float | None = None  # q of the activation it applies
    slope: float | None = None  # E[phi'(z)^2] at q
    kernel: Any = None  # the weighted family's parameters
    passed_through: bool = False  # the family could not size this call
    slope_mean: float | None = None  # E[phi'(z)] at q: what a coherent gradient keeps
    # Set by the backward pass before the family's `backward` runs: the part of the output's
    # (and pre-activation's) gradient second moment that is the same at every position of a
    # sample (a global average pool hands every position the same gradient).
    coherent: float = 0.0
    coherent_pre: float = 0.0
    gradient_pre: float = 0.0


@dataclass
class Context:
    """How the estimate runs: which weights, which mode, what batch."""

    source: str = "initializers"  # or "weights": the stored weights' statistics
    mode: str = "training"  # or "inference"
    batch_size: int = 32
    graph: Any = None


class Family:
    """A family's defaults: a layer that passes values through untouched."""

    name = "family"
    classes: dict[str, str] = {}
    weighted = False  # has a kernel the estimate sizes and the probe measures
    normalizes = False  # restarts the run of weighted layers without normalization
    applies_activation = False  # an activation layer (its activation is its whole work)
    reshapes_only = False  # changes neither values nor gradients (shape, dropout, padding)
    takes_indices = False  # its input is integer indices (the probe feeds it some)
    recurrent = False
    unknown = False  # gradlint cannot tell what it computes
    wraps = False  # does its work through `Layer.inner`
    is_input = False
    fallback = False  # covers whatever no other family claims (found last)

    # --- identity -----------------------------------------------------------------------
    def covers(self, class_name: str, config: dict) -> bool:
        return class_name in self.classes

    # --- configuration and shapes ----------------------------------------------------------
    def check_config(self, class_name: str, config: dict) -> None:
        """Raise `layer_catalog.ConfigValueError` for a value no Keras could have saved."""

    def output_shape(self, layer: Layer, inputs: list[tuple | None]) -> tuple | None:
        return inputs[0] if inputs else None

    def kernel_shape(self, layer: Layer, input_shape: tuple | None) -> tuple | None:
        return None

    def weight_roles(self, layer: Layer, count_2d: int) -> list[str]:
        return ["kernel", "bias"]

    def is_weighted(self, layer: Layer) -> bool:
        return self.weighted

    def understood(self, layer: Layer) -> bool:
        """Whether gradlint knows what this layer computes (else GL002 says so)."""
        return not self.unknown

    def sums(self, layer: Layer) -> bool:
        """Whether the output is the sum of the inputs (a residual connection)."""
        return False

    def multiplies(self, layer: Layer) -> bool:
        """Whether the output is the product of the inputs (a gate)."""
        return False

    def starts_small(self, layer: Layer) -> bool:
        """A learnable scale that starts small on purpose (LayerScale)."""
        return False

    def is_keras_lambda(self, layer: Layer) -> bool:
        """A Keras class that wraps a function (Lambda, TFOpLambda), not a custom class."""
        return False

    def is_model(self, layer: Layer) -> bool:
        """A nested model gradlint did not flatten."""
        return False

    def unknown_what(self, layer: Layer) -> str:
        """How GL002 names a layer gradlint cannot see into."""
        return "a custom layer"

    def unknown_class(self, class_name: str, config: dict) -> bool:
        """A class gradlint has never heard of (so it must be the user's own)."""
        return self.unknown

    def understood_class(self, class_name: str, config: dict) -> bool:
        """Whether the class is a layer class gradlint knows (not a model, not custom)."""
        return True

    def kind_of_layer(self, class_name: str, config: dict) -> str:
        """The finer name the JSON report gives the layer's kind."""
        return self.classes.get(class_name.rsplit(">", 1)[-1], self.name)

    def stored_kernel_problem(self, layer: Layer) -> str | None:
        """Why the layer's stored kernel cannot be its kernel; None when it fits."""
        return None

    # --- routes ----------------------------------------------------------------------------
    def counts_for_depth(self, layer: Layer) -> bool:
        return self.is_weighted(layer)

    # --- the estimate ----------------------------------------------------------------------
    def forward(self, node: Node, inputs: list[Signal], context: Context) -> Forward:
        return Forward(inputs[0] if inputs else Signal())

    def spread(self, node: Node) -> float | None:
        """How a layer that only routes values (pooling, upsampling, averaging) scales the
        per-element gradient second moment on its way back; None for other layers."""
        return None

    def centres_gradient(self, node: Node, context: Context) -> bool:
        """Whether the gradient this layer hands its input sums to zero over the batch, per
        channel (batch statistics subtract its mean). A kernel right before it then gets
        nothing from its input's constant part."""
        return False

    def coherent_backward(self, node: Node, backs: list[float], forward: Forward,
                          context: Context) -> list[float]:
        """The coherent part of each input's gradient (see `Forward.coherent`), given the
        inputs' gradients `backs`. A layer that maps every position alike keeps the
        coherent share; one that reshapes positions into features (Flatten) loses it."""
        share = forward.coherent_pre / forward.gradient_pre if forward.gradient_pre else 0.0
        share = min(max(share, 0.0), 1.0)
        result = []
        for index, back in enumerate(backs):
            inputs = positions_of(node.input_shapes[index] if index < len(node.input_shapes)
                                  else None)
            if self.reshapes_only and inputs != positions_of(node.output_shape):
                result.append(back / inputs)
            else:
                result.append(back * share)
        return result

    def shape_gain(self, node: Node, index: int) -> float:
        """What the layer's shape alone does to input `index`'s per-element gradient second
        moment (broadcasting sums positions); the estimate's `gradient` factors it out."""
        return 1.0

    def backward(self, node: Node, gradient: float, gradient_pre: float,
                 inputs: list[Signal], forward: Forward, context: Context) -> list[float]:
        """The gradient second moment each input receives, given the output's (`gradient`)
        and, for a layer that applies an activation, the pre-activation's."""
        return [gradient] * len(node.inputs)

    def kernel_square(self, node: Node, forward: Forward, signal_in: Signal,
                      gradient_pre: float) -> float:
        """The squared norm of the kernel's gradient, in the estimate's units: the sum over
        P positions of input x gradient. Its incoherent part adds P times the input's second
        moment times the gradient's; where the gradient is the same at every position, the
        input's constant part c adds coherently, P^2 c times that coherent part."""
        kernel = forward.kernel
        count = self.kernel_positions(node, forward)
        coherent = min(forward.coherent_pre, gradient_pre)
        constant = min(signal_in.constant, signal_in.second)
        return kernel.entries * (
            kernel.coverage * count * (signal_in.second * gradient_pre - constant * coherent)
            + kernel.coherent_coverage * count * count * constant * coherent)

    def kernel_positions(self, node: Node, forward: Forward | None = None) -> float:
        """How many positions share the kernel (the kernel gradient sums over them)."""
        from gradlint.layer_catalog import positions

        return float(positions(node.output_shape))


def positions_of(shape) -> float:
    from gradlint.layer_catalog import positions

    return float(positions(shape))


_FAMILIES: list[Family] | None = None
_BY_CLASS: dict[str, Family] = {}


def all_families() -> list[Family]:
    """Every family, from the modules of this package, in a fixed order (the fallbacks of
    `gradlint.families.opaque` last)."""
    global _FAMILIES
    if _FAMILIES is None:
        found: list[Family] = []
        fallbacks: list[Family] = []
        for module_info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
            module = importlib.import_module(f"{__name__}.{module_info.name}")
            for family in getattr(module, "FAMILIES", ()):
                (fallbacks if getattr(family, "fallback", False) else found).append(family)
        _FAMILIES = found + fallbacks
        for family in _FAMILIES:
            for class_name in family.classes:
                if class_name in _BY_CLASS:
                    raise RuntimeError(f"{class_name} is claimed by the {family.name} and the "
                                       f"{_BY_CLASS[class_name].name} families")
                _BY_CLASS[class_name] = family
    return _FAMILIES


def family_of(class_name: str, config: dict) -> Family:
    """The family of a serialized layer (``package>Class`` names count by their class)."""
    families = all_families()
    name = class_name.rsplit(">", 1)[-1]
    family = _BY_CLASS.get(name)
    if family is not None:
        return family
    for family in families:
        if family.covers(name, config):
            return family
    raise RuntimeError("the opaque family covers every class")  # pragma: no cover


def by_name(name: str) -> Family:
    for family in all_families():
        if family.name == name:
            return family
    raise KeyError(name)
