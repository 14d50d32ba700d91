"""TensorFlow operations that tf-keras stored as layers (`TFOpLambda`, `SlicingOpLambda`):
``x + y`` in a Functional model becomes a TFOpLambda whose config names the function
(``math.add``, ``__operators__.add``, ``nn.relu`` ...). The function is recognised by that
name only, never run: a sum of two tensors acts as an `Add` (a residual connection), a
product of two as a `Multiply`, an activation function as that activation. A product with a
constant, or any other operation, passes the signal through and leaves the output shape
unknown, as an opaque layer does, except that elementwise ones keep their input's shape.
"""

from __future__ import annotations

from gradlint.families import Family, Forward, Signal
from gradlint.families.activation import ActivationFamily
from gradlint.families.merge import MergeFamily
from gradlint.graph import Activation

SUMS = frozenset({"math.add", "__operators__.add", "add", "math.add_n", "math.subtract",
                  "__operators__.sub", "subtract"})
PRODUCTS = frozenset({"math.multiply", "__operators__.mul", "multiply"})
ACTIVATIONS = {"nn.relu": "relu", "math.sigmoid": "sigmoid", "nn.sigmoid": "sigmoid",
               "math.tanh": "tanh", "nn.tanh": "tanh", "nn.relu6": "relu6", "nn.elu": "elu",
               "nn.selu": "selu", "nn.gelu": "gelu", "nn.silu": "swish", "nn.swish": "swish",
               "math.softplus": "softplus", "nn.softplus": "softplus", "nn.softsign": "softsign",
               "nn.leaky_relu": "leaky_relu", "nn.softmax": "softmax", "math.softmax": "softmax"}
ELEMENTWISE = SUMS | PRODUCTS | frozenset(ACTIVATIONS) | frozenset({
    "math.truediv", "__operators__.truediv", "math.negative", "math.abs", "math.square",
    "math.sqrt", "math.exp", "math.log", "identity", "cast"})

_MERGE = MergeFamily()
_ACTIVATION = ActivationFamily()


def function_of(layer) -> str:
    value = layer.config.get("function")
    return value if isinstance(value, str) else ""


class TensorFlowOpFamily(Family):
    name = "tf_op"
    classes = {"TFOpLambda": "opaque", "SlicingOpLambda": "opaque"}

    def kind_of_layer(self, class_name, config):
        function = config.get("function")
        if function in SUMS:
            return "add"
        if function in PRODUCTS:
            return "multiply"
        if function in ACTIVATIONS:
            return "activation"
        return "opaque"

    def _role(self, node) -> str | None:
        function = function_of(node.layer)
        if function in SUMS and len(node.inputs) >= 2:
            return "sum"
        if function in PRODUCTS and len(node.inputs) >= 2:
            return "product"
        if function in ACTIVATIONS:
            return "activation"
        return None

    def sums(self, layer):
        return function_of(layer) in SUMS

    def multiplies(self, layer):
        return function_of(layer) in PRODUCTS

    def is_keras_lambda(self, layer):
        return True

    def unknown_what(self, layer):
        return "a Lambda layer"

    def understood(self, layer):
        return function_of(layer) in SUMS | PRODUCTS or function_of(layer) in ACTIVATIONS

    def activation_of(self, layer) -> Activation | None:
        name = ACTIVATIONS.get(function_of(layer))
        return Activation(name) if name else None

    def output_shape(self, layer, inputs):
        if function_of(layer) in ELEMENTWISE:
            return _MERGE.output_shape(_as_add(layer), inputs) if len(inputs) > 1 else \
                (inputs[0] if inputs else None)
        return None

    def forward(self, node, inputs, context):
        role = self._role(node)
        if role == "sum":
            signs = [1.0] + [-1.0 if "sub" in function_of(node.layer) else 1.0] * \
                (len(inputs) - 1)
            from gradlint.families.merge import _sum

            return Forward(_sum(inputs, signs))
        if role == "product":
            return _MERGE.forward(_with_class(node, "Multiply"), inputs, context)
        if role == "activation":
            return _ACTIVATION.forward(node, inputs, context)
        return Forward(inputs[0] if inputs else Signal(), passed_through=True)

    def backward(self, node, gradient, gradient_pre, inputs, forward, context):
        role = self._role(node)
        if role == "product":
            return _MERGE.backward(_with_class(node, "Multiply"), gradient, gradient_pre,
                                   inputs, forward, context)
        if role == "sum":
            return _MERGE.backward(_with_class(node, "Add"), gradient, gradient_pre,
                                   inputs, forward, context)
        if role == "activation":
            return [gradient_pre] + [0.0] * (len(node.inputs) - 1)
        return [gradient] * len(node.inputs)


def _as_add(layer):
    import dataclasses

    return dataclasses.replace(layer, class_name="Add")


def _with_class(node, class_name: str):
    import dataclasses

    return dataclasses.replace(node, layer=dataclasses.replace(node.layer,
                                                               class_name=class_name))


FAMILIES = [TensorFlowOpFamily()]
