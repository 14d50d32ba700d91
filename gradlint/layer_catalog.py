"""Configuration values and the shape arithmetic that layer families share.

What a layer class *is* lives in its family (`gradlint.families`). This module says which
configuration values are usable (`check_config`, with the family's own checks): a model file is data
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


def problem(key: str, expected: str, value: Any) -> ConfigValueError:
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
        raise problem(key, _count_text(minimum), value)
    if number > MAX_SIZE:
        raise problem(key, f"{_count_text(minimum)}, no larger than {MAX_SIZE_TEXT}", value)
    return number


def sizes(key: str, value: Any, rank: int, default: int | None = None) -> tuple[int, ...]:
    """A per-dimension size (``kernel_size``, ``strides``, ``pool_size`` ...): one positive
    whole number for every spatial dimension, or a list of `rank` of them. None (or a
    missing key) gives `default` everywhere when there is one."""
    expected = "a positive whole number (or a list of one)" if rank == 1 else \
        f"a positive whole number or a list of {rank} of them"
    if value is None or value is MISSING:
        if default is None:
            raise problem(key, expected, value)
        return (default,) * rank
    if isinstance(value, (list, tuple)):
        if len(value) != rank:
            raise problem(key, expected, value)
        return tuple(_one_size(key, entry, value, expected) for entry in value)
    return (_one_size(key, value, value, expected),) * rank


def _one_size(key: str, entry: Any, value: Any, expected: str) -> int:
    if type(entry) is int and 1 <= entry <= MAX_SIZE:
        return entry
    number = whole(entry)
    if number is None or number < 1:
        raise problem(key, expected, value)
    if number > MAX_SIZE:
        raise problem(key, f"{expected}, no larger than {MAX_SIZE_TEXT}", value)
    return number


def shape_value(key: str, value: Any, batch: bool = True) -> tuple:
    """A tensor shape from the file: a list of whole numbers from 0 to `MAX_SIZE` or nulls,
    whose known entries (after the batch entry, when `batch`) describe at most `MAX_SIZE`
    values."""
    if not isinstance(value, (list, tuple)):
        raise problem(key, "a list of whole numbers or nulls", value)
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
        raise problem(key, expected, value)
    return number


def small_sizes(value: Any, rank: int) -> bool:
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


def check_config(class_name: str, family, config: dict) -> None:
    """Refuse (with `ConfigValueError`) a configuration value that the shapes or the
    estimate would compute with and that no Keras could have saved: sizes, strides, shapes
    and axes that are not whole numbers in range, non-finite epsilons and rescaling factors.
    Values that only select between behaviours (padding, data format, merge mode) are not
    checked: an unknown one is read as Keras's default, as before. The layer's family knows
    its keys (`Family.check_config`); a few type and range checks per layer."""
    family.check_config(class_name.rsplit(">", 1)[-1], config)


# --- shapes ---------------------------------------------------------------------------------

def as_shape(shape: Any) -> tuple | None:
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


def channels_last(config: dict) -> bool:
    return config.get("data_format", "channels_last") != "channels_first"


def border_pairs(value: Any, rank: int) -> tuple[tuple[int, int], ...] | None:
    """A ZeroPadding or Cropping layer's `padding`/`cropping` as (before, after) per spatial
    axis: an int for every side, one entry per axis (an int for both of its sides, or a
    pair), or for one axis its pair alone (`ZeroPadding1D(padding=(1, 2))`). None for what
    is none of these."""
    if type(value) is int:
        value = [value] * rank
    if not isinstance(value, (list, tuple)):
        return None
    if rank == 1 and len(value) == 2 and all(type(entry) is int for entry in value):
        value = [value]
    if len(value) != rank:
        return None
    pairs = []
    for entry in value:
        pair = (entry, entry) if type(entry) is int else tuple(entry) \
            if isinstance(entry, (list, tuple)) and len(entry) == 2 else None
        if pair is None or not all(type(side) is int and 0 <= side <= MAX_SIZE
                                   for side in pair):
            return None
        pairs.append(pair)
    return tuple(pairs)


def tuple_of(value: Any, rank: int, default: int = 1) -> tuple[int, ...] | None:
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


def size_of(config: dict, key: str, default: int | None = None, minimum: int = 1) -> int | None:
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


def spatial_output(config: dict, shape: tuple, window: str, channels: int | None = None,
                   multiplier: int | None = None, transpose: bool = False) -> tuple | None:
    """The output shape of a layer that slides a window over the spatial axes: a
    convolution (`window` "window", with its `channels` or depthwise `multiplier`), a
    pooling ("pool") or an upsampling ("upsampling") layer."""
    rank = len(shape) - 2
    if rank < 1:
        return None
    last = channels_last(config)
    spatial = shape[1:-1] if last else shape[2:]
    present = shape[-1] if last else shape[1]
    if window == "upsampling":
        size = tuple_of(config.get("size"), rank, 2)
        if size is None:
            return None
        new = tuple(None if s is None else s * f for s, f in zip(spatial, size))
        channels = present
    elif window == "pool":
        pool = tuple_of(config.get("pool_size"), rank, 2)
        strides = tuple_of(config.get("strides") or pool, rank)
        if pool is None or strides is None:
            return None
        padding = config.get("padding", "valid")
        new = tuple(_spatial_out(s, k, st, padding) for s, k, st in zip(spatial, pool, strides))
        channels = present
    else:
        kernel = tuple_of(config.get("kernel_size"), rank)
        strides = tuple_of(config.get("strides"), rank)
        dilation = tuple_of(config.get("dilation_rate"), rank)
        if kernel is None or strides is None or dilation is None:
            return None
        padding = config.get("padding", "valid")
        new = tuple(_spatial_out(s, k, st, padding, d, transpose=transpose)
                    for s, k, st, d in zip(spatial, kernel, strides, dilation))
        if multiplier is not None:
            channels = None if present is None else present * multiplier
    if last:
        return (shape[0],) + new + (channels,)
    return (shape[0], channels) + new


def window_product(value, rank: int, default: int) -> float | None:
    """The product of a per-dimension size (strides, pool size, upsampling size) over `rank`
    dimensions, as a float; None when the value is not one (`sizes`)."""
    value = value or default
    if type(value) is int and 1 <= value <= MAX_SIZE:
        try:
            return float(value) ** rank
        except OverflowError:
            return math.inf
    if isinstance(value, (list, tuple)) and value and \
            all(type(v) is int and 1 <= v <= MAX_SIZE for v in value):
        return _as_float(math.prod(value))
    number = whole(value)
    if number is not None and 1 <= number <= MAX_SIZE:
        return window_product(number, rank, default)
    if isinstance(value, (list, tuple)) and value:
        numbers_ = [whole(v) for v in value]
        if all(n is not None and 1 <= n <= MAX_SIZE for n in numbers_):
            return _as_float(math.prod(numbers_))
    return None


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
