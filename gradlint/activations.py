"""Activation functions: their canonical names and their Gaussian moments.

For a pre-activation z ~ N(0, q), signal propagation needs E[phi(z)], E[phi(z)^2] and
E[phi'(z)^2]. The ReLU and ELU families and the piecewise-linear functions use closed forms:
quadrature that puts a node at or near the kink gets the step of the derivative wrong
(Gauss-Hermite gives E[relu'(z)^2] = 0.42 instead of 0.5, a 6x error after 20 layers).
The other functions are integrated with composite 4-point Gauss-Legendre panels at most 0.25
wide in z, with a panel edge at 0, over +-8 standard deviations (at most +-40), and the
function's own linear extrapolation beyond: Gauss-Hermite quadrature spreads its nodes with
the standard deviation, so at q = 10 its 64 nodes sit 1.2 apart and miss the peak of
tanh'(z)^2 (8 % low) and softsign'(z)^2 (39 % low, measured against Monte Carlo). Pure
Python, so that linting never needs numpy; results are cached per (function, q).

Parameters and variances from hostile files: `activation_of_layer` refuses a slope or alpha
that is not a finite number (`ConfigValueError`, which the reader reports as GL001), and
`moments` is defined for every q: NaN (which only an overflow upstream produces) is taken as
+inf, the ReLU and ELU families give their (possibly infinite) closed forms without 0 * inf,
and the clipped-linear and smooth functions take q above `Q_LIMIT` at their limit there, so
no overflow, domain error or warning can escape.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

from gradlint.graph import Activation
from gradlint.layer_catalog import ConfigValueError, real, shown

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


def _parameter(config: dict, key: str, default: float) -> float:
    """A real-valued activation parameter: the default when it is missing or null, else a
    finite number (`ConfigValueError` otherwise)."""
    value = config.get(key)
    if value is None:
        return default
    number = real(value)
    if number is None:
        raise ConfigValueError(key, f"'{key}' must be a finite number (got {shown(value)})")
    return number


# Keras 3 operations a Functional model stores as layers (`keras.ops.silu(x)` is a `Silu`),
# by class name, and the activation each applies (with its default parameter).
OPERATION_ACTIVATIONS = {
    "Relu": "relu", "Relu6": "relu6", "Sigmoid": "sigmoid", "Tanh": "tanh", "Silu": "silu",
    "Swish": "silu", "Gelu": "gelu", "HardSigmoid": "hard_sigmoid", "HardSilu": "hard_silu",
    "HardSwish": "hard_silu", "Elu": "elu", "Selu": "selu", "Softplus": "softplus",
    "Softsign": "softsign", "LeakyRelu": "leaky_relu"}


def activation_of_layer(class_name: str, config: dict) -> Activation | None:
    """The activation that an activation *layer* (`ReLU`, `LeakyReLU`, ...) or a Keras 3
    activation operation (`Silu`) applies. Raises `ConfigValueError` for a slope or alpha
    that is not a finite number."""
    if class_name in OPERATION_ACTIVATIONS:
        return normalize(OPERATION_ACTIVATIONS[class_name])
    if class_name == "Activation":
        return normalize(config.get("activation"))
    if class_name == "ReLU":
        slope = _parameter(config, "negative_slope", 0.0) if config.get("negative_slope") \
            else 0.0
        max_value = config.get("max_value")
        if max_value is not None and (isinstance(max_value, bool)
                                      or not isinstance(max_value, numbers.Real)):
            raise ConfigValueError("max_value", "'max_value' must be a number or null (got "
                                                f"{shown(max_value)})")
        if max_value is not None and real(max_value) == 6.0 and slope == 0.0:
            return Activation("relu6")
        if slope > 0.0:
            return Activation("leaky_relu", slope)
        return Activation("relu")
    if class_name == "LeakyReLU":
        key = "negative_slope" if "negative_slope" in config or "alpha" not in config else "alpha"
        return Activation("leaky_relu", _parameter(config, key, 0.3))
    if class_name == "PReLU":
        # PReLU starts as whatever its alpha initializer gives; Keras's default is zeros.
        init = config.get("alpha_initializer")
        slope = 0.0
        if isinstance(init, dict) and init.get("class_name") in ("Constant", "constant"):
            init_config = init.get("config") if isinstance(init.get("config"), dict) else {}
            value = init_config.get("value", 0.0)
            slope = real(value) if value is not None else 0.0
            if slope is None:
                raise ConfigValueError(
                    "alpha_initializer", "'alpha_initializer' must give a finite 'value' (got "
                                         f"{shown(value)})")
        return Activation("leaky_relu", slope) if slope else Activation("relu")
    if class_name == "ELU":
        return Activation("elu", _parameter(config, "alpha", 1.0))
    if class_name == "Softmax":
        return Activation("softmax")
    return None


@dataclass(frozen=True)
class Moments:
    """E[phi(z)], E[phi(z)^2], E[phi'(z)^2] and E[phi'(z)] for z ~ N(mean, q)."""

    mean: float
    second: float
    derivative_second: float
    # E[phi'(z)]: how much of a gradient that is the same at every position survives as such
    # (the estimate's coherent gradient); None where not worked out, then taken as the RMS.
    derivative_mean: float | None = None


def normal_cdf(x: float) -> float:
    return 0.5 * math.erfc(-x / SQRT2)


def _scaled_tail(x: float) -> float:
    """exp(x^2 / 2) * Phi(-x), stable for large x (where both factors overflow or vanish)."""
    if x < 20.0:
        return math.exp(0.5 * x * x) * normal_cdf(-x)
    # Mills ratio asymptotic series.
    inv = 1.0 / (x * x)
    return INV_SQRT_2PI / x * (1.0 - inv + 3.0 * inv * inv - 15.0 * inv ** 3)


def _times(a: float, b: float) -> float:
    """a * b, except that 0 * inf (whose inf only stands for a finite value too large for a
    float) is 0."""
    product = a * b
    return product if product == product else 0.0


def _relu_family(q: float, negative_slope: float, mean: float = 0.0) -> Moments:
    if mean == 0.0:
        sigma = math.sqrt(q)
        factor = (1.0 + negative_slope * negative_slope) / 2.0
        return Moments(
            mean=_times(1.0 - negative_slope, sigma) * INV_SQRT_2PI,
            second=_times(factor, q),
            derivative_second=factor,
            derivative_mean=(1.0 + negative_slope) / 2.0,
        )
    sigma = math.sqrt(q)
    a = negative_slope
    if sigma == 0.0 or not math.isfinite(sigma):
        if not math.isfinite(sigma):
            return _relu_family(q, a)
        value = mean if mean > 0 else a * mean
        slope = 1.0 if mean > 0 else a
        return Moments(value, value * value, slope * slope, slope)
    # z ~ N(mean, q): the positive and negative parts' partial moments.
    u = mean / sigma
    above = normal_cdf(u)
    density = INV_SQRT_2PI * math.exp(-0.5 * u * u)
    first_above = mean * above + sigma * density
    second_total = mean * mean + q
    second_above = second_total * above + mean * sigma * density
    return Moments(
        mean=first_above + a * (mean - first_above),
        second=second_above + a * a * max(second_total - second_above, 0.0),
        derivative_second=above + a * a * (1.0 - above),
        derivative_mean=above + a * (1.0 - above),
    )


def _clipped_linear(q: float, slope: float, low: float, high: float, offset: float) -> Moments:
    """phi(z) = clip(slope * z + offset, low, high): relu6, hard_sigmoid, hard_tanh."""
    if not q <= Q_LIMIT:
        # The limit as q grows: the clipped ends take half the probability each.
        return Moments((low + high) / 2.0, (low * low + high * high) / 2.0, 0.0, 0.0)
    sigma = math.sqrt(q)
    # The linear piece runs for z in (a, b).
    a = (low - offset) / slope
    b = (high - offset) / slope
    if sigma == 0.0:
        value = min(max(offset, low), high)
        inside = 1.0 if a < 0.0 < b else 0.0
        return Moments(value, value * value, slope * slope * inside, slope * inside)
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
    return Moments(mean, second, slope * slope * p_mid, slope * p_mid)


def _elu_family(q: float, alpha: float, scale: float) -> Moments:
    """phi(z) = scale * z for z > 0, scale * alpha * (exp(z) - 1) otherwise (ELU, SELU)."""
    sigma = math.sqrt(q)
    positive = _relu_family(q, 0.0)
    # E[exp(k z); z < 0] = exp(k^2 q / 2) * Phi(-k sigma)
    e1 = _scaled_tail(sigma)
    e2 = _scaled_tail(2.0 * sigma)
    mean_neg = _times(alpha, e1 - 0.5)
    second_neg = _times(alpha * alpha, e2 - 2.0 * e1 + 0.5)
    derivative_neg = _times(alpha * alpha, e2)
    return Moments(
        mean=_times(scale, positive.mean + mean_neg),
        second=_times(scale * scale, positive.second + second_neg),
        derivative_second=_times(scale * scale, positive.derivative_second + derivative_neg),
        derivative_mean=_times(scale, 0.5 + _times(alpha, e1)),
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
    "tanh_shrink": lambda x: (x - math.tanh(x), math.tanh(x) ** 2),
}

# 4-point Gauss-Legendre nodes and weights on [-1, 1].
_LEGENDRE = (
    (-0.8611363115940526, 0.3478548451374538), (-0.3399810435848563, 0.6521451548625461),
    (0.3399810435848563, 0.6521451548625461), (0.8611363115940526, 0.3478548451374538),
)
PANEL_WIDTH = 0.25
SPAN_STANDARD_DEVIATIONS = 8.0
MAX_SPAN = 40.0
# Above this pre-activation variance the quadrature (and the clipped-linear closed form) is
# taken at the limit: beyond the span, every function here is its linear extrapolation.
Q_LIMIT = 1e300


def _tail(value: float, slope: float, edge: float, sigma: float) -> tuple[float, float, float]:
    """E[phi], E[phi^2], E[phi'^2] over z > edge (edge >= 0) for phi(z) ~ value +
    slope * (z - edge), the function's linear extrapolation beyond the integrated span."""
    u = edge / sigma
    probability = normal_cdf(-u)
    density = INV_SQRT_2PI * math.exp(-0.5 * u * u)
    beyond = sigma * density - edge * probability  # E[(z - edge); z > edge]
    beyond_sq = (sigma * sigma * (probability + u * density)
                 - 2.0 * edge * sigma * density + edge * edge * probability)
    return (value * probability + slope * beyond,
            value * value * probability + 2.0 * value * slope * beyond + slope * slope * beyond_sq,
            slope * slope * probability)


def _by_panels(function: Callable[[float], tuple[float, float]], q: float) -> Moments:
    sigma = math.sqrt(q)
    half = min(SPAN_STANDARD_DEVIATIONS * sigma, MAX_SPAN)
    panels = max(2, 2 * math.ceil(half / min(PANEL_WIDTH, sigma / 2.0)))
    width = 2.0 * half / panels
    scale = width / 2.0 / sigma * INV_SQRT_2PI
    mean = second = derivative = slope_mean = 0.0
    for index in range(panels):
        center = -half + (index + 0.5) * width
        for offset, weight in _LEGENDRE:
            z = center + offset * width / 2.0
            value, slope = function(z)
            w = weight * scale * math.exp(-0.5 * (z / sigma) ** 2)
            mean += w * value
            second += w * value * value
            derivative += w * slope * slope
            slope_mean += w * slope
    if half < SPAN_STANDARD_DEVIATIONS * sigma:
        for side in (1.0, -1.0):
            value, slope = function(side * half)
            tail = _tail(value, side * slope, half, sigma)
            mean += tail[0]
            second += tail[1]
            derivative += tail[2]
            slope_mean += slope * normal_cdf(-half / sigma)
    return Moments(mean, second, derivative, slope_mean)


@lru_cache(maxsize=4096)
def _smooth_moments(name: str, q: float) -> Moments:
    function = SMOOTH[name]
    if q == 0.0:
        value, slope = function(0.0)
        return Moments(value, value * value, slope * slope, slope)
    return _by_panels(function, q)


SELU_ALPHA = 1.6732632423543772
SELU_SCALE = 1.0507009873554805


def _elu_value(x: float, alpha: float, scale: float) -> tuple[float, float]:
    if x > 0.0:
        return scale * x, scale
    e = math.exp(x)
    return scale * alpha * (e - 1.0), scale * alpha * e


@lru_cache(maxsize=8192)
def _shifted_moments(name: str, parameter: float | None, q: float, mean: float) -> Moments:
    """Moments of a smooth function (or of an ELU) at z ~ N(mean, q), by quadrature."""
    if name in SMOOTH:
        base = SMOOTH[name]
    else:
        alpha, scale = (SELU_ALPHA, SELU_SCALE) if name == "selu" else (
            parameter if parameter is not None else 1.0, 1.0)
        base = lambda x: _elu_value(x, alpha, scale)  # noqa: E731
    function = (lambda x: base(x + mean)) if mean else base
    if q == 0.0:
        value, slope = function(0.0)
        return Moments(value, value * value, slope * slope, slope)
    return _by_panels(function, q)


def _significant(value: float) -> float:
    return float(f"{value:.6g}")


def moments(activation: Activation, q: float, mean: float = 0.0) -> Moments:
    """Gaussian moments of `activation` at a pre-activation z ~ N(mean, q).

    Unknown activations and softmax are treated as the identity (softmax's Jacobian acts on
    a whole vector; at the output it belongs to the loss). Defined for every q, parameters
    included: NaN is taken as +inf (it only comes from an overflow upstream), and the
    result may be infinite but never NaN for a finite parameter. A mean that is not finite
    is taken as zero (the variance then carries the overflow).
    """
    if q != q:
        q = math.inf
    q = max(q, 0.0)
    if not math.isfinite(mean) or not math.isfinite(q):
        mean = 0.0
    name = activation.name
    if name == "relu":
        return _relu_family(q, 0.0, mean)
    if name == "leaky_relu":
        return _relu_family(q, activation.parameter if activation.parameter is not None else 0.2,
                            mean)
    if name == "relu6":
        return _clipped_linear(q, 1.0, 0.0, 6.0, mean)
    if name == "hard_sigmoid":
        # Keras 3 and tf-keras >= 2.16: relu6(x + 3) / 6.
        return _clipped_linear(q, 1.0 / 6.0, 0.0, 1.0, 0.5 + mean / 6.0)
    if name == "hard_tanh":
        return _clipped_linear(q, 1.0, -1.0, 1.0, mean)
    if name in ("elu", "celu", "selu"):
        if mean == 0.0:
            alpha = SELU_ALPHA if name == "selu" else (
                activation.parameter if activation.parameter is not None else 1.0)
            return _elu_family(q, alpha, SELU_SCALE if name == "selu" else 1.0)
        return _shifted_moments(name, activation.parameter, _significant(min(q, Q_LIMIT)),
                                _significant(mean))
    if name == "exponential":
        # E[exp(k z)] = exp(k mean + k^2 q / 2); capped where it would overflow.
        return Moments(math.exp(min(mean + q / 2.0, 700.0)),
                       math.exp(min(2.0 * mean + 2.0 * q, 700.0)),
                       math.exp(min(2.0 * mean + 2.0 * q, 700.0)),
                       math.exp(min(mean + q / 2.0, 700.0)))
    if name in SMOOTH:
        # Six significant digits of q: plain stacks settle on a fixed point, so the cache hits.
        if mean == 0.0:
            return _smooth_moments(name, _significant(min(q, Q_LIMIT)))
        return _shifted_moments(name, None, _significant(min(q, Q_LIMIT)), _significant(mean))
    return Moments(mean, q + mean * mean, 1.0, 1.0)


# 10-point Gauss-Hermite nodes and weights (weight exp(-x^2)), one half; symmetric.
_HERMITE = ((0.3429013272237046, 0.6108626337353258), (1.0366108297895137, 0.2401386110823147),
            (1.7566836492998818, 0.03387439445548106), (2.5327316742327897, 0.0013436457467812327),
            (3.4361591188377376, 7.640432855232621e-06))
_INV_SQRT_PI = 1.0 / math.sqrt(math.pi)


@dataclass(frozen=True)
class Propagated:
    """An activation's output: E[phi], E[phi^2], the per-unit constant part of E[phi^2],
    and E[phi'^2], the backward gain."""

    mean: float
    second: float
    constant: float
    derivative_second: float
    derivative_mean: float | None = None


def propagate(activation: Activation, second: float, mean: float,
              constant: float) -> Propagated:
    """An activation applied to a tensor whose units have means mu_u ~ N(mean, constant -
    mean^2) across units and variance second - constant within each unit (over a batch).

    The output's constant part is E_u[(E[phi | mu_u])^2] (Poole et al. 2016's correlation map
    at the units' own means), by 10-point Gauss-Hermite quadrature over the units' means;
    the mean, second moment and slope are those of phi over the whole Gaussian."""
    total = moments(activation, max(second - mean * mean, 0.0), mean)
    if activation.name in ("linear", "softmax") or not activation_is_known(activation):
        return Propagated(total.mean, total.second, constant, total.derivative_second,
                          total.derivative_mean)
    spread = constant - mean * mean
    within = max(second - constant, 0.0)
    if not math.isfinite(spread) or not math.isfinite(within):
        return Propagated(total.mean, total.second, total.mean * total.mean,
                          total.derivative_second, total.derivative_mean)
    if spread <= 1e-9 * max(second, 1e-300):
        part = total.mean * total.mean if within == second - mean * mean else \
            _square_of(moments(activation, within, mean).mean)
        return Propagated(total.mean, total.second, min(part, total.second),
                          total.derivative_second, total.derivative_mean)
    scale = math.sqrt(2.0 * spread)
    accumulated = 0.0
    for node, weight in _HERMITE:
        for sign in (1.0, -1.0):
            unit_mean = _mean(activation, within, mean + sign * scale * node)
            accumulated += weight * unit_mean * unit_mean
    part = accumulated * _INV_SQRT_PI
    return Propagated(total.mean, total.second, min(part, total.second),
                      total.derivative_second, total.derivative_mean)


def _mean(activation: Activation, q: float, mean: float) -> float:
    """E[phi(z)] for z ~ N(mean, q): `moments(...).mean`, in closed form for the ReLU family
    (the quadrature above asks for ten of them per layer). Elsewhere the mean is taken to six
    significant digits, so that `moments`' caches of the smooth activations hit."""
    slope = 0.0 if activation.name == "relu" else (
        (activation.parameter if activation.parameter is not None else 0.2)
        if activation.name == "leaky_relu" else None)
    if slope is None or not (q > 0.0 and math.isfinite(q) and math.isfinite(mean)):
        return moments(activation, q, _significant(mean)).mean
    sigma = math.sqrt(q)
    u = mean / sigma
    first_above = mean * normal_cdf(u) + sigma * INV_SQRT_2PI * math.exp(-0.5 * u * u)
    return first_above + slope * (mean - first_above)


def _square_of(value: float) -> float:
    return value * value


def activation_is_known(activation: Activation) -> bool:
    return is_modelled(activation)


def is_modelled(activation: Activation) -> bool:
    """Whether `moments` knows this activation (rather than passing the signal through)."""
    return activation.name in SMOOTH or activation.name in (
        "linear", "relu", "leaky_relu", "relu6", "hard_sigmoid", "hard_tanh", "elu", "celu",
        "selu", "softmax", "exponential")


# --- a ReLU of a ReLU's output plus a Gaussian (a post-activation residual block) --------------
#
# Mean-field theory takes every pre-activation to be Gaussian, which a wide linear layer makes
# it. A ResNet v1 block adds its input, a ReLU's output (half zeros, half a positive
# half-normal), to its branch's BatchNorm output and applies a ReLU to the sum: that sum is
# skewed, and a ReLU keeps more of it than of the Gaussian with the same two moments. Measured
# on keras.applications ResNet50 (stage 4 at 96x96): relu(relu(u) + g) has a varying part of
# 1.01 where the moment-matched Gaussian gives 0.89, which made every block's first BatchNorm
# divide by too little (the estimate drifted up by 0.015 decades per block, 0.69 over
# ResNet152). Here the sum is integrated exactly: Gauss-Hermite over u, closed form over g.

# 40-point Gauss-Hermite nodes and weights (weight exp(-x^2)), the positive half
# (numpy.polynomial.hermite.hermgauss(40); written out, as importing numpy would cost the
# static path 60 ms).
_HERMITE_40_HALF = (
    (0.17453721459758237, 0.338643277425589),
    (0.5238747138322772, 0.26572825187737725),
    (0.874006612357088, 0.16337873271327147),
    (1.225480109046289, 0.0784746058654044),
    (1.5788698949316138, 0.0293125655361724),
    (1.9347914722822959, 0.008460888008258132),
    (2.2939171418750837, 0.0018714968295979507),
    (2.6569959984428957, 0.00031385359454133164),
    (3.0248798839012845, 3.93693398109249e-05),
    (3.398558265859628, 3.6315761506930358e-06),
    (3.7792067534352234, 2.4111441636705304e-07),
    (4.1682570668325, 1.1212360832275837e-08),
    (4.567502072844395, 3.5256207913654217e-10),
    (4.9792609785452555, 7.156528052690361e-12),
    (5.406654247970128, 8.805707645216108e-14),
    (5.8540950560304, 6.008358789490817e-16),
    (6.328255351220082, 1.9891810121165004e-18),
    (6.840237305249356, 2.5675933654116484e-21),
    (7.411582531485469, 8.544056963775431e-25),
    (8.09876113925085, 2.591043713847034e-29),
)
_HERMITE_40 = tuple((sign * node, weight) for node, weight in _HERMITE_40_HALF
                    for sign in (1.0, -1.0))


def _relu_moments(centre: float, deviation: float) -> tuple[float, float, float]:
    """(E[relu(x)], E[relu(x)^2], P(x > 0)) for x ~ N(centre, deviation^2)."""
    if deviation <= 0.0:
        positive = max(centre, 0.0)
        return positive, positive * positive, 1.0 if centre > 0.0 else 0.0
    t = centre / deviation
    cdf = normal_cdf(t)
    pdf = INV_SQRT_2PI * math.exp(-0.5 * t * t)
    return (centre * cdf + deviation * pdf,
            (centre * centre + deviation * deviation) * cdf + centre * deviation * pdf, cdf)


def relu_of_rectified_sum(rectified_mean: float, rectified_variance: float,
                          gaussian_mean: float, gaussian_variance: float,
                          spread: float) -> Propagated:
    """relu(relu(u) + g) with u ~ N(rectified_mean, rectified_variance) and g ~ N(gaussian_mean,
    gaussian_variance) independent; `spread` is the variance of the units' means of the sum,
    which the ReLU passes on at its slope."""
    scale = math.sqrt(2.0 * max(rectified_variance, 0.0))
    deviation = math.sqrt(max(gaussian_variance, 0.0))
    mean = second = positive = 0.0
    for node, weight in _HERMITE_40:
        shortcut = max(rectified_mean + scale * node, 0.0)
        m, s, p = _relu_moments(shortcut + gaussian_mean, deviation)
        mean += weight * m
        second += weight * s
        positive += weight * p
    mean, second, positive = (value * _INV_SQRT_PI for value in (mean, second, positive))
    constant = min(mean * mean + positive * positive * max(spread, 0.0), second)
    return Propagated(mean, second, constant, positive, positive)


def fitted_rectified(mean: float, second: float) -> tuple[float, float] | None:
    """(m, v) such that relu(N(m, v)) has this mean and second moment: how the next block
    sees a ReLU's output whose input was not Gaussian. None when no rectified Gaussian
    has them (a mean of zero, or a second moment below the mean's square)."""
    if not (mean > 0.0 and second > mean * mean) or not math.isfinite(second):
        return None
    target = second / (mean * mean)

    def ratio(t: float) -> float:
        cdf, pdf = normal_cdf(t), INV_SQRT_2PI * math.exp(-0.5 * t * t)
        first = t * cdf + pdf
        return ((t * t + 1.0) * cdf + t * pdf) / (first * first)

    low, high = -8.0, 8.0  # ratio falls from about 1/Phi(-8)... to 1 as t grows
    if not ratio(high) <= target <= ratio(low):
        return None
    for _ in range(60):
        middle = 0.5 * (low + high)
        if ratio(middle) > target:
            low = middle
        else:
            high = middle
    t = 0.5 * (low + high)
    deviation = mean / (t * normal_cdf(t) + INV_SQRT_2PI * math.exp(-0.5 * t * t))
    return t * deviation, deviation * deviation
