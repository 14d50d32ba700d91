"""Graph facts about the routes the gradient takes from the loss back to each layer.

`behind_learnable_scale[n]` says that every route from node n to an output passes a
learnable scale that starts small on purpose (ConvNeXt's LayerScale at 1e-6): the gradient
there is small by design, and the scale's own gradient is not, so it grows within the first
steps (Touvron et al., *Going deeper with Image Transformers*, ICCV 2021). The vanishing
rules do not judge such nodes.

`depth_to_loss[n]` is the smallest number of weighted layers on any route from node n
(inclusive) to an output: a residual `Add` or a dense `Concatenate` gives the gradient a
short route around a block, so every layer of a ResNet stays a few weighted layers from the
loss while the first layer of a plain 30-layer stack is 30 away. Depthwise convolutions do
not count: see `counts_for_depth`. `run_without_normalization`
counts the same way but restarts at every normalization layer. Both are one pass in reverse
topological order.
"""

from __future__ import annotations

from dataclasses import dataclass

from gradlint.graph import ModelGraph

UNREACHABLE = 1 << 30


@dataclass
class Routes:
    depth_to_loss: list[int]
    next_on_route: list[int | None]
    run_without_normalization: list[int]
    next_in_run: list[int | None]
    behind_learnable_scale: list[bool]

    def route(self, node_id: int, *, stop_at_normalization: bool = False) -> list[int]:
        """The node ids on the shortest route from `node_id` to an output."""
        follow = self.next_in_run if stop_at_normalization else self.next_on_route
        route = [node_id]
        current = follow[node_id]
        while current is not None:
            route.append(current)
            current = follow[current]
        return route


def counts_for_depth(layer) -> bool:
    """Weighted layers count, except depthwise convolutions: one mixes no channels and, with
    the pointwise convolution after it, replaces a single standard convolution (Howard et al.
    2017; Chollet 2017). The family decides (`Family.counts_for_depth`)."""
    return layer.family.counts_for_depth(layer)


def find_routes(graph: ModelGraph) -> Routes:
    count = len(graph.nodes)
    consumers = graph.consumers()
    outputs = set(graph.outputs)
    depth = [UNREACHABLE] * count
    next_on_route: list[int | None] = [None] * count
    run = [UNREACHABLE] * count
    next_in_run: list[int | None] = [None] * count
    behind = [False] * count
    for node in reversed(graph.nodes):
        followers = consumers[node.id]
        behind[node.id] = bool(followers) and node.id not in outputs and all(
            behind[c] or graph.nodes[c].layer.family.starts_small(graph.nodes[c].layer)
            for c in followers)
        weighted = 1 if counts_for_depth(node.layer) else 0
        best, best_next = (0, None) if node.id in outputs else (UNREACHABLE, None)
        best_run, best_run_next = (0, None) if node.id in outputs else (UNREACHABLE, None)
        for consumer in consumers[node.id]:
            if depth[consumer] < best:
                best, best_next = depth[consumer], consumer
            normalizes = graph.nodes[consumer].layer.family.normalizes
            consumer_run = 0 if normalizes else run[consumer]
            if consumer_run < best_run:
                best_run = consumer_run
                best_run_next = None if consumer_run == 0 and normalizes else consumer
        if best < UNREACHABLE:
            depth[node.id] = best + weighted
            next_on_route[node.id] = best_next
        if best_run < UNREACHABLE:
            run[node.id] = best_run + weighted
            next_in_run[node.id] = best_run_next
    return Routes(depth, next_on_route, run, next_in_run, behind)
