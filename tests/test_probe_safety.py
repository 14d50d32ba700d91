"""The probe never runs code from a model file, or from the linted directory, unless told to.

Each attack is a real file whose payload writes a marker file when it runs; every test
checks that the marker is absent, and a control run with `--unsafe-load` shows that the
payload is live (so the check can fail):

- a polyglot: a zip at offset 0 with a harmless `config.json`, and at once an HDF5 file
  (after a 512-byte user block) whose model has a `LocallyConnected1D` (Keras 3 cannot load
  it, so the probe falls back to tf-keras) and a `Lambda` with stored bytecode;
- the same HDF5 model as a plain `.h5`, loaded by the probe's loader without gradlint's own
  Lambda check, so only tf-keras's safe-mode scope stands in the way;
- a planted `tf_keras.py` in the working directory, imported in place of the real tf-keras
  if the working directory were on `sys.path` during the fallback.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import h5py
import pytest

from conftest import keras2, run_gradlint

PREFIX = "test_probe_safety"
HARMLESS_CONFIG = {"class_name": "Sequential",
                   "config": {"name": "harmless", "layers": [
                       {"class_name": "InputLayer", "config": {"name": "in",
                                                               "batch_shape": [None, 4]}},
                       {"class_name": "Dense", "config": {"name": "dense", "units": 2}}]}}


def _lambda_model(marker: Path):
    """A tf-keras model that Keras 3 cannot load, whose Lambda writes `marker` when called."""
    keras = keras2()
    path = str(marker)
    inputs = keras.Input((8, 4))
    x = keras.layers.LocallyConnected1D(2, 3, name="local")(inputs)
    x = keras.layers.Lambda(lambda t: t if open(path, "w").write("ran") else t,
                            name="payload")(x)
    outputs = keras.layers.Dense(1, name="out")(keras.layers.Flatten()(x))
    return keras.Model(inputs, outputs, name="payload_model")


@pytest.fixture(scope="module")
def payload(tmp_path_factory):
    """(legacy .h5 with the payload, the marker path), the marker removed after building."""
    directory = tmp_path_factory.mktemp(PREFIX)
    marker = directory / "payload-ran"
    model = _lambda_model(marker)
    path = directory / "payload.h5"
    model.save(str(path))
    marker.unlink(missing_ok=True)
    return path, marker


def _polyglot(source: Path, target: Path) -> Path:
    """`source`'s HDF5 content behind a 512-byte user block that holds a complete zip."""
    with h5py.File(source, "r") as original, h5py.File(target, "w", userblock_size=512) as copy:
        for key, value in original.attrs.items():
            copy.attrs[key] = value
        for key in original:
            original.copy(original[key], copy, name=key)
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
        zipped.writestr("config.json", json.dumps(HARMLESS_CONFIG, separators=(",", ":")))
    head = archive.getvalue()
    assert len(head) <= 512
    with open(target, "r+b") as handle:
        handle.write(head)
    with open(target, "rb") as handle:
        data = handle.read()
    assert data.startswith(b"PK\x03\x04") and data[512:520] == b"\x89HDF\r\n\x1a\n"
    return target


@pytest.mark.parametrize("name", ["polyglot.h5", "polyglot.keras"])
def test_a_zip_hdf5_polyglot_is_refused_and_runs_nothing(payload, tmp_path, name):
    source, marker = payload
    path = _polyglot(source, tmp_path / name)
    completed = run_gradlint("--probe", "--isolated", "--output-format", "json", path,
                             timeout=600)
    assert completed.returncode == 2, completed.stderr
    assert "Traceback" not in completed.stderr
    (entry,) = json.loads(completed.stdout)["files"]
    assert entry["error"]["code"] == "GL001"
    assert "both a zip archive and an HDF5 file" in entry["error"]["message"]
    assert not marker.exists()


def test_a_file_named_for_the_other_format_is_refused(payload, tmp_path):
    source, marker = payload
    renamed = tmp_path / "payload.keras"
    renamed.write_bytes(source.read_bytes())
    completed = run_gradlint("--probe", "--isolated", "--unsafe-load", renamed, timeout=600)
    assert completed.returncode == 2, completed.stderr
    assert "the name ends in .keras but the file is an HDF5 file" in completed.stdout
    assert not marker.exists()


def test_tf_keras_fallback_loads_only_in_safe_mode(payload):
    """The loader itself, without gradlint's Lambda check on its graph (graph=None): Keras 3
    fails on LocallyConnected1D, tf-keras's HDF5 loader must refuse the stored lambda."""
    from gradlint.probe.environment import ProbeError
    from gradlint.probe.loading import load

    path, marker = payload
    with pytest.raises(ProbeError, match="safe mode.*--unsafe-load"):
        load(str(path), None)
    assert not marker.exists()
    model, loader = load(str(path), None, unsafe_load=True)  # the control: the payload is live
    assert loader == "tf_keras"
    assert marker.exists()
    marker.unlink()


def test_the_lambda_check_refuses_the_file_before_loading(payload):
    path, marker = payload
    completed = run_gradlint("--probe", "--isolated", path, timeout=600)
    assert completed.returncode == 2
    assert "Lambda layer (payload)" in completed.stdout and "--unsafe-load" in completed.stdout
    assert not marker.exists()


@pytest.fixture(scope="module")
def local_layer_model(tmp_path_factory):
    """A tf-keras .h5 that Keras 3 cannot load (LocallyConnected1D), so the probe falls
    back to tf-keras, and no Lambda."""
    keras = keras2()
    directory = tmp_path_factory.mktemp(f"{PREFIX}-local")
    inputs = keras.Input((8, 4))
    x = keras.layers.LocallyConnected1D(2, 3, name="local")(inputs)
    outputs = keras.layers.Dense(1, name="out")(keras.layers.Flatten()(x))
    path = directory / "local.h5"
    keras.Model(inputs, outputs).save(str(path))
    return path


def _plant(directory: Path, marker: Path) -> None:
    (directory / "tf_keras.py").write_text(f"open({str(marker)!r}, 'w').write('planted')\n")
    (directory / "mylayers.py").write_text("LOADED = True\n")


@pytest.mark.parametrize("via", ["console-script", "python-m"])
def test_a_planted_module_in_the_working_directory_is_never_imported(local_layer_model,
                                                                      tmp_path, via):
    marker = tmp_path / "planted-ran"
    _plant(tmp_path, marker)
    # Naming a module lets the probe fall back to tf-keras for a layer gradlint does not
    # know (LocallyConnected1D), the path the attack took.
    arguments = ("--probe", "--isolated", "--output-format", "json", "--custom-objects",
                 "./mylayers.py", local_layer_model)
    if via == "python-m":
        completed = run_gradlint(*arguments, cwd=tmp_path, timeout=600)
    else:
        import subprocess
        import sys

        script = Path(sys.executable).with_name("gradlint")
        completed = subprocess.run([str(script), *map(str, arguments)], cwd=tmp_path,
                                   capture_output=True, text=True, timeout=600)
    assert "Traceback" not in completed.stderr
    (entry,) = json.loads(completed.stdout)["files"]
    assert entry["probe"]["ran"] is True, entry["probe"]
    assert entry["probe"]["loader"] == "tf_keras"
    assert not marker.exists()


def test_custom_objects_by_name_do_not_search_the_working_directory(local_layer_model,
                                                                    tmp_path):
    marker = tmp_path / "planted-ran"
    _plant(tmp_path, marker)
    completed = run_gradlint("--probe", "--isolated", "--custom-objects", "mylayers",
                             local_layer_model, cwd=tmp_path, timeout=600)
    assert completed.returncode == 2
    assert "--custom-objects mylayers: the module could not be imported" in completed.stdout
    assert "./layers.py" in completed.stdout  # says how to name a file instead
    assert not marker.exists()


def test_custom_objects_by_path_import_that_file_only(local_layer_model, tmp_path):
    marker = tmp_path / "planted-ran"
    _plant(tmp_path, marker)
    completed = run_gradlint("--probe", "--isolated", "--output-format", "json",
                             "--custom-objects", "./mylayers.py", local_layer_model,
                             cwd=tmp_path, timeout=600)
    (entry,) = json.loads(completed.stdout)["files"]
    assert entry["probe"]["ran"] is True, entry["probe"]
    assert not marker.exists()
