"""Reader for a model architecture saved as JSON text by ``model.to_json()`` (Keras 2 and
Keras 3): ``{"class_name": ..., "config": {...}}`` with ``keras_version`` and ``backend``
(Keras 2) or ``module``, ``registered_name``, ``build_config`` and ``compile_config``
(Keras 3). Such a file is often committed beside its weights, under a ``.json`` or even an
``.h5`` name; its format is decided by its bytes (`readers.detect_format`). It holds no
weights, so the graph is read as an architecture only, and says so.
"""

from __future__ import annotations

import json
import os

from gradlint.errors import ModelReadError, UnsupportedFormat
from gradlint.graph import ModelGraph
from gradlint.limits import DEFAULT_LIMITS, MB, Limits

FORMAT = "keras-json-architecture"
# A bigger head of a file is not sniffed: `to_json` writes "class_name" in its first bytes.
SNIFF_BYTES = 4096
BOM = b"\xef\xbb\xbf"
WHITESPACE = b" \t\r\n"


# Keras objects other than models whose `to_json()` writes the same {"class_name", "config"}
# shape.
NOT_MODELS = {"Tokenizer": "a text Tokenizer's vocabulary (Tokenizer.to_json()), not a model "
                           "architecture"}


def looks_like_json_object(head: bytes) -> bool:
    """Whether the first bytes of a file open a JSON object (after a BOM and whitespace)."""
    if head.startswith(BOM):
        head = head[len(BOM):]
    return head.lstrip(WHITESPACE).startswith(b"{")


def looks_like_keras_json(head: bytes) -> bool:
    """Whether the first bytes of a file look like `model.to_json()`: a JSON object that
    names a "class_name" and a "config" early (a directory search reads no other JSON)."""
    return looks_like_json_object(head) and b'"class_name"' in head and b'"config"' in head


def _text(path: str, limits: Limits) -> str:
    descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(descriptor, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        if size > limits.config_bytes:
            raise ModelReadError(f"the JSON file is {size / MB:.0f} MB, over the "
                                 f"{limits.max_config_mb} MB limit for a model configuration "
                                 "(limits.max-config-mb)")
        data = handle.read(limits.config_bytes + 1)
    if len(data) > limits.config_bytes:
        raise ModelReadError(f"the JSON file grows past the {limits.max_config_mb} MB limit "
                             "while it is read (limits.max-config-mb)")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ModelReadError(f"the JSON file is not UTF-8 text ({error})") from None


def _written_by_keras2(config: dict, version: str | None) -> bool:
    """Keras 1 and 2's `to_json` write their version; Keras 3's writes none, and a "module"
    (as does the `config.json` of a `.keras` archive, whose module names tf-keras's engine
    when tf-keras wrote it)."""
    if version is not None:
        return not version.startswith("3.")
    module = config.get("module")
    if isinstance(module, str):
        return module.startswith(("tf_keras", "keras.src.engine", "keras.engine"))
    return True


def read(path: str, *, read_weights: bool = True, limits: Limits = DEFAULT_LIMITS) -> ModelGraph:
    from gradlint.readers.keras_config import build_graph, parse_training

    try:
        text = _text(path, limits)
    except OSError as error:
        raise ModelReadError(f"cannot read the file ({error.strerror or error})") from None
    try:
        config = json.loads(text)
    except json.JSONDecodeError as error:
        raise ModelReadError(f"the file starts like JSON but is not valid JSON ({error})") \
            from None
    except RecursionError:
        raise ModelReadError("the JSON nests too deeply to be a model configuration") from None
    if not isinstance(config, dict) or "class_name" not in config or \
            not isinstance(config.get("config"), (dict, list)):
        raise UnsupportedFormat("not a Keras model file: a JSON file that is not a model "
                                "architecture (model.to_json() writes an object with "
                                "'class_name' and 'config')")
    if config["class_name"] in NOT_MODELS:
        raise UnsupportedFormat(f"not a Keras model file: {NOT_MODELS[config['class_name']]}")
    version = config.get("keras_version")
    version = version if isinstance(version, str) else None
    keras2 = _written_by_keras2(config, version)
    graph = build_graph(config, format=FORMAT, keras2=keras2)
    graph.keras_version = version
    compile_config = config.get("compile_config")
    if isinstance(compile_config, dict):
        graph.training = parse_training(compile_config.get("optimizer"),
                                        compile_config.get("loss"))
    extension = os.path.splitext(path)[1].lower()
    if extension in (".h5", ".hdf5", ".keras"):
        graph.notes.append(
            f"the name ends in {extension} but the file is a model architecture in JSON text "
            "(model.to_json()): keras.models.model_from_json reads it, load_model does not")
    if read_weights:  # as for an archive without weights: said where weights were asked for
        graph.notes.append("architecture only: a model.to_json() file holds no weights; "
                           "estimates use the initializers only")
    return graph
