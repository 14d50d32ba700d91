"""A fix applied to a copy of the model graph (never to the graph the rules read), so that
the analyses can run on the model as the fix would leave it."""

from __future__ import annotations

import dataclasses
from typing import Iterable

from gradlint import activations, initializers
from gradlint.findings import Fix
from gradlint.graph import Layer, ModelGraph

INITIALIZER_KEYS = ("kernel_initializer", "depthwise_initializer", "embeddings_initializer")


def _edited_layer(layer: Layer, setting: str, new) -> Layer:
    config = dict(layer.config)
    inner = layer.inner
    if setting == "kernel_initializer":
        parsed = initializers.parse(new)
        key = next((k for k in INITIALIZER_KEYS if config.get(k) is not None), None)
        if key is not None or inner is None:
            config[key or "kernel_initializer"] = new
        if inner is not None and key is None:
            inner = _edited_layer(inner, setting, new)
        # The stored kernel is re-drawn from the new initializer: its old statistics go.
        weights = [stats for stats in layer.weights
                   if stats.role not in ("kernel", "backward_kernel")]
        return dataclasses.replace(layer, config=config, inner=inner, kernel_initializer=parsed,
                                   weights=weights)
    if setting == "activation":
        config["activation"] = new
        activation = activations.normalize(new)
        if inner is not None and "activation" in inner.config and "activation" not in layer.config:
            inner = _edited_layer(inner, setting, new)
        return dataclasses.replace(layer, config=config, inner=inner, activation=activation)
    raise ValueError(f"no graph edit for the setting '{setting}'")


def edited_graph(graph: ModelGraph, fixes: Iterable[Fix]) -> ModelGraph:
    """A copy of `graph` with the fixes' edits, for the estimate from the initializers (its
    stored weights are left out: a fixed file's re-drawn kernels follow the initializers)."""
    layer_edits: dict[str, list] = {}
    training = graph.training
    for fix in fixes:
        for edit in fix.edits:
            if fix.scope == "layer" and edit.layer is not None:
                layer_edits.setdefault(edit.layer, []).append(edit)
            elif fix.scope == "optimizer":
                if training is None:
                    continue
                if edit.setting in ("clipnorm", "clipvalue", "global_clipnorm",
                                    "learning_rate"):
                    training = dataclasses.replace(training, **{edit.setting: edit.new})
    replaced: dict[int, Layer] = {}
    for layer in graph.layers():
        if layer.path in layer_edits:
            edited = layer
            for edit in layer_edits[layer.path]:
                edited = _edited_layer(edited, edit.setting, edit.new)
            replaced[id(layer)] = edited
    nodes = [dataclasses.replace(node, layer=replaced.get(id(node.layer), node.layer),
                                 inputs=list(node.inputs), input_shapes=list(node.input_shapes))
             for node in graph.nodes]
    return dataclasses.replace(graph, nodes=nodes, training=training, weights_read=False,
                               notes=list(graph.notes), detached_layers=[])
