"""What gradlint knows about Keras layer classes: their kind, their kernel's shape, and the
shape of what they output. One table, so that readers and analyses agree.

It also says which configuration values are usable (`check_config`): a model file is data
from anywhere, so every size, stride and shape entry that the arithmetic here or in the
estimate reads is checked once, when the graph is built, for its type, its finiteness and
its range. A value that no Keras could have saved and that would break that arithmetic
(``units: {}``, ``strides: [0, 0]``, a dict inside a shape) raises `ConfigValueError`,
which the reader turns into a GL001 message naming the layer and the key. Sizes above
`MAX_SIZE` are refused too, so that no product of sizes can overflow a float. The
arithmetic itself still takes nothing for granted: given a value `check_config` would
refuse, it leaves the shape unknown (None) instead of failing.
"""

from __future__ import annotations

import json
import math
import numbers
from typing import Any

# The largest size, shape entry or count gradlint accepts from a file, and the most values
# per sample a tensor shape may describe: 2**40 (1.1e12) is far beyond any real layer (a
# Dense layer that wide would hold terabytes), and keeps every product of a few sizes exact
# in a float.
MAX_SIZE = 2 ** 40
MAX_SIZE_TEXT = "2**40"

KIND_BY_CLASS = {
    "InputLayer": "input",
    "Dense": "dense",
    "EinsumDense": "dense",
    "Conv1D": "conv", "Conv2D": "conv", "Conv3D": "conv",
    "Convolution1D": "conv", "Convolution2D": "conv", "Convolution3D": "conv",
    "Conv1DTranspose": "conv_transpose", "Conv2DTranspose": "conv_transpose",
    "Conv3DTranspose": "conv_transpose", "Convolution2DTranspose": "conv_transpose",
    "Deconvolution2D": "conv_transpose",
    "DepthwiseConv1D": "depthwise", "DepthwiseConv2D": "depthwise",
    "SeparableConv1D": "separable", "SeparableConv2D": "separable",
    "SeparableConvolution1D": "separable", "SeparableConvolution2D": "separable",
    "Embedding": "embedding",
    "SimpleRNN": "recurrent", "LSTM": "recurrent", "GRU": "recurrent", "RNN": "recurrent",
    "CuDNNLSTM": "recurrent", "CuDNNGRU": "recurrent",
    "ConvLSTM1D": "recurrent", "ConvLSTM2D": "recurrent", "ConvLSTM3D": "recurrent",
    "Bidirectional": "recurrent",
    "TimeDistributed": "wrapper",
    "BatchNormalization": "normalization", "SyncBatchNormalization": "normalization",
    "LayerNormalization": "normalization", "GroupNormalization": "normalization",
    "UnitNormalization": "normalization", "RMSNormalization": "normalization",
    "Normalization": "normalization",
    "Activation": "activation", "ReLU": "activation", "LeakyReLU": "activation",
    "PReLU": "activation", "ELU": "activation", "Softmax": "activation",
    "ThresholdedReLU": "activation",
    "Add": "add", "Subtract": "add",
    "Average": "average",
    "Multiply": "multiply",
    "Maximum": "maximum", "Minimum": "maximum",
    "Concatenate": "concatenate",
    "Dot": "dot",
    "MaxPooling1D": "pool_max", "MaxPooling2D": "pool_max", "MaxPooling3D": "pool_max",
    "MaxPool1D": "pool_max", "MaxPool2D": "pool_max", "MaxPool3D": "pool_max",
    "AveragePooling1D": "pool_avg", "AveragePooling2D": "pool_avg", "AveragePooling3D": "pool_avg",
    "AvgPool1D": "pool_avg", "AvgPool2D": "pool_avg", "AvgPool3D": "pool_avg",
    "GlobalMaxPooling1D": "global_pool_max", "GlobalMaxPooling2D": "global_pool_max",
    "GlobalMaxPooling3D": "global_pool_max", "GlobalMaxPool1D": "global_pool_max",
    "GlobalMaxPool2D": "global_pool_max", "GlobalMaxPool3D": "global_pool_max",
    "GlobalAveragePooling1D": "global_pool_avg", "GlobalAveragePooling2D": "global_pool_avg",
    "GlobalAveragePooling3D": "global_pool_avg", "GlobalAvgPool1D": "global_pool_avg",
    "GlobalAvgPool2D": "global_pool_avg", "GlobalAvgPool3D": "global_pool_avg",
    "UpSampling1D": "upsampling", "UpSampling2D": "upsampling", "UpSampling3D": "upsampling",
    "Rescaling": "rescaling",
    "MultiHeadAttention": "attention", "Attention": "attention",
    "AdditiveAttention": "attention", "GroupQueryAttention": "attention",
    "RepeatVector": "repeat",
    "Lambda": "opaque", "TFOpLambda": "opaque", "SlicingOpLambda": "opaque",
}

# Layers that change neither scale nor gradient (shape changes, dropout, padding, masks).
PASS_THROUGH_CLASSES = frozenset({
    "Flatten", "Reshape", "Permute", "Dropout", "SpatialDropout1D", "SpatialDropout2D",
    "SpatialDropout3D", "GaussianDropout", "GaussianNoise", "AlphaDropout",
    "ActivityRegularization", "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D",
    "Cropping1D", "Cropping2D", "Cropping3D", "Masking", "Identity", "Resizing",
    "CenterCrop", "RandomFlip", "RandomRotation", "RandomZoom", "RandomTranslation",
    "RandomContrast", "RandomCrop", "RandomBrightness", "CategoryEncoding", "Hashing",
    "StringLookup", "IntegerLookup", "TextVectorization", "Discretization",
    "AutoContrast", "Equalization", "Solarization", "RandomGrayscale",
})

MODEL_CLASSES = frozenset({"Functional", "Model", "Sequential"})

WEIGHTED_KINDS = frozenset({"dense", "conv", "conv_transpose", "depthwise", "separable",
                            "embedding", "recurrent"})
MERGE_KINDS = frozenset({"add", "average", "multiply", "maximum", "concatenate", "dot"})

GATED_CELLS = frozenset({"LSTM", "GRU", "LSTMCell", "GRUCell", "CuDNNLSTM", "CuDNNGRU",
                         "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D"})
UNGATED_CELLS = frozenset({"SimpleRNN", "SimpleRNNCell"})
# Recurrent layers and cells whose `units` the shapes and the estimate read.
UNITS_CLASSES = frozenset({"SimpleRNN", "LSTM", "GRU", "CuDNNLSTM", "CuDNNGRU",
                           "SimpleRNNCell", "LSTMCell", "GRUCell"})


def kind_of(class_name: str, config: dict[str, Any]) -> str:
    """The layer's kind, as the analyses treat it."""
    name = class_name.rsplit(">", 1)[-1]
    if name in KIND_BY_CLASS:
        return KIND_BY_CLASS[name]
    if name in PASS_THROUGH_CLASSES:
        return "pass_through"
    if name in MODEL_CLASSES or "layers" in config:
        return "model"
    return "unknown"


# --- configuration values -------------------------------------------------------------------

class ConfigValueError(ValueError):
    """A configuration value gradlint cannot use. The message names the key and says what it
    must be; the reader adds the layer (``layer 'dense_1': 'units' must be ...``)."""

    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key = key


MISSING = object()


def shown(value: Any, limit: int = 60) -> str:
    """A configuration value as a message quotes it: as JSON (as the file has it), cut short."""
    if value is MISSING:
        return "nothing"
    try:
        text = json.dumps(value, default=repr)
    except (TypeError, ValueError, RecursionError):
        text = f"a {type(value).__name__}"
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _problem(key: str, expected: str, value: Any) -> ConfigValueError:
    if value is MISSING:
        return ConfigValueError(key, f"'{key}' is missing; it must be {expected}")
    return ConfigValueError(key, f"'{key}' must be {expected} (got {shown(value)})")


def whole(value: Any) -> int | None:
    """`value` as an int when it is a whole number (an int, or a float without a fraction),
    else None. Booleans are not numbers here."""
    if type(value) is int:
        return value
    if isinstance(value, bool):
        return None
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        try:
            number = float(value)
        except (OverflowError, ValueError, TypeError):
            return None
        if math.isfinite(number) and number.is_integer():
            return int(number)
    return None


def real(value: Any) -> float | None:
    """`value` as a float when it is a finite real number (not a boolean), else None."""
    if type(value) is float:
        return value if math.isfinite(value) else None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    try:
        number = float(value)
    except (OverflowError, ValueError, TypeError):
        return None
    return number if math.isfinite(number) else None


def _count_text(minimum: int) -> str:
    return "a positive whole number" if minimum == 1 else f"a whole number of at least {minimum}"


def count(key: str, value: Any, minimum: int = 1) -> int:
    """A size from the configuration: a whole number from `minimum` to `MAX_SIZE`."""
    number = value if type(value) is int else whole(value)
    if number is None or number < minimum:
        raise _problem(key, _count_text(minimum), value)
    if number > MAX_SIZE:
        raise _problem(key, f"{_count_text(minimum)}, no larger than {MAX_SIZE_TEXT}", value)
    return number


def sizes(key: str, value: Any, rank: int, default: int | None = None) -> tuple[int, ...]:
    """A per-dimension size (``kernel_size``, ``strides``, ``pool_size`` ...): one positive
    whole number for every spatial dimension, or a list of `rank` of them. None (or a
    missing key) gives `default` everywhere when there is one."""
    expected = "a positive whole number (or a list of one)" if rank == 1 else \
        f"a positive whole number or a list of {rank} of them"
    if value is None or value is MISSING:
        if default is None:
            raise _problem(key, expected, value)
        return (default,) * rank
    if isinstance(value, (list, tuple)):
        if len(value) != rank:
            raise _problem(key, expected, value)
        return tuple(_one_size(key, entry, value, expected) for entry in value)
    return (_one_size(key, value, value, expected),) * rank


def _one_size(key: str, entry: Any, value: Any, expected: str) -> int:
    if type(entry) is int and 1 <= entry <= MAX_SIZE:
        return entry
    number = whole(entry)
    if number is None or number < 1:
        raise _problem(key, expected, value)
    if number > MAX_SIZE:
        raise _problem(key, f"{expected}, no larger than {MAX_SIZE_TEXT}", value)
    return number


def shape_value(key: str, value: Any, batch: bool = True) -> tuple:
    """A tensor shape from the file: a list of whole numbers from 0 to `MAX_SIZE` or nulls,
    whose known entries (after the batch entry, when `batch`) describe at most `MAX_SIZE`
    values."""
    if not isinstance(value, (list, tuple)):
        raise _problem(key, "a list of whole numbers or nulls", value)
    total = 1
    for entry in value:  # the usual case: ints and nulls, few values in all
        if entry is None:
            continue
        if type(entry) is not int or not 0 <= entry <= MAX_SIZE:
            break
        total *= entry
    else:
        if total <= MAX_SIZE:
            return tuple(value)
    result = []
    total = 1
    for index, entry in enumerate(value):
        if entry is None:
            result.append(None)
            continue
        number = entry if type(entry) is int else whole(entry)
        if number is None or number < 0 or number > MAX_SIZE:
            raise ConfigValueError(key, f"'{key}' must be a list of whole numbers from 0 to "
                                        f"{MAX_SIZE_TEXT} or nulls (entry {index} of "
                                        f"{shown(value)} is {shown(entry)})")
        if index or not batch:
            total *= number
            if total > MAX_SIZE:
                raise ConfigValueError(key, f"'{key}' describes more than {MAX_SIZE_TEXT} "
                                            f"values per sample (got {shown(value)})")
        result.append(number)
    return tuple(result)


def finite_number(key: str, value: Any, minimum: float | None = None) -> float:
    """A real-valued parameter (an epsilon, a slope): a finite number, at least `minimum`."""
    number = real(value)
    if number is None or (minimum is not None and number < minimum):
        expected = "a finite number" if minimum is None else \
            f"a finite number of at least {minimum:g}"
        raise _problem(key, expected, value)
    return number


def _small_sizes(value: Any, rank: int) -> bool:
    """Whether `value` is a per-dimension size in its usual form: an int or a list of `rank`
    ints, each from 1 to `MAX_SIZE` (the fast path of `sizes`)."""
    if type(value) is int:
        return 1 <= value <= MAX_SIZE
    if type(value) is list or type(value) is tuple:
        if len(value) != rank:
            return False
        for entry in value:
            if type(entry) is not int or not 1 <= entry <= MAX_SIZE:
                return False
        return True
    return False


def _check_input(name: str, class_name: str, config: dict) -> None:
    for key in ("batch_shape", "batch_input_shape"):
        value = config.get(key)
        if value is not None:
            shape_value(key, value)


def _check_dense(name: str, class_name: str, config: dict) -> None:
    if class_name == "Dense":
        units = config.get("units", MISSING)
        if not (type(units) is int and 1 <= units <= MAX_SIZE):
            count("units", units)
        return
    out = config.get("output_shape")
    if isinstance(out, (list, tuple)):
        shape_value("output_shape", out, batch=False)
    elif out is not None and not isinstance(out, str):
        count("output_shape", out, 0)


def _check_convolution(name: str, class_name: str, config: dict) -> None:
    kind = KIND_BY_CLASS[name]
    _check_window(config, spatial_rank(class_name))
    if kind != "depthwise":
        filters = config.get("filters", MISSING)
        if not (type(filters) is int and 1 <= filters <= MAX_SIZE):
            filters = count("filters", filters)
        groups = config.get("groups")
        if kind == "conv" and groups is not None and not (type(groups) is int and groups == 1):
            if filters % count("groups", groups):
                raise _problem("groups", f"a whole number that divides 'filters' ({filters})",
                               groups)
    if kind in ("depthwise", "separable"):
        multiplier = config.get("depth_multiplier")
        if multiplier is not None and not (type(multiplier) is int
                                           and 1 <= multiplier <= MAX_SIZE):
            count("depth_multiplier", multiplier)


def _check_window(config: dict, rank: int) -> None:
    kernel = config.get("kernel_size", MISSING)
    if not _small_sizes(kernel, rank):
        sizes("kernel_size", kernel, rank)
    for key in ("strides", "dilation_rate"):
        value = config.get(key)
        if value is not None and not _small_sizes(value, rank):
            sizes(key, value, rank, 1)


def _check_pool(name: str, class_name: str, config: dict) -> None:
    rank = spatial_rank(class_name)
    for key in ("pool_size", "strides"):
        value = config.get(key)
        if value is not None and not _small_sizes(value, rank):
            sizes(key, value, rank, 2)


def _check_upsampling(name: str, class_name: str, config: dict) -> None:
    value = config.get("size")
    rank = spatial_rank(class_name)
    if value is not None and not _small_sizes(value, rank):
        sizes("size", value, rank, 2)


def _check_embedding(name: str, class_name: str, config: dict) -> None:
    count("input_dim", config.get("input_dim", MISSING))
    count("output_dim", config.get("output_dim", MISSING))


def _check_recurrent(name: str, class_name: str, config: dict) -> None:
    # A ConvLSTM's sizes are not read (its output shape is left unknown); the units of
    # LSTM, GRU and SimpleRNN are checked with the cells' (`UNITS_CLASSES`).
    if not name.startswith("ConvLSTM") and name not in UNITS_CLASSES:
        for key in ("units", "filters"):
            if config.get(key) is not None:
                count(key, config[key])


def _check_repeat(name: str, class_name: str, config: dict) -> None:
    if "n" in config:
        count("n", config["n"], 0)


def _check_concatenate(name: str, class_name: str, config: dict) -> None:
    axis = config.get("axis", -1)
    number = axis if type(axis) is int else whole(axis)
    if number is None or abs(number) > MAX_SIZE:
        raise _problem("axis", "a whole number", axis)


def _check_normalization(name: str, class_name: str, config: dict) -> None:
    epsilon = config.get("epsilon")
    if epsilon is not None and not (type(epsilon) is float and 0.0 <= epsilon < math.inf):
        finite_number("epsilon", epsilon, 0.0)


def _check_rescaling(name: str, class_name: str, config: dict) -> None:
    for key in ("scale", "offset"):
        value = config.get(key)
        if isinstance(value, (bool, numbers.Real)) and real(value) is None:
            raise _problem(key, "a finite number or a list of them", value)


def _check_attention(name: str, class_name: str, config: dict) -> None:
    out = config.get("output_shape")
    if isinstance(out, (bool, numbers.Real)):
        count("output_shape", out)


def _check_pass_through(name: str, class_name: str, config: dict) -> None:
    if name == "Reshape":
        target = config.get("target_shape")
        if target is not None:
            _check_target_shape(target)
    elif name == "Permute":
        dims = config.get("dims")
        if dims is not None:
            if not isinstance(dims, (list, tuple)):
                raise _problem("dims", "a list of positive whole numbers", dims)
            for entry in dims:
                if whole(entry) is None or not 1 <= whole(entry) <= MAX_SIZE:
                    raise _problem("dims", "a list of positive whole numbers", dims)


_CHECKS = {
    "input": _check_input, "dense": _check_dense, "conv": _check_convolution,
    "conv_transpose": _check_convolution, "depthwise": _check_convolution,
    "separable": _check_convolution, "pool_max": _check_pool, "pool_avg": _check_pool,
    "upsampling": _check_upsampling, "embedding": _check_embedding,
    "recurrent": _check_recurrent, "repeat": _check_repeat, "concatenate": _check_concatenate,
    "normalization": _check_normalization, "rescaling": _check_rescaling,
    "attention": _check_attention, "pass_through": _check_pass_through,
}


def check_config(class_name: str, kind: str, config: dict) -> None:
    """Refuse (with `ConfigValueError`) a configuration value that the shapes here or the
    estimate would compute with and that no Keras could have saved: sizes, strides, shapes
    and axes that are not whole numbers in range, non-finite epsilons and rescaling factors.
    Values that only select between behaviours (padding, data format, merge mode) are not
    checked: an unknown one is read as Keras's default, as before. A few type and range
    checks per layer."""
    name = class_name.rsplit(">", 1)[-1]
    check = _CHECKS.get(kind)
    if check is not None:
        check(name, class_name, config)
    if name in UNITS_CLASSES:
        units = config.get("units", MISSING)
        if not (type(units) is int and 1 <= units <= MAX_SIZE):
            count("units", units)


def _check_target_shape(target: Any) -> None:
    """Reshape's `target_shape`: whole numbers from 0 up or nulls, at most one -1."""
    expected = "a list of whole numbers (at most one of them -1)"
    if not isinstance(target, (list, tuple)):
        raise _problem("target_shape", expected, target)
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
            raise _problem("target_shape", expected, target)
        total *= number
        if total > MAX_SIZE:
            raise ConfigValueError("target_shape", f"'target_shape' describes more than "
                                                   f"{MAX_SIZE_TEXT} values per sample (got "
                                                   f"{shown(target)})")
    if inferred > 1:
        raise _problem("target_shape", expected, target)


# --- shapes ---------------------------------------------------------------------------------

def _as_tuple(shape: Any) -> tuple | None:
    if isinstance(shape, (list, tuple)):
        try:
            return shape_value("shape", shape)
        except ConfigValueError:
            return None
    return None


def bounded(shape: tuple | None) -> tuple | None:
    """An inferred shape, or None when an entry is not a whole number from 0 to `MAX_SIZE`
    or the entries after the batch describe more than `MAX_SIZE` values (so that repeated
    upsampling or concatenation cannot build sizes that overflow later arithmetic)."""
    if shape is None:
        return None
    total = 1
    for index, entry in enumerate(shape):
        if entry is None:
            continue
        if type(entry) is not int or entry < 0 or entry > MAX_SIZE:
            return None
        if index:
            total *= entry
            if total > MAX_SIZE:
                return None
    return shape


def _channels_last(config: dict) -> bool:
    return config.get("data_format", "channels_last") != "channels_first"


def _tuple_of(value: Any, rank: int, default: int = 1) -> tuple[int, ...] | None:
    """A per-dimension size as a tuple (a list is taken as it is; `check_config` checked
    its length), or None when an entry is not a whole number from 1 to `MAX_SIZE`."""
    if value is None:
        return (default,) * rank
    if type(value) is int and 1 <= value <= MAX_SIZE:
        return (value,) * rank
    if isinstance(value, (list, tuple)):
        result = tuple(whole(entry) for entry in value)
        return result if all(entry is not None and 1 <= entry <= MAX_SIZE
                             for entry in result) else None
    number = whole(value)
    return (number,) * rank if number is not None and 1 <= number <= MAX_SIZE else None


def _size(config: dict, key: str, default: int | None = None, minimum: int = 1) -> int | None:
    """A whole-number size from the configuration (`default` when missing or null), or None
    when it is unusable."""
    value = config.get(key)
    if value is None:
        value = default
    if type(value) is int and minimum <= value <= MAX_SIZE:
        return value
    number = whole(value)
    if number is None or number < minimum or number > MAX_SIZE:
        return None
    return number


def _spatial_out(size: int | None, kernel: int, stride: int, padding: str, dilation: int = 1,
                 transpose: bool = False) -> int | None:
    if size is None:
        return None
    effective = (kernel - 1) * dilation + 1
    if transpose:
        if padding == "same":
            return size * stride
        return size * stride + max(effective - stride, 0)
    if padding == "same":
        return -(-size // stride)
    if padding == "causal":
        return -(-size // stride)
    return (size - effective) // stride + 1 if size >= effective else 0


def spatial_rank(class_name: str) -> int:
    for rank in (3, 2, 1):
        if f"{rank}D" in class_name:
            return rank
    return 2


def output_shape(class_name: str, kind: str, config: dict, inputs: list[tuple | None],
                 inner: tuple[str, str, dict] | None = None) -> tuple | None:
    """The output shape of one call, or None when it cannot be worked out from the config
    (or would describe more than `MAX_SIZE` values per sample)."""
    return bounded(_output_shape(class_name, kind, config, inputs, inner))


def _output_shape(class_name: str, kind: str, config: dict, inputs: list[tuple | None],
                  inner: tuple[str, str, dict] | None = None) -> tuple | None:
    first = inputs[0] if inputs else None
    if kind == "input":
        return _as_tuple(config.get("batch_shape") or config.get("batch_input_shape"))
    if kind in ("activation", "normalization", "rescaling", "pass_through") and class_name not in (
            "Flatten", "Reshape", "Permute", "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D",
            "Cropping1D", "Cropping2D", "Cropping3D", "Resizing", "CenterCrop", "RandomCrop"):
        return first
    if first is None:
        return None
    if kind == "dense":
        if class_name == "Dense":
            units = _size(config, "units", 0, minimum=0)
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
    if kind in ("add", "average", "multiply", "maximum"):
        return first
    if kind == "concatenate":
        axis = whole(config.get("axis", -1))
        if axis is None or any(shape is None for shape in inputs):
            return None
        if any(not -len(shape) <= axis < len(shape) for shape in inputs):
            return None
        parts = [shape[axis] for shape in inputs]
        if any(part is None for part in parts):
            total = None
        else:
            total = sum(parts)
        result = list(first)
        result[axis] = total
        return tuple(result)
    if class_name == "Flatten":
        rest = first[1:]
        return (first[0], math.prod(rest) if all(d is not None for d in rest) else None)
    if class_name == "Reshape":
        return _reshaped(first, config.get("target_shape"))
    if class_name == "Permute":
        dims = config.get("dims") or []
        if not isinstance(dims, (list, tuple)):
            return None
        picked = []
        for entry in dims:
            index = whole(entry)
            if index is None or not 0 <= index < len(first):
                return None
            picked.append(first[index])
        return (first[0],) + tuple(picked)
    if kind == "repeat":
        n = _size(config, "n", 1, minimum=0)
        return (first[0], n) + first[1:] if n is not None else None
    if kind in ("global_pool_avg", "global_pool_max"):
        if config.get("keepdims") or len(first) < 2:
            return None
        return (first[0], first[-1] if _channels_last(config) else first[1])
    if kind in ("conv", "conv_transpose", "depthwise", "separable", "pool_max", "pool_avg",
                "upsampling"):
        return _spatial_output(class_name, kind, config, first)
    if kind == "embedding":
        output_dim = _size(config, "output_dim", 0, minimum=0)
        return first + (output_dim,) if output_dim is not None else None
    if kind == "recurrent":
        return _recurrent_output(class_name, config, first, inner)
    if kind == "attention":
        if class_name != "MultiHeadAttention" or not isinstance(config.get("output_shape"), int):
            return first
        units = _size(config, "output_shape")
        return first[:-1] + (units,) if units is not None else None
    return None


def _reshaped(first: tuple, target: Any) -> tuple | None:
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


def _spatial_output(class_name: str, kind: str, config: dict, shape: tuple) -> tuple | None:
    rank = len(shape) - 2
    if rank < 1:
        return None
    channels_last = _channels_last(config)
    spatial = shape[1:-1] if channels_last else shape[2:]
    channels = shape[-1] if channels_last else shape[1]
    if kind == "upsampling":
        size = _tuple_of(config.get("size"), rank, 2)
        if size is None:
            return None
        new = tuple(None if s is None else s * f for s, f in zip(spatial, size))
    elif kind in ("pool_max", "pool_avg"):
        pool = _tuple_of(config.get("pool_size"), rank, 2)
        strides = _tuple_of(config.get("strides") or pool, rank)
        if pool is None or strides is None:
            return None
        padding = config.get("padding", "valid")
        new = tuple(_spatial_out(s, k, st, padding) for s, k, st in zip(spatial, pool, strides))
    else:
        kernel = _tuple_of(config.get("kernel_size"), rank)
        strides = _tuple_of(config.get("strides"), rank)
        dilation = _tuple_of(config.get("dilation_rate"), rank)
        if kernel is None or strides is None or dilation is None:
            return None
        padding = config.get("padding", "valid")
        new = tuple(_spatial_out(s, k, st, padding, d, transpose=kind == "conv_transpose")
                    for s, k, st, d in zip(spatial, kernel, strides, dilation))
        if kind == "depthwise":
            multiplier = _size(config, "depth_multiplier", 1)
            if multiplier is None:
                return None
            channels = None if channels is None else channels * multiplier
        else:
            channels = _size(config, "filters", 0, minimum=0)
            if channels is None:
                return None
    if channels_last:
        return (shape[0],) + new + (channels,)
    return (shape[0], channels) + new


def _recurrent_output(class_name: str, config: dict, shape: tuple,
                      inner: tuple[str, str, dict] | None) -> tuple | None:
    if class_name == "Bidirectional" and inner is not None:
        _, _, inner_config = inner
        single = _recurrent_output(inner[0], inner_config, shape, None)
        if single is None:
            return None
        if config.get("merge_mode", "concat") == "concat" and single[-1] is not None:
            return single[:-1] + (single[-1] * 2,)
        return single
    units = config.get("units") or config.get("filters")
    if units is None and inner is not None:
        units = inner[2].get("units")
    if class_name.startswith("ConvLSTM"):
        return None
    if units is not None:
        units = whole(units)
        if units is None or not 0 <= units <= MAX_SIZE:
            return None
    if config.get("return_sequences"):
        return shape[:2] + (units,)
    return (shape[0], units)


POSITIONS_LIMIT = MAX_SIZE * MAX_SIZE


def positions(shape: tuple | None) -> int:
    """How many positions (time steps, pixels) share one kernel: all dimensions between the
    batch and the channels. Unknown (or unusable) dimensions count as one; the count stops
    growing at `POSITIONS_LIMIT`, which shapes that passed `check_config` never reach."""
    if not shape or len(shape) <= 2:
        return 1
    total = 1
    for dim in shape[1:-1]:
        if type(dim) is int and dim > 0:
            total *= dim
            if total > POSITIONS_LIMIT:
                return POSITIONS_LIMIT
    return total


def kernel_shape(class_name: str, kind: str, config: dict, input_shape: tuple | None) -> tuple | None:
    """The shape Keras gives the layer's (first) kernel, from its config and input shape;
    None when they cannot tell (or hold a value `check_config` refuses)."""
    channels = None
    if input_shape:
        channels = input_shape[-1] if _channels_last(config) else (
            input_shape[1] if len(input_shape) > 1 else None)
        if channels is not None and (type(channels) is not int or not 0 <= channels <= MAX_SIZE):
            return None
    if kind == "dense" and class_name == "Dense":
        units = _size(config, "units", 0, minimum=0)
        return (channels, units) if channels and units is not None else None
    if kind == "embedding":
        input_dim = _size(config, "input_dim", 0, minimum=0)
        output_dim = _size(config, "output_dim", 0, minimum=0)
        if input_dim is None or output_dim is None:
            return None
        return (input_dim, output_dim)
    if kind in ("conv", "conv_transpose", "depthwise", "separable"):
        rank = spatial_rank(class_name)
        kernel = _tuple_of(config.get("kernel_size"), rank)
        if channels is None or kernel is None:
            return None
        if kind == "depthwise" or kind == "separable":
            multiplier = _size(config, "depth_multiplier", 1)
            return kernel + (channels, multiplier) if multiplier is not None else None
        groups = config.get("groups", 1) or 1
        groups = groups if type(groups) is int and 1 <= groups <= MAX_SIZE else \
            _size({"groups": groups}, "groups")
        filters = _size(config, "filters", 0, minimum=0)
        if groups is None or filters is None:
            return None
        if kind == "conv_transpose":
            return kernel + (filters, channels)
        return kernel + (channels // groups, filters)
    return None


def _as_float(number: int) -> float:
    """An int as a float, infinite where it is beyond the float range."""
    try:
        return float(number)
    except OverflowError:
        return math.inf if number > 0 else -math.inf


def keras_fans(shape: tuple[int, ...]) -> tuple[float, float]:
    """Fan-in and fan-out exactly as Keras's initializers compute them from a kernel shape."""
    if len(shape) == 0:
        return 1.0, 1.0
    if len(shape) == 1:
        return _as_float(shape[0]), _as_float(shape[0])
    if len(shape) == 2:
        return _as_float(shape[0]), _as_float(shape[1])
    receptive = math.prod(shape[:-2])
    return _as_float(shape[-2] * receptive), _as_float(shape[-1] * receptive)
