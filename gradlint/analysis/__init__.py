"""Analyses: what the rules read besides the graph itself.

`analyse` runs the gradient-gain estimate (from the initializers, and from the stored weights
when they were read) and the route facts once per model, so that every rule shares them. A
stored kernel whose shape does not fit its layer is ignored by the estimate, and noted on the
graph.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gradlint.analysis.routes import Routes, find_routes
from gradlint.analysis.signal import (SignalEstimate, estimate, is_weighted,
                                     stored_kernel_problem)
from gradlint.graph import Activation, ModelGraph, Node


@dataclass
class Analysis:
    """A model graph with everything the analyses found out about it."""

    graph: ModelGraph
    estimate: SignalEstimate
    weights_estimate: SignalEstimate | None
    routes: Routes
    measurements: Any = None  # the probe's, when it ran
    extra: dict = field(default_factory=dict)

    def weighted_nodes(self) -> list[Node]:
        return [node for node in self.graph.nodes if is_weighted(node.layer)]

    def node(self, node_id: int) -> Node:
        return self.graph.nodes[node_id]

    def largest(self, estimate: SignalEstimate) -> tuple:
        """(value, node, what) of the largest signal or kernel gradient in one estimate
        (the initializers' or the stored weights'): the signal entering a weighted layer,
        a kernel gradient, or an output; (None, None, None) when it has none."""
        candidates = []
        for node in self.weighted_nodes():
            record = estimate[node.id]
            if record.input_scale is not None and not node.layer.family.takes_indices:
                candidates.append((record.input_scale, node, "signal entering"))
            if record.kernel_gradient is not None:
                candidates.append((record.kernel_gradient, node, "kernel gradient of"))
        for output in self.graph.outputs:
            if estimate[output].forward_scale is not None:
                candidates.append((estimate[output].forward_scale, self.node(output),
                                   "output of"))
        return max(candidates, key=lambda item: item[0], default=(None, None, None))

    def estimate_change(self, first: Node, last: Node) -> float | None:
        """By how much (a factor, at least 1) the estimated signal entering two weighted
        layers and their kernel gradients differ: what a run of layers between them does.
        None when neither is known or one is zero (a zero is GL204's finding, not a
        ratio)."""
        a, b = self.estimate[first.id], self.estimate[last.id]
        factors = []
        for x, y in ((a.input_scale, b.input_scale), (a.kernel_gradient, b.kernel_gradient)):
            if x is None or y is None:
                continue
            if x <= 0.0 or y <= 0.0:
                return None
            factors.append(max(x / y, y / x))
        return max(factors) if factors else None

    @property
    def consumers(self) -> list[list[int]]:
        if "consumers" not in self.extra:
            self.extra["consumers"] = self.graph.consumers()
        return self.extra["consumers"]

    def effective_activation(self, node: Node) -> Activation:
        """The activation applied to a weighted layer's output: its own, or that of the
        activation layer it feeds directly (``Dense(64)`` then ``Activation("relu")``)."""
        own = node.layer.activation
        if own is not None and own.name != "linear":
            return own
        following = self.consumers[node.id]
        if len(following) == 1:
            consumer = self.graph.nodes[following[0]]
            if consumer.layer.family.applies_activation and consumer.layer.activation is not None:
                return consumer.layer.activation
        return own if own is not None else Activation("linear")

    def node_at(self, path: str) -> Node | None:
        """The node of a layer call by its path (``dense_1``, ``dense_1@1``)."""
        if "by_path" not in self.extra:
            self.extra["by_path"] = {node.path: node for node in self.graph.nodes}
        return self.extra["by_path"].get(path)

    def followed_by_normalization(self, node_id: int) -> bool:
        """Whether the node's output reaches a normalization layer before any other layer
        that mixes or weighs it (activations and reshapes in between): then normalization
        undoes the layer's scale, and the layer's own gradient size does not reach the
        loss."""
        current = node_id
        while True:
            following = self.consumers[current]
            if len(following) != 1:
                return False
            layer = self.graph.nodes[following[0]].layer
            if layer.family.normalizes:
                return True
            if not (layer.family.applies_activation or layer.family.reshapes_only):
                return False
            current = following[0]

    def signal_route(self, node_id: int) -> list[int]:
        """The nodes the largest forward signal passes on its way from an input to
        `node_id`, listed from `node_id` back to the input."""
        route = [node_id]
        current = self.graph.nodes[node_id]
        while current.inputs:
            current = self.graph.nodes[max(current.inputs,
                                           key=lambda i: self.estimate[i].forward_scale)]
            route.append(current.id)
        return route

    def gradient_route(self, node_id: int) -> list[int]:
        """The route the largest share of the gradient takes from the loss to `node_id`,
        listed from `node_id` to the output."""
        route = [node_id]
        seen = {node_id}
        current = node_id
        while self.consumers[current]:
            best = max(self.consumers[current],
                       key=lambda c: self.estimate[c].gradient or 0.0)
            if best in seen:
                break
            seen.add(best)
            route.append(best)
            current = best
        return route


def analyse(graph: ModelGraph, mode: str = "training", batch_size: int = 32) -> Analysis:
    """The analyses of `graph`, for training in `mode` at `batch_size` (the settings'
    `estimate_mode` and `batch_size`)."""
    _note_unfit_kernels(graph)
    weights_estimate = estimate(graph, "weights", mode, batch_size) if graph.weights_read \
        else None
    return Analysis(graph=graph, estimate=estimate(graph, "initializers", mode, batch_size),
                    weights_estimate=weights_estimate, routes=find_routes(graph))


def _note_unfit_kernels(graph: ModelGraph) -> None:
    """A note for each weighted layer whose stored kernel cannot be its kernel (a 1-D kernel
    for a Conv1D or an LSTM): the estimate ignores that tensor for that layer."""
    for layer in graph.layers():
        if not layer.weights or not is_weighted(layer):
            continue
        problem = stored_kernel_problem(layer)
        if problem is None:
            continue
        note = (f"layer '{layer.path}': {problem}; the estimate ignores that tensor for this "
                "layer")
        if note not in graph.notes:
            graph.notes.append(note)


__all__ = ["Analysis", "analyse", "is_weighted"]
