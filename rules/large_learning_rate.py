"""A saved optimizer whose learning rate is above what its optimizer family tolerates.

## What it flags
The learning rate in the saved compile configuration (a schedule's largest rate, for
schedules) when it exceeds the limit for its family:

| family | optimizers | limit | where the limit comes from |
|---|---|---|---|
| Adam | Adam, AdamW, Adamax, Nadam, Lamb, Lion | 1e-2 | ten times Adam's published default of 1e-3 (Kingma & Ba 2015) |
| RMSprop | RMSprop | 1e-2 | ten times its usual 1e-3 (Hinton's lecture notes; Keras default) |
| SGD | SGD | 1e-1 | He et al. 2016 start ResNets at 0.1 with batch normalization |
| Adagrad | Adagrad | 1e-1 | ten times the common 1e-2 |
| Adadelta | Adadelta | 1.0 | Zeiler 2012 uses no learning rate, i.e. 1.0 |

## Why it hurts gradient flow
An update larger than the curvature allows overshoots: the loss oscillates or diverges and
the gradients grow from step to step, which is how exploding gradients usually show up in a
model whose initialization was fine. Adaptive optimizers normalize the step to about the
learning rate per parameter, so a rate of 0.1 moves every weight by 0.1 at once.

## Example
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.1), loss="mse")

## Use instead
Start at the family's usual rate (Adam 1e-3, SGD with momentum 1e-2 to 1e-1) and use a
learning-rate finder or a warm-up schedule to go higher.

## Options
- `adam-limit` (1e-2), `rmsprop-limit` (1e-2), `sgd-limit` (1e-1), `adagrad-limit` (1e-1),
  `adadelta-limit` (1.0).
"""

from gradlint.findings import Edit, Fix, Problem, number

CODE = "GL403"
NAME = "large-learning-rate"
SEVERITY = "warning"
PRECISION = "medium"
GROUPS = ("optimizer", "exploding")
ALIASES = ()
OPTIONS = {"adam-limit": 1e-2, "rmsprop-limit": 1e-2, "sgd-limit": 1e-1,
           "adagrad-limit": 1e-1, "adadelta-limit": 1.0}
# About how training will go: the probe does not train, so it gives this no verdict.
CLAIMS = None

FAMILIES = {
    "adam": "adam", "adamw": "adam", "adamax": "adam", "nadam": "adam", "lamb": "adam",
    "lion": "adam", "rmsprop": "rmsprop", "sgd": "sgd", "adagrad": "adagrad",
    "adadelta": "adadelta",
}


def check(analysis, options):
    training = analysis.graph.training
    if training is None or training.optimizer is None or training.learning_rate is None:
        return
    family = FAMILIES.get(training.optimizer.lower())
    if family is None:
        return
    limit = options[f"{family}-limit"]
    # Rates are often stored as float32: 0.1 comes back as 0.10000000149.
    if training.learning_rate <= limit * (1.0 + 1e-6):
        return
    schedule = f" (the largest rate of its {training.learning_rate_schedule})" \
        if training.learning_rate_schedule else ""
    yield Problem(
        f"the saved {training.optimizer} optimizer uses learning rate "
        f"{number(training.learning_rate)}{schedule}, above {number(limit)} for its family",
        evidence={"optimizer": training.optimizer, "learning_rate": training.learning_rate,
                  "limit": limit},
        fix=Fix(scope="optimizer", description=f"lower the learning rate to {number(limit)}",
                edits=[Edit("learning_rate", training.learning_rate, limit)], quantity=None)
        if not training.learning_rate_schedule else
        Fix(scope="optimizer", description=f"lower the schedule's rates to {number(limit)} "
                                           "or below", automatic=False,
            reason="the rate comes from a schedule", quantity=None))
