"""Data-free calibrated initialization: each weighted layer's kernel scaled so that the
estimated second moment of its pre-activation, E[z^2], is 1 through the whole graph, the
aim of AutoInit (Bingham & Miikkulainen 2023), for every layer family gradlint's estimate
models (residual merges, normalization, attention, gates) and on any DAG.

The estimate is the same mean-field propagation the rules read (`gradlint.analysis.signal`),
run from the initializers with each layer's kernel second moment multiplied by a factor.
A layer's E[z^2] is linear in its own factor, so the factors are found by fixed-point
iteration: every pass multiplies each layer's factor by 1 / E[z^2] as the last estimate
gave it, until every E[z^2] is within `TOLERANCE` of 1 (a chain of L layers settles in at
most L passes; a residual network in a few). A layer followed by normalization is
calibrated too (normalization undoes its scale forward, but not its share of a sum).

Two entry points: `calibrate_graph` (the factors for a `ModelGraph`, no TensorFlow; used by
`gradlint fix --calibrate`, which multiplies the stored kernels by sqrt(factor) and writes
the scaled initializer into the configuration) and `calibrate_model` (a live
`keras.Model`, whose kernel variables it scales in place; it imports Keras there only).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from gradlint import initializers
from gradlint.analysis.signal import estimate
from gradlint.graph import ModelGraph

TOLERANCE = 0.02
MAX_PASSES = 200
# A factor this close to 1 is left alone, so those kernels keep their bytes.
UNCHANGED = 1e-3


def _with_factors(graph: ModelGraph, factors: dict[str, float]) -> ModelGraph:
    replaced = {}
    for layer in graph.layers():
        factor = factors.get(layer.path)
        if factor is None or layer.kernel_initializer is None:
            continue
        replaced[id(layer)] = dataclasses.replace(
            layer, kernel_initializer=initializers.scaled(layer.kernel_initializer, factor))
    nodes = [dataclasses.replace(node, layer=replaced.get(id(node.layer), node.layer))
             for node in graph.nodes]
    return dataclasses.replace(graph, nodes=nodes, weights_read=False)


def _calibrated_nodes(graph: ModelGraph) -> list:
    """The first call of each weighted layer whose kernel the estimate sizes from its
    initializer (embeddings take indices, not a signal: left out)."""
    seen, nodes = set(), []
    for node in graph.nodes:
        layer = node.layer
        if id(layer) in seen or not layer.weighted or layer.family.takes_indices:
            continue
        seen.add(id(layer))
        if layer.kernel_initializer is not None and \
                layer.kernel_initializer.kind in ("variance_scaling", "fixed", "orthogonal"):
            nodes.append(node)
    return nodes


def gain_ratio(activation, q: float) -> float:
    """chi(q) = q * E[phi'(z)^2] / E[phi(z)^2]: what a square layer at pre-activation second
    moment q does to the gradient when the next layer holds its own q (1 for ReLU and
    linear at any q; 0.15 for sigmoid at q = 1)."""
    from gradlint import activations

    moments = activations.moments(activation, q)
    return q * moments.derivative_second / moments.second if moments.second > 0 else 1.0


def critical_target(activation) -> float:
    """The pre-activation second moment a layer is calibrated to: 1, unless the layer's
    activation cannot keep the gradient there (chi(1) outside [1/2, 2]: sigmoid, hard
    sigmoid), then the q at which chi(q) = 1 (the edge of chaos of Poole et al. 2016:
    about 50 for sigmoid, whose mean of 1/2 the next layer receives as variance)."""
    if activation is None or activation.name in ("linear", "relu"):
        return 1.0
    try:
        if 0.5 <= gain_ratio(activation, 1.0) <= 2.0:
            return 1.0
        low, high = math.log(1e-3), math.log(1e4)
        below = gain_ratio(activation, math.exp(low)) < 1.0
        if below == (gain_ratio(activation, math.exp(high)) < 1.0):
            return 1.0  # no crossing: keep the forward target
        for _ in range(60):
            middle = (low + high) / 2.0
            if (gain_ratio(activation, math.exp(middle)) < 1.0) == below:
                low = middle
            else:
                high = middle
        return math.exp((low + high) / 2.0)
    except (ArithmeticError, ValueError):
        return 1.0


def _effective_activation(graph: ModelGraph, consumers, node):
    own = node.layer.activation
    if own is not None and own.name != "linear":
        return own
    following = consumers[node.id]
    if len(following) == 1:
        consumer = graph.nodes[following[0]]
        if consumer.layer.family.applies_activation and consumer.layer.activation is not None:
            return consumer.layer.activation
    return own


def _feeding_layer(graph: ModelGraph, node):
    """The weighted layer whose output reaches `node` through layers without weights that
    take one input (activations, reshapes, pooling, dropout), or None."""
    current = node
    while len(current.inputs) == 1:
        current = graph.nodes[current.inputs[0]]
        if current.layer.weighted:
            return current
        if len(current.inputs) != 1:
            return None
    return None


def calibrate_graph(graph: ModelGraph, mode: str = "training", batch_size: int = 32,
                    target: str = "critical") -> dict[str, float]:
    """{layer path: factor on E[w^2]} that brings every weighted layer's estimated
    pre-activation second moment to its target: 1 (`target="forward"`, AutoInit's aim), or
    with `target="critical"` (the default) `critical_target` of its activation (of the
    activation feeding it, for an output layer), which is 1 except for sigmoid-like
    activations, where unit variance would leave the gradient shrinking by 0.15 a layer."""
    nodes = _calibrated_nodes(graph)
    factors = {node.layer.path: 1.0 for node in nodes}
    consumers = graph.consumers()
    outputs = set(graph.outputs)
    targets = {}
    for node in nodes:
        if target == "forward":
            targets[node.id] = 1.0
        elif node.id in outputs:
            # The head keeps the gradient it sends into the layer before it at the q the
            # activation feeding it needs (sigmoid's: its logits are wide, not saturated).
            feeding = _feeding_layer(graph, node)
            targets[node.id] = critical_target(
                _effective_activation(graph, consumers, feeding)) if feeding else 1.0
        else:
            targets[node.id] = critical_target(_effective_activation(graph, consumers, node))
    for _ in range(MAX_PASSES):
        result = estimate(_with_factors(graph, factors), "initializers", mode, batch_size)
        worst = 0.0
        for node in nodes:
            scale = result[node.id].pre_activation_scale
            if scale is None or not math.isfinite(scale) or scale <= 0.0:
                continue
            q = scale * scale / targets[node.id]
            worst = max(worst, abs(math.log(q)))
            factors[node.layer.path] = min(max(factors[node.layer.path] / q, 1e-12), 1e12)
        if worst < math.log1p(TOLERANCE):
            break
    return {path: factor for path, factor in factors.items()
            if abs(math.log(factor)) > UNCHANGED}


def calibrate_file(analysis, applied, redraws: dict[str, Any], path: str, kind: str,
                   seed: int):
    """For `gradlint fix --calibrate`: the factors on the graph as the applied fixes leave
    it, and the kernels to write: re-drawn ones scaled, stored ones read and scaled.
    Returns (factors, redraws); the configuration edits are the caller's (`config_edits`)."""
    import numpy as np

    from gradlint.fix.estimate import after

    fixed = after(analysis, [finding.fix for finding in applied]).graph
    factors = calibrate_graph(fixed, analysis.estimate.mode, analysis.estimate.batch_size)
    by_path = {layer.path: layer for layer in analysis.graph.layers()}
    stored = _stored_values(path, kind, [stats.dataset for layer_path in factors
                                         for stats in by_path[layer_path].weights
                                         if stats.role in ("kernel", "backward_kernel")
                                         and stats.dataset not in redraws])
    redraws = dict(redraws)
    for layer_path, factor in factors.items():
        for stats in by_path[layer_path].weights:
            if stats.role not in ("kernel", "backward_kernel") or stats.dataset is None:
                continue
            values = redraws.get(stats.dataset, stored.get(stats.dataset))
            if values is not None:
                redraws[stats.dataset] = np.asarray(values, dtype=np.float64) * \
                    math.sqrt(factor)
    return factors, redraws


def calibration_edits(analysis, applied, factors: dict[str, float]):
    """The configuration edits that say what the calibrated kernels were drawn from: each
    layer's initializer (as the applied fixes left it) scaled by its factor."""
    from gradlint.findings import Edit, Fix
    from gradlint.rules._fixes import stored_initializer

    new_names = {edit.layer: edit.new for finding in applied if finding.fix.scope == "layer"
                 for edit in finding.fix.edits if edit.setting == "kernel_initializer"}
    edits = []
    for layer in analysis.graph.layers():
        factor = factors.get(layer.path)
        if factor is None:
            continue
        old = stored_initializer(layer)
        base = initializers.serialized_like(new_names[layer.path], old) \
            if layer.path in new_names else old
        if base is None:
            base = initializers.serialized_like("glorot_uniform", {"class_name": "x"})
        new = initializers.scaled_config(base, factor)
        if new is not None:
            edits.append(Edit("kernel_initializer", initializers.snake_name(base),
                              new, layer=layer.path))
    return Fix(scope="layer", description="calibrated initialization", edits=edits,
               quantity=None)


def _stored_values(path: str, kind: str, names: list[str]) -> dict[str, Any]:
    import h5py
    import numpy as np

    from gradlint.readers import KERAS_ARCHIVE

    names = [name for name in names if name]
    if not names:
        return {}
    if kind == KERAS_ARCHIVE:
        import io
        import zipfile

        with zipfile.ZipFile(path) as archive:
            handle = h5py.File(io.BytesIO(archive.read("model.weights.h5")), "r")
    else:
        handle = h5py.File(path, "r")
    with handle:
        return {name: np.asarray(handle[name][()]) for name in names}


def calibrate_model(model, mode: str = "training", batch_size: int = 32,
                    target: str = "critical") -> dict[str, float]:
    """Scale a live `keras.Model`'s kernels in place (each by sqrt(factor)) so that every
    weighted layer's estimated pre-activation second moment is 1. Returns the factors on
    E[w^2] by layer path. Imports Keras (through the model) only here."""
    from gradlint.readers.live_model import read_live_model

    graph = read_live_model(model, read_weights=False)
    factors = calibrate_graph(graph, mode, batch_size, target)
    for layer_path, factor in factors.items():
        layer = _find_layer(model, layer_path)
        if layer is None:
            continue
        for variable in _kernels(layer):
            variable.assign(variable.numpy() * math.sqrt(factor))
    return factors


def _find_layer(model, path: str):
    current = model
    for part in path.split("/"):
        try:
            current = current.get_layer(part)
        except (ValueError, AttributeError):
            return None
    return current


def _kernels(layer) -> list:
    """The layer's main kernel variables (a Bidirectional's two), not recurrent kernels,
    biases or normalization parameters."""
    found = []
    for variable in layer.trainable_weights:
        name = getattr(variable, "path", None) or variable.name
        base = str(name).split("/")[-1].split(":")[0]
        if base in ("kernel", "depthwise_kernel"):
            found.append(variable)
    return found
