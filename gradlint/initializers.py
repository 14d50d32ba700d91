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
