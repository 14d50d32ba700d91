"""The training loss keeps going back up (GradientCheck, during `model.fit`).

## What it flags
Runs only in `gradlint.keras.GradientCheck`. The batch losses of the checked steps, averaged
over blocks of `block` (10) checked steps and divided by the first block's average: a warning
when the smoothed loss rises from one block to the next by more than `rise-above` (0.05, a
twentieth of the first loss) at least `min-rises` (3) times. This is AutoTrainer's
*oscillating loss* check (at least a fifth of the local maxima and minima of the accuracy
more than 0.03 apart), counted on the loss the callback sees at every checked step.

Measured on scikit-learn's digits (3- and 6-layer ReLU/He MLPs, batch 32, 168 steps all
checked, two seeds each): runs that train well (SGD at 0.1, Adam at 1e-3) never rise by
more than 0.049 between blocks (zero times above 0.05); with a learning rate 100 times too
high (SGD at 1.0, Adam at 0.1) the smoothed loss rises 3 to 6 times by 0.05 to 0.45. SGD at
1e-4 wanders by at most 0.039 (GL952 names it).

## Why it hurts gradient flow
A loss that falls and climbs again means each update overshoots the minimum along the
directions of steepest curvature: the gradient is there, but the steps are too long for it,
and the weights bounce instead of settling. Runs like this end worse than they would with a
smaller learning rate, or diverge into NaN (GL951).

## Example
    model.compile(keras.optimizers.Adam(learning_rate=0.1), "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=3, callbacks=[GradientCheck(every=1)])

## Use instead
A lower learning rate (GL955 says by how much), a decaying schedule, a larger batch, or
gradient clipping.

## Options
- `block` (10): the checked steps averaged into one point.
- `rise-above` (0.05): a rise between blocks that counts, relative to the first block.
- `min-rises` (3): the rises that give a warning.

## References
Zhang et al., *AUTOTRAINER*, ICSE 2021 (oscillating loss). Wardat et al., *DeepDiagnosis*,
ICSE 2022.
"""

import math

from gradlint.findings import Problem, number

CODE = "GL953"
NAME = "oscillating-loss"
SEVERITY = "warning"
PRECISION = "medium"
GROUPS = ("training",)
ALIASES = ("unstable-loss",)
OPTIONS = {"block": 10, "rise-above": 0.05, "min-rises": 3}
PROBE = True


def check(analysis, options):
    # Imported here, not at the top: every run loads this module, few measure training,
    # and gradlint.training costs 15 ms to import.
    from gradlint.training import training_of

    history = training_of(analysis)
    if history is None:
        return
    block = max(1, int(options["block"]))
    losses = [(step, loss) for step, loss in history.losses() if math.isfinite(loss)]
    points = []
    for start in range(0, len(losses) - block + 1, block):
        chunk = losses[start:start + block]
        points.append((chunk[-1][0], sum(loss for _, loss in chunk) / block))
    if len(points) < 2 or points[0][1] <= 0:
        return
    first = points[0][1]
    rises = [(step, (after - before) / first) for (_, before), (step, after)
             in zip(points, points[1:]) if (after - before) / first > options["rise-above"]]
    if len(rises) < options["min-rises"]:
        return
    largest = max(rise for _, rise in rises)
    yield Problem(
        f"the training loss went back up {len(rises)} times by more than "
        f"{options['rise-above']:.0%} of its first value (averaged over {block} checked steps; "
        f"the largest rise {number(largest)}, by step {rises[-1][0]}): the updates overshoot",
        evidence={"rises": len(rises), "largest_rise": largest,
                  "steps": [step for step, _ in rises]})
