"""Initializers: each Keras initializer's configuration mapped to the second moment E[w^2]
of the weights it draws, as Keras itself defines them (`keras/src/initializers/`).

Names are accepted as Keras 3, tf-keras and Keras 2.2 write them: class names
(``GlorotUniform``), snake-case strings (``"glorot_uniform"``), ``Custom>``-prefixed names,
and old configurations such as ``VarianceScaling(distribution="normal")``.

A parameter that is not a finite number (a NaN or infinite ``stddev``, a string ``gain``, a
non-positive ``VarianceScaling`` scale) makes the initializer "unknown", with `problem`
saying why: the estimate from the initializers then passes the signal through that layer,
and the reader notes it. A huge finite parameter is kept; its second moment may be +inf.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from gradlint.layer_catalog import real, shown

# (scale, mode) of the named variance-scaling initializers.
VARIANCE_SCALING_PRESETS = {
    "glorotuniform": (1.0, "fan_avg"),
    "glorotnormal": (1.0, "fan_avg"),
    "xavieruniform": (1.0, "fan_avg"),
    "xaviernormal": (1.0, "fan_avg"),
    "heuniform": (2.0, "fan_in"),
    "henormal": (2.0, "fan_in"),
    "lecununiform": (1.0, "fan_in"),
    "lecunnormal": (1.0, "fan_in"),
}

# Keras's truncated normal keeps draws within two standard deviations, which leaves
# 0.87962566103423978 of the nominal standard deviation (keras/src/initializers).
TRUNCATION_STD_FACTOR = 0.87962566103423978

FAMILY_NAMES = {"glorot": "GlorotUniform", "he": "HeNormal", "lecun": "LecunNormal"}


@dataclass(frozen=True)
class Initializer:
    """An initializer reduced to what signal propagation needs."""

    name: str
    kind: str  # "variance_scaling", "fixed", "orthogonal", "constant", "unknown"
    scale: float = 1.0
    mode: str = "fan_in"
    mean: float = 0.0
    variance: float = 0.0  # for "fixed": the variance of each draw
    constant: float = 0.0
    problem: str | None = None  # why a configured initializer is "unknown"

    def second_moment(self, fan_in: float | None, fan_out: float | None,
                      shape: tuple[int, ...] | None = None) -> float | None:
        """E[w^2] for a kernel with these fans and shape (None when it cannot be known)."""
        if self.kind == "constant":
            return self.constant * self.constant
        if self.kind == "fixed":
            return self.variance + self.mean * self.mean
        if fan_in is None or fan_out is None:
            return None
        if self.kind == "variance_scaling":
            if self.mode == "fan_in":
                fan = fan_in
            elif self.mode == "fan_out":
                fan = fan_out
            else:
                fan = (fan_in + fan_out) / 2.0
            return self.scale / max(1.0, fan)
        if self.kind == "orthogonal":
            # Keras flattens the kernel to (prod(shape[:-1]), shape[-1]) and makes its rows or
            # columns (whichever are fewer) orthonormal, times the gain.
            if shape is not None and len(shape) >= 2:
                rows = 1
                for dim in shape[:-1]:
                    rows *= dim
                try:
                    return self.scale * self.scale / max(1.0, rows, shape[-1])
                except OverflowError:  # more rows than a float holds
                    return 0.0
            return self.scale * self.scale / max(1.0, fan_in, fan_out)
        return None

    def mean_value(self) -> float:
        """E[w]: a constant's value, a fixed distribution's mean, else zero."""
        if self.kind == "constant":
            return self.constant
        if self.kind == "fixed":
            return self.mean
        return 0.0

    @property
    def family(self) -> str | None:
        """'he', 'glorot' or 'lecun' for variance-scaling initializers of those shapes."""
        if self.kind != "variance_scaling":
            return None
        if self.mode == "fan_in" and abs(self.scale - 2.0) < 0.25:
            return "he"
        if self.mode == "fan_avg" and abs(self.scale - 1.0) < 0.25:
            return "glorot"
        if self.mode == "fan_in" and abs(self.scale - 1.0) < 0.25:
            return "lecun"
        return None

    @property
    def is_constant(self) -> bool:
        return self.kind == "constant"


class _BadParameter(Exception):
    def __init__(self, key: str, value: Any, expected: str = "a finite number"):
        super().__init__(key)
        self.key, self.value, self.expected = key, value, expected


def _number(config: dict, *keys: str, default: float, positive: bool = False) -> float:
    """The first of `keys` that is set (not null); `_BadParameter` when it is not a finite
    number (or, with `positive`, not above zero)."""
    for key in keys:
        value = config.get(key)
        if value is None:
            continue
        number = value if type(value) is float and -math.inf < value < math.inf else real(value)
        if number is None:
            raise _BadParameter(key, value)
        if positive and number <= 0.0:
            raise _BadParameter(key, value, "a positive number")
        return number
    return default


def _square(value: float) -> float:
    try:
        return value ** 2
    except OverflowError:
        return math.inf


def parse(serialized: Any) -> Initializer | None:
    """Read an initializer as Keras serializes it; None when nothing was given. A parameter
    that is not a finite number gives an "unknown" initializer whose `problem` says so."""
    if serialized is None:
        return None
    if isinstance(serialized, str):
        class_name, config = serialized, {}
    elif isinstance(serialized, dict):
        class_name = str(serialized.get("class_name", ""))
        config = serialized.get("config") or {}
        if not isinstance(config, dict):
            config = {}
    else:
        return Initializer(name=shown(serialized, 40), kind="unknown")
    name = class_name.rsplit(">", 1)[-1]
    key = name.replace("_", "").lower()
    if key in VARIANCE_SCALING_PRESETS:
        scale, mode = VARIANCE_SCALING_PRESETS[key]
        return Initializer(name=name, kind="variance_scaling", scale=scale, mode=mode)
    try:
        return _configured(name, key, config)
    except _BadParameter as bad:
        return Initializer(name=name or "unknown", kind="unknown",
                           problem=f"'{bad.key}' must be {bad.expected} (got {shown(bad.value)})")


def _configured(name: str, key: str, config: dict) -> Initializer:
    """The initializers whose configuration has parameters (and the constant ones)."""
    if key == "variancescaling":
        return Initializer(
            name=name,
            kind="variance_scaling",
            scale=_number(config, "scale", default=1.0, positive=True),
            mode=str(config.get("mode", "fan_in")),
        )
    if key in ("randomnormal", "normal"):
        std = _number(config, "stddev", default=0.05)
        return Initializer(name=name, kind="fixed", mean=_number(config, "mean", default=0.0),
                           variance=std * std)
    if key == "truncatednormal":
        std = _number(config, "stddev", default=0.05) * TRUNCATION_STD_FACTOR
        return Initializer(name=name, kind="fixed", mean=_number(config, "mean", default=0.0),
                           variance=std * std)
    if key in ("randomuniform", "uniform"):
        low = _number(config, "minval", default=-0.05)
        high = _number(config, "maxval", default=0.05)
        return Initializer(name=name, kind="fixed", mean=(low + high) / 2.0,
                           variance=_square(high - low) / 12.0)
    if key in ("orthogonal", "identity"):
        return Initializer(name=name, kind="orthogonal", scale=_number(config, "gain", default=1.0))
    if key in ("zeros", "zero"):
        return Initializer(name=name, kind="constant", constant=0.0)
    if key in ("ones", "one"):
        return Initializer(name=name, kind="constant", constant=1.0)
    if key == "constant":
        value = config.get("value", 0.0)
        if isinstance(value, (int, float)) and not isinstance(value, bool) \
                and real(value) is None:
            raise _BadParameter("value", value)
        # A list value (tf-keras allows one) is read as zeros, as it always was.
        return Initializer(name=name, kind="constant",
                           constant=float(value) if isinstance(value, (int, float)) else 0.0)
    return Initializer(name=name or "unknown", kind="unknown")


def suggestion_for(activation_name: str) -> str:
    """The initializer that preserves signal variance for this activation (He et al. 2015;
    Glorot & Bengio 2010; Klambauer et al. 2017 for SELU)."""
    if activation_name in ("relu", "leaky_relu", "relu6", "elu", "gelu", "swish", "mish",
                           "hard_swish", "celu"):
        return "HeNormal"
    if activation_name == "selu":
        return "LecunNormal"
    return "GlorotUniform"


# --- drawing weights (for `gradlint fix`) ------------------------------------------------------

# How the named initializers draw (Keras: GlorotUniform and the other *Uniform presets draw
# uniformly, the *Normal presets from the truncated normal).
PRESET_DISTRIBUTIONS = {
    "glorotuniform": "uniform", "glorotnormal": "truncated_normal",
    "xavieruniform": "uniform", "xaviernormal": "truncated_normal",
    "heuniform": "uniform", "henormal": "truncated_normal",
    "lecununiform": "uniform", "lecunnormal": "truncated_normal",
}
SNAKE_NAMES = {"GlorotUniform": "glorot_uniform", "GlorotNormal": "glorot_normal",
               "HeNormal": "he_normal", "HeUniform": "he_uniform",
               "LecunNormal": "lecun_normal", "LecunUniform": "lecun_uniform"}
CLASS_NAMES = {snake: name for name, snake in SNAKE_NAMES.items()}


def compute_fans(shape: tuple[int, ...]) -> tuple[float, float]:
    """(fan_in, fan_out) of a kernel of `shape`, as Keras computes them
    (`keras/src/initializers/random_initializers.py`): a convolution kernel's receptive field
    times its input or output channels."""
    shape = tuple(int(dim) for dim in shape)
    if len(shape) == 0:
        return 1.0, 1.0
    if len(shape) == 1:
        return float(shape[0]), float(shape[0])
    if len(shape) == 2:
        return float(shape[0]), float(shape[1])
    receptive = 1
    for dim in shape[:-2]:
        receptive *= dim
    return float(shape[-2] * receptive), float(shape[-1] * receptive)


def snake_name(serialized: Any) -> str:
    """An initializer as a fix shows it: ``glorot_uniform`` for a preset,
    ``RandomNormal(stddev=0.01)`` for one with parameters."""
    if serialized is None:
        return "none"
    if isinstance(serialized, str):
        name = serialized.rsplit(">", 1)[-1]
        return SNAKE_NAMES.get(name, name)
    if not isinstance(serialized, dict):
        return shown(serialized, 40)
    name = str(serialized.get("class_name", "?")).rsplit(">", 1)[-1]
    config = serialized.get("config") if isinstance(serialized.get("config"), dict) else {}
    parameters = {key: value for key, value in config.items()
                  if key != "seed" and value is not None and not (key == "mean" and value == 0)}
    if name in SNAKE_NAMES and not parameters:
        return SNAKE_NAMES[name]
    shown_parameters = ", ".join(f"{key}={value:g}" if isinstance(value, float)
                                 else f"{key}={value}" for key, value in parameters.items())
    return f"{name}({shown_parameters})" if shown_parameters else name


def serialized_like(name: str, old: Any) -> Any:
    """The preset `name` (``he_normal``) serialized the way `old` was: a plain string, a
    tf-keras ``{"class_name", "config"}`` or a Keras 3 dict with ``module`` and
    ``registered_name``."""
    class_name = CLASS_NAMES.get(name, name)
    if isinstance(old, str) or old is None:
        return name
    entry: dict[str, Any] = {}
    if isinstance(old, dict) and "module" in old:
        entry["module"] = "keras.initializers"
    entry["class_name"] = class_name
    entry["config"] = {"seed": None}
    if isinstance(old, dict) and "registered_name" in old:
        entry["registered_name"] = None
    return entry


def distribution_of(serialized: Any) -> str | None:
    """"uniform", "truncated_normal", "normal" or None: how the initializer draws."""
    if isinstance(serialized, str):
        class_name, config = serialized, {}
    elif isinstance(serialized, dict):
        class_name = str(serialized.get("class_name", ""))
        config = serialized.get("config") if isinstance(serialized.get("config"), dict) else {}
    else:
        return None
    key = class_name.rsplit(">", 1)[-1].replace("_", "").lower()
    if key in PRESET_DISTRIBUTIONS:
        return PRESET_DISTRIBUTIONS[key]
    if key == "variancescaling":
        distribution = str(config.get("distribution", "truncated_normal"))
        # Keras 2.2 wrote "normal" for what has always been the truncated normal.
        return {"normal": "truncated_normal", "untruncated_normal": "normal"}.get(
            distribution, distribution)
    if key in ("randomnormal", "normal"):
        return "normal"
    if key == "truncatednormal":
        return "truncated_normal"
    if key in ("randomuniform", "uniform"):
        return "uniform"
    return None


def draw(serialized: Any, shape: tuple[int, ...], rng: Any) -> Any:
    """A kernel of `shape` drawn with numpy from the variance-scaling or fixed-distribution
    initializer `serialized`, as Keras draws it: variance scale / fan at Keras's fans
    (`compute_fans`); a uniform on +-sqrt(3 * variance); a truncated normal (within two
    standard deviations, re-drawn beyond) of stddev sqrt(variance) / 0.87962566103423978.
    Raises ValueError for an initializer it cannot draw."""
    import numpy as np

    initializer = parse(serialized)
    distribution = distribution_of(serialized)
    if initializer is None or distribution is None or \
            initializer.kind not in ("variance_scaling", "fixed"):
        raise ValueError(f"cannot draw from {snake_name(serialized)}")
    fan_in, fan_out = compute_fans(shape)
    mean = initializer.mean_value()
    variance = initializer.second_moment(fan_in, fan_out, shape) - mean * mean
    if initializer.kind == "fixed" and distribution == "truncated_normal":
        variance = initializer.variance  # already the truncated distribution's
    variance = max(variance, 0.0)
    if distribution == "uniform":
        if initializer.kind == "fixed":
            config = serialized.get("config", {}) if isinstance(serialized, dict) else {}
            low, high = float(config.get("minval", -0.05)), float(config.get("maxval", 0.05))
            return rng.uniform(low, high, size=shape)
        limit = math.sqrt(3.0 * variance)
        return rng.uniform(-limit, limit, size=shape)
    stddev = math.sqrt(variance)
    if distribution == "normal":
        return rng.normal(mean, stddev, size=shape)
    stddev /= TRUNCATION_STD_FACTOR
    values = rng.normal(0.0, 1.0, size=shape)
    outside = np.abs(values) > 2.0
    while outside.any():
        values[outside] = rng.normal(0.0, 1.0, size=int(outside.sum()))
        outside = np.abs(values) > 2.0
    return mean + stddev * values


def scaled(initializer: Initializer, factor: float) -> Initializer:
    """The initializer whose draws are `sqrt(factor)` times this one's: E[w^2] times
    `factor` (for `gradlint.fix.calibrate`)."""
    import dataclasses

    if initializer.kind == "variance_scaling":
        return dataclasses.replace(initializer, scale=initializer.scale * factor)
    if initializer.kind == "fixed":
        return dataclasses.replace(initializer, variance=initializer.variance * factor,
                                   mean=initializer.mean * math.sqrt(factor))
    if initializer.kind == "orthogonal":
        return dataclasses.replace(initializer, scale=initializer.scale * math.sqrt(factor))
    if initializer.kind == "constant":
        return dataclasses.replace(initializer, constant=initializer.constant * math.sqrt(factor))
    return initializer


def scaled_config(serialized: Any, factor: float) -> Any:
    """The serialized initializer that draws `sqrt(factor)` times `serialized`'s values, in
    the same style (a preset becomes the ``VarianceScaling`` it stands for), or None when it
    cannot be said in Keras's terms."""
    parsed = parse(serialized)
    if parsed is None:
        return None
    keras3 = isinstance(serialized, dict) and "module" in serialized

    def entry(class_name: str, config: dict) -> dict:
        result: dict[str, Any] = {"module": "keras.initializers"} if keras3 else {}
        result.update({"class_name": class_name, "config": config})
        if keras3:
            result["registered_name"] = None
        return result

    if parsed.kind == "variance_scaling":
        distribution = distribution_of(serialized) or "truncated_normal"
        return entry("VarianceScaling", {"scale": parsed.scale * factor, "mode": parsed.mode,
                                         "distribution": distribution, "seed": None})
    config = dict(serialized.get("config") or {}) if isinstance(serialized, dict) else {}
    name = str(serialized.get("class_name") if isinstance(serialized, dict) else serialized)
    key = name.rsplit(">", 1)[-1].replace("_", "").lower()
    root = math.sqrt(factor)
    if key in ("randomnormal", "normal", "truncatednormal"):
        config["stddev"] = float(config.get("stddev", 0.05)) * root
        config["mean"] = float(config.get("mean", 0.0)) * root
    elif key in ("randomuniform", "uniform"):
        config["minval"] = float(config.get("minval", -0.05)) * root
        config["maxval"] = float(config.get("maxval", 0.05)) * root
    elif key in ("orthogonal", "identity"):
        config["gain"] = float(config.get("gain", 1.0)) * root
    else:
        return None
    return entry(name if isinstance(serialized, dict) else CLASS_NAMES.get(name, name), config)
