"""The fixed file, in the input's format: a `.keras` archive (Keras 3 or tf-keras: the same
members in the same order and compression, with the edited ``config.json`` and the
re-drawn kernels in ``model.weights.h5``) or a legacy HDF5 file (the edited
``model_config`` / ``training_config`` attributes, the re-drawn kernels under
``model_weights``).

Only the datasets named in `redraws` are written, in place and with their own dtype and
shape, so every other stored value keeps its bytes. The file is written to a temporary
file beside the target and renamed onto it; the input is only ever read.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import zipfile
from typing import Any

WEIGHTS_MEMBER = "model.weights.h5"


def _write_datasets(weights_path: str, redraws: dict[str, Any]) -> None:
    import h5py
    import numpy as np

    with h5py.File(weights_path, "r+") as weights:
        for name, values in redraws.items():
            dataset = weights[name]
            if tuple(dataset.shape) != tuple(values.shape):
                raise ValueError(f"{name}: the re-drawn shape {values.shape} is not the "
                                 f"stored {dataset.shape}")
            dataset[...] = np.asarray(values, dtype=dataset.dtype)


def _temporary_beside(target: str) -> str:
    directory = os.path.dirname(os.path.abspath(target)) or "."
    handle, path = tempfile.mkstemp(prefix=".gradlint-fix-", suffix=os.path.splitext(target)[1],
                                    dir=directory)
    os.close(handle)
    return path


def write_archive(source: str, target: str, model_config: dict,
                  redraws: dict[str, Any]) -> None:
    """A `.keras` archive: `source`'s members in order, ``config.json`` replaced by
    `model_config`, the datasets of `redraws` re-written in ``model.weights.h5``."""
    temporary = _temporary_beside(target)
    shutil.copymode(source, temporary)
    spill = None
    try:
        with zipfile.ZipFile(source) as archive:
            if redraws:
                spill = _temporary_beside(target)
                with archive.open(WEIGHTS_MEMBER) as member, open(spill, "wb") as handle:
                    shutil.copyfileobj(member, handle, 1 << 20)
                _write_datasets(spill, redraws)
            with zipfile.ZipFile(temporary, "w") as out:
                for info in archive.infolist():
                    copy = zipfile.ZipInfo(info.filename, date_time=info.date_time)
                    copy.compress_type = info.compress_type
                    copy.external_attr = info.external_attr
                    if info.filename == "config.json":
                        out.writestr(copy, json.dumps(model_config))
                    elif info.filename == WEIGHTS_MEMBER and spill is not None:
                        with open(spill, "rb") as handle, out.open(copy, "w") as target_member:
                            shutil.copyfileobj(handle, target_member, 1 << 20)
                    else:
                        with archive.open(info) as member, out.open(copy, "w") as target_member:
                            shutil.copyfileobj(member, target_member, 1 << 20)
        os.replace(temporary, target)
        temporary = None
    finally:
        for path in (temporary, spill):
            if path is not None and os.path.exists(path):
                os.unlink(path)


def write_legacy(source: str, target: str, model_config: dict, training_config: dict | None,
                 redraws: dict[str, Any]) -> None:
    """A legacy HDF5 file: `source` copied, its configuration attributes replaced (as the
    type they were stored as: text or bytes), the datasets of `redraws` re-written."""
    import h5py

    temporary = _temporary_beside(target)
    try:
        shutil.copyfile(source, temporary)
        shutil.copymode(source, temporary)
        with h5py.File(temporary, "r+") as handle:
            for key, value in (("model_config", model_config),
                               ("training_config", training_config)):
                if value is None or key not in handle.attrs:
                    continue
                text = json.dumps(value)
                handle.attrs[key] = text.encode("utf-8") \
                    if isinstance(handle.attrs[key], bytes) else text
        _write_datasets(temporary, redraws)
        os.replace(temporary, target)
        temporary = None
    finally:
        if temporary is not None and os.path.exists(temporary):
            os.unlink(temporary)
