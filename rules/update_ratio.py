"""The weight updates are far larger or far smaller than the weights can take: the learning rate is off (GradientCheck).

## What it flags
Runs only in `gradlint.keras.GradientCheck`, on each kernel's update-to-weight ratio (the norm
of what one optimizer step changed, over the kernel's norm before the step) at each checked
step, as medians over the latest `window` checked steps (the callback's `window`, 5):

- too high: the median over the layers above `warning-above` (3e-2) or `error-above` (1e-1);
- too low: even the layer that moves most stays below `warning-below` (1e-4), while the loss
  is still above half of where it started (a model that has converged takes small steps on
  purpose, and so does one whose gradient vanishes, which GL901 names).

The usual rule of thumb is a ratio of about 1e-3. Measured on scikit-learn's digits (ReLU/He,
tanh/Glorot, 3 to 6 layers, batch 32, 168 steps, two seeds each): runs that train well (SGD
at 0.01 to 0.1, Adam at 1e-3) have a median ratio of 1e-3 to 1.4e-2 (the highest over the
first five steps of SGD at 0.1) and their fastest layer never falls below 4.8e-4; SGD at
1.0 and Adam at 0.1, 100 times too high, measure 0.15 to 0.22 over their first five steps
and 3e-2 to 9e-2 up to step 30; SGD at 1e-4, 100 times too low, 2e-5 to 5.5e-5.

## Why it hurts gradient flow
An update of a tenth of the weight's size per step overshoots: the loss oscillates or
diverges, ReLU units die (GL954) and the gradients explode into NaN (GL951). An update of
1e-5 of the weight means the weights, and so the loss, barely change over thousands of
steps. Both read a healthy gradient wrong: the learning rate, not the gradient, is at fault.

## Example
    model.compile(keras.optimizers.SGD(learning_rate=1.0), "sparse_categorical_crossentropy")
    model.fit(x, y, callbacks=[GradientCheck()])

## Use instead
Scale the learning rate by the measured ratio towards 1e-3 (the update is proportional to
it for SGD; roughly so for Adam), a warm-up schedule for the first steps, and gradient
clipping as a safety net.

## Options
- `warning-above` (3e-2), `error-above` (1e-1): on the median ratio over the layers.
- `warning-below` (1e-4): on the largest ratio over the layers.

## References
Zhang et al., *AUTOTRAINER*, ICSE 2021 (improper learning rate, judged there from the loss).
Wardat et al., *DeepDiagnosis*, ICSE 2022 (learning rate too high or too low). Karpathy,
*CS231n: Neural Networks Part 3* (the ratio of about 1e-3).
"""

import math

from gradlint.findings import Problem, number

CODE = "GL955"
NAME = "abnormal-update-ratio"
SEVERITY = "warning"
PRECISION = "high"
GROUPS = ("training", "optimizer")
ALIASES = ("learning-rate-off",)
OPTIONS = {"warning-above": 3e-2, "error-above": 1e-1, "warning-below": 1e-4}
PROBE = True


def _learning_rate(history) -> str:
    if history.learning_rate is None:
        return f"the {history.optimizer or 'optimizer'}'s learning rate"
    return f"{history.optimizer or 'the optimizer'}'s learning rate {number(history.learning_rate)}"


def check(analysis, options):
    # Imported here, not at the top: every run loads this module, few measure training,
    # and gradlint.training and statistics cost 20 ms to import.
    import statistics

    from gradlint.training import training_of

    history = training_of(analysis)
    if history is None or not history.records:
        return
    window = max(1, history.window)
    recent = history.records[-window:]
    ratios = {}
    for path in history.order:
        values = [r.update_ratio(path) for r in recent]
        values = [v for v in values if v is not None and math.isfinite(v)]
        if values and path not in history.embeddings:
            ratios[path] = statistics.median(values)
    if not ratios:
        return
    typical = statistics.median(ratios.values())
    evidence = {"median_update_ratio": typical, "learning_rate": history.learning_rate,
                "optimizer": history.optimizer, "layers": {p: float(f"{v:.4g}")
                                                          for p, v in ratios.items()}}
    if typical > options["warning-above"]:
        severity = "error" if typical > options["error-above"] else "warning"
        yield Problem(
            f"each step changes the kernels by {number(typical)} of their size (the median over "
            f"{len(ratios)} layers, about 1e-3 is usual): {_learning_rate(history)} is too "
            "high, the updates overshoot", severity=severity, evidence=evidence)
        return
    fastest_path = max(ratios, key=ratios.get)
    fastest = ratios[fastest_path]
    losses = [loss for _, loss in history.losses() if math.isfinite(loss)]
    learning = len(losses) >= 2 * window and statistics.median(losses[-window:]) < \
        0.5 * statistics.median(losses[:window])
    if fastest < options["warning-below"] and not learning:
        yield Problem(
            f"each step changes the kernels by at most {number(fastest)} of their size "
            f"('{fastest_path}'; about 1e-3 is usual): {_learning_rate(history)} is too low, "
            "the weights barely move", layer=fastest_path,
            evidence=dict(evidence, largest_update_ratio=fastest))
