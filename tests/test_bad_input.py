"""Bad input: every file that cannot be read gives GL001 with a message that says why, exit
status 2 and no traceback, while the other files on the command line are still linted.
Files that a directory search finds but that hold no model are skipped with a note."""

from __future__ import annotations

import json
import re
import shutil
import zipfile

import h5py
import numpy as np
import pytest

from click.testing import CliRunner

import gradlint
from gradlint.cli import main

from conftest import keras2, keras3, run_gradlint

PREFIX = "test_bad_input"


def build_good():
    """A small model with exactly one finding: a warning for its learning rate."""
    keras = keras3()
    model = keras.Sequential([keras.Input((8,)),
                              keras.layers.Dense(8, activation="relu", name="hidden"),
                              keras.layers.Dense(1, name="out")], name="good")
    model.compile(keras.optimizers.SGD(learning_rate=0.5), "mse")
    return model


@pytest.fixture(scope="module")
def good(save_model):
    return save_model(f"{PREFIX}-good", build_good)


@pytest.fixture(scope="module")
def good_h5(save_model):
    def build():
        keras = keras2()
        return keras.Sequential([keras.layers.Dense(4, input_shape=(3,), name="dense_a")])

    return save_model(f"{PREFIX}-good-h5", build, "h5")


def _zip(path, members):
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def _copy_members(source, path, replace):
    with zipfile.ZipFile(source) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    members.update(replace)
    return _zip(path, members)


def make_truncated(tmp, good, good_h5):
    data = good.read_bytes()
    path = tmp / "truncated.keras"
    path.write_bytes(data[: len(data) // 2])
    return path


def make_truncated_tail(tmp, good, good_h5):
    data = good.read_bytes()
    path = tmp / "truncated_tail.keras"
    path.write_bytes(data[:-40])
    return path


def make_corrupted(tmp, good, good_h5):
    data = bytearray(good.read_bytes())
    for index in range(64, len(data), 61):
        data[index] ^= 0xA5
    path = tmp / "corrupted.keras"
    path.write_bytes(bytes(data))
    return path


def make_corrupted_config(tmp, good, good_h5):
    """The archive's directory is intact but config.json's bytes do not match their CRC."""
    data = bytearray(good.read_bytes())
    with zipfile.ZipFile(good) as archive:
        info = archive.getinfo("config.json")
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    for index in range(start + 10, start + 60):
        data[index] = ord("x")
    path = tmp / "corrupted_config.keras"
    path.write_bytes(bytes(data))
    return path


def make_no_config(tmp, good, good_h5):
    with zipfile.ZipFile(good) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()
                   if info.filename != "config.json"}
    return _zip(tmp / "no_config.keras", members)


def make_invalid_json(tmp, good, good_h5):
    return _copy_members(good, tmp / "invalid_json.keras",
                         {"config.json": b'{"class_name": "Sequential", "config": {'})


def make_json_list(tmp, good, good_h5):
    return _copy_members(good, tmp / "json_list.keras", {"config.json": b"[1, 2, 3]"})


def make_json_object(tmp, good, good_h5):
    return _copy_members(good, tmp / "json_object.keras",
                         {"config.json": b'{"hello": "world"}'})


def make_model_class_without_model(tmp, good, good_h5):
    """Keras's own Functional class always stores its layers; a string in their place is
    not a model configuration (and not a subclassed model either)."""
    return _copy_members(good, tmp / "functional_string.keras",
                         {"config.json": b'{"class_name": "Functional", "config": "hello"}'})


def make_dangling_reference(tmp, good, good_h5):
    """A Functional configuration whose layer reads a tensor no layer produces."""
    tensor = {"class_name": "__keras_tensor__",
              "config": {"shape": [None, 4], "dtype": "float32",
                         "keras_history": ["nowhere", 0, 0]}}
    config = {"class_name": "Functional", "config": {
        "name": "dangling",
        "layers": [{"class_name": "Dense", "name": "d", "config": {"name": "d", "units": 2},
                    "inbound_nodes": [{"args": [tensor], "kwargs": {}}]}],
        "input_layers": [], "output_layers": [["d", 0, 0]]}}
    return _copy_members(good, tmp / "dangling.keras", {"config.json": json.dumps(config)})


def make_garbage_layers(tmp, good, good_h5):
    config = {"class_name": "Functional",
              "config": {"name": "garbage", "layers": [1, "two", None, {"class_name": 3}],
                         "input_layers": [["missing", 0, 0]], "output_layers": 7}}
    return _copy_members(good, tmp / "garbage.keras", {"config.json": json.dumps(config)})


def make_hdf5_data(tmp, good, good_h5):
    path = tmp / "measurements.h5"
    with h5py.File(path, "w") as handle:
        handle["values"] = np.arange(12.0).reshape(3, 4)
        handle.attrs["instrument"] = "thermometer"
    return path


def make_truncated_h5(tmp, good, good_h5):
    data = good_h5.read_bytes()
    path = tmp / "truncated.h5"
    path.write_bytes(data[: len(data) // 3])
    return path


def make_empty(tmp, good, good_h5):
    path = tmp / "empty.keras"
    path.write_bytes(b"")
    return path


def make_text(tmp, good, good_h5):
    path = tmp / "notes.keras"
    path.write_text("this is not a model\n")
    return path


def make_missing(tmp, good, good_h5):
    return tmp / "does_not_exist.keras"


def make_saved_model(tmp, good, good_h5):
    path = tmp / "exported"
    (path / "variables").mkdir(parents=True)
    (path / "saved_model.pb").write_bytes(b"\x08\x01\x12\x00")
    return path


# (maker, pattern the GL001 message must match)
CASES = {
    "truncated archive": (make_truncated, r"zip|archive"),
    "archive cut before its directory": (make_truncated_tail, r"zip|archive"),
    "corrupted bytes": (make_corrupted, r"zip|archive|corrupt"),
    "corrupted config.json": (make_corrupted_config, r"CRC|corrupt|config\.json"),
    "zip without config.json": (make_no_config, r"config\.json"),
    "invalid JSON": (make_invalid_json, r"config\.json.*JSON|JSON"),
    "JSON list, not a model": (make_json_list, r"not a Keras model"),
    "JSON object, not a model": (make_json_object, r"not a Keras model"),
    "Functional without layers": (make_model_class_without_model,
                                  r"not a Keras model|layers|configuration"),
    "dangling tensor reference": (make_dangling_reference, r"nowhere|tensor|layer"),
    "garbage layer entries": (make_garbage_layers, r"layer|model|configuration"),
    "HDF5 data file": (make_hdf5_data, r"no model configuration|not a Keras"),
    "truncated HDF5": (make_truncated_h5, r"HDF5|read"),
    "empty file": (make_empty, r"empty"),
    "text file": (make_text, r"not a Keras model|not supported|unsupported"),
    "nonexistent path": (make_missing, r"no such file"),
    "SavedModel directory": (make_saved_model, r"SavedModel.*(not supported|unsupported)"),
}


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory, good, good_h5):
    folder = tmp_path_factory.mktemp("bad")
    return {name: maker(folder, good, good_h5) for name, (maker, _) in CASES.items()}


def _check_output(stdout, bad, good, case):
    lines = [line for line in stdout.splitlines() if line.startswith(f"{bad}: GL001")]
    assert len(lines) == 1, stdout
    line = lines[0]
    assert line.startswith(f"{bad}: GL001 [error] ")
    message = line[len(f"{bad}: GL001 [error] "):]
    assert re.search(CASES[case][1], message), message
    assert len(message) > 10
    # The good file on the same command line is still linted.
    assert f"{good}: GL403 [warning]" in stdout


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_on_the_command_line(case, bad_inputs, good):
    bad = bad_inputs[case]
    result = CliRunner().invoke(main, ["--isolated", "-j", "1", str(bad), str(good)])
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        repr(result.exception)
    assert result.exit_code == 2, result.output
    assert result.stderr == ""
    _check_output(result.stdout, bad, good, case)
    assert "in 1 model" in result.stdout and "1 file could not be read" in result.stdout


def test_all_bad_inputs_in_one_process(bad_inputs, good):
    """The real process: exit status 2, nothing on stderr, every file named in the output
    and the good file linted (what each message says is checked case by case above)."""
    result = run_gradlint(*bad_inputs.values(), good, "--isolated", "-j", "2")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    assert result.stderr.strip() == ""
    for bad in bad_inputs.values():
        assert str(bad) in result.stdout
    assert f"{good}: GL403 [warning]" in result.stdout
    assert re.search(r"; \d+ files could not be read\.$", result.stdout.splitlines()[-1])


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_in_json(case, bad_inputs, good):
    bad = bad_inputs[case]
    report = gradlint.lint([str(bad), str(good)]).to_dict()
    by_path = {result["path"]: result for result in report["files"]}
    assert set(by_path) == {str(bad), str(good)}
    broken = by_path[str(bad)]
    assert broken["error"]["code"] == "GL001"
    assert re.search(CASES[case][1], broken["error"]["message"])
    assert [f["code"] for f in broken["findings"]] in ([], ["GL001"])
    assert by_path[str(good)]["error"] is None
    assert [f["code"] for f in by_path[str(good)]["findings"]] == ["GL403"]
    assert report["summary"]["files_unreadable"] == 1
    assert report["summary"]["files_linted"] == 1


def _cli(*args):
    """The command line in this process (one job: no worker processes forked from it)."""
    result = CliRunner().invoke(main, ["--isolated", "-j", "1", *map(str, args)])
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        repr(result.exception)
    return result


def test_exit_zero_does_not_hide_an_unreadable_file(bad_inputs, good):
    result = _cli(bad_inputs["empty file"], good, "--exit-zero", "--fail-on", "never")
    assert result.exit_code == 2


def test_only_good_files_exit_by_findings(good):
    assert _cli(good).exit_code == 0
    assert _cli(good, "--fail-on", "warning").exit_code == 1


# --- files a directory search finds that are not models -----------------------------------

@pytest.fixture(scope="module")
def keras3_weights_file(tmp_path_factory):
    model = build_good()
    path = tmp_path_factory.mktemp("weights") / "good.weights.h5"
    model.save_weights(str(path))
    return path


@pytest.fixture(scope="module")
def legacy_weights_file(tmp_path_factory):
    """Weights only, in the legacy layout tf-keras writes, under a plain `.h5` name."""
    keras = keras2()
    model = keras.Sequential([keras.layers.Dense(4, input_shape=(3,))])
    path = tmp_path_factory.mktemp("weights") / "checkpoint.h5"
    model.save_weights(str(path))
    return path


def _skip_folder(tmp_path, good, *extra):
    folder = tmp_path / "models"
    folder.mkdir()
    shutil.copyfile(good, folder / "model.keras")
    for source, name in extra:
        shutil.copyfile(source, folder / name)
    return folder


def test_directory_skips_weights_and_data_files(tmp_path, good, keras3_weights_file,
                                                legacy_weights_file, bad_inputs):
    folder = _skip_folder(tmp_path, good,
                          (keras3_weights_file, "good.weights.h5"),
                          (legacy_weights_file, "checkpoint.h5"),
                          (bad_inputs["HDF5 data file"], "measurements.hdf5"))
    result = _cli(folder)
    assert result.exit_code == 0, result.output
    assert "GL001" not in result.stdout
    notes = [line for line in result.stdout.splitlines() if "note:" in line]
    for name in ("good.weights.h5", "checkpoint.h5", "measurements.hdf5"):
        assert any(name in line and "skipped" in line for line in notes), (name, notes)
    assert f"{folder / 'model.keras'}: GL403 [warning]" in result.stdout

    report = gradlint.lint(str(folder)).to_dict()
    assert [result["path"] for result in report["files"]] == [str(folder / "model.keras")]
    assert report["summary"]["files_unreadable"] == 0


def test_directory_with_only_weights_files_has_no_models(tmp_path, keras3_weights_file):
    """As ruff does: a repository without models yet warns and passes, unless asked."""
    folder = tmp_path / "only_weights"
    folder.mkdir()
    shutil.copyfile(keras3_weights_file, folder / "good.weights.h5")
    result = _cli(folder)
    assert result.exit_code == 0, result.output
    assert f"gradlint: warning: {folder}: no model files" in result.stderr
    strict = _cli(folder, "--fail-on-no-models")
    assert strict.exit_code == 2
    assert f"{folder}: GL001 [error] no model files" in strict.stdout


def test_directory_with_only_a_data_file_has_no_models(tmp_path, bad_inputs):
    """A directory whose only HDF5 file holds data is a directory without models: the data
    file is skipped with a note, and the directory gets a warning, not silence."""
    folder = tmp_path / "only_data"
    folder.mkdir()
    shutil.copyfile(bad_inputs["HDF5 data file"], folder / "measurements.h5")
    result = _cli(folder)
    assert result.exit_code == 0, result.stdout
    assert f"gradlint: warning: {folder}: no Keras model in this directory" in result.stderr
    assert "measurements.h5: not a Keras model file, skipped" in result.stdout
    assert _cli(folder, "--fail-on-no-models").exit_code == 2


def test_empty_directory_warns_and_passes(tmp_path, good):
    folder = tmp_path / "no_models"
    folder.mkdir()
    result = run_gradlint("--isolated", "--output-format", "json", folder, good)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["warnings"] == [f"{folder}: no model files (*.keras, *.h5, *.hdf5) found "
                                  "in this directory"]
    assert f"gradlint: warning: {folder}: no model files" in result.stderr
    assert [entry["path"] for entry in report["files"]] == [str(good)]


def test_broken_model_found_in_a_directory_is_an_error(tmp_path, good, bad_inputs):
    """Skipping is for files that are not models; a broken model archive is still GL001."""
    folder = _skip_folder(tmp_path, good, (bad_inputs["truncated archive"], "broken.keras"))
    result = _cli(folder)
    assert result.exit_code == 2
    assert f"{folder / 'broken.keras'}: GL001 [error]" in result.stdout
    assert f"{folder / 'model.keras'}: GL403 [warning]" in result.stdout


def test_weights_file_named_explicitly_is_an_error(keras3_weights_file, good):
    result = _cli(keras3_weights_file, good)
    assert result.exit_code == 2
    line = next(line for line in result.stdout.splitlines()
                if line.startswith(f"{keras3_weights_file}: GL001"))
    assert re.search(r"weights|no model configuration", line)
