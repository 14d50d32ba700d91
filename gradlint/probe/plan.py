"""How much the probe runs: seeds and batch size, from the model's cost.

Defaults are 3 seeds of 4 samples. A forward and backward pass costs about three times the
forward multiply-accumulates, so large models get fewer seeds first, then a smaller batch
(never below 2, so that BatchNormalization's batch statistics and the dead-unit count still
see more than one sample), until the work of all seeds fits `WORK_BUDGET`: seeds x (batch x
MACs per sample + `STEP_COST` x recurrent time steps), since a recurrent layer runs its
cell once per time step whatever the batch. Measured on the 2-core benchmark machine: one
ResNet50 pass (224x224, 3.9 GMAC per sample as counted here) costs about 1 s of CPU per
sample plus 1.3 s, so ResNet50 gets 1 seed of 2 samples (about 3.5 s of CPU); MobileNetV2
and EfficientNetB0 (0.3-0.4 GMAC) keep the full 3 x 4; a recurrent layer step costs 5 to 7 ms
of CPU in eager mode, forward and backward, so an LSTM and a SimpleRNN over 100 steps get 2
seeds and a sequence of a thousand steps 1. What the person asks for with
`--probe-seeds` and `--probe-batch` is used as given.

A model with batch-statistics layers (BatchNormalization and its aliases, in training mode)
is different: what it measures depends on the batch, so it runs at the batch size of the
settings (`batch-size`, 32 by default, the batch the static estimate assumes too) and only
its seeds are cut. Measured on a 20-layer tanh+BatchNormalization MLP (width 64): the
first/last kernel-gradient ratio is 759 at batch 4 and 8.8 at 32 (469, 10.3, 7.1 and 5.7 at
4, 16, 64 and 256 on another build, against an estimate of 5.4): the variance of four
samples' statistics, not the model, made the gradient "explode".
"""

from __future__ import annotations

import math

DEFAULT_SEEDS = 3
DEFAULT_BATCH = 4
MIN_AUTO_BATCH = 2
WORK_BUDGET = 6e9  # multiply-accumulates over every sample of every seed
STEP_COST = 1e7  # one recurrent layer time step, in multiply-accumulates of the same CPU time
DEFAULT_STEPS = 32  # a sequence length the file does not fix (as the synthetic batch uses)


def macs_per_sample(graph) -> float | None:
    """Forward multiply-accumulates per sample, from the weighted layers' kernel sizes and the
    positions they are applied at; None when the graph cannot tell."""
    if graph is None or not graph.graph_stored or not graph.nodes:
        return None
    from gradlint import layer_catalog
    from gradlint.analysis import is_weighted

    total = 0.0
    for node in graph.nodes:
        layer = node.layer
        if not is_weighted(layer):
            continue
        effective = layer.effective
        if effective.family.takes_indices:
            continue
        size = sum(stats.size for stats in layer.weights if stats.role != "bias" and
                   len(stats.shape) >= 2)
        if not size:
            input_shape = node.input_shapes[0] if node.input_shapes else None
            if layer.family.wraps and input_shape:
                input_shape = (input_shape[0],) + tuple(input_shape[2:])
            shape = effective.family.kernel_shape(effective, input_shape)
            if not shape or any(d is None for d in shape):
                continue
            size = math.prod(shape)
        if layer.family.recurrent:
            shape = node.input_shapes[0] if node.input_shapes else None
            steps = shape[1] if shape and len(shape) >= 3 and shape[1] else 32
        else:
            steps = layer_catalog.positions(node.output_shape)
        total += float(size) * float(steps)
    return total or None


def recurrent_steps(graph) -> int:
    """Time steps over all recurrent layer calls (a cell runs once per step)."""
    if graph is None:
        return 0
    total = 0
    for node in graph.nodes:
        if not node.layer.family.recurrent:
            continue
        shape = node.input_shapes[0] if node.input_shapes else None
        steps = shape[1] if shape and len(shape) >= 3 and shape[1] else DEFAULT_STEPS
        total += int(steps) * (2 if node.layer.class_name == "Bidirectional" else 1)
    return total


def plan(macs: float | None, seeds: int | None = None, batch: int | None = None,
         steps: int = 0, batch_statistics: int | None = None) -> tuple[int, int]:
    """(seeds, batch) for a model of `macs` per sample and `steps` recurrent time steps;
    explicit values are kept. `batch_statistics` is the batch a model with batch-statistics
    layers must run at (unless `batch` is given): it is never cut, only the seeds are."""
    chosen_seeds = seeds if seeds else DEFAULT_SEEDS
    chosen_batch = batch if batch else (batch_statistics or DEFAULT_BATCH)
    fixed_batch = bool(batch or batch_statistics)
    if not macs and not steps:
        return chosen_seeds, chosen_batch
    macs = macs or 0.0

    def work() -> float:
        return chosen_seeds * (macs * chosen_batch + STEP_COST * steps)

    while not seeds and chosen_seeds > 1 and work() > WORK_BUDGET:
        chosen_seeds -= 1
    # A smaller batch only saves the per-sample part of the work.
    while not fixed_batch and chosen_batch > MIN_AUTO_BATCH and work() > WORK_BUDGET and \
            chosen_seeds * macs * chosen_batch > WORK_BUDGET / 2:
        chosen_batch -= 1
    return chosen_seeds, chosen_batch
