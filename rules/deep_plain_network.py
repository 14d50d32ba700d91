"""Many weighted layers on the gradient's shortest route to the loss, with no shortcut around them.

## What it flags
A layer that the gradient can reach from the loss only by crossing `min-layers` (20) or more
weighted layers (Dense, convolutions, recurrent layers), because no residual `Add`, dense
`Concatenate` or auxiliary output gives it a shorter route. A ResNet50's deepest layer is
about a dozen weighted layers from the loss along its identity shortcuts; the first layer of
a plain 30-layer stack is 31.

The route is flagged only when the estimate shows what it costs: the signal entering its
first and last weighted layers, or their kernel gradients, differ by `min-change` (10x) or
more, the bar GL302 uses for the same reason. A 30-layer ReLU/He MLP, whose estimate stays
within a factor of four, is not flagged; the same stack with Glorot init is, and its
finding is folded into GL202's, which names the cause.

## Why it hurts gradient flow
He et al. (2016) trained plain convolutional networks of 18 and 34 layers: the deeper one
had higher *training* error, even with normalization, and residual connections removed the
gap. Every weighted layer multiplies the gradient by a random matrix, and the product of
many of them is ill-conditioned even when its average scale is right (Saxe et al. 2014).

## Example
    x = inputs
    for _ in range(24):
        x = keras.layers.Dense(128, activation="relu", kernel_initializer="he_normal")(x)

## Use instead
Residual blocks (`x = x + block(x)`), dense connections, or fewer layers.

## Options
- `min-layers` (20): weighted layers on the shortest route at which the rule looks. He et
  al.'s plain networks degrade from about 20 layers.
- `min-change` (10): how far the estimate must move along the route.
- `adaptive-factor` (0.1): under an optimizer that adapts its step sizes (Adam and kin,
  see GL201), `min-change` is divided by it (10x becomes 100x).

## References
He et al., *Deep Residual Learning for Image Recognition*, CVPR 2016.
"""

from gradlint import verdicts
from gradlint.findings import Problem, min_change, span
from gradlint.rules._fixes import structural

CODE = "GL301"
NAME = "deep-plain-network"
SEVERITY = "warning"
PRECISION = "medium"
GROUPS = ("architecture",)
ALIASES = ("no-shortcut",)
OPTIONS = {"min-layers": 20, "min-change": 10.0, "adaptive-factor": 0.1}
CLAIMS = "vanishing"
# A condition, not a cause: beside a cause of the same vanishing it is reported inside it.
CONDITION = True


def confirm(finding, measurements, options):
    """The probe confirms the depth when the gradient measurably vanishes or explodes."""
    return verdicts.depth(finding, measurements)


def check(analysis, options):
    routes = analysis.routes
    weighted = analysis.weighted_nodes()
    if not weighted:
        return
    deepest = max(weighted, key=lambda node: routes.depth_to_loss[node.id])
    depth = routes.depth_to_loss[deepest.id]
    if depth < options["min-layers"] or depth >= 1 << 30:
        return
    weighted_ids = {node.id for node in weighted}
    route = [analysis.node(n) for n in routes.route(deepest.id) if n in weighted_ids]
    change = analysis.estimate_change(route[0], route[-1]) if route else None
    if change is not None and change < min_change(analysis, options):
        return  # the estimate keeps signal and gradient within a decade along the route
    on_route = [node.path for node in route]
    yield Problem(
        f"the gradient reaches '{deepest.path}' only through {depth} weighted layers "
        f"({span(on_route)}) with no shortcut connection around them",
        layer=deepest.path, layers=on_route,
        evidence={"weighted_layers_on_route": depth},
        fix=structural("add shortcut (residual) connections or normalization layers"))
