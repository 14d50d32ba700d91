"""Adapter for a live `keras.Model` handed to the Python API: the model's own configuration
and weights become the same `ModelGraph` a file gives. It only calls methods of the object
it is given and imports neither Keras nor TensorFlow."""

from __future__ import annotations

from typing import Any

from gradlint.graph import Layer, ModelGraph, WeightStats
from gradlint.readers.keras_config import build_graph, parse_training


def _serialized(model: Any) -> dict:
    config = model.get_config()
    return {"class_name": type(model).__name__, "config": config,
            "module": type(model).__module__}


def _array_stats(values: Any, role: str) -> WeightStats:
    import numpy as np

    array = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(array)
    good = array[finite]
    mean = float(good.mean()) if good.size else 0.0
    std = float(good.std()) if good.size else 0.0
    zeros = float(array.size - np.count_nonzero(array)) / array.size if array.size else 0.0
    bad = int(array.size - finite.sum())
    return WeightStats(role, tuple(int(d) for d in array.shape), mean, std, zeros, bad == 0, bad)


def _role(variable: Any) -> str:
    name = str(getattr(variable, "path", None) or getattr(variable, "name", "weight"))
    role = name.rsplit("/", 1)[-1].split(":", 1)[0]
    role = {"depthwise_kernel": "kernel", "embeddings": "kernel"}.get(role, role)
    return ("backward_" + role) if "backward" in name else role


def _keras_layers(model: Any, prefix: str = "") -> dict[str, Any]:
    found = {}
    for layer in getattr(model, "layers", []):
        path = prefix + layer.name
        if hasattr(layer, "layers") and layer.__class__.__name__ in ("Functional", "Sequential",
                                                                       "Model"):
            found.update(_keras_layers(layer, path + "/"))
        else:
            found[path] = layer
    return found


def read_live_model(model: Any, *, read_weights: bool = True) -> ModelGraph:
    if not hasattr(model, "get_config") or not hasattr(model, "layers"):
        raise TypeError("gradlint.lint() takes a path, a list of paths or a keras.Model")
    module = type(model).__module__
    keras2 = module.startswith("tf_keras") or module.startswith("keras.engine")
    try:
        serialized = _serialized(model)
    except (NotImplementedError, TypeError, ValueError):
        serialized = {"class_name": type(model).__name__, "config": {}}
    graph = build_graph(serialized, format="live-model", keras2=keras2)
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None and hasattr(optimizer, "get_config"):
        try:
            config = optimizer.get_config()
            graph.training = parse_training(
                {"class_name": type(optimizer).__name__, "config": config},
                getattr(model, "loss", None))
        except Exception:  # an optimizer that cannot describe itself leaves nothing to check
            graph.training = None
    if read_weights:
        by_path: dict[str, list[Layer]] = {}
        for layer in graph.layers():
            by_path.setdefault(layer.path, []).append(layer)
        for path, keras_layer in _keras_layers(model).items():
            stats = [_array_stats(variable.numpy(), _role(variable))
                     for variable in getattr(keras_layer, "weights", [])]
            for layer in by_path.get(path, []):
                layer.weights = stats
        graph.weights_read = True
    return graph
