"""A model with recurrent layers saved with an optimizer that does not clip gradients.

## What it flags
Models that contain recurrent layers (SimpleRNN, LSTM, GRU, ConvLSTM, also inside
`Bidirectional`) and whose saved compile configuration has an optimizer with none of
`clipnorm`, `clipvalue` or `global_clipnorm` set. Models saved without a compile
configuration are not flagged: there is nothing to check.

## Why it hurts gradient flow
Backpropagation through time multiplies the gradient by the recurrent Jacobian at every
step; when its largest singular value exceeds one the gradient explodes, and a single huge
update can wreck the weights. Pascanu et al. (2013) introduced gradient-norm clipping for
exactly this, and it has been standard for recurrent models since.

## Example
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")   # model has an LSTM

## Use instead
    keras.optimizers.Adam(1e-3, clipnorm=1.0)        # or global_clipnorm=1.0

## References
Pascanu, Mikolov & Bengio, *On the difficulty of training recurrent neural networks*,
ICML 2013.
"""

from gradlint.findings import Problem

CODE = "GL402"
NAME = "recurrent-without-clipping"
SEVERITY = "warning"
PRECISION = "medium"
GROUPS = ("recurrent", "optimizer", "exploding")
ALIASES = ("no-gradient-clipping",)
OPTIONS = {}
# About how training will go: the probe does not train, so it gives this no verdict.
CLAIMS = None


def check(analysis, options):
    training = analysis.graph.training
    if training is None or training.optimizer is None or training.clips_gradients:
        return
    recurrent = [node.path for node in analysis.graph.nodes if node.layer.family.recurrent]
    if not recurrent:
        return
    yield Problem(
        f"the model has {len(recurrent)} recurrent layer{'s' if len(recurrent) != 1 else ''} "
        f"('{recurrent[0]}'{', …' if len(recurrent) > 1 else ''}) but its {training.optimizer} "
        "optimizer sets no clipnorm, clipvalue or global_clipnorm",
        layer=recurrent[0], layers=recurrent,
        evidence={"optimizer": training.optimizer})
