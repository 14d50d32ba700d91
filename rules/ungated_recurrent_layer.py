"""SimpleRNN layers, whose gradient through time vanishes after a few dozen steps.

## What it flags
`SimpleRNN`, also inside `Bidirectional` and as `RNN(SimpleRNNCell)`. A warning by default;
an error when the input shape stored in the file gives a sequence length of `error-length`
(50) or more.

## Why it hurts gradient flow
An ungated recurrent layer multiplies the gradient by its recurrent Jacobian once per time
step, so the gradient from step t reaches step t - k scaled by roughly the k-th power of the
Jacobian's largest singular value: it vanishes (or explodes) geometrically. Bengio et al.
(1994) showed that such networks fail to learn dependencies beyond 10 to 20 steps. On
untrained SimpleRNNs, `gradlint --probe` measured the loss gradient at the first input step
at 0.03 of the last step's over 10 steps, 5e-4 over 20 and 7e-9 over 50.

## Example
    keras.Sequential([keras.Input((200, 16)), keras.layers.SimpleRNN(32),
                      keras.layers.Dense(1)])

## Use instead
`LSTM` or `GRU`, whose gates can learn to keep the gradient alive across long spans
(Hochreiter & Schmidhuber 1997), or a 1-D convolution or attention over the sequence.

## Options
- `error-length` (50): the known sequence length from which the finding is an error.

## References
Bengio, Simard & Frasconi, *Learning long-term dependencies with gradient descent is
difficult*, IEEE TNN 1994. Hochreiter & Schmidhuber, *Long Short-Term Memory*, 1997.
"""

from gradlint import verdicts
from gradlint.findings import Problem
from gradlint.rules._fixes import structural
from gradlint.families.recurrent import UNGATED_CELLS, cell_class

CODE = "GL401"
NAME = "ungated-recurrent-layer"
SEVERITY = "warning"
PRECISION = "high"
GROUPS = ("recurrent", "vanishing")
ALIASES = ("simple-rnn",)
OPTIONS = {"error-length": 50}
CLAIMS = "recurrent"
# GL905's warning: the loss gradient at the first input step below 1e-2 of the last's.
CONFIRM_RATIO_BELOW = 1e-2


def confirm(finding, measurements, options):
    """The probe confirms the fading by the input gradient through time."""
    return verdicts.recurrent(finding, measurements, CONFIRM_RATIO_BELOW)


def check(analysis, options):
    for node in analysis.graph.nodes:
        layer = node.layer
        if not layer.family.recurrent or cell_class(layer) not in UNGATED_CELLS:
            continue
        shape = node.input_shapes[0] if node.input_shapes else None
        length = shape[1] if shape and len(shape) >= 3 else None
        severity = "error" if length is not None and length >= options["error-length"] else None
        known = f"over {length} time steps" if length is not None else \
            "(the sequence length is not fixed in the file)"
        record = analysis.estimate[node.id]
        scale = record.pre_activation_scale if record.pre_activation_scale is not None else 1.0
        # rho^2 above one: this SimpleRNN's recurrent kernel amplifies at every step
        trend = "grows" if layer.family.retention(layer, scale * scale) > 1.0 else "fades"
        yield Problem(
            f"'{node.path}' is an ungated SimpleRNN {known}: its gradient through time {trend} "
            "geometrically; use LSTM or GRU",
            layer=node.path, layers=[node.path], severity=severity,
            evidence={"sequence_length": length, "cell": cell_class(layer)},
            fix=structural("replace the SimpleRNN with an LSTM or GRU"))
