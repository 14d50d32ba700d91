"""The weight layouts of `.keras` archives written by tf-keras (readers/weights.py): Keras
2.12-2.14's `_layer_checkpoint_dependencies/` (real files written by Keras 2.13.1, vendored in
tests/data/tf_keras_2_13 with what Keras reported about them), tf-keras 2.15+'s `layers/`,
either written on Windows with backslash paths, and layouts that match no layer, which are
said in a note instead of showing `params: 0` and the initializer estimate twice."""

from __future__ import annotations

import io
import json
import warnings
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from gradlint.cli import main
from gradlint.readers import read_model

from conftest import keras2

DATA = Path(__file__).resolve().parent / "data" / "tf_keras_2_13"
KERAS_213 = {name: DATA / f"tf_keras_2_13_{name}.keras" for name in ("functional", "sequential")}
PREFIX = "test_reader_tf_keras_layouts"
BUILT: dict[str, object] = {}


def expected(path: Path) -> dict:
    """What Keras 2.13.1 reported about the model it saved at `path`."""
    return json.loads(Path(f"{path}.expected.json").read_text())


def _rewrite_weights(source, target, rewrite):
    """Copy an archive with its model.weights.h5 rebuilt by `rewrite(old, new)`."""
    with zipfile.ZipFile(source) as archive:
        members = [(info.filename, archive.read(info)) for info in archive.infolist()]
    out = []
    for name, data in members:
        if name == "model.weights.h5":
            buffer = io.BytesIO()
            with h5py.File(io.BytesIO(data), "r") as old, h5py.File(buffer, "w") as new:
                rewrite(old, new)
            data = buffer.getvalue()
        out.append((name, data))
    with zipfile.ZipFile(target, "w") as archive:
        for name, data in out:
            archive.writestr(name, data)
    return target


def _owners(old) -> list[str]:
    """The path of every group that tf-keras's weights store made (each holds a `vars`)."""
    owners = []
    old.visititems(lambda key, item: owners.append(key[:-len("vars")].rstrip("/"))
                   if isinstance(item, h5py.Group) and key.split("/")[-1] == "vars" else None)
    return owners


def windows_archive(source, target):
    """The archive as tf-keras writes it on Windows: `H5IOStore.make(path)` creates the group
    named by the whole path, joined by `tf.io.gfile.join` (there `os.path.join`, with
    backslashes), at the root, and its `vars` inside."""
    def rewrite(old, new):
        for owner in _owners(old):
            parent = new.create_group(owner.replace("/", "\\")) if owner else new
            old.copy(old[f"{owner}/vars" if owner else "vars"], parent, "vars")

    return _rewrite_weights(source, target, rewrite)


def renamed_archive(source, target, rename):
    """The archive with each group path passed through `rename` (None drops the group)."""
    def rewrite(old, new):
        for owner in _owners(old):
            renamed = rename(owner)
            if renamed is None:
                continue
            parent = new.require_group(renamed) if renamed else new
            old.copy(old[f"{owner}/vars" if owner else "vars"], parent, "vars")

    return _rewrite_weights(source, target, rewrite)


def _check_against_expected(graph, reported: dict) -> None:
    """Every leaf layer's weights, as read, against Keras's own report."""
    by_path = {layer.path: layer for layer in graph.layers()}
    assert graph.params == reported["params"]
    for path, layer in reported["layers"].items():
        assert by_path[path].class_name == layer["class"], path
        want = sorted((tuple(w["shape"]), w["mean"], w["std"]) for w in layer["weights"])
        got = sorted((s.shape, s.mean, s.std) for s in by_path[path].weights)
        assert len(got) == len(want), path
        for (shape, mean, std), (got_shape, got_mean, got_std) in zip(want, got):
            assert got_shape == shape, path
            assert got_mean == pytest.approx(mean, rel=1e-5, abs=1e-7), path
            assert got_std == pytest.approx(std, rel=1e-5, abs=1e-7), path


def _no_unmapped_note(graph) -> None:
    assert not any("not mapped" in note for note in graph.notes), graph.notes


# --- Keras 2.13: `_layer_checkpoint_dependencies/` with gaps in the numbering ----------------

@pytest.mark.parametrize("name", list(KERAS_213))
def test_keras_2_13_layout_is_mapped(name):
    path = KERAS_213[name]
    with zipfile.ZipFile(path) as archive:
        weights = h5py.File(io.BytesIO(archive.read("model.weights.h5")), "r")
        assert "_layer_checkpoint_dependencies" in weights and "layers" not in weights
        keys = list(weights["_layer_checkpoint_dependencies"].keys())
        assert "dense_2" in keys and "dense_1" not in keys  # the gaps of 2.12-2.13
    graph = read_model(str(path))
    reported = expected(path)
    assert graph.keras_version == reported["keras_version"] == "2.13.1"
    assert graph.model_class == reported["class"]
    _check_against_expected(graph, reported)
    _no_unmapped_note(graph)


def test_keras_2_13_weights_reach_the_estimate():
    """The stored-weights estimate is its own, not the initializer estimate again."""
    result = CliRunner().invoke(main, ["--isolated", "-j", "1", "--output-format", "json",
                                       str(KERAS_213["sequential"])])
    entry = json.loads(result.stdout)["files"][0]
    assert entry["error"] is None
    assert entry["model"]["params"] == expected(KERAS_213["sequential"])["params"]
    dense = [layer for layer in entry["layers"] if layer["kind"] == "dense"]
    assert dense and all(layer["estimate"]["stored_weights"] is not None for layer in dense)
    assert any(layer["estimate"]["stored_weights"]["forward_scale"]
               != layer["estimate"]["forward_scale"] for layer in dense)


def test_keras_2_14_numbering_is_mapped(tmp_path):
    """Keras 2.14 skipped the duplicates of that dict: `dense`, `dense_1`, ... under the same
    group. Made by renumbering the 2.13 file's keys as 2.14 numbers them."""
    source = KERAS_213["sequential"]
    renumber = {"dense_2": "dense_1", "dense_4": "dense_2", "dense_6": "dense_3"}

    def rename(owner):
        parts = owner.split("/")
        return "/".join(renumber.get(part, part) for part in parts)

    target = renamed_archive(source, tmp_path / "keras214.keras", rename)
    graph = read_model(str(target))
    _check_against_expected(graph, expected(source))
    _no_unmapped_note(graph)


# --- Windows: backslash paths at the root ----------------------------------------------------

def build_tf_keras():
    keras = keras2()
    layers = keras.layers
    inputs = keras.Input((10, 3), name="seq")
    x = layers.Bidirectional(layers.LSTM(4, return_sequences=True), name="bidi")(inputs)
    x = layers.Conv1D(5, 3, activation="relu", name="conv")(x)
    x = layers.GlobalAveragePooling1D(name="pool")(x)
    encoder = keras.Sequential([keras.Input((5,)), layers.Dense(6, name="enc_dense"),
                                layers.BatchNormalization(name="enc_bn")], name="encoder")
    x = encoder(x)
    model = keras.Model(inputs, layers.Dense(2, activation="softmax", name="out")(x),
                        name="tfk_layouts")
    model.compile(keras.optimizers.Adam(), "categorical_crossentropy")
    BUILT["tf_keras"] = model
    return model


@pytest.fixture(scope="module")
def tf_keras_archive(save_model):
    return save_model(f"{PREFIX}-tfk", build_tf_keras, "keras2")


def _keras_report(model) -> dict:
    """The same report as the vendored .expected.json files, from a live Keras model."""
    def leaves(model, prefix=""):
        for layer in model.layers:
            if type(layer).__name__ in ("Functional", "Sequential"):
                yield from leaves(layer, f"{prefix}{layer.name}/")
            elif type(layer).__name__ != "InputLayer":
                yield prefix + layer.name, layer

    return {"params": int(model.count_params()),
            "layers": {path: {"class": type(layer).__name__,
                              "weights": [{"shape": list(w.shape),
                                           "mean": float(np.mean(w.numpy(), dtype=np.float64)),
                                           "std": float(np.std(w.numpy(), dtype=np.float64))}
                                          for w in layer.weights]}
                       for path, layer in leaves(model)}}


def test_tf_keras_layout_as_written_here(tf_keras_archive):
    graph = read_model(str(tf_keras_archive))
    _check_against_expected(graph, _keras_report(BUILT["tf_keras"]))
    _no_unmapped_note(graph)


def test_windows_backslash_paths_are_mapped(tf_keras_archive, tmp_path):
    target = windows_archive(tf_keras_archive, tmp_path / "windows.keras")
    with zipfile.ZipFile(target) as archive:
        names = list(h5py.File(io.BytesIO(archive.read("model.weights.h5")), "r").keys())
    assert "layers\\sequential\\layers\\dense" in names and "layers" not in names
    graph = read_model(str(target))
    _check_against_expected(graph, _keras_report(BUILT["tf_keras"]))
    _no_unmapped_note(graph)


def test_windows_metrics_state_is_no_unmapped_layer(save_model, tmp_path):
    # A trained model saves its metrics' variables beside the layers' ("metrics\\mean" on
    # Windows): they belong to no layer, and the note said "those layers keep their
    # initializers" of a file whose every layer was read.
    def build():
        keras = keras2()
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="dense")])
        model.compile("sgd", "mse", metrics=["mae"])
        model.fit(np.zeros((8, 4)), np.zeros((8, 3)), epochs=1, verbose=0)
        return model

    source = save_model(f"{PREFIX}-metrics", build, "keras2")
    target = windows_archive(source, tmp_path / "windows-metrics.keras")
    with zipfile.ZipFile(target) as archive:
        names = list(h5py.File(io.BytesIO(archive.read("model.weights.h5")), "r").keys())
    assert any(name.startswith("metrics\\") for name in names), names
    for path in (source, target):
        graph = read_model(str(path))
        assert graph.weights_read and graph.params == 15
        _no_unmapped_note(graph)


def test_windows_keras_2_13_layout_is_mapped(tmp_path):
    source = KERAS_213["functional"]
    target = windows_archive(source, tmp_path / "windows-213.keras")
    graph = read_model(str(target))
    _check_against_expected(graph, expected(source))
    _no_unmapped_note(graph)


def test_windows_paths_in_a_subclassed_model_name_their_layers(tmp_path):
    """A model whose graph is not stored: the detached layers are named by their paths
    with the separator put right."""
    keras = keras2()

    class Tower(keras.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.hidden = keras.layers.Dense(4, name="hidden")
            self.head = keras.layers.Dense(1, name="head")

        def call(self, inputs):
            return self.head(self.hidden(inputs))

    model = Tower(name="tower")
    model(np.zeros((1, 3), dtype="float32"))
    source = tmp_path / "tower.keras"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.save(str(source))
    plain = read_model(str(source))
    windows = read_model(str(windows_archive(source, tmp_path / "tower-windows.keras")))
    assert not windows.graph_stored
    assert sorted(layer.path for layer in windows.detached_layers) == \
        sorted(layer.path for layer in plain.detached_layers)
    assert all("\\" not in layer.path for layer in windows.detached_layers)
    assert windows.params == plain.params == model.count_params()


# --- layouts that match no layer ---------------------------------------------------------------

def test_an_unknown_layout_is_said_not_read_silently(tf_keras_archive, tmp_path):
    """A container gradlint does not know: no `params: 0`, no second initializer estimate,
    a note that says what happened."""
    target = renamed_archive(tf_keras_archive, tmp_path / "unknown.keras",
                             lambda owner: owner.replace("layers", "_layer_call_sublayers"))
    graph = read_model(str(target))
    assert graph.params is None and not graph.weights_read
    notes = [note for note in graph.notes if note.startswith("stored weights not mapped")]
    assert len(notes) == 1, graph.notes
    assert "none of the" in notes[0] and "no 'layers/' group" in notes[0]
    result = CliRunner().invoke(main, ["--isolated", "-j", "1", "--output-format", "json",
                                       str(target)])
    entry = json.loads(result.stdout)["files"][0]
    assert entry["model"]["params"] is None
    assert all(layer["estimate"]["stored_weights"] is None for layer in entry["layers"])
    assert any("stored weights not mapped" in note for note in entry["notes"])


def test_a_partly_mapped_layout_says_what_is_missing(tf_keras_archive, tmp_path):
    """One layer's group under a name no layer has: the others are read, and the note names
    the tensors left out."""
    target = renamed_archive(tf_keras_archive, tmp_path / "partly.keras",
                             lambda owner: owner.replace("layers/conv1d", "layers/mystery"))
    graph = read_model(str(target))
    model = BUILT["tf_keras"]
    conv = model.get_layer("conv").count_params()
    assert graph.weights_read and graph.params == model.count_params() - conv
    notes = [note for note in graph.notes if note.startswith("stored weights not mapped")]
    assert len(notes) == 1 and "2 of" in notes[0] and "layers/mystery/vars/0" in notes[0], \
        graph.notes
