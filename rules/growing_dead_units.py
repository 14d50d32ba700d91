"""More and more of a ReLU layer's units die as training goes on (GradientCheck).

## What it flags
Runs only in `gradlint.keras.GradientCheck`, on the dead fraction of each ReLU layer (units
zero for every sample of a real batch, as GL904 counts them) at each checked step: a warning
when the median over the latest `window` checked steps exceeds the median over the first
ones by more than `growth-above` (0.25). The output layer is not flagged.

Measured on scikit-learn's digits (3- and 6-layer ReLU/He MLPs, batch 32, 168 steps, two
seeds): runs that train well (SGD at 0.01 to 0.1, Adam at 1e-3) grow their dead fraction by
at most 0.09 (one layer from 0.02 to 0.11); with a learning rate 100 times too high (SGD at
1.0, Adam at 0.1) layers grow by 0.24 to 0.63 (0.16 to 0.79 at worst), most of them past
0.5 within the first 100 steps. GL904 flags a layer once it is 70% dead; this rule flags
the trend before that.

## Why it hurts gradient flow
A ReLU unit that outputs zero for every input passes no gradient and never recovers (its
weights stop changing). Units die during training when large updates push their biases and
weights to where the pre-activation is negative for every input: the dying-ReLU problem that
AutoTrainer and DeepDiagnosis watch for. A dead fraction that keeps growing means the
network is losing capacity every step.

## Example
    model = keras.Sequential([keras.Input((64,)),
                              keras.layers.Dense(32, activation="relu"),
                              keras.layers.Dense(32, activation="relu"),
                              keras.layers.Dense(10, activation="softmax")])
    model.compile(keras.optimizers.SGD(learning_rate=1.0), "sparse_categorical_crossentropy")

## Use instead
A lower learning rate (see GL955), Leaky ReLU, ELU or GELU, He initialization with zero
biases, and normalization before the activation.

## Options
- `growth-above` (0.25): the rise of a layer's dead fraction that gives a warning.

## References
Zhang et al., *AUTOTRAINER*, ICSE 2021. Wardat et al., *DeepDiagnosis*, ICSE 2022. Lu et
al., *Dying ReLU and Initialization: Theory and Numerical Examples*, 2019.
"""


from gradlint.findings import Problem, span

CODE = "GL954"
NAME = "growing-dead-units"
SEVERITY = "warning"
PRECISION = "medium"
GROUPS = ("training", "activation", "vanishing")
ALIASES = ()
OPTIONS = {"growth-above": 0.25}
PROBE = True


def check(analysis, options):
    # Imported here, not at the top: every run loads this module, few measure training,
    # and gradlint.training and statistics cost 20 ms to import.
    import statistics

    from gradlint.training import training_of

    history = training_of(analysis)
    if history is None:
        return
    exempt = {analysis.measurements.reference}
    graph = analysis.graph
    if graph is not None:
        exempt.update(graph.nodes[output].path for output in graph.outputs)
    window = max(1, history.window)
    grown = []
    for path in history.activations:
        values = [value for _, value in history.trajectory(path, "dead")]
        if path in exempt or len(values) < 2 * window:
            continue
        first = statistics.median(values[:window])
        latest = statistics.median(values[-window:])
        if latest - first > options["growth-above"]:
            grown.append((latest - first, first, latest, path))
    if not grown:
        return
    growth, first, latest, path = max(grown)
    paths = [p for *_, p in grown]
    yield Problem(
        f"the dead units of '{path}' grew from {first:.0%} to {latest:.0%} of the layer "
        f"during training (by step {history.last_step}): they pass no gradient and do not "
        "come back" + (f"; {len(paths)} layers grew by more than "
                       f"{options['growth-above']:.0%}: {span(paths)}" if len(paths) > 1 else ""),
        layer=path, layers=paths,
        evidence={"first_dead_fraction": first, "latest_dead_fraction": latest,
                  "growth": growth, "layers": {p: round(g, 4) for g, _, _, p in grown}})
