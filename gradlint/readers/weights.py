"""Weight statistics straight from the HDF5 data, for both weight layouts Keras writes.

Statistics are computed in chunks, so a 400 MB kernel never sits in memory whole, and the
archive's weights member is read in place at its offset inside the zip file.

The archive's ``model.weights.h5`` has three layouts, by the Keras that wrote it (its
``saving_lib``): ``layers/<class key>/vars/<n>`` (Keras 3, tf-keras 2.15 and later);
``_layer_checkpoint_dependencies/<class key>/vars/<n>`` (Keras 2.12-2.14, which walked the
model's attributes in `dir()` order and so reached its layers through that dict first; 2.12
and 2.13 also counted each weighted layer twice in the keys, ``dense``, ``dense_2``, ...);
and either of them written on Windows, where tf-keras joined the group path with
`os.path.join`, so the file's root holds groups named ``layers\\dense`` instead of nested
groups. A tensor that matches no layer of the configuration is never dropped silently: the
graph gets a note, and a file none of whose tensors match is read as having no weights.
"""

from __future__ import annotations

import io
import itertools
import os
import re
import struct
import zipfile
from typing import Any, Iterable, Iterator

from gradlint.graph import Layer, ModelGraph, WeightStats
from gradlint.isolation import uninterruptible
from gradlint.readers.hdf5 import ATTRIBUTE_SECONDS

CHUNK_ELEMENTS = 1 << 21  # 2M values: 16 MB as float64
# A layer's weight names or a vars group's name: a few kilobytes, however hostile the file.
SMALL_ATTRIBUTE_MEMORY = 64 << 20

ROLE_ALIASES = {
    "depthwise_kernel": "kernel",
    "embeddings": "kernel",
    "w": "kernel",
    "b": "bias",
}


class ArchiveMember(io.RawIOBase):
    """A read-only, seekable view of a member stored uncompressed inside a zip archive."""

    def __init__(self, path: str, info: zipfile.ZipInfo):
        super().__init__()
        self._file = open(path, "rb")
        self._file.seek(info.header_offset)
        header = self._file.read(30)
        if len(header) != 30 or header[:4] != b"PK\x03\x04":
            self._file.close()
            raise OSError("bad local file header")
        name_length, extra_length = struct.unpack("<HH", header[26:30])
        self.start = info.header_offset + 30 + name_length + extra_length
        self._size = info.file_size
        if self.start + self._size > os.fstat(self._file.fileno()).st_size:
            self._file.close()
            raise OSError("the member runs past the end of the archive")
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            self._position = offset
        elif whence == io.SEEK_CUR:
            self._position += offset
        else:
            self._position = self._size + offset
        return self._position

    def readinto(self, buffer) -> int:
        remaining = self._size - self._position
        if remaining <= 0:
            return 0
        view = memoryview(buffer)
        count = min(len(view), remaining)
        self._file.seek(self.start + self._position)
        data = self._file.readinto(view[:count])
        self._position += data or 0
        return data or 0

    def close(self) -> None:
        self._file.close()
        super().close()


def _raw_offset(dataset: Any, raw: tuple[str, int] | None) -> int | None:
    """Where the dataset's values start in the file at raw[0], when they are stored
    contiguously and uncompressed (as Keras writes them), so they can be memory-mapped
    instead of copied through h5py's Python file layer. raw[1] is where the HDF5 data starts
    inside that file (the member's offset in a `.keras` zip)."""
    if raw is None or dataset.chunks is not None or dataset.compression is not None \
            or dataset.dtype.kind not in "fiu":
        return None
    try:
        offset = dataset.id.get_offset()
    except (AttributeError, ValueError, OSError):
        return None
    return None if offset is None else raw[1] + offset


def _mapped_chunks(path: str, offset: int, dtype: Any, size: int) -> Iterable:
    """The values in chunks, each mapped on its own and unmapped once the next is taken, so
    that even a 411 MB kernel keeps only one chunk's pages resident."""
    import numpy as np

    for start in range(0, size, CHUNK_ELEMENTS):
        yield np.memmap(path, dtype=dtype, mode="r", offset=offset + start * dtype.itemsize,
                        shape=(min(CHUNK_ELEMENTS, size - start),))


def _boxes(shape: tuple[int, ...], limit: int) -> Iterator[tuple]:
    """Index tuples that cover an array of `shape` in C order, each selecting at most `limit`
    values: whole trailing axes where they fit, slices of the next axis, single indices of
    the leading ones (a (1, 10**8) kernel is read in 2M-value pieces of its row)."""
    inner = 1
    axis = len(shape)
    while axis > 0 and inner * shape[axis - 1] <= limit:
        inner *= shape[axis - 1]
        axis -= 1
    if axis == 0:
        yield ()
        return
    axis -= 1
    step = max(1, limit // inner)
    for prefix in itertools.product(*(range(extent) for extent in shape[:axis])):
        for start in range(0, shape[axis], step):
            yield prefix + (slice(start, start + step),)


def _sum_of_squares(deviations: Any) -> float:
    import numpy as np

    np.square(deviations, out=deviations)
    return float(deviations.sum(dtype=np.float64))


def tensor_stats(dataset: Any, role: str, raw: tuple[str, int] | None = None,
                 budget: Any = None) -> WeightStats:
    """Mean, standard deviation, zero fraction and finiteness of one HDF5 dataset, read in
    chunks of about 2M values in the stored precision, once `budget` (a
    `readers.hdf5.ReadBudget`) has checked it."""
    import numpy as np

    if budget is not None:
        budget.check(dataset)
    shape = tuple(int(d) for d in dataset.shape)
    size = 1
    for extent in shape:
        size *= extent
    if size == 0 or dataset.dtype.kind not in "fiub":
        return WeightStats(role, shape, 0.0, 0.0, 0.0, True, dataset=_name(dataset))
    count = 0
    mean = 0.0
    squares = 0.0  # sum of squared deviations from the mean (Chan et al.'s parallel form)
    zeros = 0
    nonfinite = 0
    offset = _raw_offset(dataset, raw) if shape else None
    if offset is not None:
        chunks: Iterable = _mapped_chunks(raw[0], offset, dataset.dtype, size)
    elif not shape:
        chunks = [np.asarray(dataset[()]).reshape(1)]
    else:
        chunks = (dataset[box] for box in _boxes(shape, CHUNK_ELEMENTS))
    for chunk in chunks:
        values = np.asarray(chunk).ravel()
        if values.dtype.kind != "f":
            values = values.astype(np.float64)
        with np.errstate(over="ignore", invalid="ignore"):
            chunk_mean = float(values.sum(dtype=np.float64)) / values.size
            if not np.isfinite(chunk_mean):
                # NaN and Inf make the sum non-finite; so can float32 overflow of huge values.
                values = values.astype(np.float64)
                finite = np.isfinite(values)
                nonfinite += int(values.size - np.count_nonzero(finite))
                values = values[finite]
                if not values.size:
                    continue
                chunk_mean = float(values.sum()) / values.size
            # Deviations from the chunk's own mean keep float32 accurate (a constant kernel
            # gives exactly zero).
            # Squared and summed by numpy's own loops, not BLAS's dot: a reading child
            # forked after numpy started OpenBLAS's threads would pay 80 ms (ResNet50) to
            # restart them.
            deviations = values - values.dtype.type(chunk_mean)
            chunk_squares = _sum_of_squares(deviations)
            if not np.isfinite(chunk_squares):  # float32 overflow of huge finite values
                chunk_squares = _sum_of_squares(values.astype(np.float64) - chunk_mean)
        chunk_count = values.size
        total = count + chunk_count
        delta = chunk_mean - mean
        squares += chunk_squares + delta * delta * count * chunk_count / total
        mean += delta * chunk_count / total
        count = total
        zeros += int(values.size - np.count_nonzero(values))
    variance = squares / count if count else 0.0
    return WeightStats(role=role, shape=shape, mean=mean, std=max(variance, 0.0) ** 0.5,
                       zero_fraction=zeros / size, finite=nonfinite == 0,
                       nonfinite_count=nonfinite, dataset=_name(dataset))


def _name(dataset: Any) -> str | None:
    """The dataset's path in its HDF5 file, for `gradlint fix`."""
    try:
        return str(dataset.name)
    except Exception:  # an anonymous or broken dataset: nothing to rewrite
        return None


def _roles(layer: Layer, count_2d: int) -> list[str]:
    return layer.family.weight_roles(layer, count_2d)


def _layers_by_path(graph: ModelGraph) -> dict[str, list[Layer]]:
    result: dict[str, list[Layer]] = {}
    for layer in graph.layers():
        result.setdefault(layer.path, []).append(layer)
    return result


# The group that holds a model's layers, by the Keras that wrote the file.
LAYER_CONTAINERS = ("layers", "_layer_checkpoint_dependencies")
# Top-level groups of the weights file that hold no layer's weights.
NOT_LAYER_STATE = frozenset({"optimizer", "metrics", "compiled_metrics", "compiled_loss",
                             "loss", "_metrics"})


class JoinedPaths:
    """One level of the group tree that tf-keras meant to write on Windows: there it named
    each group by its whole path joined with backslashes (``layers\\sequential\\layers\\dense``,
    all at the root). Reads like an h5py group: `keys`, `get`, `[]`, `attrs`."""

    def __init__(self, group: Any = None):
        self.group = group  # the real group stored under this path, if any
        self.children: dict[str, Any] = {}

    def keys(self) -> list[str]:
        names = list(self.children)
        if self.group is not None:
            names += [key for key in self.group.keys() if key not in self.children]
        return names

    def get(self, key: str, default: Any = None) -> Any:
        if key in self.children:
            return self.children[key]
        if self.group is not None and key in self.group:
            return self.group[key]
        return default

    def __getitem__(self, key: str) -> Any:
        value = self.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def __contains__(self, key: str) -> bool:
        return self.get(key) is not None

    @property
    def attrs(self) -> Any:
        return self.group.attrs if self.group is not None else {}


def joined_paths(root: Any) -> Any:
    """`root` itself, or, when its group names hold backslashes (a file tf-keras wrote on
    Windows), a `JoinedPaths` tree of the groups those names stand for."""
    import h5py

    names = list(root.keys())
    if not any("\\" in name for name in names):
        return root
    tree = JoinedPaths(root)
    tree.children = {}
    for name in names:
        parts = [part for part in name.split("\\") if part] or [name]
        node = tree
        for part in parts[:-1]:
            child = node.children.get(part)
            if not isinstance(child, JoinedPaths):
                child = node.children[part] = JoinedPaths()
            node = child
        item = root[name]
        existing = node.children.get(parts[-1])
        if isinstance(item, h5py.Group) and isinstance(existing, JoinedPaths):
            if existing.group is None:
                existing.group = item
        elif isinstance(item, h5py.Group):
            node.children[parts[-1]] = JoinedPaths(item)
        elif existing is None:
            node.children[parts[-1]] = item
    tree.group = None  # every name at the root is in `children`
    return tree


def _is_group(node: Any) -> bool:
    import h5py

    return isinstance(node, (h5py.Group, JoinedPaths))


def _natural_key(name: str) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _datasets_in_order(group: Any) -> list[tuple[str, Any]]:
    """Every dataset below `group`, forward layers before backward, vars in numeric order."""
    import h5py

    found: list[tuple[str, Any]] = []
    if not _is_group(group):  # a dataset where Keras writes a layer's group
        return found

    def walk(node: Any, prefix: str) -> None:
        keys = sorted(node.keys(), key=lambda k: (k.startswith("backward"), _natural_key(k)))
        for key in keys:
            item = node[key]
            if isinstance(item, h5py.Dataset):
                found.append((prefix + key, item))
            else:
                walk(item, prefix + key + "/")

    walk(group, "")
    return found


def snake_case(name: str, keras2: bool) -> str:
    """The key Keras gives a layer of this class in the weights file (its saving_lib)."""
    if keras2:
        intermediate = re.sub("(.)([A-Z][a-z0-9]+)", r"\1_\2", name)
        result = re.sub("([a-z])([A-Z])", r"\1_\2", intermediate).lower()
        return result if not result.startswith("_") else "private" + result
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _assign(layers: list[Layer], datasets: list[tuple[str, Any]],
            raw: tuple[str, int] | None = None, budget: Any = None,
            assigned: set | None = None) -> None:
    if not layers:
        return
    if assigned is not None:
        assigned.update(dataset.name for _, dataset in datasets)
    layer = layers[0]
    roles = _roles(layer, 0)
    stats = []
    forward_count = 0
    for index, (name, dataset) in enumerate(datasets):
        backward = "backward" in name
        position = index - forward_count if backward else index
        if not backward:
            forward_count += 1
        role = roles[position] if position < len(roles) else f"weight_{position}"
        stats.append(tensor_stats(dataset, ("backward_" if backward else "") + role, raw,
                                  budget))
    for target in layers:
        target.weights = stats


def detach_archive_weights(graph: ModelGraph, root: Any,
                           raw: tuple[str, int] | None = None, budget: Any = None) -> None:
    """For a model whose graph is not stored: every ``vars`` group becomes a detached layer
    named by its place in the file, so its weights can still be checked."""
    import h5py

    root = joined_paths(root)
    groups: dict[str, list[tuple[str, Any]]] = {}

    def walk(node: Any, path: str) -> None:
        for key in sorted(node.keys(), key=_natural_key):
            item = node[key]
            if isinstance(item, h5py.Dataset):
                if path.endswith("/vars") or path == "vars":
                    owner = path[:-len("/vars")] if path.endswith("/vars") else graph.name
                    groups.setdefault(owner, []).append((key, item))
            elif _is_group(item) and (key not in NOT_LAYER_STATE or path):
                walk(item, f"{path}/{key}" if path else key)

    walk(root, "")
    for owner, datasets in groups.items():
        path = owner
        for container in LAYER_CONTAINERS:
            path = path.replace(container + "/", "")
        path = path.strip("/") or graph.name
        layer = Layer(path=path, class_name="?", kind="unknown", config={})
        stats = []
        kernels = 0
        for key, dataset in datasets:
            role = f"weight_{key}"
            if len(dataset.shape) >= 2:
                role = "kernel" if kernels == 0 else f"kernel_{kernels}"
                kernels += 1
            stats.append(tensor_stats(dataset, role, raw, budget))
        layer.weights = stats
        graph.detached_layers.append(layer)
    graph.weights_read = True


def attach_archive_weights(graph: ModelGraph, root: Any, model_config: dict, keras2: bool,
                           raw: tuple[str, int] | None = None, budget: Any = None) -> None:
    """The archive layouts (module docstring): layers are found by the ``name`` attribute
    Keras 3.6+ writes on each ``vars`` group, and by class order where it is missing.
    Tensors that match no layer are noted (`_note_unmapped`)."""
    joined = joined_paths(root)
    by_path = _layers_by_path(graph)
    assigned: set[str] = set()
    _attach_container(joined, model_config, "", by_path, keras2, raw, budget, assigned)
    graph.weights_read = True
    _note_unmapped(graph, root, joined, assigned)


def _layer_tensors(root: Any) -> list[str]:
    """The names of the tensors in the file that belong to layers: all but the optimizer's
    and the metrics' state (one pass of HDF5's own visit: no Python object per item)."""
    import h5py

    found: list[str] = []

    def visit(name: bytes, info) -> None:
        if info.type == h5py.h5o.TYPE_DATASET:
            text = name.decode("utf-8", "surrogateescape")
            # tf-keras on Windows names the owner by its whole path: "metrics\\mean/vars/0".
            if text.replace("\\", "/").split("/", 1)[0] not in NOT_LAYER_STATE:
                found.append("/" + text)

    group = root.group if isinstance(root, JoinedPaths) else root
    if group is None:
        return found
    h5py.h5o.visit(group.id, visit, info=True)
    return found


def _note_unmapped(graph: ModelGraph, root: Any, joined: Any, assigned: set[str]) -> None:
    """Say which stored tensors match no layer, so that neither `params` nor the
    stored-weights estimate is silently short of them; a file none of whose tensors match is
    read as holding no weights. `joined` is `root` as `joined_paths` reads it."""
    tensors = _layer_tensors(root)
    unmapped = [name for name in tensors if name not in assigned]
    if not unmapped:
        return
    containers = [key for key in LAYER_CONTAINERS if key in joined]
    layout = (f"its layers are under '{containers[0]}/'" if containers else
              "it has no 'layers/' group")
    where = "Windows backslash paths, " if isinstance(joined, JoinedPaths) else ""
    first = unmapped[0].lstrip("/")
    if len(unmapped) == len(tensors):
        graph.weights_read = False
        graph.notes.append(
            f"stored weights not mapped: none of the {len(tensors)} weight tensors in "
            f"model.weights.h5 ({where}{layout}; first '{first}') matches a layer of the "
            "configuration, so the weights were not read; estimates use the initializers only")
        return
    graph.notes.append(
        f"stored weights not mapped: {len(unmapped)} of {len(tensors)} weight tensors in "
        f"model.weights.h5 ({where}{layout}; first '{first}') match no layer of the "
        "configuration; params and the stored-weights estimate leave them out (those layers "
        "keep their initializers)")


def _numbered(key: str, class_key: str) -> int | None:
    """The number of a container key for `class_key` (``dense`` 0, ``dense_4`` 4), or None
    for another class's key."""
    if key == class_key:
        return 0
    if key.startswith(class_key + "_") and key[len(class_key) + 1:].isdigit():
        return int(key[len(class_key) + 1:])
    return None


def _attach_container(group: Any, model_entry: dict, prefix: str,
                      by_path: dict[str, list[Layer]], keras2: bool,
                      raw: tuple[str, int] | None = None, budget: Any = None,
                      assigned: set | None = None) -> None:
    container = None
    container_name = None
    if _is_group(group):
        for container_name in LAYER_CONTAINERS:
            container = group.get(container_name)
            if _is_group(container):
                break
            container = None
    if container is None:
        return
    # Each h5py lookup costs about 0.07 ms: look every member up once.
    members = {key: container[key] for key in container.keys()}
    key_by_name: dict[str, str] = {}
    for key, member in members.items():
        vars_group = member.get("vars") if hasattr(member, "get") else None
        if vars_group is not None and "name" in vars_group.attrs:
            with uninterruptible(ATTRIBUTE_SECONDS, SMALL_ATTRIBUTE_MEMORY):
                value = vars_group.attrs["name"]
            key_by_name[value.decode() if isinstance(value, bytes) else str(value)] = key
    # Keras 2.12-2.13 numbered the keys of `_layer_checkpoint_dependencies` with gaps (each
    # weighted layer took two numbers), so there the n-th layer of a class is the n-th key.
    ordinal = container_name == "_layer_checkpoint_dependencies"
    keys_of_class: dict[str, list[str]] = {}
    counters: dict[str, int] = {}
    from gradlint.readers.keras_config import _normalized

    # Keras 2.2.0-2.2.2 stored a Sequential's configuration as the bare list of its layers.
    config = _normalized(model_entry)["config"] if isinstance(model_entry, dict) else {}
    for entry in config.get("layers", []):
        if not isinstance(entry, dict):
            continue
        entry_config = entry.get("config") if isinstance(entry.get("config"), dict) else {}
        name = str(entry.get("name") or entry_config.get("name"))
        class_key = snake_case(str(entry.get("class_name", "")).rsplit(">", 1)[-1], keras2)
        seen = counters.get(class_key)
        counters[class_key] = 0 if seen is None else seen + 1
        if ordinal:
            if class_key not in keys_of_class:
                numbered = [(number, key) for key in members
                            if (number := _numbered(key, class_key)) is not None]
                keys_of_class[class_key] = [key for _, key in sorted(numbered)]
            keys = keys_of_class[class_key]
            fallback = keys[counters[class_key]] if counters[class_key] < len(keys) else None
        else:
            fallback = class_key if seen is None else f"{class_key}_{seen + 1}"
        key = key_by_name.get(name, fallback if not key_by_name else None)
        member = members.get(key)
        if member is None:
            continue
        if isinstance(entry_config.get("layers"), list):
            _attach_container(member, entry, f"{prefix}{name}/", by_path, keras2, raw, budget,
                              assigned)
            continue
        _assign(by_path.get(prefix + name, []), _datasets_in_order(member), raw, budget,
                assigned)


# Keras 1 named a layer's tensors after the layer and a letter: `dense_1_W`, `lstm_1_U_i`.
KERAS1_ROLES = {"W": "kernel", "U": "recurrent_kernel", "b": "bias"}


def _keras1_role(role: str, layer_name: str) -> str:
    """The role of a Keras 1 tensor name (`dense_1_W` of layer `dense_1`: kernel; an LSTM's
    per-gate `W_i`, `U_f`, `b_o`: its kernel, recurrent kernel and bias), or `role` as it is
    for every other name."""
    if not role.startswith(layer_name + "_"):
        return role
    rest = role[len(layer_name) + 1:]
    letter = rest.split("_", 1)[0]
    if letter in KERAS1_ROLES and (rest == letter or len(rest) == len(letter) + 2):
        return KERAS1_ROLES[letter]
    return rest  # gamma, beta, running_mean, running_std of BatchNormalization


def attach_legacy_weights(graph: ModelGraph, model_weights: Any,
                          raw: tuple[str, int] | None = None, budget: Any = None) -> None:
    """Legacy HDF5 layout: ``model_weights/<layer>/`` with a ``weight_names`` attribute whose
    entries name the datasets (``dense/kernel:0``); nested models list their inner layers'
    weights under the outer model's group."""
    by_path = _layers_by_path(graph)
    leaf_names: dict[str, list[str]] = {}
    for path in by_path:
        leaf_names.setdefault(path.split("/", 1)[0], []).append(path)
    for layer_name in model_weights.keys():
        group = model_weights[layer_name]
        with uninterruptible(ATTRIBUTE_SECONDS, SMALL_ATTRIBUTE_MEMORY):
            names = group.attrs.get("weight_names")
        if names is None or len(names) == 0:
            continue
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
        subtree = leaf_names.get(layer_name, [])
        per_layer: dict[str, list[tuple[str, Any]]] = {}
        for weight_name in names:
            if weight_name not in group:
                continue
            target = layer_name
            if layer_name + "" not in by_path or by_path[layer_name][0].family.is_model(by_path[layer_name][0]):
                parts = weight_name.split("/")
                for part in parts:
                    match = [p for p in subtree if p.rsplit("/", 1)[-1] == part]
                    if match:
                        target = match[0]
                        break
            per_layer.setdefault(target, []).append((weight_name, group[weight_name]))
        for target, datasets in per_layer.items():
            layers = by_path.get(target, [])
            if not layers:
                continue
            stats = []
            for weight_name, dataset in datasets:
                role = _keras1_role(weight_name.rsplit("/", 1)[-1].split(":", 1)[0],
                                    target.rsplit("/", 1)[-1])
                role = ROLE_ALIASES.get(role, role)
                if "backward" in weight_name:
                    role = "backward_" + role
                stats.append(tensor_stats(dataset, role, raw, budget))
            for layer in layers:
                layer.weights = stats
    graph.weights_read = True
