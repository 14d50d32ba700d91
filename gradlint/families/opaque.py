"""What gradlint cannot see into: Lambda layers (stored code, never run), custom classes,
and nested models it could not flatten. The estimate passes the signal through them and
says so (GL002); their output shape is unknown, but for a Lambda's declared one."""

from __future__ import annotations

from gradlint.families import Family, Forward, Signal
from gradlint.layer_catalog import as_shape

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
        """A Lambda's declared `output_shape`, when it is a plain list (the shape after the
        batch axis, as Keras reads it); a function stored in its place is never run."""
        if not self.is_keras_lambda(layer) or \
                layer.config.get("output_shape_type", "raw") != "raw":
            return None
        declared = layer.config.get("output_shape")
        if isinstance(declared, dict) and declared.get("class_name") == "__tuple__":
            declared = (declared.get("config") or {}).get("value")
        if not isinstance(declared, (list, tuple)) or not all(
                entry is None or type(entry) is int for entry in declared):
            return None
        first = inputs[0] if inputs else None
        return as_shape([first[0] if first else None, *declared])

    def forward(self, node, inputs, context):
        return Forward(inputs[0] if inputs else Signal(), passed_through=True)


FAMILIES = [OpaqueFamily()]
