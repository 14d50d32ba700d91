"""Opening an HDF5 file (a legacy `.h5` model, or the weights inside a `.keras` archive) so that
reading it touches the file and nothing else, and costs no more than the file is worth.

When the file opens, one pass over its links (HDF5's own traversal, which follows none of
them) refuses links other than hard links, since an external link opens another file and a
soft link can point anywhere (Keras writes neither), and a group linked twice, which makes a
cycle. Then each dataset is checked just before it is read (`ReadBudget.check`), which
refuses:

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
from gradlint.isolation import uninterruptible
from gradlint.limits import MB, Limits

# Reading one attribute of at most `Limits.max_config_mb` takes well under a second (a 64 MB
# string: 0.1 s); a corrupted variable-length one can make HDF5 spin without end.
ATTRIBUTE_SECONDS = 5.0


def attribute_memory(limits: Limits) -> int:
    """The most memory reading one attribute may map: the text, its bytes and their decoded
    copy, with room to spare. A corrupted heap reference makes HDF5 allocate 800 MB and
    more for a 19 KB file."""
    return 4 * limits.config_bytes + 64 * MB

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
    by_address: dict[int, bytes] = {}
    again: list[tuple[bytes, bytes]] = []

    def visit(name: bytes, info) -> None:  # no h5py calls in here: HDF5 is mid-traversal
        if bad:
            return
        if info.type != h5py.h5l.TYPE_HARD:
            bad.append(f"the HDF5 data has a link to outside itself ('{_name(name)}' is "
                       f"{LINK_KINDS.get(info.type, 'a user-defined link')}); a model file "
                       "must be self-contained, so gradlint does not follow it")
            return
        first = by_address.setdefault(info.u, name)
        if first != name:
            again.append((first, name))

    handle.id.links.visit(visit, info=True)
    if bad:
        raise ModelReadError(bad[0])
    for first, name in again:  # a dataset linked twice is only read twice; a group loops
        if isinstance(h5py.h5o.open(handle.id, name), h5py.h5g.GroupID):
            raise ModelReadError(f"the group '{_name(first)}' is linked again as "
                                 f"'{_name(name)}' (a cycle or a shared subtree, which Keras "
                                 "never writes); refused")


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


class ReadBudget:
    """The datasets of one HDF5 file, checked one by one before each is read: each must pass
    `check_dataset`, and together they may declare at most what `Limits.max_inflate_ratio`
    allows for the file's size."""

    def __init__(self, limits: Limits, data_size: int):
        self.limits = limits
        self.data_size = data_size
        self.declared = 0

    def check(self, dataset: h5py.Dataset) -> None:
        try:
            name = dataset.name or "?"
        except (ValueError, RuntimeError):
            name = "?"
        self.declared += check_dataset(dataset.id, name.lstrip("/"), self.limits,
                                       self.data_size)
        if self.declared > self.limits.inflated_bytes_allowed(self.data_size):
            raise ModelReadError(f"the datasets declare {self.declared / MB:.0f} MB of values "
                                 f"in {self.data_size / MB:.2f} MB of file; refused "
                                 "(limits.max-inflate-ratio)")


def open_checked(source: Any, limits: Limits, data_size: int, scan: bool = True) -> h5py.File:
    """Open `source` (a path or a file object) read-only after checking every link in it
    (unless not `scan`: for reading the root's attributes only); raises `ModelReadError` for
    a file that links outside itself. Datasets are checked as they are read (`ReadBudget`)."""
    try:
        handle = h5py.File(source, "r")
    except OSError as error:
        raise ModelReadError(f"not a readable HDF5 file ({error})") from None
    if not scan:
        return handle
    try:
        _check_links(handle)
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
    with uninterruptible(ATTRIBUTE_SECONDS, attribute_memory(limits)):
        value = handle.attrs.get(name)
    size = len(value) if isinstance(value, (bytes, str)) else getattr(value, "nbytes", 0)
    if size > limits.config_bytes:
        raise ModelReadError(f"the '{name}' attribute is {size / MB:.0f} MB, over the "
                             f"{limits.max_config_mb} MB limit (limits.max-config-mb)")
    return value
