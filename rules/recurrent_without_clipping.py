"""A model with recurrent layers saved with an optimizer that does not clip gradients.

## What it flags
Models that contain recurrent layers (SimpleRNN, LSTM, GRU, ConvLSTM, also inside
`Bidirectional`) and whose saved compile configuration has an optimizer with none of
`clipnorm`, `clipvalue` or `global_clipnorm` set. Models saved without a compile
configuration are not flagged: there is nothing to check.

It is a warning only where the file shows the risk: the estimate's share of the gradient
that one step back keeps (rho^2, see `gradlint.families.recurrent`) compounds to
`min-growth` (100, a factor of ten in norm) or more over the layer's time steps, as a
SimpleRNN whose recurrent kernel has a gain above one does. Elsewhere it is advice (info):
an LSTM's or GRU's gates keep rho^2 below one at initialization, so nothing in the file
shows an explosion, which comes, if it does, from what training does to the recurrent
weights. In the labelled corpus (`bench/corpus/`) the rule warned on healthy LSTMs that
trained well and on no problem visible in the file.

## Why it hurts gradient flow
Backpropagation through time multiplies the gradient by the recurrent Jacobian at every
step; when its largest singular value exceeds one the gradient explodes, and a single huge
update can wreck the weights. Pascanu et al. (2013) introduced gradient-norm clipping for
exactly this, and it has been standard for recurrent models since.

## Example
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")   # model has an LSTM

## Use instead
    keras.optimizers.Adam(1e-3, clipnorm=1.0)        # or global_clipnorm=1.0

Fix (`gradlint fix`): `clipnorm: 1.0` is set on the saved optimizer's configuration. A model
saved without a compile configuration is not flagged, so it gets no fix either.

## Options
- `min-growth` (100): the gain of the gradient's second moment over the time steps, from
  the estimate, at which the finding is a warning rather than advice.

## References
Pascanu, Mikolov & Bengio, *On the difficulty of training recurrent neural networks*,
ICML 2013.
"""

import math

from gradlint.findings import Edit, Fix, Problem

CLIPNORM = 1.0

CODE = "GL402"
NAME = "recurrent-without-clipping"
SEVERITY = "warning"
PRECISION = "medium"
GROUPS = ("recurrent", "optimizer", "exploding")
ALIASES = ("no-gradient-clipping",)
OPTIONS = {"min-growth": 100.0}
# About how training will go: the probe does not train, so it gives this no verdict.
CLAIMS = None


def _growth(analysis, node) -> float:
    """rho^(2T): what the gradient's second moment can gain going back over all T steps
    (at most 1 where each step keeps less than all of it)."""
    family = node.layer.family
    record = analysis.estimate[node.id]
    scale = record.pre_activation_scale if record.pre_activation_scale is not None else 1.0
    retention = family.retention(node.layer, scale * scale)
    if not retention > 1.0:
        return 1.0
    steps = family.steps(node)
    return math.inf if steps * math.log(retention) > 700 else retention ** steps


def check(analysis, options):
    training = analysis.graph.training
    if training is None or training.optimizer is None or training.clips_gradients:
        return
    nodes = [node for node in analysis.graph.nodes if node.layer.family.recurrent]
    if not nodes:
        return
    recurrent = [node.path for node in nodes]
    growth = max(_growth(analysis, node) for node in nodes)
    yield Problem(
        f"the model has {len(recurrent)} recurrent layer{'s' if len(recurrent) != 1 else ''} "
        f"('{recurrent[0]}'{', …' if len(recurrent) > 1 else ''}) but its {training.optimizer} "
        "optimizer sets no clipnorm, clipvalue or global_clipnorm"
        + (f"; over its time steps the gradient can grow {growth:.3g}-fold"
           if growth >= options["min-growth"] else ""),
        layer=recurrent[0], layers=recurrent,
        severity=None if growth >= options["min-growth"] else "info",
        evidence={"optimizer": training.optimizer, "growth_through_time": growth},
        fix=Fix(scope="optimizer", description=f"clip the gradient norm at {CLIPNORM:g}",
                edits=[Edit("clipnorm", None, CLIPNORM)], quantity=None))
