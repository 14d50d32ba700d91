"""What gradlint cannot see into: Lambda layers (stored code, never run), custom classes,
and nested models it could not flatten. The estimate passes the signal through them and
says so (GL002); their output shape is unknown."""

from __future__ import annotations

from gradlint.families import Family, Forward, Signal

MODEL_CLASSES = frozenset({"Functional", "Model", "Sequential"})


class OpaqueFamily(Family):
    name = "opaque"
    classes = {"Lambda": "opaque"}
    unknown = True
    fallback = True

    def covers(self, class_name, config):
        return True

    def kind_of_layer(self, class_name, config):
        name = class_name.rsplit(">", 1)[-1]
        if name in self.classes:
            return self.classes[name]
        if name in MODEL_CLASSES or "layers" in config:
            return "model"
        return "unknown"

    def is_keras_lambda(self, layer):
        return layer.class_name.rsplit(">", 1)[-1] in self.classes

    def is_model(self, layer):
        return self.kind_of_layer(layer.class_name, layer.config) == "model"

    def unknown_what(self, layer):
        return "a Lambda layer" if layer.class_name.rsplit(">", 1)[-1] in self.classes else \
            "a custom layer"

    def unknown_class(self, class_name, config):
        return self.kind_of_layer(class_name, config) == "unknown"

    def understood_class(self, class_name, config):
        return class_name.rsplit(">", 1)[-1] in self.classes

    def output_shape(self, layer, inputs):
        return None

    def forward(self, node, inputs, context):
        return Forward(inputs[0] if inputs else Signal(), passed_through=True)


FAMILIES = [OpaqueFamily()]
