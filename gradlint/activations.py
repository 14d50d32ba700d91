"""Activation functions: their canonical names and their Gaussian moments.

For a pre-activation z ~ N(0, q), signal propagation needs E[phi(z)], E[phi(z)^2] and
E[phi'(z)^2]. The ReLU and ELU families and the piecewise-linear functions use closed forms:
Gauss-Hermite quadrature puts a node at or near the kink and gets the step of the
derivative wrong (E[relu'(z)^2] comes out 0.42 instead of 0.5, a 6x error after 20
layers). Smooth functions use Gauss-Hermite quadrature, computed in pure Python so that
linting never needs numpy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

from gradlint.graph import Activation

SQRT2 = math.sqrt(2.0)
INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)

# Names Keras uses for the same function, mapped to one canonical name.
ALIASES = {
    "linear": "linear",
    "none": "linear",
    "identity": "linear",
    "relu": "relu",
    "relu6": "relu6",
    "leaky_relu": "leaky_relu",
    "leakyrelu": "leaky_relu",
    "elu": "elu",
    "selu": "selu",
    "celu": "celu",
    "gelu": "gelu",
    "swish": "swish",
    "silu": "swish",
    "hard_swish": "hard_swish",
    "hard_silu": "hard_swish",
    "mish": "mish",
    "softplus": "softplus",
    "softsign": "softsign",
    "tanh": "tanh",
    "sigmoid": "sigmoid",
    "hard_sigmoid": "hard_sigmoid",
    "log_sigmoid": "log_sigmoid",
    "exponential": "exponential",
    "softmax": "softmax",
    "log_softmax": "softmax",
    "hard_tanh": "hard_tanh",
    "tanh_shrink": "tanh_shrink",
    "sparse_plus": "softplus",
    "squareplus": "softplus",
}

# The functions whose derivative tends to zero on both sides: deep stacks of them vanish.
SATURATING = frozenset({"sigmoid", "tanh", "hard_sigmoid", "softsign", "hard_tanh"})
RELU_FAMILY = frozenset({"relu", "relu6", "leaky_relu", "elu", "selu", "celu", "gelu", "swish",
                         "hard_swish", "mish"})


def normalize(value) -> Activation | None:
    """Turn an activation as Keras serializes it into an `Activation`, or None if unknown.

    Accepts a plain string, a serialized function (``{"class_name": "function",
    "config": "relu"}``), a Keras 2 dict (``{"class_name": "relu"}``) or an activation
    layer given as the activation (``{"class_name": "LeakyReLU", ...}``).
    """
    if value is None:
        return Activation("linear")
    if isinstance(value, str):
        name = value.rsplit(">", 1)[-1].rsplit(".", 1)[-1].lower()
        canonical = ALIASES.get(name)
        return Activation(canonical) if canonical else Activation(f"unknown:{value}")
    if isinstance(value, dict):
        class_name = value.get("class_name", "")
        config = value.get("config")
        if class_name == "function" or class_name == "builtins.function":
            return normalize(config if isinstance(config, str) else "unknown")
        from_layer = activation_of_layer(class_name, config if isinstance(config, dict) else {})
        if from_layer is not None:
            return from_layer
        return normalize(class_name)
    return Activation(f"unknown:{value!r}")


def activation_of_layer(class_name: str, config: dict) -> Activation | None:
    """The activation that an activation *layer* (`ReLU`, `LeakyReLU`, ...) applies."""
    if class_name == "Activation":
        return normalize(config.get("activation"))
    if class_name == "ReLU":
        slope = float(config.get("negative_slope") or 0.0)
        max_value = config.get("max_value")
        if max_value is not None and float(max_value) == 6.0 and slope == 0.0:
            return Activation("relu6")
        if slope > 0.0:
            return Activation("leaky_relu", slope)
        return Activation("relu")
    if class_name == "LeakyReLU":
        slope = config.get("negative_slope", config.get("alpha", 0.3))
        return Activation("leaky_relu", float(0.3 if slope is None else slope))
    if class_name == "PReLU":
        # PReLU starts as whatever its alpha initializer gives; Keras's default is zeros.
        init = config.get("alpha_initializer")
        slope = 0.0
        if isinstance(init, dict) and init.get("class_name") in ("Constant", "constant"):
            slope = float((init.get("config") or {}).get("value", 0.0))
        return Activation("leaky_relu", slope) if slope else Activation("relu")
    if class_name == "ELU":
        return Activation("elu", float(config.get("alpha", 1.0)))
    if class_name == "Softmax":
        return Activation("softmax")
    return None


@dataclass(frozen=True)
class Moments:
    """E[phi(z)], E[phi(z)^2] and E[phi'(z)^2] for z ~ N(0, q)."""

    mean: float
    second: float
    derivative_second: float


def normal_cdf(x: float) -> float:
    return 0.5 * math.erfc(-x / SQRT2)


def _scaled_tail(x: float) -> float:
    """exp(x^2 / 2) * Phi(-x), stable for large x (where both factors overflow or vanish)."""
    if x < 20.0:
        return math.exp(0.5 * x * x) * normal_cdf(-x)
    # Mills ratio asymptotic series.
    inv = 1.0 / (x * x)
    return INV_SQRT_2PI / x * (1.0 - inv + 3.0 * inv * inv - 15.0 * inv ** 3)


def _relu_family(q: float, negative_slope: float) -> Moments:
    sigma = math.sqrt(q)
    factor = (1.0 + negative_slope * negative_slope) / 2.0
    return Moments(
        mean=(1.0 - negative_slope) * sigma * INV_SQRT_2PI,
        second=factor * q,
        derivative_second=factor,
    )


def _clipped_linear(q: float, slope: float, low: float, high: float, offset: float) -> Moments:
    """phi(z) = clip(slope * z + offset, low, high): relu6, hard_sigmoid, hard_tanh."""
    sigma = math.sqrt(q)
    # The linear piece runs for z in (a, b).
    a = (low - offset) / slope
    b = (high - offset) / slope
    if sigma == 0.0:
        value = min(max(offset, low), high)
        inside = 1.0 if a < 0.0 < b else 0.0
        return Moments(value, value * value, slope * slope * inside)
    u, v = a / sigma, b / sigma
    p_low, p_high = normal_cdf(u), 1.0 - normal_cdf(v)
    p_mid = 1.0 - p_low - p_high
    pdf_u, pdf_v = INV_SQRT_2PI * math.exp(-0.5 * u * u), INV_SQRT_2PI * math.exp(-0.5 * v * v)
    # Moments of z restricted to (a, b).
    first_z = sigma * (pdf_u - pdf_v)
    second_z = q * (p_mid + u * pdf_u - v * pdf_v)
    mean = low * p_low + high * p_high + slope * first_z + offset * p_mid
    second = (low * low * p_low + high * high * p_high + slope * slope * second_z
              + 2.0 * slope * offset * first_z + offset * offset * p_mid)
    return Moments(mean, second, slope * slope * p_mid)


def _elu_family(q: float, alpha: float, scale: float) -> Moments:
    """phi(z) = scale * z for z > 0, scale * alpha * (exp(z) - 1) otherwise (ELU, SELU)."""
    sigma = math.sqrt(q)
    positive = _relu_family(q, 0.0)
    # E[exp(k z); z < 0] = exp(k^2 q / 2) * Phi(-k sigma)
    e1 = _scaled_tail(sigma)
    e2 = _scaled_tail(2.0 * sigma)
    mean_neg = alpha * (e1 - 0.5)
    second_neg = alpha * alpha * (e2 - 2.0 * e1 + 0.5)
    derivative_neg = alpha * alpha * e2
    return Moments(
        mean=scale * (positive.mean + mean_neg),
        second=scale * scale * (positive.second + second_neg),
        derivative_second=scale * scale * (positive.derivative_second + derivative_neg),
    )


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def _softplus(x: float) -> float:
    return x + math.log1p(math.exp(-x)) if x > 0 else math.log1p(math.exp(x))


def _gelu(x: float) -> tuple[float, float]:
    cdf = normal_cdf(x)
    return x * cdf, cdf + x * INV_SQRT_2PI * math.exp(-0.5 * x * x)


def _swish(x: float) -> tuple[float, float]:
    s = _sigmoid(x)
    return x * s, s + x * s * (1.0 - s)


def _mish(x: float) -> tuple[float, float]:
    sp = _softplus(x)
    t = math.tanh(sp)
    return x * t, t + x * (1.0 - t * t) * _sigmoid(x)


def _hard_swish(x: float) -> tuple[float, float]:
    if x <= -3.0:
        return 0.0, 0.0
    if x >= 3.0:
        return x, 1.0
    return x * (x + 3.0) / 6.0, (2.0 * x + 3.0) / 6.0


# Smooth (or nearly smooth) functions as (value, derivative) pairs, for quadrature.
SMOOTH: dict[str, Callable[[float], tuple[float, float]]] = {
    "tanh": lambda x: (math.tanh(x), 1.0 - math.tanh(x) ** 2),
    "sigmoid": lambda x: (_sigmoid(x), _sigmoid(x) * (1.0 - _sigmoid(x))),
    "softsign": lambda x: (x / (1.0 + abs(x)), 1.0 / (1.0 + abs(x)) ** 2),
    "softplus": lambda x: (_softplus(x), _sigmoid(x)),
    "log_sigmoid": lambda x: (-_softplus(-x), 1.0 - _sigmoid(x)),
    "gelu": _gelu,
    "swish": _swish,
    "mish": _mish,
    "hard_swish": _hard_swish,
    "exponential": lambda x: (math.exp(min(x, 80.0)), math.exp(min(x, 80.0))),
    "tanh_shrink": lambda x: (x - math.tanh(x), math.tanh(x) ** 2),
}

QUADRATURE_POINTS = 64


@lru_cache(maxsize=None)
def gauss_hermite(n: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Nodes and weights of n-point Gauss-Hermite quadrature (weight exp(-x^2)).

    Newton iteration on the orthonormal Hermite recurrence, started from the usual
    asymptotic guesses; accurate to machine precision for the sizes used here.
    """
    nodes = [0.0] * n
    weights = [0.0] * n
    pi_quarter = math.pi ** -0.25
    m = (n + 1) // 2
    z = 0.0
    for i in range(m):
        if i == 0:
            z = math.sqrt(2 * n + 1) - 1.85575 * (2 * n + 1) ** (-1.0 / 6.0)
        elif i == 1:
            z -= 1.14 * n ** 0.426 / z
        elif i == 2:
            z = 1.86 * z - 0.86 * nodes[0]
        elif i == 3:
            z = 1.91 * z - 0.91 * nodes[1]
        else:
            z = 2.0 * z - nodes[i - 2]
        derivative = 1.0
        for _ in range(100):
            p1, p2 = pi_quarter, 0.0
            for j in range(1, n + 1):
                p3 = p2
                p2 = p1
                p1 = z * math.sqrt(2.0 / j) * p2 - math.sqrt((j - 1) / j) * p3
            derivative = math.sqrt(2 * n) * p2
            step = p1 / derivative
            z -= step
            if abs(step) <= 1e-14:
                break
        nodes[i], nodes[n - 1 - i] = z, -z
        weights[i] = weights[n - 1 - i] = 2.0 / (derivative * derivative)
    order = sorted(range(n), key=lambda k: nodes[k])
    return tuple(nodes[k] for k in order), tuple(weights[k] for k in order)


def _by_quadrature(function: Callable[[float], tuple[float, float]], q: float) -> Moments:
    nodes, weights = gauss_hermite(QUADRATURE_POINTS)
    sigma_sqrt2 = math.sqrt(2.0 * q)
    mean = second = derivative = 0.0
    for x, w in zip(nodes, weights):
        value, slope = function(sigma_sqrt2 * x)
        mean += w * value
        second += w * value * value
        derivative += w * slope * slope
    norm = 1.0 / math.sqrt(math.pi)
    return Moments(mean * norm, second * norm, derivative * norm)


SELU_ALPHA = 1.6732632423543772
SELU_SCALE = 1.0507009873554805


def moments(activation: Activation, q: float) -> Moments:
    """Gaussian moments of `activation` at pre-activation variance `q`.

    Unknown activations and softmax are treated as the identity (softmax's Jacobian acts on
    a whole vector; at the output it belongs to the loss).
    """
    q = max(q, 0.0)
    name = activation.name
    if name == "relu":
        return _relu_family(q, 0.0)
    if name == "leaky_relu":
        return _relu_family(q, activation.parameter if activation.parameter is not None else 0.2)
    if name == "relu6":
        return _clipped_linear(q, 1.0, 0.0, 6.0, 0.0)
    if name == "hard_sigmoid":
        # Keras 3 and tf-keras >= 2.16: relu6(x + 3) / 6.
        return _clipped_linear(q, 1.0 / 6.0, 0.0, 1.0, 0.5)
    if name == "hard_tanh":
        return _clipped_linear(q, 1.0, -1.0, 1.0, 0.0)
    if name == "elu":
        return _elu_family(q, activation.parameter if activation.parameter is not None else 1.0, 1.0)
    if name == "celu":
        return _elu_family(q, activation.parameter if activation.parameter is not None else 1.0, 1.0)
    if name == "selu":
        return _elu_family(q, SELU_ALPHA, SELU_SCALE)
    function = SMOOTH.get(name)
    if function is not None:
        if q == 0.0:
            value, slope = function(0.0)
            return Moments(value, value * value, slope * slope)
        return _by_quadrature(function, q)
    return Moments(0.0, q, 1.0)


def is_modelled(activation: Activation) -> bool:
    """Whether `moments` knows this activation (rather than passing the signal through)."""
    return activation.name in SMOOTH or activation.name in (
        "linear", "relu", "leaky_relu", "relu6", "hard_sigmoid", "hard_tanh", "elu", "celu",
        "selu", "softmax")
