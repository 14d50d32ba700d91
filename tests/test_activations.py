"""The activation maths behind the estimate: Gauss-Hermite nodes and weights, Gaussian moments
of every activation against Monte-Carlo and against closed forms, and the names Keras uses."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gradlint import activations
from gradlint.activations import moments
from gradlint.graph import Activation

from conftest import keras3

Q_VALUES = (0.1, 1.0, 10.0)
SAMPLES = 200_000
SELU_ALPHA = 1.6732632423543772
SELU_SCALE = 1.0507009873554805
# Monte-Carlo agreement: within 5 standard errors of the sample mean, plus 2 % (a per-layer
# error of 2 % compounds to under 0.2 decades over 20 layers) and an absolute floor for
# moments that are zero.
STANDARD_ERRORS = 5.0
RELATIVE = 0.02
ABSOLUTE = 1e-9


# --- the panel integration itself -------------------------------------------------------------

@pytest.mark.parametrize("q", [1e-4, 0.1, 1.0, 10.0, 1e3, 1e6])
def test_panel_integration_is_exact_for_low_degree_functions(q):
    # phi(z) = z + z^3 / 10: E[phi] = 0, E[phi^2] = q + 6 q^2 / 10 + 15 q^3 / 100 and
    # E[phi'^2] = 1 + 6 q / 10 + 27 q^2 / 100, all exact for 4-point Gauss-Legendre panels up
    # to the span's truncation, which at +-8 standard deviations is below 1e-12 relative.
    if q > 25:  # beyond +-40 the tails are extrapolated linearly: use a linear function there
        moment = activations._by_panels(lambda z: (2.0 * z + 1.0, 2.0), q)
        assert moment.mean == pytest.approx(1.0, rel=1e-9)
        assert moment.second == pytest.approx(4.0 * q + 1.0, rel=1e-9)
        assert moment.derivative_second == pytest.approx(4.0, rel=1e-9)
        return
    moment = activations._by_panels(lambda z: (z + z ** 3 / 10.0, 1.0 + 3.0 * z * z / 10.0), q)
    assert moment.mean == pytest.approx(0.0, abs=1e-9 * (1 + q))
    assert moment.second == pytest.approx(q + 0.6 * q * q + 0.15 * q ** 3, rel=1e-9)
    assert moment.derivative_second == pytest.approx(1.0 + 0.6 * q + 0.27 * q * q, rel=1e-9)


# --- reference activations (numpy, written from Keras's definitions) ------------------------

_erf = np.vectorize(math.erf, otypes=[float])


def _normal_cdf(x):
    return 0.5 * (1.0 + _erf(x / math.sqrt(2.0)))


def _normal_pdf(x):
    return np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)


def _sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _softplus(x):
    return np.logaddexp(0.0, x)


def _elu(x, alpha=1.0, scale=1.0):
    negative = np.minimum(x, 0.0)
    value = np.where(x > 0, x, alpha * np.expm1(negative))
    slope = np.where(x > 0, 1.0, alpha * np.exp(negative))
    return scale * value, scale * slope


def _mish(x):
    t = np.tanh(_softplus(x))
    return x * t, t + x * (1.0 - t * t) * _sigmoid(x)


# (value, derivative) of each canonical activation, as Keras 3 defines it.
REFERENCE = {
    "linear": lambda x: (x, np.ones_like(x)),
    "relu": lambda x: (np.maximum(x, 0.0), (x > 0) * 1.0),
    "relu6": lambda x: (np.clip(x, 0.0, 6.0), ((x > 0) & (x < 6)) * 1.0),
    "leaky_relu": lambda x: (np.where(x > 0, x, 0.2 * x), np.where(x > 0, 1.0, 0.2)),
    "elu": lambda x: _elu(x),
    "celu": lambda x: _elu(x),
    "selu": lambda x: _elu(x, SELU_ALPHA, SELU_SCALE),
    "gelu": lambda x: (x * _normal_cdf(x), _normal_cdf(x) + x * _normal_pdf(x)),
    "swish": lambda x: (x * _sigmoid(x), _sigmoid(x) * (1.0 + x * (1.0 - _sigmoid(x)))),
    "hard_swish": lambda x: (x * np.clip(x + 3.0, 0.0, 6.0) / 6.0,
                             np.where(x < -3, 0.0, np.where(x > 3, 1.0, (2.0 * x + 3.0) / 6.0))),
    "mish": _mish,
    "softplus": lambda x: (_softplus(x), _sigmoid(x)),
    "softsign": lambda x: (x / (1.0 + np.abs(x)), 1.0 / (1.0 + np.abs(x)) ** 2),
    "tanh": lambda x: (np.tanh(x), 1.0 - np.tanh(x) ** 2),
    "sigmoid": lambda x: (_sigmoid(x), _sigmoid(x) * (1.0 - _sigmoid(x))),
    "hard_sigmoid": lambda x: (np.clip(x + 3.0, 0.0, 6.0) / 6.0, ((x > -3) & (x < 3)) / 6.0),
    "hard_tanh": lambda x: (np.clip(x, -1.0, 1.0), ((x > -1) & (x < 1)) * 1.0),
    "log_sigmoid": lambda x: (-_softplus(-x), _sigmoid(-x)),
    "tanh_shrink": lambda x: (x - np.tanh(x), np.tanh(x) ** 2),
}
# exponential has closed forms (Monte-Carlo cannot estimate E[exp(2z)^2] at q = 10), and
# softmax acts on a whole vector, so the estimate treats it as part of the loss.
NOT_SAMPLED = {"exponential", "softmax"}


def test_every_canonical_activation_has_a_reference():
    canonical = set(activations.ALIASES.values())
    assert canonical - NOT_SAMPLED == set(REFERENCE)
    assert all(activations.is_modelled(Activation(name)) for name in canonical)


@pytest.mark.parametrize("name", ["relu", "relu6", "elu", "selu", "gelu", "silu", "hard_silu",
                                  "mish", "softplus", "softsign", "tanh", "sigmoid",
                                  "hard_sigmoid", "hard_tanh", "log_sigmoid", "tanh_shrink"])
def test_reference_matches_keras(name):
    keras = keras3()
    canonical = activations.ALIASES[name]
    x = np.linspace(-8.0, 8.0, 2001)
    expected = np.asarray(getattr(keras.activations, name)(x.astype("float32")), dtype=float)
    np.testing.assert_allclose(REFERENCE[canonical](x)[0], expected, rtol=1e-5, atol=1e-5)


def test_leaky_relu_reference_slope_is_keras_default():
    keras = keras3()
    x = np.linspace(-4.0, 4.0, 81).astype("float32")
    expected = np.asarray(keras.activations.leaky_relu(x), dtype=float)
    np.testing.assert_allclose(REFERENCE["leaky_relu"](x)[0], expected, rtol=1e-6, atol=1e-6)


# --- moments against Monte-Carlo -------------------------------------------------------------

@pytest.fixture(scope="module")
def standard_normal():
    return np.random.default_rng(20240601).standard_normal(SAMPLES)


@pytest.mark.parametrize("q", Q_VALUES)
@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_moments_agree_with_monte_carlo(standard_normal, name, q):
    value, slope = REFERENCE[name](standard_normal * math.sqrt(q))
    estimate = moments(Activation(name), q)
    for label, got, sample in (("E[phi]", estimate.mean, value),
                               ("E[phi^2]", estimate.second, value * value),
                               ("E[phi'^2]", estimate.derivative_second, slope * slope)):
        expected = float(np.mean(sample))
        error = float(np.std(sample)) / math.sqrt(SAMPLES)
        tolerance = STANDARD_ERRORS * error + RELATIVE * abs(expected) + ABSOLUTE
        assert abs(got - expected) <= tolerance, (
            f"{name} at q={q}: {label} is {got:.6g}, Monte-Carlo {expected:.6g} +- {error:.2g}")


# --- closed forms ------------------------------------------------------------------------------

def _cdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


@pytest.mark.parametrize("q", Q_VALUES + (1e-4, 100.0))
@pytest.mark.parametrize("slope", [0.0, 0.01, 0.2, 0.3])
def test_relu_family_closed_form(q, slope):
    activation = Activation("relu") if slope == 0.0 else Activation("leaky_relu", slope)
    got = moments(activation, q)
    assert got.mean == pytest.approx((1.0 - slope) * math.sqrt(q / (2.0 * math.pi)), rel=1e-12)
    assert got.second == pytest.approx((1.0 + slope ** 2) * q / 2.0, rel=1e-12)
    assert got.derivative_second == pytest.approx((1.0 + slope ** 2) / 2.0, rel=1e-12)


def test_relu_derivative_is_exactly_one_half():
    # Gauss-Hermite quadrature with a node at 0 gives 0.42 here; a 6x error after 20 layers.
    assert moments(Activation("relu"), 1.0).derivative_second == 0.5


def _elu_closed_form(q: float, alpha: float, scale: float) -> tuple[float, float, float]:
    s = math.sqrt(q)
    tail1 = math.exp(q / 2.0) * _cdf(-s)       # E[exp(z); z < 0]
    tail2 = math.exp(2.0 * q) * _cdf(-2.0 * s)  # E[exp(2z); z < 0]
    mean = s / math.sqrt(2.0 * math.pi) + alpha * (tail1 - 0.5)
    second = q / 2.0 + alpha ** 2 * (tail2 - 2.0 * tail1 + 0.5)
    derivative = 0.5 + alpha ** 2 * tail2
    return scale * mean, scale ** 2 * second, scale ** 2 * derivative


@pytest.mark.parametrize("q", Q_VALUES + (50.0,))
@pytest.mark.parametrize("activation, alpha, scale", [
    (Activation("elu"), 1.0, 1.0),
    (Activation("elu", 0.5), 0.5, 1.0),
    (Activation("selu"), SELU_ALPHA, SELU_SCALE),
])
def test_elu_family_closed_form(q, activation, alpha, scale):
    got = moments(activation, q)
    mean, second, derivative = _elu_closed_form(q, alpha, scale)
    assert got.mean == pytest.approx(mean, rel=1e-9, abs=1e-12)
    assert got.second == pytest.approx(second, rel=1e-9)
    assert got.derivative_second == pytest.approx(derivative, rel=1e-9)


def test_selu_is_self_normalizing():
    # Klambauer et al. (2017): at unit variance SELU keeps mean 0 and second moment 1.
    got = moments(Activation("selu"), 1.0)
    assert got.mean == pytest.approx(0.0, abs=1e-9)
    assert got.second == pytest.approx(1.0, rel=1e-9)


def _clipped_closed_form(q, slope, offset, low, high):
    """Moments of clip(slope * z + offset, low, high) for z ~ N(0, q), integrated piecewise."""
    s = math.sqrt(q)
    a, b = (low - offset) / (slope * s), (high - offset) / (slope * s)  # standardised kinks
    p_low, p_high = _cdf(a), 1.0 - _cdf(b)
    p_mid = 1.0 - p_low - p_high
    pdf = lambda t: math.exp(-0.5 * t * t) / math.sqrt(2.0 * math.pi)  # noqa: E731
    m1 = pdf(a) - pdf(b)                      # E[u; a < u < b], u standard normal
    m2 = p_mid + a * pdf(a) - b * pdf(b)      # E[u^2; a < u < b]
    mean = low * p_low + high * p_high + offset * p_mid + slope * s * m1
    second = (low ** 2 * p_low + high ** 2 * p_high + offset ** 2 * p_mid
              + 2.0 * offset * slope * s * m1 + slope ** 2 * q * m2)
    return mean, second, slope ** 2 * p_mid


@pytest.mark.parametrize("q", Q_VALUES + (100.0,))
@pytest.mark.parametrize("name, slope, offset, low, high", [
    ("relu6", 1.0, 0.0, 0.0, 6.0),
    ("hard_sigmoid", 1.0 / 6.0, 0.5, 0.0, 1.0),
    ("hard_tanh", 1.0, 0.0, -1.0, 1.0),
])
def test_clipped_linear_closed_form(q, name, slope, offset, low, high):
    got = moments(Activation(name), q)
    mean, second, derivative = _clipped_closed_form(q, slope, offset, low, high)
    assert got.mean == pytest.approx(mean, rel=1e-9, abs=1e-12)
    assert got.second == pytest.approx(second, rel=1e-9)
    assert got.derivative_second == pytest.approx(derivative, rel=1e-9)


def test_relu6_is_relu_while_the_cap_is_out_of_reach():
    assert moments(Activation("relu6"), 0.1).second == pytest.approx(0.05, rel=1e-12)


@pytest.mark.parametrize("q", Q_VALUES)
def test_exponential_closed_form(q):
    got = moments(Activation("exponential"), q)
    assert got.mean == pytest.approx(math.exp(q / 2.0), rel=1e-9)
    assert got.second == pytest.approx(math.exp(2.0 * q), rel=1e-9)
    assert got.derivative_second == pytest.approx(math.exp(2.0 * q), rel=1e-9)


@pytest.mark.parametrize("activation", [Activation("linear"), Activation("softmax"),
                                        Activation("unknown:custom>Thing")])
def test_identity_like_activations_pass_the_signal(activation):
    got = moments(activation, 3.0)
    assert (got.mean, got.second, got.derivative_second) == (0.0, 3.0, 1.0)


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_zero_variance_is_the_value_at_zero(name):
    value, slope = REFERENCE[name](np.zeros(1))
    got = moments(Activation(name), 0.0)
    assert got.mean == pytest.approx(float(value[0]), abs=1e-12)
    assert got.second == pytest.approx(float(value[0]) ** 2, abs=1e-12)
    if name not in ("relu", "leaky_relu", "relu6", "elu", "celu", "selu", "hard_swish"):
        # At a kink the derivative at 0 is a convention; elsewhere it is phi'(0)^2.
        assert got.derivative_second == pytest.approx(float(slope[0]) ** 2, abs=1e-12)


# --- names as Keras serializes them ------------------------------------------------------------

@pytest.mark.parametrize("serialized, expected", [
    ("relu", Activation("relu")),
    ("silu", Activation("swish")),
    ("hard_silu", Activation("hard_swish")),
    (None, Activation("linear")),
    ({"class_name": "function", "config": "sigmoid"}, Activation("sigmoid")),
    ({"module": "keras.activations", "class_name": "function", "config": "tanh",
      "registered_name": "function"}, Activation("tanh")),
    ({"class_name": "LeakyReLU", "config": {"negative_slope": 0.1}}, Activation("leaky_relu", 0.1)),
    ({"class_name": "LeakyReLU", "config": {"alpha": 0.3}}, Activation("leaky_relu", 0.3)),
    ({"class_name": "ReLU", "config": {"max_value": 6.0, "negative_slope": 0.0}},
     Activation("relu6")),
    ({"class_name": "ELU", "config": {"alpha": 0.5}}, Activation("elu", 0.5)),
    ({"class_name": "PReLU", "config": {}}, Activation("relu")),
])
def test_normalize(serialized, expected):
    assert activations.normalize(serialized) == expected


def test_unknown_activation_is_marked():
    activation = activations.normalize("my_package>fancy")
    assert activation.name.startswith("unknown:")
    assert not activations.is_modelled(activation)
