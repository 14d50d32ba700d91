"""A custom layer for the probe's tests: `--custom-objects probe_custom_layers` imports this
module, whose registration lets Keras load a model that uses the layer.

`ScaledDense` is a dense layer whose output is multiplied by a fixed factor. The static
analysis cannot see inside it (GL002 treats it as a pass-through); the probe measures it.
With a factor of 1e-3 in each of a few layers, the signal collapses where no static rule
can tell.
"""

from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="gradlint_tests")
class ScaledDense(keras.layers.Layer):
    def __init__(self, units: int, factor: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.factor = factor

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units),
                                      initializer="glorot_uniform", name="kernel")

    def call(self, inputs):
        return keras.ops.matmul(inputs, self.kernel) * self.factor

    def get_config(self):
        return {**super().get_config(), "units": self.units, "factor": self.factor}
