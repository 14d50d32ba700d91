"""The model's inputs: unit-variance, zero-mean signals, as the estimate assumes data
standardized per feature. The shape is the configured batch shape."""

from __future__ import annotations

from gradlint.families import Family, Forward, Signal
from gradlint.layer_catalog import as_shape, shape_value


class InputFamily(Family):
    name = "input"
    classes = {"InputLayer": "input"}
    is_input = True

    def check_config(self, class_name, config):
        for key in ("batch_shape", "batch_input_shape"):
            value = config.get(key)
            if value is not None:
                shape_value(key, value)

    def output_shape(self, layer, inputs):
        return as_shape(layer.config.get("batch_shape") or layer.config.get("batch_input_shape"))

    def forward(self, node, inputs, context):
        return Forward(Signal(1.0, 0.0, 0.0))


FAMILIES = [InputFamily()]
