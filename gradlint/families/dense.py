"""Dense and EinsumDense: a matrix of weights over the last axis.

Physics in `gradlint.families.weighted` (fan_in = input units, fan_out = units).
"""

from __future__ import annotations

from gradlint.families.weighted import WeightedFamily
from gradlint.layer_catalog import (MISSING, count, shape_value, size_of, whole)


class DenseFamily(WeightedFamily):
    name = "dense"
    classes = {"Dense": "dense", "EinsumDense": "dense"}

    def expected_kernel_rank(self, layer):
        return (2, layer.class_name) if layer.class_name == "Dense" else None

    def check_config(self, class_name, config):
        if class_name == "Dense":
            units = config.get("units", MISSING)
            if not (type(units) is int and 1 <= units <= 2 ** 40):
                count("units", units)
            return
        out = config.get("output_shape")
        if isinstance(out, (list, tuple)):
            shape_value("output_shape", out, batch=False)
        elif out is not None and not isinstance(out, str):
            count("output_shape", out, 0)

    def output_shape(self, layer, inputs):
        first = inputs[0] if inputs else None
        if first is None:
            return None
        config = layer.config
        if layer.class_name == "Dense":
            units = size_of(config, "units", 0, minimum=0)
            return first[:-1] + (units,) if units is not None else None
        out = config.get("output_shape")
        if isinstance(out, int):
            out = [out]
        if not isinstance(out, (list, tuple)):
            return None
        entries = tuple(None if entry is None else whole(entry) for entry in out)
        if any(entry is None and value is not None for entry, value in zip(entries, out)):
            return None
        return (first[0],) + entries

    def kernel_shape(self, layer, input_shape):
        if layer.class_name != "Dense" or not input_shape:
            return None
        channels = input_shape[-1]
        if channels is not None and (type(channels) is not int or not 0 <= channels <= 2 ** 40):
            return None
        units = size_of(layer.config, "units", 0, minimum=0)
        return (channels, units) if channels and units is not None else None


FAMILIES = [DenseFamily()]
