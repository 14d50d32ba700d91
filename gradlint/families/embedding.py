"""Embedding: a lookup table. Its output is a row of the table, so its second moment is the
table's E[w^2] whatever the input; no gradient flows to the indices. The probe feeds its
input integer indices within the vocabulary. Its kernel's gradient is the rows the batch
looked up: positions x output_dim entries, each the gradient at one position."""

from __future__ import annotations

from gradlint.families import Forward, Signal
from gradlint.families.weighted import WeightedFamily, settled
from gradlint.layer_catalog import MISSING, count, size_of


class EmbeddingFamily(WeightedFamily):
    name = "embedding"
    classes = {"Embedding": "embedding"}
    takes_indices = True
    kernel_rank = 2

    def counts_for_depth(self, layer):
        return True

    def check_config(self, class_name, config):
        count("input_dim", config.get("input_dim", MISSING))
        count("output_dim", config.get("output_dim", MISSING))

    def output_shape(self, layer, inputs):
        first = inputs[0] if inputs else None
        if first is None:
            return None
        output_dim = size_of(layer.config, "output_dim", 0, minimum=0)
        return first + (output_dim,) if output_dim is not None else None

    def kernel_shape(self, layer, input_shape):
        input_dim = size_of(layer.config, "input_dim", 0, minimum=0)
        output_dim = size_of(layer.config, "output_dim", 0, minimum=0)
        if input_dim is None or output_dim is None:
            return None
        return (input_dim, output_dim)

    def fans(self, layer, shape):
        # The kernel gradient's entries are the rows a batch looks up, one row of
        # output_dim entries per position, not the whole table: counting every row put
        # BERT's token embedding (1,000 rows) three decades high.
        return 1.0, float(shape[-1]), float(shape[-1])

    def kernel_square(self, node, forward, signal_in, gradient_pre):
        """Each position's gradient lands on the row its index picks (a one-hot input)."""
        return super().kernel_square(node, forward, Signal(1.0, 0.0, 0.0), gradient_pre)

    def forward(self, node, inputs, context):
        kernel = self.kernel(node.layer, node, context)
        if kernel is None:
            return Forward(inputs[0] if inputs else Signal(), passed_through=True)
        mean = kernel.weight_mean
        second = settled(kernel.weight)
        return Forward(Signal(second, mean, min(mean * mean, second)), pre_activation=second,
                       slope=1.0, kernel=kernel, slope_mean=1.0)

    def backward(self, node, gradient, gradient_pre, inputs, forward, context):
        return [0.0] * len(node.inputs)


FAMILIES = [EmbeddingFamily()]
