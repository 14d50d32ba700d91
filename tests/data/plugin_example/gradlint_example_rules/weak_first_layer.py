"""The measured kernel gradient of the first weighted layer is a small fraction of the output layer's.

## What it flags
Runs on measurements only: with `gradlint --probe`, and in `gradlint.keras.GradientCheck`
during `model.fit` (medians over the latest checked steps). Fires when the first weighted
layer's kernel-gradient norm divided by the output layer's is below `ratio-below` (0.1).

## Why it hurts gradient flow
Under SGD a layer learns in proportion to its gradient: a first layer with a tenth of the
output layer's gradient learns ten times slower, the earliest sign of a vanishing gradient.

## Example
    keras.Sequential([keras.Input((16,))] +
                     [keras.layers.Dense(16, activation="sigmoid") for _ in range(8)] +
                     [keras.layers.Dense(2, activation="softmax")])

## Use instead
ReLU-family activations with He initialization, normalization layers, residual connections.

## Options
- `ratio-below` (0.1): the first/last kernel-gradient ratio below which the rule fires.

## References
The example plugin of docs/plugins.md; gradlint's own GL901 uses 1e-2 and 1e-3.
"""

from gradlint.findings import Problem, number

CODE = "XMP901"
NAME = "weak-first-layer-gradient"
SEVERITY = "warning"
PRECISION = "high"
GROUPS = ("probe", "vanishing", "example")
ALIASES = ()
OPTIONS = {"ratio-below": 0.1}
PROBE = True  # runs only on measurements: the probe's, or GradientCheck's during training
MEASURES = "vanishing"  # folded into a confirmed static finding that claims the same


def check(analysis, options):
    measured = analysis.measurements
    if measured is None:
        return
    ratio = measured.first_last_ratio()
    if ratio is None or ratio >= options["ratio-below"]:
        return
    first, last = measured.first_and_last()
    yield Problem(f"the measured kernel gradient of '{first.path}' is {number(ratio)} of the "
                  f"output layer '{last.path}''s, below {number(options['ratio-below'])}",
                  layer=first.path, layers=[first.path, last.path],
                  evidence={"first_last_ratio": ratio})
