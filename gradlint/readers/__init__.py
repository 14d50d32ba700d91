"""Readers: one per file format, each producing a `ModelGraph`. `read_model` decides the format
once, from the file's bytes, and refuses a file whose bytes or name leave it in doubt: Keras
picks its loader by the name, so a file that gradlint read as one format must never be
loaded as another. (A `model.to_json()` architecture under an `.h5` name is read, with a
note: no Keras loader reads a different model from it. A SavedModel is a directory, found by
its `keras_metadata.pb`.)"""

from __future__ import annotations

import os
import stat
import zipfile

from gradlint.errors import ModelReadError, UnsupportedFormat
from gradlint.graph import ModelGraph
from gradlint.limits import DEFAULT_LIMITS, Limits

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
ZIP_SIGNATURE = b"PK\x03\x04"
LFS_POINTER = b"version https://git-lfs"

KERAS_ARCHIVE = "keras archive"
HDF5 = "HDF5"
JSON_ARCHITECTURE = "JSON architecture"
# The format each extension asks Keras's loader for.
EXTENSION_FORMATS = {".keras": KERAS_ARCHIVE, ".h5": HDF5, ".hdf5": HDF5}
# Where HDF5 looks for its signature: offset 0, then 512, 1024, 2048, ... (a user block).
HDF5_SIGNATURE_LIMIT = 1 << 20


def special_file_kind(mode: int) -> str | None:
    """What a non-regular file is, in words, or None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    return "not a regular file"


def _hdf5_offset(handle, size: int) -> int | None:
    offset = 0
    while offset + 8 <= size and offset <= HDF5_SIGNATURE_LIMIT:
        handle.seek(offset)
        if handle.read(8) == HDF5_SIGNATURE:
            return offset
        offset = 512 if offset == 0 else offset * 2
    return None


def _starts_a_stored_member(handle, offset: int) -> bool:
    """Whether `offset` is where the data of an uncompressed member of the zip begins (the
    HDF5 weights inside a `.keras` archive may happen to start at 512, 1024, ...)."""
    import struct

    try:
        with zipfile.ZipFile(handle) as archive:
            for info in archive.infolist():
                if info.compress_type != zipfile.ZIP_STORED:
                    continue
                handle.seek(info.header_offset + 26)
                name_length, extra_length = struct.unpack("<HH", handle.read(4))
                if info.header_offset + 30 + name_length + extra_length == offset:
                    return True
    except (zipfile.BadZipFile, OSError, struct.error, ValueError):
        return False
    return False


def _opens_json_object(head: bytes) -> bool:
    from gradlint.readers.json_architecture import looks_like_json_object

    return looks_like_json_object(head)


def detect_format(path: str, *, allow_ambiguous: bool = False) -> str:
    """The file's format from its bytes: `KERAS_ARCHIVE`, `HDF5` or `JSON_ARCHITECTURE`.

    Opens only a regular file (a FIFO would block, a device never ends) and refuses a file
    that is both a zip and an HDF5 file, or whose extension names the other format, unless
    `allow_ambiguous` (then the bytes decide, a zip first).
    """
    try:
        kind = special_file_kind(os.stat(path).st_mode)  # a socket cannot even be opened
        if kind is not None:
            raise ModelReadError(f"{kind}, not a regular file")
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as error:
        raise ModelReadError(f"cannot open the file ({error.strerror or error})") from None
    with os.fdopen(descriptor, "rb") as handle:
        info = os.fstat(handle.fileno())
        kind = special_file_kind(info.st_mode)
        if kind is not None:
            raise ModelReadError(f"{kind}, not a regular file")
        head = handle.read(64)
        if not head:
            raise ModelReadError("the file is empty")
        hdf5_at = _hdf5_offset(handle, info.st_size)
        # A zip is found by its end record as well as by its first bytes: Python's zipfile
        # and so Keras read a zip appended to an HDF5 file.
        is_zip = head.startswith(ZIP_SIGNATURE) or zipfile.is_zipfile(handle)
        if is_zip and hdf5_at is not None and head.startswith(ZIP_SIGNATURE) and \
                _starts_a_stored_member(handle, hdf5_at):
            hdf5_at = None  # a .keras archive's own weights file, stored uncompressed
    if head.startswith(LFS_POINTER):
        # Not UnsupportedFormat: a searched-for pointer is a model nobody checked, not a
        # data file to skip.
        raise ModelReadError("a Git LFS pointer, not the model itself: run `git lfs pull`")
    if is_zip and hdf5_at is not None and not allow_ambiguous:
        raise ModelReadError(
            f"the file is both a zip archive and an HDF5 file (its HDF5 data starts at byte "
            f"{hdf5_at}), so gradlint and Keras could read different models from it; refused "
            "(--allow-ambiguous-format reads it as the zip archive)")
    if is_zip:
        found = KERAS_ARCHIVE
    elif hdf5_at is not None:
        found = HDF5
    elif _opens_json_object(head):
        # model.to_json(): no loader of Keras reads it as another model, whatever its name.
        return JSON_ARCHITECTURE
    elif path.endswith(".pb") or head[:1] == b"\x08":
        raise UnsupportedFormat("a TensorFlow protobuf graph is not supported")
    else:
        raise UnsupportedFormat("not a Keras model file: expected a .keras archive (zip), a "
                                "full-model HDF5 file, a model.to_json() architecture or a "
                                "SavedModel directory")
    extension = os.path.splitext(path)[1].lower()
    named = EXTENSION_FORMATS.get(extension)
    if named is not None and named != found and not allow_ambiguous:
        raise ModelReadError(
            f"the name ends in {extension} but the file is "
            f"{'an HDF5 file' if found == HDF5 else 'a zip archive (a .keras file)'}, and "
            f"Keras picks its loader by the name; rename it to "
            f"{'.h5' if found == HDF5 else '.keras'} (or pass --allow-ambiguous-format)")
    return found


# What `gradlint.readers.savedmodel.MEMBER_FILES` names: either names a SavedModel.
SAVED_MODEL_MEMBERS = ("keras_metadata.pb", "saved_model.pb")


def _saved_model(directory: str) -> bool:
    from gradlint.readers import savedmodel

    return savedmodel.is_saved_model(directory)


def read_model(path: str, *, read_weights: bool = True, limits: Limits = DEFAULT_LIMITS,
               allow_ambiguous: bool = False) -> ModelGraph:
    """Read a saved Keras model: a file, or a SavedModel directory (named by the directory
    or by its `saved_model.pb` or `keras_metadata.pb`). Raises `ModelReadError` with a clear
    message otherwise."""
    if os.path.isdir(path):
        from gradlint.readers import savedmodel

        if savedmodel.is_saved_model(path):
            return savedmodel.read(path, read_weights=read_weights, limits=limits)
        raise UnsupportedFormat("a directory is not a model file")
    directory = os.path.dirname(path) or "."
    # The SavedModel reader is imported only for a name it could own (it costs 2.6 ms).
    if os.path.basename(path) in SAVED_MODEL_MEMBERS and os.path.isfile(path) and \
            _saved_model(directory):
        # The SavedModel is its directory: either file of it names the whole model.
        from gradlint.readers import savedmodel

        return savedmodel.read(directory, read_weights=read_weights, limits=limits)
    found = detect_format(path, allow_ambiguous=allow_ambiguous)
    if found == JSON_ARCHITECTURE:
        from gradlint.readers import json_architecture

        return json_architecture.read(path, read_weights=read_weights, limits=limits)
    if found == KERAS_ARCHIVE:
        from gradlint.readers import keras_archive

        return keras_archive.read(path, read_weights=read_weights, limits=limits)
    from gradlint.readers import legacy_h5

    return legacy_h5.read(path, read_weights=read_weights, limits=limits)
