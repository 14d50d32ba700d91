"""Layers that change neither a value's scale nor its gradient's: reshaping, padding,
cropping, masking, preprocessing lookups, and the noise layers, which in training mode
scale the signal:

- Dropout(p) (and SpatialDropout) keeps a unit with probability 1 - p and divides it by
  1 - p, so E[x^2] grows by 1 / (1 - p), and so does the gradient's second moment;
  GaussianDropout(p) multiplies by N(1, p / (1 - p)): the same factor;
- GaussianNoise(s) adds s^2 to the varying part;
- AlphaDropout keeps the moments (Klambauer et al. 2017).
In inference mode they are the identity.
"""

from __future__ import annotations

import math

from gradlint.families import Family, Forward, Signal
from gradlint.layer_catalog import MAX_SIZE, MAX_SIZE_TEXT, ConfigValueError, border_pairs, \
    channels_last, problem, real, shown, whole

CLASSES = frozenset({
    "Flatten", "Reshape", "Permute", "Dropout", "SpatialDropout1D", "SpatialDropout2D",
    "SpatialDropout3D", "GaussianDropout", "GaussianNoise", "AlphaDropout",
    "ActivityRegularization", "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D",
    "Cropping1D", "Cropping2D", "Cropping3D", "Masking", "Identity", "Resizing",
    "CenterCrop", "RandomFlip", "RandomRotation", "RandomZoom", "RandomTranslation",
    "RandomContrast", "RandomCrop", "RandomBrightness", "CategoryEncoding", "Hashing",
    "StringLookup", "IntegerLookup", "TextVectorization", "Discretization",
    "AutoContrast", "Equalization", "Solarization", "RandomGrayscale",
    # Keras 3 operations that pick part of a tensor (`x[:, 0, :]`, ops.slice), or change
    # only its dtype
    "GetItem", "Slice", "Cast",
})
# Pass-through layers that change the shape: the borders they add or remove, the spatial
# size they resize or crop to (height and width in the config); the rest (a selection's
# indices) the config alone does not give here.
BORDERS = {f"ZeroPadding{rank}D": ("padding", 1) for rank in (1, 2, 3)}
BORDERS.update({f"Cropping{rank}D": ("cropping", -1) for rank in (1, 2, 3)})
RESIZED = frozenset({"Resizing", "CenterCrop", "RandomCrop"})
SHAPE_CHANGING = frozenset(BORDERS) | RESIZED | {"GetItem", "Slice"}
# Layers that keep part of their input: the gradient reaches only the elements they keep,
# so its second moment per input element is (kept / all) of the output's. A BERT pooler
# reads the [CLS] position, x[:, 0, :]: counting the gradient at all 32 positions put the
# transformer's feed-forward kernels 0.8 decades high.
SELECTIONS = frozenset({"Cropping1D", "Cropping2D", "Cropping3D", "CenterCrop", "RandomCrop",
                        "GetItem", "Slice"})
DROPOUT = frozenset({"Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D",
                     "GaussianDropout"})


class PassThroughFamily(Family):
    name = "pass_through"
    classes = {name: "pass_through" for name in CLASSES}
    reshapes_only = True

    def check_config(self, class_name, config):
        if class_name == "Reshape":
            target = config.get("target_shape")
            if target is not None:
                _check_target_shape(target)
        elif class_name == "Permute":
            dims = config.get("dims")
            if dims is not None:
                if not isinstance(dims, (list, tuple)):
                    raise problem("dims", "a list of positive whole numbers", dims)
                for entry in dims:
                    if whole(entry) is None or not 1 <= whole(entry) <= MAX_SIZE:
                        raise problem("dims", "a list of positive whole numbers", dims)

    def output_shape(self, layer, inputs):
        first = inputs[0] if inputs else None
        name = layer.class_name.rsplit(">", 1)[-1]
        if first is None:
            return None
        if name in BORDERS:
            return _bordered(first, layer.config, *BORDERS[name], int(name[-2]))
        if name in RESIZED:
            return _resized(first, layer.config)
        if name not in ("Flatten", "Reshape", "Permute"):
            return None if name in SHAPE_CHANGING else first
        if name == "Flatten":
            rest = first[1:]
            return (first[0], math.prod(rest) if all(d is not None for d in rest) else None)
        if name == "Reshape":
            return _reshaped(first, layer.config.get("target_shape"))
        dims = layer.config.get("dims") or []
        if not isinstance(dims, (list, tuple)):
            return None
        picked = []
        for entry in dims:
            index = whole(entry)
            if index is None or not 0 <= index < len(first):
                return None
            picked.append(first[index])
        return (first[0],) + tuple(picked)

    def _gain(self, layer, context) -> float:
        """E[m^2] of the training-mode noise multiplier (1 for the rest)."""
        if context.mode != "training":
            return 1.0
        name = layer.class_name.rsplit(">", 1)[-1]
        if name in DROPOUT:
            rate = real(layer.config.get("rate"))
            if rate is not None and 0.0 <= rate < 1.0:
                return 1.0 / (1.0 - rate)
        return 1.0

    def forward(self, node, inputs, context):
        signal = inputs[0] if inputs else Signal()
        gain = self._gain(node.layer, context)
        noise = 0.0
        if context.mode == "training" and node.layer.class_name.endswith("GaussianNoise"):
            stddev = real(node.layer.config.get("stddev"))
            noise = stddev * stddev if stddev is not None else 0.0
        if gain == 1.0 and noise == 0.0:
            return Forward(signal)
        return Forward(Signal(signal.second * gain + noise, signal.mean, signal.constant))

    def backward(self, node, gradient, gradient_pre, inputs, forward, context):
        return [gradient * self._gain(node.layer, context) * self.shape_gain(node, 0)] * \
            len(node.inputs)

    def shape_gain(self, node, index):
        if node.layer.class_name.rsplit(">", 1)[-1] not in SELECTIONS:
            return 1.0
        kept, whole_input = _elements(node.output_shape), _elements(
            node.input_shapes[0] if node.input_shapes else None)
        if kept is None or whole_input is None or not 0 < kept <= whole_input:
            return 1.0
        return kept / whole_input


def _spatial_axes(shape: tuple, config: dict, rank: int) -> range | None:
    """The positions of the `rank` spatial axes in `shape` (after the batch axis; the
    channels last or, with data_format channels_first, right after the batch)."""
    if len(shape) != rank + 2 and not (rank == 1 and len(shape) == 3):
        return None
    return range(1, rank + 1) if channels_last(config) else range(2, rank + 2)


def _bordered(shape: tuple, config: dict, key: str, sign: int, rank: int) -> tuple | None:
    """A ZeroPadding layer's output (sign 1) or a Cropping layer's (sign -1)."""
    pairs = border_pairs(config.get(key, 1 if sign > 0 else 0), rank)
    axes = _spatial_axes(shape, config, rank)
    if pairs is None or axes is None:
        return None
    result = list(shape)
    for axis, (before, after) in zip(axes, pairs):
        if result[axis] is not None:
            result[axis] += sign * (before + after)
            if result[axis] <= 0:
                return None
    return tuple(result)


def _resized(shape: tuple, config: dict) -> tuple | None:
    """Resizing, CenterCrop and RandomCrop: `height` x `width` (Keras's image layers, which
    take a data_format like the convolutions)."""
    height, width = whole(config.get("height")), whole(config.get("width"))
    axes = _spatial_axes(shape, config, 2)
    if height is None or width is None or axes is None or min(height, width) <= 0:
        return None
    result = list(shape)
    result[axes[0]], result[axes[1]] = height, width
    return tuple(result)


def _elements(shape) -> float | None:
    """Elements per sample of a fully known shape."""
    if not shape or any(type(d) is not int or d <= 0 for d in shape[1:]):
        return None
    return float(math.prod(shape[1:]))


def _reshaped(first: tuple, target) -> tuple | None:
    """Reshape's output: its target shape, with a -1 (or null) entry worked out from the
    input's size when that is known."""
    if not isinstance(target, (list, tuple)):
        return None
    entries = []
    for entry in target:
        number = None if entry is None else whole(entry)
        if entry is not None and (number is None or number < -1):
            return None
        entries.append(None if number == -1 else number)
    if entries.count(None) == 1:
        rest = first[1:]
        known = [entry for entry in entries if entry is not None]
        if all(d is not None for d in rest) and all(known):
            total, part = math.prod(rest), math.prod(known)
            entries[entries.index(None)] = total // part if total % part == 0 else None
    return (first[0],) + tuple(entries)


def _check_target_shape(target) -> None:
    """Reshape's `target_shape`: whole numbers from 0 up or nulls, at most one -1."""
    expected = "a list of whole numbers (at most one of them -1)"
    if not isinstance(target, (list, tuple)):
        raise problem("target_shape", expected, target)
    total = 1
    inferred = 0
    for entry in target:
        if entry is None:
            continue
        number = whole(entry)
        if number == -1:
            inferred += 1
            continue
        if number is None or number < 0 or number > MAX_SIZE:
            raise problem("target_shape", expected, target)
        total *= number
        if total > MAX_SIZE:
            raise ConfigValueError("target_shape", f"'target_shape' describes more than "
                                                   f"{MAX_SIZE_TEXT} values per sample (got "
                                                   f"{shown(target)})")
    if inferred > 1:
        raise problem("target_shape", expected, target)


FAMILIES = [PassThroughFamily()]
