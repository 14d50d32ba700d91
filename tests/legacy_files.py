"""Keras 2.2/2.3-style legacy HDF5 files, derived from files that tf-keras writes.

Keras 2.2 and 2.3 need TensorFlow 1 and cannot be installed here, so these helpers copy a
tf-keras `.h5` file and rewrite with h5py what differs in the older files:

- `keras_version` is "2.2.4" (or whatever is asked for) and the root attributes
  (`model_config`, `training_config`, `keras_version`, `backend`) are stored as bytes
  (`np.bytes_`), as are the `layer_names` and `weight_names` attributes of the weights;
- a Sequential model lists no InputLayer: its first layer carries `batch_input_shape`;
  Keras before 2.2.3 stored a Sequential configuration as a bare list of layers;
- a Functional model is saved under the class name "Model";
- initializers are the older configurations: `GlorotUniform` becomes
  `VarianceScaling(scale=1.0, mode="fan_avg", distribution="uniform")` and so on, and no
  configuration carries `module` or `registered_name`;
- the optimizer configuration in `training_config` says `lr`, not `learning_rate`, and
  has the older keys (`decay`, no `name`, no `global_clipnorm`);
- there is no `top_level_model_weights` group.

The weights themselves are not touched, so a derived file holds the same numbers as its
source and must lint the same way.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import h5py
import numpy as np

# The VarianceScaling configurations Keras 2.2 wrote for the named initializers.
OLD_VARIANCE_SCALING = {
    "GlorotUniform": (1.0, "fan_avg", "uniform"),
    "GlorotNormal": (1.0, "fan_avg", "normal"),
    "HeUniform": (2.0, "fan_in", "uniform"),
    "HeNormal": (2.0, "fan_in", "normal"),
    "LecunUniform": (1.0, "fan_in", "uniform"),
    "LecunNormal": (1.0, "fan_in", "normal"),
}

# Optimizer keys that Keras 2.2 knew, besides the learning rate.
OLD_OPTIMIZER_KEYS = ("momentum", "nesterov", "beta_1", "beta_2", "amsgrad", "rho", "epsilon",
                      "initial_accumulator_value", "schedule_decay")

SERIALIZATION_KEYS = ("module", "registered_name", "build_config", "compile_config",
                      "shared_object_id")


def old_initializer(entry: Any) -> Any:
    """An initializer configuration as Keras 2.2 wrote it."""
    if not isinstance(entry, dict) or "class_name" not in entry:
        return entry
    class_name = str(entry["class_name"]).rsplit(">", 1)[-1]
    config = dict(entry.get("config") or {})
    if class_name in OLD_VARIANCE_SCALING:
        scale, mode, distribution = OLD_VARIANCE_SCALING[class_name]
        return {"class_name": "VarianceScaling",
                "config": {"scale": scale, "mode": mode, "distribution": distribution,
                           "seed": config.get("seed")}}
    if class_name == "VarianceScaling" and config.get("distribution") == "truncated_normal":
        config["distribution"] = "normal"  # Keras 2.2's "normal" was the truncated one
    return {"class_name": class_name, "config": config}


def _strip(value: Any) -> Any:
    """Drop the serialization keys newer Keras adds, and rewrite initializers."""
    if isinstance(value, list):
        return [_strip(item) for item in value]
    if not isinstance(value, dict):
        return value
    result = {}
    for key, item in value.items():
        if key in SERIALIZATION_KEYS:
            continue
        if key.endswith("_initializer"):
            result[key] = old_initializer(item)
        else:
            result[key] = _strip(item)
    return result


def _old_sequential(entry: dict, as_list: bool) -> dict:
    config = entry.get("config") or {}
    layers = [_old_layer(layer, as_list) for layer in config.get("layers", [])]
    if layers and layers[0].get("class_name") == "InputLayer":
        input_config = layers.pop(0).get("config") or {}
        shape = input_config.get("batch_input_shape") or input_config.get("batch_shape")
        if layers:
            first = dict(layers[0].get("config") or {})
            first["batch_input_shape"] = shape
            first.setdefault("dtype", input_config.get("dtype", "float32"))
            layers[0] = dict(layers[0], config=first)
    if as_list:
        return {"class_name": "Sequential", "config": layers}
    return {"class_name": "Sequential", "config": {"name": config.get("name"), "layers": layers}}


def _old_layer(entry: dict, as_list: bool) -> dict:
    if entry.get("class_name") == "Sequential":
        result = _old_sequential(entry, as_list)
    elif entry.get("class_name") in ("Functional", "Model"):
        result = _old_functional(entry, as_list)
    else:
        result = _strip(entry)
    for key in ("name", "inbound_nodes"):
        if key in entry:
            result[key] = _strip(entry[key])
    return result


def _old_functional(entry: dict, as_list: bool) -> dict:
    config = dict(entry.get("config") or {})
    config["layers"] = [_old_layer(layer, as_list) for layer in config.get("layers", [])]
    config.pop("trainable", None)
    return {"class_name": "Model", "config": _strip(config)}


def old_model_config(model_config: dict, *, sequential_as_list: bool = False) -> dict:
    """A tf-keras model configuration rewritten the way Keras 2.2 wrote it."""
    if model_config.get("class_name") == "Sequential":
        return _old_sequential(model_config, sequential_as_list)
    return _old_functional(model_config, sequential_as_list)


def old_optimizer_config(optimizer: Any) -> Any:
    """A tf-keras optimizer configuration as Keras 2.2 wrote it: `lr`, `decay`, no name."""
    if not isinstance(optimizer, dict):
        return optimizer
    class_name = str(optimizer.get("class_name", "")).rsplit(">", 1)[-1]
    config = optimizer.get("config") or {}
    old: dict[str, Any] = {"lr": config.get("learning_rate", config.get("lr"))}
    for key in OLD_OPTIMIZER_KEYS:
        if key in config:
            old[key] = config[key]
    old["decay"] = 0.0
    for key in ("clipnorm", "clipvalue"):
        if config.get(key) is not None:
            old[key] = config[key]
    return {"class_name": class_name, "config": old}


def _as_bytes(text: str) -> np.bytes_:
    return np.bytes_(text.encode("utf-8"))


def _bytes_array(values) -> np.ndarray:
    names = [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values]
    if not names:
        return np.array([], dtype="S1")
    return np.array([name.encode("utf-8") for name in names], dtype="S")


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def derive_legacy_h5(source: str | Path, target: str | Path, *, keras_version: str = "2.2.4",
                     sequential_as_list: bool = False) -> Path:
    """Copy a tf-keras `.h5` file to `target` and rewrite it as Keras `keras_version` wrote
    it. `sequential_as_list` stores a Sequential configuration as a bare list of layers, as
    Keras 2.2.0-2.2.2 did."""
    target = Path(target)
    shutil.copyfile(source, target)
    with h5py.File(target, "r+") as handle:
        model_config = json.loads(_text(handle.attrs["model_config"]))
        old_config = old_model_config(model_config, sequential_as_list=sequential_as_list)
        training = handle.attrs.get("training_config")
        for name in list(handle.attrs.keys()):
            del handle.attrs[name]
        handle.attrs["keras_version"] = _as_bytes(keras_version)
        handle.attrs["backend"] = _as_bytes("tensorflow")
        handle.attrs["model_config"] = _as_bytes(json.dumps(old_config))
        if training is not None:
            training = json.loads(_text(training))
            old_training = {
                "optimizer_config": old_optimizer_config(training.get("optimizer_config")),
                "loss": training.get("loss"),
                "metrics": training.get("metrics") or [],
                "sample_weight_mode": None,
                "loss_weights": training.get("loss_weights"),
            }
            handle.attrs["training_config"] = _as_bytes(json.dumps(old_training))
        if "optimizer_weights" in handle:
            del handle["optimizer_weights"]
        if "model_weights" in handle:
            weights = handle["model_weights"]
            if "top_level_model_weights" in weights:
                del weights["top_level_model_weights"]
            kept = [_text(name) for name in weights.attrs.get("layer_names", [])]
            kept = [name for name in kept if name in weights]
            for name in list(weights.attrs.keys()):
                del weights.attrs[name]
            weights.attrs["layer_names"] = _bytes_array(kept)
            weights.attrs["backend"] = _as_bytes("tensorflow")
            weights.attrs["keras_version"] = _as_bytes(keras_version)
            for name in kept:
                group = weights[name]
                names = list(group.attrs.get("weight_names", []))
                del group.attrs["weight_names"]
                group.attrs["weight_names"] = _bytes_array(names)
    return target


def read_root_attributes(path: str | Path) -> dict[str, Any]:
    """The root attributes of an HDF5 file, exactly as h5py returns them."""
    with h5py.File(path, "r") as handle:
        return {name: handle.attrs[name] for name in handle.attrs}
