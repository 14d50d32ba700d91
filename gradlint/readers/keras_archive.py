"""Reader for `.keras` archives: a zip of ``config.json``, ``metadata.json`` and
``model.weights.h5``, as written by Keras 3 and by tf-keras 2.13 and later."""

from __future__ import annotations

import json
import zipfile

from gradlint.errors import ModelReadError
from gradlint.graph import ModelGraph
from gradlint.readers.keras_config import build_graph, parse_training

WEIGHTS_MEMBER = "model.weights.h5"


def _read_json(archive: zipfile.ZipFile, member: str) -> object:
    try:
        return json.loads(archive.read(member))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelReadError(f"{member} inside the archive is not valid JSON ({error})") from None


def read(path: str, *, read_weights: bool = True) -> ModelGraph:
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            if "config.json" not in names:
                raise ModelReadError("the archive has no config.json, so it is not a saved "
                                     "Keras model")
            config = _read_json(archive, "config.json")
            metadata = _read_json(archive, "metadata.json") if "metadata.json" in names else {}
            weights_info = archive.getinfo(WEIGHTS_MEMBER) if WEIGHTS_MEMBER in names else None
    except zipfile.BadZipFile as error:
        raise ModelReadError(f"not a readable zip archive ({error})") from None
    except (zipfile.LargeZipFile, EOFError, OSError) as error:
        raise ModelReadError(f"the archive could not be read ({error})") from None
    if not isinstance(config, dict):
        raise ModelReadError("config.json is not a Keras model configuration (expected a JSON "
                             "object with 'class_name' and 'config')")
    version = metadata.get("keras_version") if isinstance(metadata, dict) else None
    keras2 = isinstance(version, str) and version.startswith("2.")
    graph = build_graph(config, format="keras-v2-archive" if keras2 else "keras-v3-archive",
                        keras2=keras2)
    graph.keras_version = version
    compile_config = config.get("compile_config")
    if isinstance(compile_config, dict):
        graph.training = parse_training(compile_config.get("optimizer"),
                                        compile_config.get("loss"))
    if read_weights:
        if weights_info is None:
            graph.notes.append("the archive holds no model.weights.h5; estimates use the "
                               "initializers only")
        else:
            _attach_weights(path, weights_info, graph, config, keras2)
    return graph


def _attach_weights(path: str, info: zipfile.ZipInfo, graph: ModelGraph, config: dict,
                    keras2: bool) -> None:
    import io

    import h5py

    from gradlint.readers.weights import (ArchiveMember, attach_archive_weights,
                                          detach_archive_weights)

    try:
        raw = None
        if info.compress_type == zipfile.ZIP_STORED:
            handle = ArchiveMember(path, info)
            raw = (path, handle.start)
        else:
            with zipfile.ZipFile(path) as archive:
                handle = io.BytesIO(archive.read(info))
        with handle, h5py.File(handle, "r") as weights:
            if weights.userblock_size:
                raw = None
            if graph.graph_stored:
                attach_archive_weights(graph, weights, config, keras2, raw)
            else:
                detach_archive_weights(graph, weights, raw)
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, EOFError) as error:
        raise ModelReadError(f"{WEIGHTS_MEMBER} inside the archive could not be read "
                             f"({error})") from None
