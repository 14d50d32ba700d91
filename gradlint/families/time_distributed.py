"""TimeDistributed: the wrapped layer applied at every time step. The wrapped layer's family
does the work, on the input without its time axis; the kernel is shared over the steps."""

from __future__ import annotations

import dataclasses

from gradlint.families import Family, Forward, Signal
from gradlint.layer_catalog import bounded, positions


def inner_view(layer):
    """The wrapped layer as its family sees it: the wrapper's stored weights, activation and
    initializers (the reader puts them on the wrapper)."""
    return dataclasses.replace(layer.inner, weights=layer.weights,
                               activation=layer.activation,
                               kernel_initializer=layer.kernel_initializer,
                               bias_initializer=layer.bias_initializer)


def step_node(node):
    """The node as one time step sees it: the wrapped layer, the input without time."""
    shapes = [None if shape is None or len(shape) < 2 else (shape[0],) + tuple(shape[2:])
              for shape in node.input_shapes]
    output = node.output_shape
    return dataclasses.replace(node, layer=inner_view(node.layer), input_shapes=shapes,
                               output_shape=None if output is None or len(output) < 2 else
                               (output[0],) + tuple(output[2:]))


class TimeDistributedFamily(Family):
    name = "time_distributed"
    classes = {"TimeDistributed": "wrapper"}
    wraps = True

    def _inner(self, layer):
        return layer.inner.family if layer.inner is not None else None

    def is_weighted(self, layer):
        inner = self._inner(layer)
        return inner is not None and inner.is_weighted(layer.inner)

    def counts_for_depth(self, layer):
        inner = self._inner(layer)
        return inner is not None and inner.counts_for_depth(layer.inner)

    def applies(self, layer) -> bool:
        return self._inner(layer) is not None

    def weight_roles(self, layer, count_2d):
        inner = self._inner(layer)
        return inner.weight_roles(layer.inner, count_2d) if inner else ["kernel", "bias"]

    def output_shape(self, layer, inputs):
        first = inputs[0] if inputs else None
        inner = self._inner(layer)
        if inner is None or not first:
            return None
        inner_out = inner.output_shape(layer.inner, [(first[0],) + tuple(first[2:])])
        return bounded(first[:2] + inner_out[1:]) if inner_out else None

    def stored_kernel_problem(self, layer):
        inner = self._inner(layer)
        if inner is None or not hasattr(inner, "stored_kernel_problem"):
            return None
        return inner.stored_kernel_problem(inner_view(layer))

    def forward(self, node, inputs, context):
        inner = self._inner(node.layer)
        if inner is None:
            return Forward(inputs[0] if inputs else Signal(), passed_through=True)
        return inner.forward(step_node(node), inputs, context)

    def backward(self, node, gradient, gradient_pre, inputs, forward, context):
        inner = self._inner(node.layer)
        if inner is None:
            return [gradient] * len(node.inputs)
        return inner.backward(step_node(node), gradient, gradient_pre, inputs, forward,
                              context)

    def kernel_positions(self, node, forward=None):
        output = node.output_shape
        if output and len(output) > 2:
            return float(output[1] or 1)
        return float(positions(output))


FAMILIES = [TimeDistributedFamily()]
