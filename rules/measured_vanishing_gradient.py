"""The probe measured the gradient vanishing before it reaches the first layers, or the forward signal collapsing.

## What it flags
Runs only with `--probe`, on the gradients measured on a synthetic batch (medians over the
probe's seeds). Any of these fires:

- no gradient at all: the first weighted layer's and the output layer's kernel gradients
  both exactly zero (an error; their ratio is 0/0, which is no gradient, not an explosion);
- the first weighted layer's kernel-gradient norm relative to the output layer's (the
  first/last ratio) below `ratio-below` (1e-3) while the first layer's norm itself is below
  `norm-below` (1e-4): an error, AutoTrainer's criterion; a ratio below
  `warning-ratio-below` (1e-2) alone is a warning;
- the standard deviation of the signal entering the output layer below `forward-below`
  (1e-3) of the standard-normal input (an error) or below `warning-forward-below` (1e-2): the
  forward signal has collapsed on the way. A ratio alone misses this: on a 30-layer ReLU MLP
  with Glorot init the first/last ratio measures 1.7 while every kernel gradient is about
  3e-4 and the signal reaching the output is 2e-5, because each kernel gradient is the
  product of the forward signal and the backward gradient.

Measured on the models keras.applications builds with `weights=None` (96x96 inputs, 10 or
1000 classes): the first/last ratios are 57 to 73 (ResNet50), 14 to 18 (MobileNetV2), 13 to
14 (DenseNet121) and 1.5 to 14 (EfficientNetB0), and the signal entering their output layers
0.16 to 0.34 (ResNet50 at 224x224 with 2 samples: 0.12), far from either threshold; a
10-layer sigmoid MLP measures a ratio of 1.2e-6.

When a static finding (GL101, GL201, GL202, GL301, GL302) names the same trouble and the probe
confirms it at the same or a higher severity, this finding is left out: the static finding
carries the measured numbers in its verdict.

## Why it hurts gradient flow
A kernel gradient a thousand times smaller than the output layer's means the first layers
learn a thousand times slower under SGD, and with a small absolute norm adaptive optimizers
stall too once the gradient nears their epsilon. A collapsed forward signal means the output
barely depends on the input at all. AutoTrainer (Zhang et al. 2021) and DeepDiagnosis
(Wardat et al. 2022) diagnose vanishing gradients from these same measurements during
training; the probe takes them before the first step.

## Example
    model = keras.Sequential([keras.Input((64,))] +
                             [keras.layers.Dense(64, activation="sigmoid") for _ in range(10)] +
                             [keras.layers.Dense(10, activation="softmax")])

## Use instead
ReLU-family activations with `HeNormal` init, normalization layers (`BatchNormalization`,
`LayerNormalization`) and residual connections; for a collapsed signal, an initializer whose
variance fits the fan-in.

## Options
- `ratio-below` (1e-3) and `norm-below` (1e-4): the error criterion on the first/last ratio
  and the first layer's norm (AutoTrainer's defaults).
- `warning-ratio-below` (1e-2): a warning on the ratio alone.
- `forward-below` (1e-3), `warning-forward-below` (1e-2): on the signal entering the output
  layer.
- `adaptive-factor` (0.1): as in GL201: under an optimizer that adapts its step sizes
  (Adam and kin) both thresholds of the ratio and of the signal are multiplied by it, and
  without a compile configuration the error thresholds are (on digits, an MLP whose signal
  reaches the output at an estimated 4e-5 still trains to 83% with Adam, `bench/adaptive_optimizer.py`).
  keras.applications VGG19 at 96x96, saved without one, measures a signal below 1e-3 at its
  output: a warning.

## References
Zhang et al., *AutoTrainer: An Automatic DNN Training Problem Detection and Repair System*,
ICSE 2021. Wardat et al., *DeepDiagnosis*, ICSE 2022. Glorot & Bengio, AISTATS 2010.
"""

from gradlint.findings import Problem, adaptive_thresholds, number

CODE = "GL901"
NAME = "measured-vanishing-gradient"
SEVERITY = "error"
PRECISION = "high"
GROUPS = ("probe", "vanishing")
ALIASES = ()
OPTIONS = {"ratio-below": 1e-3, "norm-below": 1e-4, "warning-ratio-below": 1e-2,
           "forward-below": 1e-3, "warning-forward-below": 1e-2, "adaptive-factor": 0.1}
PROBE = True
# Left out where a static finding claiming the same is confirmed (gradlint.verdicts).
MEASURES = "vanishing"


def check(analysis, options):
    measured = analysis.measurements
    if measured is None:
        return
    first, last = measured.first_and_last()
    if measured.gradient_absent():
        yield Problem(
            f"no gradient reaches the weighted layers: the measured kernel gradients of "
            f"'{first.path}' and of the output layer '{last.path}' are exactly zero",
            layer=first.path, layers=[first.path, last.path], severity="error",
            evidence={"first_norm": first.gradient_norm, "last_norm": last.gradient_norm,
                      "first_last_ratio": None})
        return
    ratio = measured.first_last_ratio()
    if ratio is not None:
        severity = None
        error_below, warning_below = adaptive_thresholds(analysis, options, "ratio-below",
                                                         "warning-ratio-below")
        if ratio < error_below and first.gradient_norm < options["norm-below"]:
            severity = "error"
        elif ratio < warning_below:
            severity = "warning"
        if severity is not None:
            yield Problem(
                f"the measured kernel gradient of '{first.path}' is {number(ratio)} of the "
                f"output layer '{last.path}''s ({number(first.gradient_norm)} against "
                f"{number(last.gradient_norm)}): the gradient vanishes before the first layers",
                layer=first.path, layers=[first.path, last.path], severity=severity,
                evidence={"first_last_ratio": ratio, "first_norm": first.gradient_norm,
                          "last_norm": last.gradient_norm,
                          "first_gradient_to_weight": first.gradient_to_weight})
            return
    scale = measured.head_input_scale()
    if scale is None or last is None:
        return
    error_below, warning_below = adaptive_thresholds(analysis, options, "forward-below",
                                                     "warning-forward-below")
    severity = "error" if scale < error_below else "warning" if scale < warning_below else None
    if severity is None:
        return
    largest = max((k.gradient_to_weight for k in measured.weighted()
                   if k.gradient_to_weight is not None), default=None)
    yield Problem(
        f"the measured forward signal collapses: the input to '{last.path}' has standard "
        f"deviation {number(scale)} for a standard-normal input, so every kernel gradient is "
        f"tiny (the largest gradient-to-weight ratio is {number(largest)})",
        layer=last.path, layers=[last.path], severity=severity,
        evidence={"output_input_scale": scale, "largest_gradient_to_weight": largest,
                  "first_last_ratio": ratio})
