"""A fix applied to the stored configuration: the model configuration's layer entries (found
by the layer paths the graph uses: ``encoder/dense_1`` inside nested models) and the saved
optimizer (Keras 3 and tf-keras archives: ``compile_config.optimizer``; legacy HDF5:
``training_config.optimizer_config``). Only data is edited; nothing is deserialized."""

from __future__ import annotations

from typing import Any

from gradlint import initializers
from gradlint.findings import Edit, Fix

INITIALIZER_KEYS = ("kernel_initializer", "depthwise_initializer", "embeddings_initializer",
                    "init")
WRAPPED_KEYS = ("layer", "backward_layer", "cell")


# The optimizers tf-keras and Keras accept by name, and their classes.
OPTIMIZER_CLASSES = {"adam": "Adam", "sgd": "SGD", "rmsprop": "RMSprop", "adagrad": "Adagrad",
                     "adadelta": "Adadelta", "adamax": "Adamax", "nadam": "Nadam",
                     "ftrl": "Ftrl", "adamw": "AdamW", "lion": "Lion", "adafactor": "Adafactor"}


class FixError(ValueError):
    """A fix that cannot be applied to this file's configuration (the message says why)."""


def _config_of(entry: dict) -> dict:
    config = entry.get("config")
    if isinstance(config, list):  # Keras 2.2.0-2.2.2 Sequential: the bare layer list
        return {"layers": config}
    return config if isinstance(config, dict) else {}


def layer_entries(model_entry: dict, prefix: str = "") -> dict[str, dict]:
    """Every layer entry of a serialized model by the path the graph gives it (nested
    models' layers as ``outer/inner``), as `readers.keras_config` names them."""
    found: dict[str, dict] = {}
    config = _config_of(model_entry)
    sequential = model_entry.get("class_name") == "Sequential"
    layers = config.get("layers") if isinstance(config.get("layers"), list) else []
    for index, item in enumerate(layers):
        if not isinstance(item, dict):
            continue
        item_config = _config_of(item)
        if sequential:
            name = str(item_config.get("name") or item.get("name") or f"layer_{index}")
        else:
            name = str(item.get("name") or item_config.get("name"))
        if isinstance(item_config.get("layers"), list):
            found.update(layer_entries(item, f"{prefix}{name}/"))
        found[prefix + name] = item
    return found


def _targets(config: dict, setting: str) -> list[tuple[dict, str]]:
    """(dict, key) pairs where `setting` lives: the layer's own config, else the wrapped
    layer's (Bidirectional's forward and backward layers, TimeDistributed's, RNN's cell)."""
    keys = INITIALIZER_KEYS if setting == "kernel_initializer" else (setting,)
    own = [(config, key) for key in keys if key in config]
    if own:
        return own[:1]
    found = []
    for wrapped in WRAPPED_KEYS:
        inner = config.get(wrapped)
        if isinstance(inner, dict):
            found += _targets(_config_of(inner), setting)
    if not found and setting in ("kernel_initializer", "activation"):
        found = [(config, setting)]  # Keras left its default out: add it
    return found


def _edit_layer(entry: dict, edit: Edit) -> list[str]:
    config = entry.get("config")
    if not isinstance(config, dict):
        raise FixError(f"layer '{edit.layer}' has no configuration object to edit")
    keys = []
    for target, key in _targets(config, edit.setting):
        if edit.setting == "kernel_initializer" and isinstance(edit.new, dict):
            target[key] = edit.new  # already serialized (a calibrated VarianceScaling)
        elif edit.setting == "kernel_initializer":
            target[key] = initializers.serialized_like(edit.new, target.get(key) or
                                                       config.get("bias_initializer"))
        else:
            target[key] = edit.new
        keys.append(key)
    return keys


def optimizer_config(model_config: dict | None, training_config: dict | None) -> dict | None:
    """The saved optimizer's ``config`` dict (inside a LossScaleOptimizer, the inner one's),
    or None when the file saved no optimizer configuration. An optimizer saved by name
    (tf-keras keeps ``"adam"`` when compiled with the string) becomes
    the serialized ``Adam`` with its defaults, as tf-keras and Keras deserialize it."""
    optimizer, holder, key = None, None, None
    if isinstance(model_config, dict) and isinstance(model_config.get("compile_config"), dict):
        holder, key = model_config["compile_config"], "optimizer"
    elif isinstance(training_config, dict):
        holder, key = training_config, "optimizer_config"
    if holder is not None:
        optimizer = holder.get(key)
        if isinstance(optimizer, str) and optimizer.lower() in OPTIMIZER_CLASSES:
            optimizer = holder[key] = {"module": "keras.optimizers",
                                       "class_name": OPTIMIZER_CLASSES[optimizer.lower()],
                                       "config": {}, "registered_name": None}
    while isinstance(optimizer, dict):
        config = optimizer.get("config")
        if not isinstance(config, dict):
            return None
        inner = config.get("inner_optimizer")
        if isinstance(inner, dict):
            optimizer = inner
            continue
        return config
    return None


def apply_fixes(model_config: dict, training_config: dict | None, fixes: list[Fix]) -> list[str]:
    """Edit the configurations in place; returns what was changed, one line per edit.
    Raises `FixError` for an edit this file's configuration cannot take."""
    entries = layer_entries(model_config)
    done = []
    for fix in fixes:
        if not fix.automatic:
            continue
        for edit in fix.edits:
            if fix.scope == "optimizer":
                config = optimizer_config(model_config, training_config)
                if config is None:
                    raise FixError("the file saves no optimizer configuration to edit (a "
                                   "model saved without compile(), or with an optimizer given "
                                   "by name)")
                config[edit.setting] = edit.new
                done.append(f"optimizer: {edit.setting}: {edit.old} → {edit.new}")
                continue
            entry = entries.get(edit.layer)
            if entry is None:
                raise FixError(f"layer '{edit.layer}' is not in the stored configuration")
            keys = _edit_layer(entry, edit)
            done.append(f"{edit.layer}: {'/'.join(keys) or edit.setting}: {edit.old} → "
                        f"{edit.new}")
    return done
