"""Reader for `.keras` archives: a zip of ``config.json``, ``metadata.json`` and
``model.weights.h5``, as written by Keras 3 and by tf-keras 2.13 and later.

Members are read with bounds: the JSON members up to `Limits.max_config_mb`, never more
than that however much a member claims or inflates to; the weights member in place when it
is stored (as Keras writes it), or inflated in chunks into a private temporary file when it
is deflated, stopping at what the zip declares and at `Limits.max_inflate_ratio`.
"""

from __future__ import annotations

import json
import zipfile

from gradlint.errors import ModelReadError
from gradlint.graph import ModelGraph
from gradlint.limits import DEFAULT_LIMITS, MB, Limits
from gradlint.readers.keras_config import build_graph, parse_training

WEIGHTS_MEMBER = "model.weights.h5"
INFLATE_CHUNK = 1 << 20


def _read_json(archive: zipfile.ZipFile, member: str, limits: Limits) -> object:
    info = archive.getinfo(member)
    if info.file_size > limits.config_bytes:
        raise ModelReadError(f"{member} inside the archive is {info.file_size / MB:.0f} MB, "
                             f"over the {limits.max_config_mb} MB limit (limits.max-config-mb)")
    with archive.open(info) as handle:
        data = handle.read(limits.config_bytes + 1)
    if len(data) > limits.config_bytes:
        raise ModelReadError(f"{member} inside the archive inflates past the "
                             f"{limits.max_config_mb} MB limit (limits.max-config-mb)")
    try:
        return json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelReadError(f"{member} inside the archive is not valid JSON ({error})") from None
    except RecursionError:
        raise ModelReadError(f"{member} inside the archive nests too deeply to be a model "
                             "configuration") from None


def read(path: str, *, read_weights: bool = True, limits: Limits = DEFAULT_LIMITS) -> ModelGraph:
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            if "config.json" not in names:
                raise ModelReadError("the archive has no config.json, so it is not a saved "
                                     "Keras model")
            config = _read_json(archive, "config.json", limits)
            metadata = _read_json(archive, "metadata.json", limits) \
                if "metadata.json" in names else {}
            weights_info = archive.getinfo(WEIGHTS_MEMBER) if WEIGHTS_MEMBER in names else None
    except zipfile.BadZipFile as error:
        raise ModelReadError(f"not a readable zip archive ({error})") from None
    except (zipfile.LargeZipFile, EOFError, OSError, NotImplementedError) as error:
        raise ModelReadError(f"the archive could not be read ({error})") from None
    if not isinstance(config, dict):
        raise ModelReadError("config.json is not a Keras model configuration (expected a JSON "
                             "object with 'class_name' and 'config')")
    version = metadata.get("keras_version") if isinstance(metadata, dict) else None
    graph = graph_from_config(config, version)
    keras2 = graph.format == "keras-v2-archive"
    if read_weights:
        if weights_info is None:
            graph.notes.append("the archive holds no model.weights.h5; estimates use the "
                               "initializers only")
        else:
            _attach_weights(path, weights_info, graph, config, keras2, limits)
    return graph


def graph_from_config(config: dict, keras_version: str | None) -> ModelGraph:
    """The graph of an archive's parsed config.json, without its weights; `keras_version`
    from its metadata.json says whether tf-keras (2.x) or Keras 3 wrote it."""
    version = keras_version if isinstance(keras_version, str) else None
    keras2 = version is not None and version.startswith("2.")
    graph = build_graph(config, format="keras-v2-archive" if keras2 else "keras-v3-archive",
                        keras2=keras2)
    graph.keras_version = version
    compile_config = config.get("compile_config")
    if isinstance(compile_config, dict):
        graph.training = parse_training(compile_config.get("optimizer"),
                                        compile_config.get("loss"))
    return graph


def _inflate(path: str, info: zipfile.ZipInfo, limits: Limits, target) -> int:
    """Inflate a deflated member into `target` chunk by chunk, within what the zip declares
    and the inflate limit; returns the size written."""
    allowed = min(info.file_size, limits.inflated_bytes_allowed(info.compress_size))
    if info.file_size > allowed:
        raise ModelReadError(f"{WEIGHTS_MEMBER} declares {info.file_size / MB:.0f} MB in "
                             f"{info.compress_size / MB:.2f} MB compressed (more than "
                             f"{limits.max_inflate_ratio}:1: a decompression bomb); refused "
                             "(limits.max-inflate-ratio)")
    written = 0
    with zipfile.ZipFile(path) as archive, archive.open(info) as member:
        while True:
            chunk = member.read(INFLATE_CHUNK)
            if not chunk:
                return written
            written += len(chunk)
            if written > allowed:
                raise ModelReadError(f"{WEIGHTS_MEMBER} inflates past the size the archive "
                                     "declares; refused")
            target.write(chunk)


def _attach_weights(path: str, info: zipfile.ZipInfo, graph: ModelGraph, config: dict,
                    keras2: bool, limits: Limits) -> None:
    import tempfile

    from gradlint.readers.hdf5 import ReadBudget, open_checked
    from gradlint.readers.weights import (ArchiveMember, attach_archive_weights,
                                          detach_archive_weights)

    spill = None
    try:
        if info.compress_type == zipfile.ZIP_STORED:
            handle = ArchiveMember(path, info)
            raw = (path, handle.start)
            data_size = info.file_size
        else:
            spill = tempfile.TemporaryFile(prefix="gradlint-")
            data_size = _inflate(path, info, limits, spill)
            spill.seek(0)
            handle, raw = spill, None
        with handle, open_checked(handle, limits, data_size) as weights:
            if weights.userblock_size:
                raw = None
            budget = ReadBudget(limits, data_size)
            if graph.graph_stored:
                attach_archive_weights(graph, weights, config, keras2, raw, budget)
            else:
                detach_archive_weights(graph, weights, raw, budget)
    except (OSError, KeyError, ValueError, RuntimeError, TypeError, zipfile.BadZipFile,
            EOFError, NotImplementedError) as error:
        raise ModelReadError(f"{WEIGHTS_MEMBER} inside the archive could not be read "
                             f"({error})") from None
    finally:
        if spill is not None:
            spill.close()
