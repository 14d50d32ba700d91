"""The training loss turned NaN or Inf (GradientCheck, during `model.fit`).

## What it flags
Runs only in `gradlint.keras.GradientCheck`, on the loss of each checked training step: the
first step whose batch loss is NaN or infinite. A NaN in the weights stays there, so a loss
that went bad between two checked steps is caught at the next one.

## Why it hurts gradient flow
A NaN or infinite loss gives NaN gradients, the optimizer writes them into every weight, and
from then on the run computes nothing: every later loss and gradient is NaN too. It is the
end point of an exploding gradient (a learning rate too high, no clipping, an unnormalized
input or target) or of a numerical fault (the log of zero in a hand-written loss, a division
by zero). AutoTrainer (Zhang et al. 2021) and DeepDiagnosis (Wardat et al. 2022) both stop
on it at once: it is the one training signal with no threshold to choose.

## Example
    model.compile(keras.optimizers.SGD(learning_rate=100.0), "mse")
    model.fit(x, y, callbacks=[GradientCheck()])

## Use instead
A learning rate the optimizer family tolerates, gradient clipping (`clipnorm=1.0`),
standardized inputs and targets, and the library's own numerically stable losses
(`from_logits=True` instead of a softmax followed by a log).

## Options
None.

## References
Zhang et al., *AUTOTRAINER: An Automatic DNN Training Problem Detection and Repair System*,
ICSE 2021. Wardat, Cruz & Rajan, *DeepDiagnosis*, ICSE 2022.
"""

import math

from gradlint.findings import Problem

CODE = "GL951"
NAME = "non-finite-loss"
SEVERITY = "error"
PRECISION = "very-high"
GROUPS = ("training", "exploding")
ALIASES = ("nan-loss",)
OPTIONS = {}
PROBE = True


def check(analysis, options):
    # Imported here, not at the top: every run loads this module, few measure training,
    # and gradlint.training costs 15 ms to import.
    from gradlint.training import training_of

    history = training_of(analysis)
    if history is None:
        return
    for record in history.records:
        if record.loss is not None and not math.isfinite(record.loss):
            yield Problem(
                f"the training loss is {record.loss} at step {record.step} (epoch "
                f"{record.epoch + 1}): every gradient and weight after it is NaN",
                evidence={"first_step": record.step, "loss": str(record.loss)})
            return
