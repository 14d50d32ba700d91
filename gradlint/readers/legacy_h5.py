"""Reader for legacy full-model HDF5 files (`.h5`, `.hdf5`) written by Keras 2.2 and later:
``model_config`` and ``training_config`` are root attributes (sometimes bytes) and the
weights live under ``model_weights/``."""

from __future__ import annotations

import json

from gradlint.errors import ModelReadError, UnsupportedFormat
from gradlint.graph import ModelGraph
from gradlint.readers.keras_config import build_graph, parse_training


def _attribute_text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if hasattr(value, "tobytes") and getattr(value, "dtype", None) is not None and \
            value.dtype.kind == "S":
        return value.tobytes().decode("utf-8")
    return str(value)


def _attribute_json(attrs, name: str) -> object:
    text = _attribute_text(attrs.get(name))
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ModelReadError(f"the '{name}' attribute is not valid JSON ({error})") from None


def read(path: str, *, read_weights: bool = True) -> ModelGraph:
    import h5py

    try:
        handle = h5py.File(path, "r")
    except OSError as error:
        raise ModelReadError(f"not a readable HDF5 file ({error})") from None
    with handle:
        if "model_config" not in handle.attrs:
            if "layer_names" in handle.attrs or "model_weights" not in handle:
                raise UnsupportedFormat(
                    "this HDF5 file holds no model configuration (weights only, or not a "
                    "Keras file); gradlint needs a full model saved with model.save()")
        config = _attribute_json(handle.attrs, "model_config")
        version = _attribute_text(handle.attrs.get("keras_version"))
        graph = build_graph(config, format="keras-legacy-h5", keras2=True)
        graph.keras_version = version
        training = _attribute_json(handle.attrs, "training_config")
        if isinstance(training, dict):
            graph.training = parse_training(training.get("optimizer_config"),
                                            training.get("loss"))
        if read_weights and "model_weights" in handle:
            from gradlint.readers.weights import attach_legacy_weights

            try:
                # Raw data can be mapped straight from the file unless a user block shifts
                # HDF5's addresses.
                raw = (path, 0) if handle.userblock_size == 0 else None
                attach_legacy_weights(graph, handle["model_weights"], raw)
            except (OSError, KeyError, ValueError) as error:
                raise ModelReadError(f"the stored weights could not be read ({error})") from None
    return graph
