"""An initializer scaled for a different activation than the layer uses, in a stack deep enough to matter.

## What it flags
- ReLU-family activations (ReLU, leaky ReLU, ELU, GELU, SiLU) with Glorot or LeCun scaling:
  ReLU zeroes half of its input, so these initializers lose half of the signal's variance per
  layer;
- sigmoid or tanh activations with He scaling, which doubles the pre-activation variance and
  drives units into saturation.

Only flagged when the estimate over the mismatched layers falls below `warning-below` (1e-2),
or `error-below` (1e-3) for an error: a few mismatched layers, or mismatched layers followed
by normalization, train fine. The message names the initializer that fits.

## Why it hurts gradient flow
He et al. (2015) showed that a 30-layer ReLU network with Xavier (Glorot) initialization
stalls while the same network with their initialization trains: with Glorot scaling each ReLU
layer multiplies both the forward variance and the backward gradient variance by about 0.5,
so 30 layers shrink them by 1e-9. gradlint's estimate for a 30-layer ReLU MLP with Glorot
init puts the forward signal below 1e-4.

## Example
    keras.Sequential([keras.Input((256,))] +
                     [keras.layers.Dense(256, activation="relu") for _ in range(30)] +
                     [keras.layers.Dense(10)])      # Dense defaults to GlorotUniform

## Use instead
`kernel_initializer="he_normal"` for ReLU-family layers; `"glorot_uniform"` for sigmoid and
tanh; `"lecun_normal"` for SELU. Normalization layers after each block also remove the
mismatch's effect.

## Options
- `error-below` (1e-3), `warning-below` (1e-2): thresholds on the estimate.

## References
He et al., *Delving Deep into Rectifiers*, ICCV 2015.
"""

from gradlint import activations, initializers
from gradlint.findings import Problem, number, severity_below, span

CODE = "GL202"
NAME = "initializer-activation-mismatch"
SEVERITY = "error"
GROUPS = ("initialization", "vanishing")
ALIASES = ()
OPTIONS = {"error-below": 1e-3, "warning-below": 1e-2}

RELU_LIKE = frozenset({"relu", "leaky_relu", "elu", "gelu", "swish", "mish", "celu",
                       "relu6", "hard_swish"})


def _mismatch(analysis, node):
    initializer = node.layer.kernel_initializer
    if initializer is None or node.layer.kind in ("embedding", "recurrent"):
        return None
    family = initializer.family
    activation = analysis.effective_activation(node)
    if activation.name in RELU_LIKE and family in ("glorot", "lecun"):
        return activation
    if activation.name in activations.SATURATING and activation.name != "softsign" \
            and family == "he":
        return activation
    return None


def check(analysis, options):
    estimate = analysis.estimate
    mismatched = []
    for node in analysis.weighted_nodes():
        if node.id in analysis.graph.outputs:
            continue
        activation = _mismatch(analysis, node)
        if activation is not None:
            mismatched.append((node, activation))
    if not mismatched:
        return
    values = []
    for node, _ in mismatched:
        record = estimate[node.id]
        values.extend(v for v in (record.forward_scale, record.gradient) if v is not None)
    worst = min(values, default=None)
    if worst is None:
        return
    severity = severity_below(worst, options["error-below"], options["warning-below"])
    if severity is None:
        return
    paths = [node.path for node, _ in mismatched]
    first, activation = mismatched[0]
    fits = initializers.suggestion_for(activation.name)
    yield Problem(
        f"{span(paths)} pair {activation} with {first.layer.kernel_initializer.name}, which is "
        f"scaled for another activation: the estimate over these layers falls to "
        f"{number(worst)}; use {fits} instead",
        layer=first.path, layers=paths, severity=severity,
        evidence={"activation": str(activation), "initializer": first.layer.kernel_initializer.name,
                  "suggested_initializer": fits, "min_estimate": worst})
