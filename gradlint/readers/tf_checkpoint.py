"""The weights of a SavedModel: its ``variables/`` directory, a TensorFlow checkpoint (a
"tensor bundle"), read without TensorFlow.

``variables.index`` is a LevelDB-format table (TensorFlow's ``core/lib/io/table``: blocks of
prefix-compressed keys, an index block, a 48-byte footer ending in the magic number
0xdb4775248b80fb57) mapping each checkpoint key to a ``BundleEntryProto`` (dtype = 1, shape
= 2, shard_id = 3, offset = 4, size = 5); the values are raw little-endian arrays in
``variables.data-<shard>-of-<shards>``. The key ``_CHECKPOINTABLE_OBJECT_GRAPH`` holds a
``TrackableObjectGraph`` (a string tensor) whose serialized tensors give each checkpoint key
the variable's name (``enc_dense/kernel``), which names its layer as a legacy HDF5 file's
``weight_names`` do. Only the files inside the directory are read, each a regular file
within the limits; every offset and size is checked against the file it points into.
"""

from __future__ import annotations

import os
import stat
from typing import Any

from gradlint.errors import ModelReadError
from gradlint.graph import Layer, ModelGraph, WeightStats
from gradlint.limits import MB, Limits

MAGIC = 0xDB4775248B80FB57
FOOTER = 48
INDEX = "variables.index"
OBJECT_GRAPH = "_CHECKPOINTABLE_OBJECT_GRAPH"
# TensorFlow's DataType numbers for the arrays whose statistics are read.
DTYPES = {1: "<f4", 2: "<f8", 19: "<f2", 3: "<i4", 9: "<i8", 6: "i1", 4: "u1", 5: "<i2"}
DT_STRING = 7
DT_UINT8 = 4
# Checkpoint keys that are not a layer's weights.
NOT_WEIGHTS = ("optimizer/", "keras_api/", "save_counter/", "global_step/")
ROLE_ALIASES = {"depthwise_kernel": "kernel", "embeddings": "kernel", "w": "kernel", "b": "bias"}


class CheckpointError(ModelReadError):
    """The checkpoint could not be read (the graph is still read, with a note)."""


def _varint(data, position: int) -> tuple[int, int]:
    from gradlint.readers.savedmodel import varint

    return varint(data, position, "variables.index", CheckpointError)


def _fields(data) -> dict[int, list]:
    """A message's fields by number: ints for varints, bytes for length-delimited ones."""
    from gradlint.readers.savedmodel import fields

    found: dict[int, list] = {}
    try:
        for number, _, value in fields(memoryview(data)):
            found.setdefault(number, []).append(bytes(value) if isinstance(value, memoryview)
                                                else value)
    except ModelReadError as error:
        raise CheckpointError(f"a record of the checkpoint is corrupted ({error})") from None
    return found


def _regular(path: str, directory: str, limit: int, what: str) -> int:
    """The size of a file of the SavedModel, refused unless it is a regular file inside the
    directory and within `limit` bytes."""
    try:
        # A link, of the file or of variables/, must not lead out of the SavedModel.
        root = os.path.realpath(directory)
        if os.path.commonpath([root, os.path.realpath(path)]) != root:
            raise CheckpointError(f"{what} is a symbolic link (or in a linked directory) to "
                                  "outside the SavedModel directory")
        info = os.stat(path)
    except (OSError, ValueError) as error:
        raise CheckpointError(f"{what} cannot be read "
                              f"({getattr(error, 'strerror', None) or error})") from None
    if not stat.S_ISREG(info.st_mode):
        raise CheckpointError(f"{what} is not a regular file")
    if info.st_size > limit:
        raise CheckpointError(f"{what} is {info.st_size / MB:.0f} MB, over the "
                              f"{limit // MB} MB limit (limits.max-config-mb)")
    return info.st_size


def _read(path: str, size: int) -> bytes:
    descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(descriptor, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise CheckpointError(f"{os.path.basename(path)} is not a regular file")
        data = handle.read(size + 1)
    if len(data) != size:
        raise CheckpointError(f"{os.path.basename(path)} changed while it was read")
    return data


def _block(table: bytes, handle: bytes) -> list[tuple[bytes, bytes]]:
    """The (key, value) entries of the block that `handle` (offset, size) points to."""
    offset, position = _varint(handle, 0)
    size, _ = _varint(handle, position)
    if offset + size + 5 > len(table):
        raise CheckpointError("variables.index is corrupted (a block runs past its end)")
    if table[offset + size] != 0:
        raise CheckpointError("variables.index is compressed, which gradlint does not read")
    block = table[offset:offset + size]
    if len(block) < 4:
        raise CheckpointError("variables.index is corrupted (a block too short)")
    restarts = int.from_bytes(block[-4:], "little")
    end = len(block) - 4 * (restarts + 1)
    if restarts == 0 or end < 0:
        raise CheckpointError("variables.index is corrupted (a block's restart points)")
    entries = []
    key = b""
    position = 0
    while position < end:
        shared, position = _varint(block, position)
        unshared, position = _varint(block, position)
        length, position = _varint(block, position)
        if shared > len(key) or position + unshared + length > end:
            raise CheckpointError("variables.index is corrupted (an entry runs past its "
                                  "block)")
        key = key[:shared] + block[position:position + unshared]
        position += unshared
        entries.append((key, block[position:position + length]))
        position += length
    return entries


def read_index(table: bytes) -> dict[str, bytes]:
    """Checkpoint key -> encoded BundleEntryProto (the header under the key "")."""
    if len(table) < FOOTER or int.from_bytes(table[-8:], "little") != MAGIC:
        raise CheckpointError("variables.index is not a TensorFlow checkpoint index (no table "
                              "footer)")
    footer = table[-FOOTER:]
    _, position = _varint(footer, 0)  # the metaindex block's handle: not needed
    _, position = _varint(footer, position)
    index_handle = footer[position:]
    entries: dict[str, bytes] = {}
    for _, handle in _block(table, index_handle):
        for key, value in _block(table, handle):
            try:
                entries[key.decode("utf-8")] = value
            except UnicodeDecodeError:
                raise CheckpointError("variables.index has a key that is not UTF-8") from None
    return entries


class _Tensor:
    """One array of the checkpoint, read in place (the dataset interface
    `weights.tensor_stats` reads: shape, dtype, contiguous storage at an offset)."""

    chunks = None
    compression = None

    def __init__(self, path: str, offset: int, shape: tuple[int, ...], dtype: Any, name: str):
        self.path, self.offset, self.shape, self.dtype, self.name = path, offset, shape, \
            dtype, name
        self.id = self

    def get_offset(self) -> int:
        return self.offset

    def __getitem__(self, index):
        import numpy as np

        size = 1
        for extent in self.shape:
            size *= extent
        values = np.memmap(self.path, dtype=self.dtype, mode="r", offset=self.offset,
                           shape=(size,))
        return np.asarray(values).reshape(self.shape)[index]


def _entry(value: bytes) -> tuple[int, tuple[int, ...], int, int, int]:
    """(dtype, shape, shard, offset, size) of a BundleEntryProto."""
    entry = _fields(value)
    if 7 in entry:
        raise CheckpointError("the checkpoint holds partitioned variables (slices), which "
                              "gradlint does not read")
    def number(fields: dict, key: int) -> int:
        value = fields.get(key, [0])[-1]
        if not isinstance(value, int):
            raise CheckpointError("a record of the checkpoint is corrupted (a number that is "
                                  "not one)")
        return value

    def message(value) -> dict:
        if not isinstance(value, bytes):
            raise CheckpointError("a record of the checkpoint is corrupted")
        return _fields(value)

    shape = ()
    if 2 in entry:
        dims = []
        for dim in message(entry[2][-1]).get(2, []):
            size = number(message(dim), 1)
            if size >= 1 << 62:  # -1 (an unknown dimension) or beyond any file
                raise CheckpointError("the checkpoint has a variable of unknown shape")
            dims.append(size)
        shape = tuple(dims)
    return number(entry, 1), shape, number(entry, 3), number(entry, 4), number(entry, 5)


def _object_graph(entries: dict[str, bytes], data_path, limits: Limits) -> dict[str, str]:
    """Checkpoint key -> the variable's name, from the TrackableObjectGraph."""
    if OBJECT_GRAPH not in entries:
        raise CheckpointError("the checkpoint has no object graph to name its variables")
    dtype, shape, shard, offset, size = _entry(entries[OBJECT_GRAPH])
    # A string scalar (TensorFlow), or a vector of bytes (TensorFlow.NET).
    as_bytes = dtype == DT_UINT8 and len(shape) == 1 and shape[0] == size
    if not (dtype == DT_STRING and shape == () or as_bytes) or size > limits.config_bytes:
        raise CheckpointError("the checkpoint's object graph is not a string")
    path = data_path(shard)
    with open(path, "rb") as handle:
        handle.seek(offset)
        data = handle.read(size)
    if len(data) != size:
        raise CheckpointError("the checkpoint's object graph runs past its data file")
    position = 0
    if not as_bytes:
        length, position = _varint(data, 0)
        position += 4  # the checksum of the lengths
        if position + length != size:
            raise CheckpointError("the checkpoint's object graph is corrupted")
    names: dict[str, str] = {}
    for node in _fields(data[position:]).get(1, []):
        if not isinstance(node, bytes):
            raise CheckpointError("the checkpoint's object graph is corrupted")
        for tensor in _fields(node).get(2, []):
            if not isinstance(tensor, bytes):
                raise CheckpointError("the checkpoint's object graph is corrupted")
            attribute = _fields(tensor)
            try:
                full_name = attribute.get(2, [b""])[0].decode("utf-8")
                key = attribute.get(3, [b""])[0].decode("utf-8")
            except (UnicodeDecodeError, AttributeError):
                raise CheckpointError("the checkpoint's object graph is corrupted") from None
            if key:
                names[key] = full_name
    return names


def attach(graph: ModelGraph, directory: str, limits: Limits) -> None:
    """Read the weights in `directory`/variables into `graph`'s layers. Raises
    `CheckpointError` for a checkpoint that cannot be read."""
    import numpy as np

    from gradlint.readers.weights import tensor_stats

    variables = os.path.join(directory, "variables")
    index_path = os.path.join(variables, INDEX)
    table = _read(index_path, _regular(index_path, directory, limits.config_bytes,
                                       f"variables/{INDEX}"))
    entries = read_index(table)
    header = _fields(entries.get("", b""))
    shards = header.get(1, [1])[-1]
    if not isinstance(shards, int) or header.get(2, [0])[-1] != 0:
        raise CheckpointError("the checkpoint's header is not little-endian (or is corrupted), "
                              "which gradlint does not read")
    if not 1 <= shards <= 1 << 16:
        raise CheckpointError(f"the checkpoint declares {shards} data files")
    sizes: dict[int, int] = {}

    def data_path(shard: int) -> str:
        if not 0 <= shard < shards:
            raise CheckpointError(f"a variable lives in data file {shard} of {shards}")
        path = os.path.join(variables, f"variables.data-{shard:05d}-of-{shards:05d}")
        if shard not in sizes:
            sizes[shard] = _regular(path, directory, 1 << 62, f"variables/"
                                                               f"{os.path.basename(path)}")
        return path

    names = _object_graph(entries, data_path, limits)
    by_leaf: dict[str, list] = {}
    for layer in graph.layers():
        by_leaf.setdefault(layer.path.rsplit("/", 1)[-1], []).append(layer)
    detached: dict[str, Layer] = {}
    per_layer: dict[int, list] = {}
    unmapped: list[str] = []
    declared = 0
    # In the object graph's order, which is each layer's own order of its weights.
    for key in [key for key in names if key in entries] + \
            [key for key in sorted(entries) if key not in names]:
        if key in ("", OBJECT_GRAPH) or key.startswith(NOT_WEIGHTS) or \
                ".OPTIMIZER_SLOT" in key:
            continue
        dtype_number, shape, shard, offset, size = _entry(entries[key])
        name = names.get(key, "")
        parts = name.split("/")
        if graph.graph_stored:
            owner = next((by_leaf[part] for part in parts[:-1]
                          if len(by_leaf.get(part, ())) == 1), None)
        elif len(parts) > 1:
            # No layer graph (a subclassed model): the weights are still checked, each
            # variable's layer named by its variable's name, as for an archive.
            path = "/".join(parts[:-1])
            if path not in detached:
                detached[path] = Layer(path=path, class_name="?", kind="unknown", config={})
                graph.detached_layers.append(detached[path])
                by_leaf[path] = [detached[path]]
            owner = by_leaf[path]
        else:
            owner = None
        if owner is None or dtype_number not in DTYPES:
            unmapped.append(name or key)
            continue
        dtype = np.dtype(DTYPES[dtype_number])
        count = 1
        for extent in shape:
            count *= extent
        path = data_path(shard)
        if count * dtype.itemsize != size or offset + size > sizes[shard]:
            raise CheckpointError(f"the variable '{name}' claims {size} bytes at {offset}, "
                                  f"outside its data file or unlike its shape {list(shape)}")
        declared += size
        if declared > limits.inflated_bytes_allowed(sum(sizes.values())):
            raise CheckpointError("the checkpoint's variables declare more data than its files "
                                  "hold (limits.max-inflate-ratio)")
        leaf = parts[-1].split(":", 1)[0]  # TensorFlow.NET keeps the ":0"
        role = ROLE_ALIASES.get(leaf, leaf)
        if "backward" in name:
            role = "backward_" + role
        per_layer.setdefault(id(owner[0]), [owner[0], []])[1].append(
            (name, _Tensor(path, offset, shape, dtype, name), role))
    for layer, tensors in per_layer.values():
        stats: list[WeightStats] = [tensor_stats(tensor, role, (tensor.path, 0))
                                    for _, tensor, role in tensors]
        for target in by_leaf.get(layer.path.rsplit("/", 1)[-1], [layer]):
            target.weights = stats
    if not per_layer and unmapped:
        graph.notes.append(f"stored weights not mapped: none of the {len(unmapped)} variables "
                           f"in the SavedModel's checkpoint (first '{unmapped[0]}') names a "
                           "layer of the configuration; estimates use the initializers only")
        return
    graph.weights_read = True
    if unmapped:
        graph.notes.append(f"stored weights not mapped: {len(unmapped)} variables in the "
                           f"SavedModel's checkpoint (first '{unmapped[0]}') name no layer of "
                           "the configuration; params and the stored-weights estimate leave "
                           "them out")
