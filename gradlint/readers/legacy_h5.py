"""Reader for legacy full-model HDF5 files (`.h5`, `.hdf5`) written by Keras 2.2 and later:
``model_config`` and ``training_config`` are root attributes (sometimes bytes) and the
weights live under ``model_weights/``."""

from __future__ import annotations

import json
from typing import Any

from gradlint.errors import ModelReadError, UnsupportedFormat
from gradlint.graph import ModelGraph
from gradlint.limits import DEFAULT_LIMITS, Limits
from gradlint.readers.keras_config import build_graph, parse_training


def _attribute_text(name: str, value: object) -> str | None:
    if value is None:
        return None
    try:
        if isinstance(value, bytes):
            return value.decode("utf-8")
        if hasattr(value, "tobytes") and getattr(value, "dtype", None) is not None and \
                value.dtype.kind == "S":
            return value.tobytes().decode("utf-8")
    except UnicodeDecodeError:
        raise ModelReadError(f"the '{name}' attribute is not UTF-8 text") from None
    if isinstance(value, str):
        return value
    raise ModelReadError(f"the '{name}' attribute is not text (it holds "
                         f"{type(value).__name__} data)")


def _attribute_json(handle, name: str, limits: Limits) -> object:
    from gradlint.readers.hdf5 import attribute_bytes

    text = _attribute_text(name, attribute_bytes(handle, name, limits))
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ModelReadError(f"the '{name}' attribute is not valid JSON ({error})") from None
    except RecursionError:
        raise ModelReadError(f"the '{name}' attribute nests too deeply to be a model "
                             "configuration") from None


def graph_from_config(config: Any, training: Any, keras_version: str | None) -> ModelGraph:
    """The graph of a legacy file's parsed ``model_config`` and ``training_config``
    attributes, without its weights."""
    graph = build_graph(config, format="keras-legacy-h5", keras2=True)
    graph.keras_version = keras_version
    if isinstance(training, dict):
        graph.training = parse_training(training.get("optimizer_config"), training.get("loss"))
    return graph


def read(path: str, *, read_weights: bool = True, limits: Limits = DEFAULT_LIMITS) -> ModelGraph:
    import os

    from gradlint.readers.hdf5 import ReadBudget, attribute_bytes, open_checked

    size = os.path.getsize(path)
    # Without weights only the root's attributes are read: nothing to check beyond them.
    handle = open_checked(path, limits, size, scan=read_weights)
    with handle:
        try:
            if "model_config" not in handle.attrs:
                if "layer_names" in handle.attrs or "model_weights" not in handle:
                    raise UnsupportedFormat(
                        "this HDF5 file holds no model configuration (weights only, or not a "
                        "Keras file); gradlint needs a full model saved with model.save()")
            config = _attribute_json(handle, "model_config", limits)
            training = _attribute_json(handle, "training_config", limits)
            try:
                version = _attribute_text("keras_version",
                                          attribute_bytes(handle, "keras_version", limits))
            except ModelReadError:
                version = None
        except (OSError, RuntimeError, KeyError, ValueError, TypeError) as error:
            # h5py's errors for a corrupted file: heaps, B-trees, attribute encodings.
            raise ModelReadError(f"the HDF5 file is corrupted ({error})") from None
        graph = graph_from_config(config, training, version)
        if read_weights and "model_weights" in handle:
            from gradlint.readers.weights import attach_legacy_weights

            try:
                # Raw data can be mapped straight from the file unless a user block shifts
                # HDF5's addresses.
                raw = (path, 0) if handle.userblock_size == 0 else None
                attach_legacy_weights(graph, handle["model_weights"], raw,
                                      ReadBudget(limits, size))
            except (OSError, KeyError, ValueError, RuntimeError, TypeError) as error:
                raise ModelReadError(f"the stored weights could not be read ({error})") from None
    return graph
