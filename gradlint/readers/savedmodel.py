"""Reader for a TensorFlow SavedModel directory written by tf.keras 2.x (``model.save(dir)``
with ``save_format="tf"``, the default of TensorFlow 2.5-2.15 for a name without ``.keras``
or ``.h5``): the Keras configuration is in ``keras_metadata.pb``, beside ``saved_model.pb``.

``keras_metadata.pb`` is a ``SavedMetadata`` protocol buffer
(``tf_keras/protobuf/saved_metadata.proto``): ``repeated SavedObject nodes = 1``, each with
``int32 node_id = 2``, ``string node_path = 3`` ("root", "root.layer_with_weights-0", ...),
``string identifier = 4`` ("_tf_keras_network", "_tf_keras_sequential", "_tf_keras_model",
"_tf_keras_layer", ...), ``string metadata = 5`` (JSON) and ``VersionDef version = 6``. The
root's metadata holds the whole model's ``model_config`` (as a legacy HDF5 file does),
``training_config`` and ``keras_version``. It is decoded here from the wire format (varints
and length-delimited fields) without TensorFlow or the protobuf package, and only that one
file of the directory is read, within `Limits.max_config_mb`.

The weights are in ``variables/``, a TensorFlow checkpoint, read by `tf_checkpoint`; where
they cannot be read the graph still is, with a note that says why. A SavedModel without
``keras_metadata.pb`` (``tf.saved_model``, Keras 3's ``model.export()``) holds no Keras
configuration, and is refused.
"""

from __future__ import annotations

import json
import os
import stat

from gradlint.errors import ModelReadError, UnsupportedFormat
from gradlint.graph import ModelGraph
from gradlint.limits import DEFAULT_LIMITS, MB, Limits
from gradlint.readers.keras_config import build_graph, parse_training

FORMAT = "keras-savedmodel"
METADATA = "keras_metadata.pb"
GRAPH = "saved_model.pb"
# The file names that stand for their SavedModel directory on the command line.
MEMBER_FILES = (METADATA, GRAPH)
# Why a file whose JSON was written with CRLF line endings is short: git converts them in a
# file it takes for text (core.autocrlf), and a length-prefixed protobuf field cannot shrink.
LINE_ENDINGS = ("; its JSON has LF line endings only, and restoring CRLF does not mend it "
                "either: if it was committed to git as text, git's line-ending conversion "
                "(core.autocrlf) may have changed it; mark *.pb as binary in .gitattributes")
# Wire types of the protocol buffer encoding.
VARINT, FIXED64, LENGTH, FIXED32 = 0, 1, 2, 5


def is_saved_model(directory: str) -> bool:
    return os.path.isfile(os.path.join(directory, METADATA)) or \
        os.path.isfile(os.path.join(directory, GRAPH))


def varint(data, position: int, where: str = METADATA,
           error: type[ModelReadError] = ModelReadError) -> tuple[int, int]:
    """The base-128 varint at `position` of `data` (protocol buffers, LevelDB tables) and
    the position after it; `error` names `where` when the data ends or runs past 10 bytes."""
    result = 0
    shift = 0
    while True:
        if position >= len(data):
            raise error(f"{where} is truncated (a number runs past its end)")
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, position
        shift += 7
        if shift >= 70:
            raise error(f"{where} is corrupted (a number longer than 10 bytes)")



def fields(data: memoryview):
    """(field number, wire type, value) of each field of one encoded message: an int for a
    varint, a memoryview for a length-delimited field, None for a fixed-size one."""
    position = 0
    while position < len(data):
        key, position = varint(data, position)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise ModelReadError(f"{METADATA} is corrupted (a field numbered 0)")
        if wire == VARINT:
            value, position = varint(data, position)
        elif wire == LENGTH:
            length, position = varint(data, position)
            if length > len(data) - position:
                raise ModelReadError(f"{METADATA} is truncated (a field of {length} bytes runs "
                                     "past its end)")
            value = data[position:position + length]
            position += length
        elif wire in (FIXED64, FIXED32):
            position += 8 if wire == FIXED64 else 4
            if position > len(data):
                raise ModelReadError(f"{METADATA} is truncated")
            value = None
        else:  # groups (3, 4) are not in this message; 6 and 7 do not exist
            raise ModelReadError(f"{METADATA} is not a SavedMetadata protocol buffer (wire "
                                 f"type {wire} in field {number})")
        yield number, wire, value


def _string(value, what: str) -> str:
    if not isinstance(value, memoryview):
        raise ModelReadError(f"{METADATA} is not a SavedMetadata protocol buffer ({what} is "
                             "not a string)")
    try:
        return bytes(value).decode("utf-8")
    except UnicodeDecodeError:
        raise ModelReadError(f"{METADATA}: {what} is not UTF-8 text") from None


def saved_objects(data: bytes):
    """(node path, identifier, encoded metadata) of each object in a SavedMetadata."""
    for number, _, node in fields(memoryview(data)):
        if number != 1:
            continue
        if not isinstance(node, memoryview):
            raise ModelReadError(f"{METADATA} is not a SavedMetadata protocol buffer (its "
                                 "nodes are not messages)")
        path = identifier = ""
        metadata = None
        for field, _, value in fields(node):
            if field == 3:
                path = _string(value, "a node path")
            elif field == 4:
                identifier = _string(value, "a node identifier")
            elif field == 5:
                metadata = value
        yield path, identifier, metadata


def restore_line_endings(data: bytes) -> bytes | None:
    """The SavedMetadata as it was before git turned the CRLF line endings of its JSON into
    LF (core.autocrlf on a file it took for text, which TensorFlow.NET's indented JSON on
    Windows invites): each node and metadata string is as long as its length prefix says
    once each LF inside the metadata is CRLF again. None when the data is not that."""
    view = memoryview(data)
    restored = bytearray()
    position = 0
    while position < len(data):
        start = position
        key, position = varint(view, position)
        if key != 0x0A:  # field 1, length-delimited: the only top-level field written
            return None
        length, position = varint(view, position)
        head = bytes(view[start:position])
        node = bytearray()
        while len(node) < length:
            field_start = position
            key, position = varint(view, position)
            number, wire = key >> 3, key & 7
            if wire == VARINT:
                _, position = varint(view, position)
                node += view[field_start:position]
            elif wire == LENGTH:
                size, position = varint(view, position)
                node += view[field_start:position]
                if number != 5:
                    if size > len(data) - position:
                        return None
                    node += view[position:position + size]
                    position += size
                    continue
                text = bytearray()
                while len(text) < size:
                    if position >= len(data):
                        return None
                    byte = data[position]
                    position += 1
                    text += b"\r\n" if byte == 0x0A else bytes((byte,))
                if len(text) != size:
                    return None
                node += text
            else:
                return None
        if len(node) != length:
            return None
        restored += head
        restored += node
    return bytes(restored)


def _plain(value: dict):
    """tf-keras's JSON encoder writes tuples and shapes as objects; the configuration reader
    takes them as the lists the other formats store."""
    if value.get("class_name") in ("__tuple__", "TensorShape") and \
            isinstance(value.get("items"), list) and len(value) == 2:
        return value["items"]
    return value


def _read_metadata(directory: str, limits: Limits) -> bytes:
    path = os.path.join(directory, METADATA)
    try:
        root = os.path.realpath(directory)
        if os.path.commonpath([root, os.path.realpath(path)]) != root:
            raise ModelReadError(f"{METADATA} is a symbolic link to outside the SavedModel "
                                 "directory; gradlint reads only what the model holds")
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            from gradlint.readers import special_file_kind

            raise ModelReadError(f"{METADATA} is {special_file_kind(info.st_mode)}, not a "
                                 "regular file")
        if info.st_size > limits.config_bytes:
            raise ModelReadError(f"{METADATA} is {info.st_size / MB:.0f} MB, over the "
                                 f"{limits.max_config_mb} MB limit (limits.max-config-mb)")
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(descriptor, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                raise ModelReadError(f"{METADATA} is not a regular file")
            data = handle.read(limits.config_bytes + 1)
    except (OSError, ValueError) as error:
        raise ModelReadError(f"cannot read {METADATA} "
                             f"({getattr(error, 'strerror', None) or error})") from None
    if len(data) > limits.config_bytes:
        raise ModelReadError(f"{METADATA} grows past the {limits.max_config_mb} MB limit while "
                             "it is read (limits.max-config-mb)")
    return data


def _root(data: bytes) -> tuple[str, memoryview | None]:
    """The identifier and encoded metadata of the root object ("root")."""
    root = None
    for path, identifier, metadata in saved_objects(data):
        if path == "root":
            if root is not None:
                raise ModelReadError(f"{METADATA} holds two root objects")
            root = (identifier, metadata)
    if root is None:
        raise ModelReadError(f"{METADATA} holds no root object, so it is not the Keras "
                             "metadata of a saved model")
    return root


def read(directory: str, *, read_weights: bool = True,
         limits: Limits = DEFAULT_LIMITS) -> ModelGraph:
    if not os.path.exists(os.path.join(directory, METADATA)):
        raise UnsupportedFormat(
            f"a TensorFlow SavedModel without {METADATA} is not supported: it holds no Keras "
            "configuration (tf.saved_model.save and Keras 3's model.export() write none; "
            "tf.keras 2.5-2.15's model.save(dir) does); save the model with "
            "model.save('model.keras')")
    data = _read_metadata(directory, limits)
    notes = []
    try:
        root = _root(data)
    except ModelReadError as error:
        if b"{\n" not in data or b"\r\n" in data:  # not indented JSON stripped of its CRs
            raise
        restored = restore_line_endings(data)
        if restored is None:
            raise ModelReadError(f"{error}{LINE_ENDINGS}") from None
        root = _root(restored)
        notes.append(f"{METADATA} had lost the CR of each CRLF line ending in its JSON (git's "
                     "line-ending conversion of a file it took for text); read with them "
                     "restored: mark *.pb as binary in .gitattributes")
    identifier, metadata = root
    if metadata is None:
        raise ModelReadError(f"{METADATA}: the root object ({identifier or 'no identifier'}) "
                             "has no Keras metadata")
    try:
        attributes = json.loads(_string(metadata, "the root's metadata"), object_hook=_plain)
    except json.JSONDecodeError as error:
        raise ModelReadError(f"{METADATA}: the root's metadata is not valid JSON ({error})") \
            from None
    except RecursionError:
        raise ModelReadError(f"{METADATA}: the root's metadata nests too deeply to be a model "
                             "configuration") from None
    if not isinstance(attributes, dict):
        raise ModelReadError(f"{METADATA}: the root's metadata is not a JSON object")
    config = attributes.get("model_config")
    if not isinstance(config, dict):
        # A subclassed model stores no model_config: its class and constructor arguments.
        config = {"class_name": attributes.get("class_name"),
                  "config": attributes.get("config") if isinstance(attributes.get("config"),
                                                                   (dict, list)) else {}}
    if not isinstance(config.get("class_name"), str):
        raise ModelReadError(f"{METADATA}: the root's metadata names no model class")
    graph = build_graph(config, format=FORMAT, keras2=True)
    if not graph.graph_stored and isinstance(attributes.get("name"), str):
        graph.name = attributes["name"]  # a subclassed model's config may not hold it
    version = attributes.get("keras_version")
    graph.keras_version = version if isinstance(version, str) else None
    training = attributes.get("training_config")
    if isinstance(training, dict):
        graph.training = parse_training(training.get("optimizer_config"), training.get("loss"))
    graph.notes.extend(notes)
    if read_weights:
        _attach_weights(graph, directory, limits)
    return graph


def _attach_weights(graph: ModelGraph, directory: str, limits: Limits) -> None:
    """The weights from variables/ (`tf_checkpoint`), or a note that says why not: the
    graph is read either way."""
    from gradlint.readers.tf_checkpoint import INDEX, CheckpointError, attach

    why = None
    if not os.path.lexists(os.path.join(directory, "variables", INDEX)):
        why = f"the directory has no variables/{INDEX}"
    else:
        try:
            attach(graph, directory, limits)
        except CheckpointError as error:
            why = str(error)
        except (OSError, ValueError, OverflowError) as error:
            why = f"the checkpoint could not be read ({error})"
    if why is not None:
        graph.weights_read = False
        for layer in graph.layers():
            layer.weights = []
        graph.notes.append(f"weights not read (SavedModel variables): {why}; estimates use "
                           "the initializers only")
