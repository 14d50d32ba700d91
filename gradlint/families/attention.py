"""Attention layers: MultiHeadAttention, GroupedQueryAttention (exported as
GroupQueryAttention), Attention, AdditiveAttention.

Not modelled yet: the layer passes its query's signal through and hands the gradient to
each input unchanged, and its projections get no estimate of their own. The calibration
benchmark (`bench/calibration.py`) reports attention layers as "no estimate".
"""

from __future__ import annotations

import numbers

from gradlint.families import Family
from gradlint.layer_catalog import count, size_of


class AttentionFamily(Family):
    name = "attention"
    classes = {name: "attention" for name in (
        "MultiHeadAttention", "Attention", "AdditiveAttention", "GroupQueryAttention",
        "GroupedQueryAttention")}

    def check_config(self, class_name, config):
        out = config.get("output_shape")
        if isinstance(out, (bool, numbers.Real)):
            count("output_shape", out)

    def output_shape(self, layer, inputs):
        first = inputs[0] if inputs else None
        if first is None:
            return None
        config = layer.config
        if layer.class_name.rsplit(">", 1)[-1] != "MultiHeadAttention" or \
                not isinstance(config.get("output_shape"), int):
            return first
        units = size_of(config, "output_shape")
        return first[:-1] + (units,) if units is not None else None


FAMILIES = [AttentionFamily()]
