"""Readers: one per file format, each producing a `ModelGraph`. `read_model` picks the reader
from the file's first bytes, not its name."""

from __future__ import annotations

import os

from gradlint.errors import ModelReadError, UnsupportedFormat
from gradlint.graph import ModelGraph

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
ZIP_SIGNATURE = b"PK\x03\x04"


def read_model(path: str, *, read_weights: bool = True) -> ModelGraph:
    """Read a saved Keras model. Raises `ModelReadError` with a clear message otherwise."""
    if os.path.isdir(path):
        if os.path.exists(os.path.join(path, "saved_model.pb")):
            raise UnsupportedFormat("a TensorFlow SavedModel directory is not supported; save "
                                    "the model with model.save('model.keras')")
        raise UnsupportedFormat("a directory is not a model file")
    try:
        with open(path, "rb") as handle:
            head = handle.read(8)
    except OSError as error:
        raise ModelReadError(f"cannot open the file ({error.strerror or error})") from None
    if not head:
        raise ModelReadError("the file is empty")
    if head.startswith(ZIP_SIGNATURE):
        from gradlint.readers import keras_archive

        return keras_archive.read(path, read_weights=read_weights)
    if head == HDF5_SIGNATURE or _has_hdf5_userblock(path):
        from gradlint.readers import legacy_h5

        return legacy_h5.read(path, read_weights=read_weights)
    if path.endswith(".pb") or head[:1] == b"\x08":
        raise UnsupportedFormat("a TensorFlow protobuf graph is not supported")
    raise UnsupportedFormat("not a Keras model file: expected a .keras archive (zip) or a "
                            "full-model HDF5 file")


def _has_hdf5_userblock(path: str) -> bool:
    """HDF5 also allows its signature at offsets 512, 1024, 2048, ... (after a user block)."""
    try:
        with open(path, "rb") as handle:
            offset = 512
            size = os.fstat(handle.fileno()).st_size
            while offset + 8 <= size and offset <= 1 << 20:
                handle.seek(offset)
                if handle.read(8) == HDF5_SIGNATURE:
                    return True
                offset *= 2
    except OSError:
        return False
    return False
