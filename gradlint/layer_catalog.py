"""What gradlint knows about Keras layer classes: their kind, their kernel's shape, and the
shape of what they output. One table, so that readers and analyses agree."""

from __future__ import annotations

import math
from typing import Any

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


def _as_tuple(shape: Any) -> tuple | None:
    if isinstance(shape, (list, tuple)) and all(d is None or isinstance(d, int) for d in shape):
        return tuple(shape)
    return None


def _channels_last(config: dict) -> bool:
    return config.get("data_format", "channels_last") != "channels_first"


def _tuple_of(value: Any, rank: int, default: int = 1) -> tuple[int, ...]:
    if value is None:
        return (default,) * rank
    if isinstance(value, int):
        return (value,) * rank
    return tuple(int(v) for v in value)


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
    """The output shape of one call, or None when it cannot be worked out from the config."""
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
            return first[:-1] + (int(config.get("units", 0)),)
        out = config.get("output_shape")
        if isinstance(out, int):
            out = [out]
        return (first[0],) + tuple(out) if isinstance(out, (list, tuple)) else None
    if kind in ("add", "average", "multiply", "maximum"):
        return first
    if kind == "concatenate":
        axis = int(config.get("axis", -1))
        if any(shape is None for shape in inputs):
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
        target = config.get("target_shape")
        return (first[0],) + tuple(target) if isinstance(target, (list, tuple)) else None
    if class_name == "Permute":
        dims = config.get("dims") or []
        return (first[0],) + tuple(first[d] for d in dims)
    if kind == "repeat":
        return (first[0], int(config.get("n", 1))) + first[1:]
    if kind in ("global_pool_avg", "global_pool_max"):
        if config.get("keepdims"):
            return None
        return (first[0], first[-1] if _channels_last(config) else first[1])
    if kind in ("conv", "conv_transpose", "depthwise", "separable", "pool_max", "pool_avg",
                "upsampling"):
        return _spatial_output(class_name, kind, config, first)
    if kind == "embedding":
        return first + (int(config.get("output_dim", 0)),)
    if kind == "recurrent":
        return _recurrent_output(class_name, config, first, inner)
    if kind == "attention":
        return first if class_name != "MultiHeadAttention" else (
            first[:-1] + (int(config["output_shape"]),) if isinstance(config.get("output_shape"), int)
            else first)
    return None


def _spatial_output(class_name: str, kind: str, config: dict, shape: tuple) -> tuple | None:
    rank = len(shape) - 2
    if rank < 1:
        return None
    channels_last = _channels_last(config)
    spatial = shape[1:-1] if channels_last else shape[2:]
    channels = shape[-1] if channels_last else shape[1]
    if kind == "upsampling":
        size = _tuple_of(config.get("size"), rank, 2)
        new = tuple(None if s is None else s * f for s, f in zip(spatial, size))
    elif kind in ("pool_max", "pool_avg"):
        pool = _tuple_of(config.get("pool_size"), rank, 2)
        strides = _tuple_of(config.get("strides") or pool, rank)
        padding = config.get("padding", "valid")
        new = tuple(_spatial_out(s, k, st, padding) for s, k, st in zip(spatial, pool, strides))
    else:
        kernel = _tuple_of(config.get("kernel_size"), rank)
        strides = _tuple_of(config.get("strides"), rank)
        dilation = _tuple_of(config.get("dilation_rate"), rank)
        padding = config.get("padding", "valid")
        new = tuple(_spatial_out(s, k, st, padding, d, transpose=kind == "conv_transpose")
                    for s, k, st, d in zip(spatial, kernel, strides, dilation))
        if kind == "depthwise":
            channels = None if channels is None else channels * int(config.get("depth_multiplier", 1))
        else:
            channels = int(config.get("filters", 0))
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
    units = int(units) if units is not None else None
    if config.get("return_sequences"):
        return shape[:2] + (units,)
    return (shape[0], units)


def positions(shape: tuple | None) -> int:
    """How many positions (time steps, pixels) share one kernel: all dimensions between the
    batch and the channels."""
    if not shape or len(shape) <= 2:
        return 1
    total = 1
    for dim in shape[1:-1]:
        total *= dim if dim else 1
    return total


def kernel_shape(class_name: str, kind: str, config: dict, input_shape: tuple | None) -> tuple | None:
    """The shape Keras gives the layer's (first) kernel, from its config and input shape."""
    channels = None
    if input_shape:
        channels = input_shape[-1] if _channels_last(config) else (
            input_shape[1] if len(input_shape) > 1 else None)
    if kind == "dense" and class_name == "Dense":
        return (channels, int(config.get("units", 0))) if channels else None
    if kind == "embedding":
        return (int(config.get("input_dim", 0)), int(config.get("output_dim", 0)))
    if kind in ("conv", "conv_transpose", "depthwise", "separable"):
        rank = spatial_rank(class_name)
        kernel = _tuple_of(config.get("kernel_size"), rank)
        if channels is None:
            return None
        if kind == "depthwise" or kind == "separable":
            return kernel + (channels, int(config.get("depth_multiplier", 1)))
        groups = int(config.get("groups", 1) or 1)
        filters = int(config.get("filters", 0))
        if kind == "conv_transpose":
            return kernel + (filters, channels)
        return kernel + (channels // groups, filters)
    return None


def keras_fans(shape: tuple[int, ...]) -> tuple[float, float]:
    """Fan-in and fan-out exactly as Keras's initializers compute them from a kernel shape."""
    if len(shape) == 0:
        return 1.0, 1.0
    if len(shape) == 1:
        return float(shape[0]), float(shape[0])
    if len(shape) == 2:
        return float(shape[0]), float(shape[1])
    receptive = math.prod(shape[:-2])
    return float(shape[-2] * receptive), float(shape[-1] * receptive)
