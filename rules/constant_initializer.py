"""Kernels initialized to a constant (Zeros, Ones, Constant), or stored with every value equal.

## What it flags
Weighted layers whose kernel initializer is `Zeros`, `Ones` or `Constant`, and, when the
weights are read, stored kernels whose values are all identical (for models whose layer
graph is not in the file, only non-zero constants, since a zero kernel there may be an
output layer). Zero kernels on the output
layer and on the last layer of a residual branch (zero-init residuals, as in Fixup and
"zero-gamma" ResNets) are a known, working practice and are not flagged.

## Why it hurts gradient flow
Every unit of a constant-initialized layer computes the same function and receives the same
gradient, so the units stay identical for the whole training run: the layer behaves as if it
had one unit. A zero kernel also passes no gradient at all to the layers before it.

## Example
    keras.layers.Dense(64, activation="relu", kernel_initializer="zeros")

## Use instead
A random initializer (`HeNormal` for ReLU layers, `GlorotUniform` otherwise). Constant
initializers belong on biases and normalization parameters. Fix (`gradlint fix`): the kernel
is re-initialized with the initializer its activation needs, and re-drawn.
"""

from gradlint import verdicts
from gradlint.findings import Problem
from gradlint.rules._fixes import initializer_fix

CODE = "GL204"
NAME = "constant-initializer"
SEVERITY = "error"
PRECISION = "very-high"
GROUPS = ("initialization",)
ALIASES = ("zero-initializer",)
OPTIONS = {}
CLAIMS = "vanishing"


def confirm(finding, measurements, options):
    """The probe confirms starved layers before a zero kernel, or identical units."""
    return verdicts.constant_kernel(finding, measurements)


def _feeds_residual_add(analysis, node) -> bool:
    current = node.id
    while True:
        following = analysis.consumers[current]
        if len(following) != 1:
            return False
        consumer = analysis.node(following[0])
        if consumer.layer.family.sums(consumer.layer):
            return True
        family = consumer.layer.family
        if not (family.normalizes or family.applies_activation or family.reshapes_only):
            return False
        current = consumer.id


def check(analysis, options):
    outputs = set(analysis.graph.outputs)
    seen = set()
    for node in analysis.weighted_nodes():
        layer = node.layer
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        initializer = layer.kernel_initializer
        stored = layer.weight("kernel")
        if initializer is not None and initializer.is_constant:
            zero = initializer.constant == 0.0
            if zero and (node.id in outputs or _feeds_residual_add(analysis, node)):
                continue
            yield Problem(
                f"'{layer.path}' initializes its kernel with {initializer.name}"
                f"{'' if zero else f'({initializer.constant:g})'}: all its units start "
                f"identical and stay so{', and it passes no gradient to earlier layers' if zero else ''}",
                layer=layer.path, layers=[layer.path],
                evidence={"initializer": initializer.name, "value": initializer.constant},
                fix=initializer_fix(analysis, [node], quantity=None))
        elif stored is not None and stored.size > 1 and stored.std == 0.0 and stored.finite:
            if stored.mean == 0.0 and (node.id in outputs or _feeds_residual_add(analysis, node)):
                continue
            yield Problem(
                f"'{layer.path}' stores a kernel whose {stored.size} values all equal "
                f"{stored.mean:g}: its units are identical",
                layer=layer.path, layers=[layer.path],
                evidence={"value": stored.mean, "size": stored.size})
    for layer in analysis.graph.detached_layers:
        for stored in layer.weights:
            # Without the graph a zero kernel may be a zero-initialized output layer.
            if stored.role.startswith("kernel") and stored.size > 1 and stored.std == 0.0 \
                    and stored.finite and stored.mean != 0.0:
                yield Problem(
                    f"'{layer.path}' stores a kernel whose {stored.size} values all equal "
                    f"{stored.mean:g}: its units are identical",
                    layer=layer.path, layers=[layer.path],
                    evidence={"value": stored.mean, "size": stored.size})
