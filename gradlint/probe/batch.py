"""The synthetic batch and the loss the probe differentiates.

Inputs: an input that reaches an `Embedding` gets token ids uniform over the vocabulary,
whatever its declared dtype (Keras 2 gave an input float32 unless told otherwise, so a
standard-normal batch would hand the lookup negative indices); other integer inputs are
uniform over a small range, float inputs standard normal. Unknown dimensions get small
defaults: the probe's batch size, a sequence length from the configuration (an
`Embedding`'s `input_length`) or 32.

Loss: the saved compile configuration's loss when it names a standard Keras loss, otherwise
one that fits the output's activation: softmax gets categorical cross-entropy with random
one-hot targets, sigmoid binary cross-entropy with random 0/1 targets, anything else mean
squared error against standard normal targets. Several outputs add their losses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from gradlint.probe.environment import ProbeError

DEFAULT_LENGTH = 32
DEFAULT_VOCABULARY = 16

# Standard Keras losses: canonical name -> (Keras 3 class, kind of target it needs).
LOSSES = {
    "mean_squared_error": ("MeanSquaredError", "normal"),
    "mean_absolute_error": ("MeanAbsoluteError", "normal"),
    "mean_absolute_percentage_error": ("MeanAbsolutePercentageError", "normal"),
    "mean_squared_logarithmic_error": ("MeanSquaredLogarithmicError", "positive"),
    "huber": ("Huber", "normal"),
    "log_cosh": ("LogCosh", "normal"),
    "cosine_similarity": ("CosineSimilarity", "normal"),
    "binary_crossentropy": ("BinaryCrossentropy", "binary"),
    "binary_focal_crossentropy": ("BinaryFocalCrossentropy", "binary"),
    "categorical_crossentropy": ("CategoricalCrossentropy", "one_hot"),
    "categorical_focal_crossentropy": ("CategoricalFocalCrossentropy", "one_hot"),
    "sparse_categorical_crossentropy": ("SparseCategoricalCrossentropy", "sparse"),
    "kl_divergence": ("KLDivergence", "distribution"),
    "poisson": ("Poisson", "positive"),
    "hinge": ("Hinge", "sign"),
    "squared_hinge": ("SquaredHinge", "sign"),
    "categorical_hinge": ("CategoricalHinge", "one_hot"),
}
LOSS_ALIASES = {
    "mse": "mean_squared_error", "mae": "mean_absolute_error",
    "mape": "mean_absolute_percentage_error", "msle": "mean_squared_logarithmic_error",
    "kld": "kl_divergence", "kullback_leibler_divergence": "kl_divergence",
    "huber_loss": "huber", "logcosh": "log_cosh",
}
LOSS_OPTIONS = ("from_logits", "label_smoothing", "delta", "axis")


# float16 holds every integer up to 2**11 exactly: token ids beyond it would be rounded,
# possibly past the end of the vocabulary.
FLOAT16_EXACT = 2 ** 11


@dataclass
class InputSpec:
    name: str
    shape: tuple  # with None where unknown
    dtype: str
    key: str | None = None  # the input's key when the model takes a dict of inputs


@dataclass
class LossSpec:
    """The loss for one output."""

    name: str  # canonical Keras loss name
    target: str  # kind of target: normal, binary, one_hot, sparse, distribution, positive, sign
    options: dict
    source: str  # "compile configuration" or "output activation <name>"


def _canonical(name: str) -> str:
    import re

    text = name.rsplit(">", 1)[-1].rsplit(".", 1)[-1]
    text = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", text).lower()
    text = text.replace("k_l_", "kl_").replace("__", "_")
    return LOSS_ALIASES.get(text, text)


def parse_loss(value: Any) -> tuple[str, dict] | None:
    """A canonical standard loss name and its options from a serialized loss, or None."""
    if isinstance(value, str):
        name = _canonical(value)
        return (name, {}) if name in LOSSES else None
    if isinstance(value, dict) and "class_name" in value:
        class_name = str(value.get("class_name"))
        config = value.get("config")
        if class_name in ("function", "builtins.function") and isinstance(config, str):
            return parse_loss(config)
        name = _canonical(class_name)
        if name not in LOSSES:
            return None
        options = {}
        if isinstance(config, dict):
            options = {key: config[key] for key in LOSS_OPTIONS if key in config}
        return name, options
    return None


def losses_for_outputs(training_loss: Any, output_names: list[str],
                       activations: list[str | None]) -> list[LossSpec]:
    """One loss per output: from the compile configuration where it names a standard loss,
    from the output's activation otherwise."""
    count = len(output_names)
    per_output: list[Any] = [None] * count
    if isinstance(training_loss, list) and len(training_loss) == count:
        per_output = list(training_loss)
    elif isinstance(training_loss, dict) and "class_name" not in training_loss:
        per_output = [training_loss.get(name) for name in output_names]
    elif training_loss is not None:
        per_output = [training_loss] * count
    specs = []
    for configured, activation in zip(per_output, activations):
        parsed = parse_loss(configured) if configured is not None else None
        if parsed is not None:
            name, options = parsed
            specs.append(LossSpec(name, LOSSES[name][1], options, "compile configuration"))
            continue
        source = f"output activation {activation or 'linear'}"
        if activation == "softmax":
            specs.append(LossSpec("categorical_crossentropy", "one_hot", {}, source))
        elif activation == "sigmoid":
            specs.append(LossSpec("binary_crossentropy", "binary", {}, source))
        else:
            specs.append(LossSpec("mean_squared_error", "normal", {}, source))
    return specs


def make_loss(keras, spec: LossSpec):
    class_name = LOSSES[spec.name][0]
    cls = getattr(keras.losses, class_name)
    try:
        return cls(**spec.options)
    except TypeError:
        return cls()


def make_target(spec: LossSpec, shape: tuple, rng: np.random.Generator) -> np.ndarray:
    shape = tuple(int(d) for d in shape)
    if spec.target == "one_hot":
        classes = shape[-1] if shape else 1
        labels = rng.integers(0, max(classes, 1), size=shape[:-1])
        return np.eye(max(classes, 1), dtype=np.float32)[labels]
    if spec.target == "sparse":
        classes = shape[-1] if shape else 1
        return rng.integers(0, max(classes, 1), size=shape[:-1]).astype(np.int32)
    if spec.target == "binary":
        return rng.integers(0, 2, size=shape).astype(np.float32)
    if spec.target == "distribution":
        logits = rng.standard_normal(shape)
        exp = np.exp(logits - logits.max(axis=-1, keepdims=True))
        return (exp / exp.sum(axis=-1, keepdims=True)).astype(np.float32)
    if spec.target == "positive":
        return np.abs(rng.standard_normal(shape)).astype(np.float32)
    if spec.target == "sign":
        return (rng.integers(0, 2, size=shape) * 2 - 1).astype(np.float32)
    return rng.standard_normal(shape).astype(np.float32)


def concrete_shape(spec: InputSpec, batch: int, length: int | None) -> tuple[int, ...]:
    shape = list(spec.shape)
    if not shape:
        return ()
    shape[0] = batch
    for index in range(1, len(shape)):
        if shape[index] is None:
            shape[index] = length if (index == 1 and length) else DEFAULT_LENGTH
    return tuple(int(d) for d in shape)


def make_input(spec: InputSpec, shape: tuple, vocabulary: tuple[int, int] | None,
               rng: np.random.Generator) -> np.ndarray:
    """A synthetic input: token ids in `vocabulary` (the range of the Embedding the input
    reaches, None when it reaches none) or values fitting its dtype."""
    dtype = spec.dtype
    floating = "float" in dtype
    if vocabulary is not None or "int" in dtype or "bool" in dtype:
        low, high = vocabulary or (0, DEFAULT_VOCABULARY)
        if dtype == "float16":
            high = min(high, FLOAT16_EXACT)
        values = rng.integers(low, max(high, low + 1), size=shape)
        if "bool" in dtype:
            return values.astype("bool")
        if floating:
            return values.astype(np.float32 if dtype == "bfloat16" else dtype)
        if "int" in dtype:
            return values.astype(dtype)
        raise ProbeError(f"the model's input '{spec.name}' feeds an Embedding but has dtype "
                         f"{dtype}, for which the probe cannot make token ids")
    if floating:
        return rng.standard_normal(shape).astype(np.float32 if dtype == "bfloat16" else dtype)
    raise ProbeError(f"the model's input '{spec.name}' has dtype {dtype}, for which the probe "
                     "cannot make a synthetic batch")
