"""Opening an HDF5 file (a legacy `.h5` model, or the weights inside a `.keras` archive) so that
reading it touches the file and nothing else, and costs no more than the file is worth.

Before anything is read, one pass over the file's metadata refuses:

- links other than hard links: an external link opens another file, a soft link can point
  anywhere (Keras writes neither), and a group linked twice makes a cycle;
- datasets whose values live elsewhere: external raw storage and virtual datasets read other
  files (`/etc/passwd`, `/dev/zero`);
- filters HDF5 does not build in (an unknown filter makes HDF5 search its plugin path for a
  library to load), and compressed chunks larger than `Limits.max_chunk_mb`;
- a dataset that declares far more values than it stores: unwritten chunks read as fill
  values without end, and deflate bombs expand a thousandfold (`Limits.max_inflate_ratio`);
- contiguous data that would lie past the end of the file.

HDF5 opens linked files from C, where no Python hook sees it, which is why the check comes
before the first read rather than around it.
"""

from __future__ import annotations

import os
from typing import Any

from gradlint.errors import ModelReadError
from gradlint.limits import MB, Limits

# Never load a filter plugin from HDF5's plugin path (HDF5's documented switch; read when the
# library starts, so set before h5py is first imported).
os.environ.setdefault("HDF5_PLUGIN_PRELOAD", "::")

import h5py  # noqa: E402

# HDF5's built-in filters, and h5py's own LZF.
BUILTIN_FILTERS = {
    h5py.h5z.FILTER_DEFLATE: "deflate",
    h5py.h5z.FILTER_SHUFFLE: "shuffle",
    h5py.h5z.FILTER_FLETCHER32: "fletcher32",
    h5py.h5z.FILTER_SZIP: "szip",
    h5py.h5z.FILTER_NBIT: "nbit",
    h5py.h5z.FILTER_SCALEOFFSET: "scaleoffset",
    h5py.h5z.FILTER_LZF: "lzf",
}
LINK_KINDS = {h5py.h5l.TYPE_SOFT: "a soft link", h5py.h5l.TYPE_EXTERNAL: "an external link"}


def _forget_plugin_paths() -> None:
    """Empty HDF5's plugin search path, for a process that imported h5py before us."""
    try:
        while h5py.h5pl.size():
            h5py.h5pl.remove(0)
    except Exception:  # an h5py without the plugin API: the filter check below still holds
        pass


_forget_plugin_paths()


def _name(raw: bytes) -> str:
    return raw.decode("utf-8", "backslashreplace")


def _element_count(shape: tuple) -> int:
    count = 1
    for extent in shape:
        count *= int(extent)
    return count


def _check_links(handle: h5py.File) -> None:
    bad: list[str] = []

    def visit(name: bytes, info) -> None:
        if info.type != h5py.h5l.TYPE_HARD and not bad:
            bad.append(f"'{_name(name)}' is {LINK_KINDS.get(info.type, 'a user-defined link')}")

    handle.id.links.visit(visit, info=True)
    if bad:
        raise ModelReadError(f"the HDF5 data has a link to outside itself ({bad[0]}); a model "
                             "file must be self-contained, so gradlint does not follow it")


def check_dataset(dataset_id, name: str, limits: Limits, data_size: int) -> int:
    """Refuse one dataset that reads outside the file or costs more than it stores; return
    the bytes its values take in memory."""
    plist = dataset_id.get_create_plist()
    layout = plist.get_layout()
    if layout == h5py.h5d.VIRTUAL:
        raise ModelReadError(f"the dataset '{name}' is a virtual dataset, which reads its "
                             "values from other files; refused")
    if plist.get_external_count():
        raise ModelReadError(f"the dataset '{name}' keeps its values in an external file; "
                             "refused")
    for index in range(plist.get_nfilters()):
        code = plist.get_filter(index)[0]
        if code not in BUILTIN_FILTERS:
            raise ModelReadError(f"the dataset '{name}' uses HDF5 filter {code}, which is not "
                                 "built into HDF5 and would be loaded as a plugin; refused")
    shape = dataset_id.shape
    itemsize = dataset_id.get_type().get_size()
    logical = _element_count(shape) * itemsize
    stored = dataset_id.get_storage_size()
    if logical > limits.inflated_bytes_allowed(stored):
        raise ModelReadError(
            f"the dataset '{name}' declares {logical / MB:.1f} MB of values but stores "
            f"{stored / MB:.2f} MB (more than {limits.max_inflate_ratio}:1 past "
            f"{limits.inflate_floor_mb} MB: unwritten data or a decompression bomb); refused "
            "(limits.max-inflate-ratio)")
    if layout == h5py.h5d.CHUNKED:
        chunk = plist.get_chunk()
        chunk_bytes = _element_count(chunk) * itemsize
        if chunk_bytes > limits.chunk_bytes:
            raise ModelReadError(f"the dataset '{name}' has {chunk_bytes / MB:.0f} MB chunks, "
                                 f"over the {limits.max_chunk_mb} MB limit "
                                 "(limits.max-chunk-mb)")
    elif layout == h5py.h5d.CONTIGUOUS and stored:
        offset = dataset_id.get_offset()
        if offset is not None and offset + min(stored, logical) > data_size:
            raise ModelReadError(f"the dataset '{name}' points past the end of the file "
                                 "(truncated or corrupted)")
    return logical


def _check_objects(handle: h5py.File, limits: Limits, data_size: int) -> None:
    problems: list[str] = []
    total = [0]

    def visit(name: bytes, info) -> None:
        if problems:
            return
        if info.type == h5py.h5o.TYPE_GROUP and info.rc > 1:
            problems.append(f"the group '{_name(name)}' is linked {info.rc} times (a cycle "
                            "or a shared subtree, which Keras never writes); refused")
        elif info.type == h5py.h5o.TYPE_DATASET:
            try:
                total[0] += check_dataset(h5py.h5d.open(handle.id, name), _name(name), limits,
                                          data_size)
            except ModelReadError as error:
                problems.append(str(error))

    h5py.h5o.visit(handle.id, visit, info=True)
    if problems:
        raise ModelReadError(problems[0])
    if total[0] > limits.inflated_bytes_allowed(data_size):
        raise ModelReadError(f"the datasets declare {total[0] / MB:.0f} MB of values in "
                             f"{data_size / MB:.2f} MB of file; refused "
                             "(limits.max-inflate-ratio)")


def open_checked(source: Any, limits: Limits, data_size: int, scan: bool = True) -> h5py.File:
    """Open `source` (a path or a file object) read-only after checking every link and
    dataset in it (unless not `scan`: for reading the root's attributes only); raises
    `ModelReadError` for a file that reads outside itself or declares more than it holds."""
    try:
        handle = h5py.File(source, "r")
    except OSError as error:
        raise ModelReadError(f"not a readable HDF5 file ({error})") from None
    if not scan:
        return handle
    try:
        _check_links(handle)
        _check_objects(handle, limits, data_size)
    except ModelReadError:
        handle.close()
        raise
    except (OSError, RuntimeError, ValueError, KeyError) as error:
        handle.close()
        raise ModelReadError(f"the HDF5 structure is corrupted ({error})") from None
    return handle


def attribute_bytes(handle: h5py.File, name: str, limits: Limits) -> Any:
    """A root attribute's value, refused when its stored size exceeds the configuration
    limit (variable-length strings are checked once read)."""
    if name not in handle.attrs:
        return None
    attribute = h5py.h5a.open(handle.id, name.encode())
    if attribute.get_storage_size() > limits.config_bytes:
        raise ModelReadError(f"the '{name}' attribute is {attribute.get_storage_size() / MB:.0f}"
                             f" MB, over the {limits.max_config_mb} MB limit "
                             "(limits.max-config-mb)")
    value = handle.attrs.get(name)
    size = len(value) if isinstance(value, (bytes, str)) else getattr(value, "nbytes", 0)
    if size > limits.config_bytes:
        raise ModelReadError(f"the '{name}' attribute is {size / MB:.0f} MB, over the "
                             f"{limits.max_config_mb} MB limit (limits.max-config-mb)")
    return value
