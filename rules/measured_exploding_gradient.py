"""The probe measured NaN or Inf, a forward signal that blows up, or first-layer gradients far larger than the output layer's.

## What it flags
Runs only with `--probe`. Any of:

- NaN or Inf in the loss, an output, a layer's output or a kernel gradient (an error);
- the standard deviation of the signal entering some weighted layer above `forward-above`
  (1e3, an error) or `warning-forward-above` (1e2) for a standard-normal input, the measured
  counterpart of GL203's estimate;
- the first weighted layer's kernel gradient above `ratio-above` (1e3, an error) or
  `warning-ratio-above` (3e2) times the output layer's. When both are exactly zero the
  ratio is 0/0: that is no gradient at all, which GL901 reports, never an explosion.

The ratio starts at the first weighted layer whose output is not normalized: batch
statistics grow the gradient of the layers they normalize (pi / (pi - 1) per ReLU layer,
Yang et al. 2019) and undo their scale. ResNet152 (96x96, batch 32) measured above 1e3.

AutoTrainer flags a first/last ratio above 70. Measured here, keras.applications ResNet50
(`weights=None`), which trains well, has a ratio of 29 to 34 at 224x224 and 57 to 113 at
96x96 (single batches of 2 to 4 samples), with BatchNormalization in training mode as the
probe runs it; MobileNetV2, DenseNet121 and EfficientNetB0 stay below 20. The thresholds sit
above that. A 20-layer tanh MLP with `RandomNormal(stddev=0.5)` weights, in the chaotic
regime, measures 1.3e3. A ReLU MLP with `RandomNormal(stddev=0.5)` weights shows why the
ratio alone is not enough: its ratio is 0.14 while the signal entering its last layer has a
standard deviation of 1e5.

When GL203 or GL205 names the same trouble and the probe confirms it at the same or a higher
severity, this finding is left out.

## Why it hurts gradient flow
With an exploding signal or gradient the first updates overshoot, the loss turns into NaN
within a few steps and the run is lost (Pascanu et al. 2013). A NaN already present at
initialization (from stored weights, or an overflow in the forward pass) poisons every
gradient on the first batch.

## Example
    keras.Sequential([keras.Input((64,))] +
                     [keras.layers.Dense(64, activation="relu",
                                         kernel_initializer=keras.initializers.RandomNormal(stddev=0.5))
                      for _ in range(10)] + [keras.layers.Dense(10)])

## Use instead
Variance-scaling initializers (`HeNormal`, `GlorotUniform`), normalization layers, and
gradient clipping (`clipnorm=1.0`) as a safety net.

## Options
- `forward-above` (1e3), `warning-forward-above` (1e2): on the signal entering a layer.
- `ratio-above` (1e3), `warning-ratio-above` (3e2): on the first/last kernel-gradient ratio.

## References
Pascanu, Mikolov & Bengio, ICML 2013. Zhang et al., *AutoTrainer*, ICSE 2021.
"""

import math

from gradlint.findings import Problem, number

CODE = "GL902"
NAME = "measured-exploding-gradient"
SEVERITY = "error"
PRECISION = "high"
GROUPS = ("probe", "exploding")
ALIASES = ()
OPTIONS = {"forward-above": 1e3, "warning-forward-above": 1e2, "ratio-above": 1e3,
           "warning-ratio-above": 3e2}
PROBE = True
# Left out where a static finding claiming the same is confirmed (gradlint.verdicts).
MEASURES = "exploding"


def _above(value, error, warning):
    if value is None:
        return None
    if not math.isfinite(value) or value > error:
        return "error"
    if value > warning:
        return "warning"
    return None


def _normalized(analysis, path: str) -> bool:
    node = analysis.node_at(path) if analysis.graph.graph_stored else None
    return node is not None and analysis.followed_by_normalization(node.id)


def check(analysis, options):
    measured = analysis.measurements
    if measured is None:
        return
    if measured.nonfinite:
        where = measured.nonfinite
        yield Problem(
            f"the probe measured NaN or Inf in {', '.join(where[:4])}"
            f"{' …' if len(where) > 4 else ''} on the first batches",
            layer=next((w for w in where if w not in ("loss", "output")), None),
            layers=[w for w in where if w not in ("loss", "output")], severity="error",
            evidence={"nonfinite": list(where)})
        return
    largest, where = measured.largest_input_scale()
    severity = _above(largest, options["forward-above"], options["warning-forward-above"])
    if severity is not None:
        yield Problem(
            f"the measured signal entering '{where}' has standard deviation {number(largest)} "
            "for a standard-normal input: the forward signal explodes",
            layer=where, layers=[where], severity=severity,
            evidence={"largest_input_scale": largest})
        return
    first, last = measured.first_and_last()
    ratio = measured.first_last_ratio()
    if first is not None and _normalized(analysis, first.path):
        first = next((kernel for kernel in measured.weighted()
                      if kernel.gradient_norm is not None
                      and not _normalized(analysis, kernel.path)), None)
        ratio = first.relative if first is not None and first is not last else None
    severity = _above(ratio, options["ratio-above"], options["warning-ratio-above"])
    if severity is not None:
        yield Problem(
            f"the measured kernel gradient of '{first.path}' is {number(ratio)} times the "
            f"output layer '{last.path}''s ({number(first.gradient_norm)} against "
            f"{number(last.gradient_norm)})",
            layer=first.path, layers=[first.path, last.path], severity=severity,
            evidence={"first_last_ratio": ratio, "first_norm": first.gradient_norm,
                      "last_norm": last.gradient_norm})
