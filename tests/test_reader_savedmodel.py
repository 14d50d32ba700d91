"""The SavedModel reader: tf.keras 2.x `model.save(dir, save_format="tf")` directories read
through their `keras_metadata.pb` (a protocol buffer decoded without TensorFlow), compared
with what tf-keras reports for the same model; SavedModels without Keras metadata refused;
discovery of SavedModel directories; hostile metadata files."""

from __future__ import annotations

import json
import os
import random
import warnings

import numpy as np
import pytest
from click.testing import CliRunner

from gradlint.cli import main
from gradlint.errors import ModelReadError
from gradlint.limits import Limits
from gradlint.readers import read_model
from gradlint.readers.savedmodel import METADATA, saved_objects

from conftest import keras2
from test_static_path_imports import CLI_SCRIPT, _run

BUILT: dict[str, object] = {}


# --- models -------------------------------------------------------------------------------

def build_functional():
    """Two inputs, a shared layer called twice, a nested Sequential with batch
    normalization and dropout, a concatenation, a compiled optimizer."""
    keras = keras2()
    layers = keras.layers
    left = keras.Input((6,), name="left")
    right = keras.Input((6,), name="right")
    shared = layers.Dense(10, activation="relu", name="shared")
    encoder = keras.Sequential([keras.Input((10,)),
                                layers.Dense(8, activation="tanh", name="enc_dense"),
                                layers.BatchNormalization(name="enc_bn"),
                                layers.Dropout(0.2, name="enc_drop")], name="encoder")
    merged = layers.Concatenate(name="merge")([encoder(shared(left)), shared(right)])
    hidden = layers.Dense(6, activation="sigmoid", name="hidden")(merged)
    model = keras.Model([left, right], layers.Dense(1, name="out")(hidden), name="sm_functional")
    model.compile(keras.optimizers.Adam(learning_rate=0.02, clipnorm=1.0), "mse")
    return model


def build_sequential():
    keras = keras2()
    layers = keras.layers
    return keras.Sequential([keras.Input((12, 12, 3)),
                             layers.Conv2D(4, 3, activation="relu", name="conv"),
                             layers.MaxPooling2D(2, name="pool"),
                             layers.Flatten(name="flat"),
                             layers.Dense(5, activation="tanh", name="hidden"),
                             layers.Dense(2, activation="softmax", name="probs")],
                            name="sm_sequential")


def build_recurrent():
    keras = keras2()
    layers = keras.layers
    return keras.Sequential([keras.Input((20, 3)),
                             layers.SimpleRNN(6, return_sequences=True, name="rnn"),
                             layers.Bidirectional(layers.GRU(4), name="bidi"),
                             layers.Dense(1, name="out")], name="sm_recurrent")


BUILDERS = {"functional": build_functional, "sequential": build_sequential,
            "recurrent": build_recurrent}


@pytest.fixture(scope="session")
def saved_models(tmp_path_factory):
    """Each model saved by tf-keras as a SavedModel directory and as a legacy HDF5 file."""
    folder = tmp_path_factory.mktemp("savedmodels")
    paths = {}
    for name, build in BUILDERS.items():
        model = build()
        BUILT[name] = model
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.save(str(folder / name), save_format="tf")
            model.save(str(folder / f"{name}.h5"))
        paths[name] = folder / name
    return paths


def _leaves(model, prefix=""):
    """Every leaf layer of a Keras model by gradlint's path, without the input layers."""
    for layer in model.layers:
        if type(layer).__name__ == "InputLayer":
            continue
        if type(layer).__name__ in ("Functional", "Sequential", "Model"):
            yield from _leaves(layer, f"{prefix}{layer.name}/")
        else:
            yield prefix + layer.name, layer


# --- reading what Keras saved ---------------------------------------------------------------

@pytest.mark.parametrize("name", list(BUILDERS))
def test_graph_matches_keras(saved_models, name):
    model = BUILT[name]
    keras = keras2()
    graph = read_model(str(saved_models[name]))
    assert graph.format == "keras-savedmodel"
    assert graph.model_class == type(model).__name__
    assert graph.name == model.name
    assert graph.keras_version == keras.__version__
    leaves = dict(_leaves(model))
    layers = {layer.path: layer for layer in graph.layers() if not layer.family.is_input}
    assert sorted(layers) == sorted(leaves)
    for path, keras_layer in leaves.items():
        assert layers[path].class_name == type(keras_layer).__name__, path
    shapes = {node.path: node.output_shape for node in graph.nodes}
    for path, keras_layer in leaves.items():
        if "/" not in path:  # a nested model's layers have their own (unbatched) shapes
            expected = keras_layer.output_shape
            if isinstance(expected, list):
                expected = expected[0]
            assert shapes[path] == tuple(expected), path
    # The weights, from the TensorFlow checkpoint in variables/.
    assert graph.params == model.count_params()
    assert not any("weights not" in note for note in graph.notes), graph.notes
    for path, keras_layer in leaves.items():
        want = sorted((tuple(w.shape), float(np.mean(w.numpy(), dtype=np.float64)),
                       float(np.std(w.numpy(), dtype=np.float64))) for w in keras_layer.weights)
        got = sorted((s.shape, s.mean, s.std) for s in layers[path].weights)
        assert len(got) == len(want), path
        for (shape, mean, std), (got_shape, got_mean, got_std) in zip(want, got):
            assert got_shape == shape, path
            assert got_mean == pytest.approx(mean, rel=1e-5, abs=1e-7), path
            assert got_std == pytest.approx(std, rel=1e-5, abs=1e-7), path


def test_same_graph_as_the_legacy_h5_of_the_same_model(saved_models):
    """The SavedModel's metadata and the HDF5 file's model_config describe one model."""
    for name, directory in saved_models.items():
        from_savedmodel = read_model(str(directory), read_weights=False)
        from_h5 = read_model(f"{directory}.h5", read_weights=False)
        describe = lambda graph: [(node.path, node.layer.class_name, node.layer.kind,
                                   str(node.layer.activation), node.inputs, node.output_shape)
                                  for node in graph.nodes]
        assert describe(from_savedmodel) == describe(from_h5), name
        assert from_savedmodel.outputs == from_h5.outputs


def test_shared_layer_and_nested_model(saved_models):
    graph = read_model(str(saved_models["functional"]))
    paths = [node.path for node in graph.nodes]
    assert paths.count("shared") == 1 and paths.count("shared@1") == 1
    assert {"encoder/enc_dense", "encoder/enc_bn", "encoder/enc_drop"} <= set(paths)
    by_path = {node.path: node for node in graph.nodes}
    assert sorted(graph.nodes[i].path for i in by_path["merge"].inputs) == \
        ["encoder/enc_drop", "shared@1"]
    assert [graph.nodes[i].path for i in graph.outputs] == ["out"]


def test_training_configuration(saved_models):
    model = BUILT["functional"]
    graph = read_model(str(saved_models["functional"]))
    assert graph.training.optimizer == "Adam"
    assert graph.training.learning_rate == pytest.approx(
        float(model.optimizer.learning_rate.numpy()))
    assert graph.training.clipnorm == pytest.approx(1.0)
    assert graph.training.loss == "mse"


def test_no_weights_reads_no_weights(saved_models):
    graph = read_model(str(saved_models["sequential"]), read_weights=False)
    assert graph.params is None and not graph.notes
    assert all(not layer.weights for layer in graph.layers())


def test_the_index_decoder_reads_what_tensorflow_reads(saved_models):
    """Every checkpoint key and shape, against TensorFlow's own checkpoint reader."""
    keras2()
    import tensorflow as tf

    from gradlint.readers.tf_checkpoint import _entry, read_index

    for directory in saved_models.values():
        prefix = directory / "variables" / "variables"
        reader = tf.train.load_checkpoint(str(prefix))
        ours = {key: list(_entry(value)[1])
                for key, value in read_index(prefix.with_suffix(".index").read_bytes()).items()
                if key}
        assert ours == {key: list(shape)
                        for key, shape in reader.get_variable_to_shape_map().items()}


@pytest.fixture(scope="module")
def nan_savedmodel(tmp_path_factory):
    keras = keras2()
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="broken"),
                              keras.layers.Dense(1, name="out")], name="nan_model")
    kernel = model.get_layer("broken").kernel.numpy()
    kernel[0, 0] = np.nan
    model.get_layer("broken").kernel.assign(kernel)
    path = tmp_path_factory.mktemp("nan") / "model"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.save(str(path), save_format="tf")
    return path


def test_non_finite_stored_weights_are_found(nan_savedmodel):
    result = CliRunner().invoke(main, ["--isolated", "-j", "1", str(nan_savedmodel)])
    assert f"{nan_savedmodel}::broken: GL205 [error]" in result.stdout, result.stdout


def _variables_broken(source, target, how):
    import shutil

    shutil.copytree(source, target)
    variables = target / "variables"
    index = variables / "variables.index"
    data = next(variables.glob("variables.data-*"))
    if how == "no variables":
        shutil.rmtree(variables)
    elif how == "truncated index":
        index.write_bytes(index.read_bytes()[:100])
    elif how == "index not a table":
        index.write_bytes(b"\x00" * 200)
    elif how == "truncated data":
        data.write_bytes(data.read_bytes()[:64])
    elif how == "data missing":
        data.unlink()
    elif how == "index symlinked outside":
        outside = target.parent / "outside.index"
        shutil.copyfile(index, outside)
        index.unlink()
        index.symlink_to(outside)
    elif how == "variables linked outside":
        outside = target.parent / "outside-variables"
        shutil.move(str(variables), outside)
        variables.symlink_to(outside)
    elif how == "data a FIFO":
        data.unlink()
        os.mkfifo(data)
    return target


@pytest.mark.parametrize("how", ["no variables", "truncated index", "index not a table",
                                 "truncated data", "data missing", "index symlinked outside",
                                 "variables linked outside", "data a FIFO"])
def test_unreadable_variables_leave_the_graph_and_say_why(saved_models, tmp_path, how):
    target = _variables_broken(saved_models["functional"], tmp_path / "model", how)
    graph = read_model(str(target))
    assert [n.path for n in graph.nodes] == [n.path for n in
                                             read_model(str(saved_models["functional"])).nodes]
    assert graph.params is None and all(not layer.weights for layer in graph.layers())
    notes = [note for note in graph.notes if note.startswith("weights not read (SavedModel "
                                                            "variables)")]
    assert len(notes) == 1, graph.notes


@pytest.mark.parametrize("member", ["saved_model.pb", "keras_metadata.pb"])
def test_a_file_of_the_directory_names_the_model(saved_models, member):
    directory = saved_models["sequential"]
    graph = read_model(str(directory / member))
    assert graph.format == "keras-savedmodel"
    assert [n.path for n in graph.nodes] == [n.path for n in read_model(str(directory)).nodes]


def test_the_rules_run_on_a_savedmodel(saved_models):
    result = CliRunner().invoke(main, ["--isolated", "-j", "1", "--output-format", "json",
                                       str(saved_models["recurrent"])])
    assert "Traceback" not in result.output
    report = json.loads(result.stdout)
    entry = report["files"][0]
    assert entry["format"] == "keras-savedmodel" and entry["error"] is None
    assert entry["model"]["layers"] == len(dict(_leaves(BUILT["recurrent"])))
    assert entry["model"]["params"] == BUILT["recurrent"].count_params()
    assert all(layer["estimate"]["stored_weights"] is not None
               for layer in entry["layers"] if layer["weighted"])
    codes = {finding["code"] for finding in entry["findings"]}
    assert "GL401" in codes and "GL402" not in codes  # not compiled: no optimizer to judge


def test_reading_never_imports_tensorflow(saved_models):
    heavy, output = _run(CLI_SCRIPT, "--isolated", "-j", "1", str(saved_models["functional"]))
    assert heavy == [], output
    assert "GL001" not in output


# --- SavedModels that gradlint refuses -------------------------------------------------------

@pytest.fixture(scope="module")
def plain_savedmodel(tmp_path_factory):
    """A real SavedModel with no Keras metadata: tf.saved_model.save of a tf.Module."""
    keras2()
    import tensorflow as tf

    class Scale(tf.Module):
        def __init__(self):
            super().__init__()
            self.factor = tf.Variable(2.0)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
        def __call__(self, x):
            return x * self.factor

    path = tmp_path_factory.mktemp("plain") / "exported"
    tf.saved_model.save(Scale(), str(path))
    assert not (path / METADATA).exists()
    return path


def test_savedmodel_without_keras_metadata_is_refused(plain_savedmodel):
    result = CliRunner().invoke(main, ["--isolated", "-j", "1", str(plain_savedmodel)])
    assert result.exit_code == 2
    assert f"{plain_savedmodel}: GL001 [error] a TensorFlow SavedModel without " \
           "keras_metadata.pb is not supported" in result.stdout


def test_discovery_finds_savedmodels_and_does_not_descend(saved_models, plain_savedmodel,
                                                         tmp_path):
    import shutil

    tree = tmp_path / "repo"
    shutil.copytree(saved_models["sequential"], tree / "exports" / "classifier")
    shutil.copytree(plain_savedmodel, tree / "exports" / "plain")
    # A model file inside a SavedModel (its assets) is part of it, never a model of its own.
    shutil.copyfile(f"{saved_models['sequential']}.h5",
                    tree / "exports" / "classifier" / "assets" / "decoy.h5")
    shutil.copyfile(f"{saved_models['functional']}.h5", tree / "functional.h5")
    result = CliRunner().invoke(main, ["--isolated", "-j", "1", "--output-format", "json",
                                       str(tree)])
    report = json.loads(result.stdout)
    linted = sorted(os.path.relpath(entry["path"], tree) for entry in report["files"])
    assert linted == [os.path.join("exports", "classifier"), "functional.h5"]
    assert all(entry["error"] is None for entry in report["files"])
    result = CliRunner().invoke(main, ["--isolated", "-j", "1", str(tree)])
    assert f"{tree / 'exports' / 'plain'}: a TensorFlow SavedModel without keras_metadata.pb " \
           "(no Keras configuration), skipped" in result.stdout


# --- hostile metadata ------------------------------------------------------------------------

def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _encode(nodes: list[tuple[str, str, bytes]]) -> bytes:
    """A SavedMetadata of (node_path, identifier, metadata JSON) nodes, each with the
    version tf-keras writes (producer 2, min_consumer 1)."""
    version = _field(6, b"\x08\x02\x10\x01")
    return b"".join(_field(1, _field(3, path.encode()) + _field(4, identifier.encode())
                           + _field(5, metadata) + version)
                    for path, identifier, metadata in nodes)


def _copy_with_metadata(source, target, data: bytes):
    import shutil

    shutil.copytree(source, target)
    (target / METADATA).write_bytes(data)
    return target


def test_the_decoder_reads_what_tf_keras_wrote(saved_models):
    """Every node's path and identifier, against tf-keras's own protobuf classes."""
    from tf_keras.protobuf import saved_metadata_pb2

    data = (saved_models["functional"] / METADATA).read_bytes()
    proto = saved_metadata_pb2.SavedMetadata()
    proto.ParseFromString(data)
    ours = [(path, identifier, bytes(metadata).decode())
            for path, identifier, metadata in saved_objects(data)]
    assert ours == [(node.node_path, node.identifier, node.metadata) for node in proto.nodes]
    assert ours[0][:2] == ("root", "_tf_keras_network")


def test_crlf_stripped_by_git_is_restored(saved_models, tmp_path):
    """TensorFlow.NET writes indented JSON with CRLF on Windows; git's core.autocrlf then
    strips the CRs of a .pb it takes for text, and the length prefixes no longer fit (as in
    the public repositories ChengEn-Tsai/NeuralNetworkTrainer and ersba/model-epidemic-spread).
    gradlint restores them and says so."""
    source = saved_models["functional"]
    nodes = [(path, identifier, bytes(metadata))
             for path, identifier, metadata in saved_objects((source / METADATA).read_bytes())]
    indented = [(path, identifier,
                 json.dumps(json.loads(metadata), indent=2).replace("\n", "\r\n").encode())
                for path, identifier, metadata in nodes]
    stripped = _encode(indented).replace(b"\r\n", b"\n")
    target = _copy_with_metadata(source, tmp_path / "stripped", stripped)
    graph = read_model(str(target))
    original = read_model(str(source))
    assert [n.path for n in graph.nodes] == [n.path for n in original.nodes]
    assert any("lost the CR of each CRLF" in note for note in graph.notes)


BAD_METADATA = {
    "empty": (b"", "no root object"),
    "truncated": (None, "truncated|corrupted|not a SavedMetadata"),
    "length runs past the end": (_field(1, b"")[:1] + _varint(1 << 20) + b"\x1a\x04root",
                                 "truncated"),
    "field numbered 0": (b"\x02\x00", "numbered 0"),
    "group wire type": (b"\x0b", "wire type 3"),
    "metadata not JSON": (_encode([("root", "_tf_keras_network", b"{not json")]),
                          "not valid JSON"),
    "metadata not UTF-8": (_encode([("root", "_tf_keras_network", b"\xff\xfe")]), "UTF-8"),
    "metadata a list": (_encode([("root", "_tf_keras_network", b"[1, 2]")]),
                        "not a JSON object"),
    "no class": (_encode([("root", "_tf_keras_network", b'{"config": {}}')]),
                 "names no model class"),
    "two roots": (_encode([("root", "_tf_keras_network", b"{}")] * 2), "two root objects"),
    "deep JSON": (_encode([("root", "_tf_keras_network", b"[" * 100000 + b"]" * 100000)]),
                  "nests too deeply"),
    "single layer": (_encode([("root", "_tf_keras_layer",
                               b'{"class_name": "Dense", "config": {"units": 3}}')]),
                     "single Dense layer, not a model"),
}


@pytest.mark.parametrize("case", list(BAD_METADATA))
def test_bad_metadata_is_a_clear_gl001(saved_models, tmp_path, case):
    data, pattern = BAD_METADATA[case]
    if data is None:
        data = (saved_models["functional"] / METADATA).read_bytes()[:500]
    target = _copy_with_metadata(saved_models["functional"], tmp_path / "bad", data)
    result = CliRunner().invoke(main, ["--isolated", "-j", "1", str(target)])
    assert "Traceback" not in result.output
    assert result.exit_code == 2, result.output
    import re

    line = next(line for line in result.stdout.splitlines() if "GL001" in line)
    assert re.search(pattern, line), line
    assert "internal error" not in line


def test_metadata_over_the_size_limit(saved_models, tmp_path):
    target = _copy_with_metadata(saved_models["functional"], tmp_path / "big",
                                 b"\x0a" * (2 << 20))
    with pytest.raises(ModelReadError, match="over the 1 MB limit"):
        read_model(str(target), limits=Limits(max_config_mb=1))


def test_metadata_symlinked_outside_is_refused(saved_models, tmp_path):
    import shutil

    outside = tmp_path / "outside.pb"
    shutil.copyfile(saved_models["functional"] / METADATA, outside)
    target = tmp_path / "linked"
    shutil.copytree(saved_models["functional"], target)
    (target / METADATA).unlink()
    (target / METADATA).symlink_to(outside)
    with pytest.raises(ModelReadError, match="symbolic link to outside"):
        read_model(str(target))


def test_metadata_fifo_is_refused_without_blocking(saved_models, tmp_path):
    import shutil

    target = tmp_path / "fifo"
    shutil.copytree(saved_models["functional"], target)
    (target / METADATA).unlink()
    os.mkfifo(target / METADATA)
    with pytest.raises(ModelReadError, match="FIFO"):
        read_model(str(target))


def test_mutated_metadata_never_escapes_as_an_exception(saved_models, tmp_path):
    """400 seeded mutations of a real keras_metadata.pb (flipped, dropped, inserted and
    truncated bytes): each reads as a model or fails with ModelReadError."""
    original = (saved_models["functional"] / METADATA).read_bytes()
    target = _copy_with_metadata(saved_models["functional"], tmp_path / "mutant", original)
    rng = random.Random(20261202)
    outcomes = {"read": 0, "refused": 0}
    for _ in range(400):
        data = bytearray(original)
        for _ in range(rng.randint(1, 4)):
            where = rng.randrange(len(data))
            action = rng.choice(("flip", "drop", "insert", "truncate"))
            if action == "flip":
                data[where] ^= 1 << rng.randrange(8)
            elif action == "drop":
                del data[where:where + rng.randint(1, 8)]
            elif action == "insert":
                data[where:where] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
            else:
                del data[where:]
            if not data:
                data = bytearray(b"\x00")
        (target / METADATA).write_bytes(bytes(data))
        try:
            read_model(str(target))
            outcomes["read"] += 1
        except ModelReadError:
            outcomes["refused"] += 1
    assert outcomes["refused"] > 100 and outcomes["read"] > 0, outcomes


def test_mutated_checkpoint_never_escapes_as_an_exception(saved_models, tmp_path):
    """300 seeded mutations of a real variables.index and of its data file: the graph is
    always read, and the weights are read or a note says why not."""
    import shutil

    target = tmp_path / "mutant"
    shutil.copytree(saved_models["recurrent"], target)
    index = target / "variables" / "variables.index"
    data_file = next((target / "variables").glob("variables.data-*"))
    originals = {index: index.read_bytes(), data_file: data_file.read_bytes()}
    rng = random.Random(1202)
    outcomes = {"read": 0, "noted": 0}
    for attempt in range(300):
        victim = index if attempt % 3 else data_file
        for path, original in originals.items():
            path.write_bytes(original)
        data = bytearray(originals[victim])
        for _ in range(rng.randint(1, 3)):
            where = rng.randrange(len(data))
            if rng.random() < 0.7:
                data[where] ^= 1 << rng.randrange(8)
            else:
                del data[where:where + rng.randint(1, 16)]
        victim.write_bytes(bytes(data))
        graph = read_model(str(target))
        assert graph.nodes
        noted = any(note.startswith("weights not read (SavedModel variables)")
                    for note in graph.notes)
        outcomes["noted" if noted else "read"] += 1
        assert noted or graph.params is not None
    assert outcomes["noted"] > 50, outcomes


def test_a_subclassed_model_still_has_its_weights_checked(tmp_path):
    """No layer graph in the metadata (a subclassed model): the checkpoint's variables are
    still read, each under its layer's name, as an archive's are."""
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
    kernel = model.hidden.kernel.numpy()
    kernel[1, 1] = np.inf
    model.hidden.kernel.assign(kernel)
    path = tmp_path / "tower"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.save(str(path), save_format="tf")
    graph = read_model(str(path))
    assert not graph.graph_stored and graph.name == "tower"
    assert graph.params == model.count_params()
    hidden = next(layer for layer in graph.detached_layers if layer.path.endswith("hidden"))
    assert not hidden.weight("kernel").finite
    result = CliRunner().invoke(main, ["--isolated", "-j", "1", str(path)])
    assert "GL205" in result.stdout, result.stdout
