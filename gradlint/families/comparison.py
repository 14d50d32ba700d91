"""Comparisons and logical operations (Keras 3 operations stored as layers: `NotEqual`,
`Greater`, `LogicalAnd`, ...). Their output is boolean, so no gradient passes back through
them: an Embedding with ``mask_zero=True`` stores its mask as ``NotEqual(tokens, 0)``,
which feeds only the next layer's mask. Their computation is in the file, so they are no
GL002 unknowns. Forward, a 0/1 value whose share of ones the file does not give: taken as
all ones, the share a padding mask nearly has (most tokens are not padding), so a signal
multiplied by a mask keeps its scale, as it did when these layers were passed through.
"""

from __future__ import annotations

from gradlint.families import Family, Forward, Signal

CLASSES = frozenset({"Equal", "NotEqual", "Greater", "GreaterEqual", "Less", "LessEqual",
                     "LogicalAnd", "LogicalOr", "LogicalNot", "LogicalXor", "IsNan", "IsInf",
                     "IsFinite", "IsClose"})


class ComparisonFamily(Family):
    name = "comparison"
    classes = {name: "comparison" for name in CLASSES}

    def forward(self, node, inputs, context):
        return Forward(Signal(1.0, 1.0, 1.0))

    def backward(self, node, gradient, gradient_pre, inputs, forward, context):
        return [0.0] * len(node.inputs)

    def coherent_backward(self, node, backs, forward, context):
        return [0.0] * len(backs)


FAMILIES = [ComparisonFamily()]
