"""The training loss does not go down (GradientCheck, during `model.fit`).

## What it flags
Runs only in `gradlint.keras.GradientCheck`. Once at least `min-steps` (100) steps have
run, the median batch loss of the latest `window` checked steps (the callback's `window`,
default 5) against the median of the first ones: a warning when it has fallen by less than
`drop-below` (0.1, a tenth of the first loss), or risen.

Measured on scikit-learn's digits (ReLU/He and tanh/Glorot MLPs, batch 32, two seeds each),
after 168 steps: every run that learns has lowered its loss by 40% to 95% (SGD at 0.01,
0.1, Adam at 1e-3), and 27% already at step 100 for the slowest (tanh, SGD at 0.01); SGD at
1e-4, 100 times too low, lowers it by 4% to 7%. AutoTrainer's *slow convergence* check
(an accuracy gain below 0.01 an epoch) is the same idea on the accuracy.

## Why it hurts gradient flow
A loss that stays where it started means the gradient does not reach the weights in a form
the optimizer can use: it vanished before the first layers, the units it would pass through
are saturated or dead, or the learning rate is far too low. Every later epoch costs time and
teaches nothing.

## Example
    model.compile(keras.optimizers.SGD(learning_rate=1e-5), "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=5, callbacks=[GradientCheck()])

## Use instead
Check the other findings first (GL901, GL903, GL904, GL955 usually name the cause); then a
larger learning rate, standardized inputs, and an initializer that fits the activation.

## Options
- `min-steps` (100): the training steps before the check starts.
- `drop-below` (0.1): the smallest relative fall of the loss that counts as learning.

## References
Zhang et al., *AUTOTRAINER*, ICSE 2021 (slow convergence). Wardat et al., *DeepDiagnosis*,
ICSE 2022 (loss not decreasing).
"""

import math

from gradlint.findings import Problem, number

CODE = "GL952"
NAME = "stalled-loss"
SEVERITY = "warning"
PRECISION = "medium"
GROUPS = ("training",)
ALIASES = ("loss-not-decreasing",)
OPTIONS = {"min-steps": 100, "drop-below": 0.1}
PROBE = True


def check(analysis, options):
    # Imported here, not at the top: every run loads this module, few measure training,
    # and gradlint.training and statistics cost 20 ms to import.
    import statistics

    from gradlint.training import training_of

    history = training_of(analysis)
    if history is None or history.last_step < options["min-steps"]:
        return
    losses = [loss for _, loss in history.losses() if math.isfinite(loss)]
    window = max(1, history.window)
    if len(losses) < 2 * window:
        return
    first = statistics.median(losses[:window])
    latest = statistics.median(losses[-window:])
    if first <= 0:
        return
    drop = (first - latest) / first
    if drop >= options["drop-below"]:
        return
    yield Problem(
        f"the training loss has not gone down in {history.last_step} steps: the median batch "
        f"loss is {number(latest)} against {number(first)} at the start "
        f"({'a fall of ' + format(drop, '.1%') if drop >= 0 else 'a rise of ' + format(-drop, '.1%')}"
        f", below {options['drop-below']:.0%})",
        evidence={"first_loss": first, "latest_loss": latest, "relative_drop": drop,
                  "steps": history.last_step})
