"""The JSON architecture reader: `model.to_json()` files from Keras 3 and tf-keras, read as
an architecture without weights, whatever their name; Keras 1 `Merge` layers (as Keras
1.2-2.0 wrote them) sized through the merge family; which JSON files a directory search
reads; hostile JSON."""

from __future__ import annotations

import copy
import json
import os
import re

import pytest
from click.testing import CliRunner

from gradlint.analysis import analyse
from gradlint.cli import main
from gradlint.errors import ModelReadError, UnsupportedFormat
from gradlint.limits import Limits
from gradlint.readers import read_model

from conftest import keras2, keras3
from test_static_path_imports import CLI_SCRIPT, _run

PREFIX = "test_reader_json_architecture"
BUILT: dict[str, object] = {}


def build_keras3():
    keras = keras3()
    layers = keras.layers
    enc_in = keras.Input((12,), name="enc_in")
    encoder = keras.Model(enc_in, layers.Dense(6, activation="tanh", name="enc")(enc_in),
                          name="encoder")
    left = keras.Input((12,), name="left")
    right = keras.Input((12,), name="right")
    shared = layers.Dense(12, activation="sigmoid", name="shared")
    x = layers.Add(name="sum")([encoder(shared(left)), layers.Dense(6, name="side")(
        shared(right))])
    x = layers.BatchNormalization(name="bn")(x)
    model = keras.Model([left, right], layers.Dense(3, activation="softmax", name="out")(x),
                        name="json_keras3")
    model.compile(keras.optimizers.SGD(learning_rate=0.3, clipvalue=0.5),
                  "categorical_crossentropy")
    return model


def build_keras2():
    keras = keras2()
    layers = keras.layers
    model = keras.Sequential([keras.Input((16, 3)),
                              layers.Conv1D(8, 3, activation="relu", name="conv"),
                              layers.SimpleRNN(5, name="rnn"),
                              layers.Dense(4, activation="tanh", name="hidden"),
                              layers.Dense(1, activation="sigmoid", name="prob")],
                             name="json_keras2")
    model.compile(keras.optimizers.Adam(learning_rate=0.01), "binary_crossentropy")
    return model


def build_branches():
    """What Keras 1 wrote as Sequential([Merge([left, right], mode="concat"), ...]): two
    branch models, each on its own input, concatenated, then a dense head."""
    keras = keras2()
    layers = keras.layers
    left = keras.Sequential([keras.Input((10, 4)),
                             layers.Conv1D(6, 3, activation="relu", name="conv1d_4"),
                             layers.AveragePooling1D(2, name="average_pooling1d_3"),
                             layers.Flatten(name="flatten_2")], name="left")
    right = keras.Sequential([keras.Input((7,)),
                              layers.Dense(5, activation="relu", name="dense_4"),
                              layers.Dropout(0.1, name="dropout_6")], name="right")
    BUILT["left"], BUILT["right"] = left, right
    merged = layers.Concatenate(name="merge_2")([left.output, right.output])
    hidden = layers.Dense(8, activation="relu", name="dense_5")(merged)
    return keras.Model([left.input, right.input], layers.Dense(1, name="dense_6")(hidden),
                       name="branches")


def build_merges():
    """Add, Multiply, Average and Concatenate: the modes of Keras 1's Merge layer."""
    keras = keras2()
    layers = keras.layers
    a = keras.Input((8,), name="a")
    b = keras.Input((8,), name="b")
    x = layers.Dense(8, activation="tanh", name="da")(a)
    y = layers.Dense(8, activation="sigmoid", name="db")(b)
    added = layers.Add(name="m_sum")([x, y])
    product = layers.Multiply(name="m_mul")([added, y])
    mean = layers.Average(name="m_ave")([product, x])
    joined = layers.Concatenate(name="m_concat")([mean, added])
    return keras.Model([a, b], layers.Dense(2, name="out")(joined), name="merges")


def _saved_json(tmp_path_factory, name, build, suffix=".json"):
    model = build()
    BUILT[name] = model
    path = tmp_path_factory.mktemp("json") / f"{name}{suffix}"
    path.write_text(model.to_json())
    return path


@pytest.fixture(scope="module")
def keras3_json(tmp_path_factory):
    return _saved_json(tmp_path_factory, "keras3", build_keras3)


@pytest.fixture(scope="module")
def keras2_json(tmp_path_factory):
    return _saved_json(tmp_path_factory, "keras2", build_keras2)


def _leaves(model, prefix=""):
    for layer in model.layers:
        if type(layer).__name__ == "InputLayer":
            continue
        if type(layer).__name__ in ("Functional", "Sequential", "Model"):
            yield from _leaves(layer, f"{prefix}{layer.name}/")
        else:
            yield prefix + layer.name, layer


def _describe(graph):
    return [(node.path, node.layer.class_name, node.layer.kind, str(node.layer.activation),
             node.inputs, node.output_shape) for node in graph.nodes]


# --- to_json from Keras 3 and tf-keras ------------------------------------------------------

@pytest.mark.parametrize("flavour", ["keras3", "keras2"])
def test_graph_matches_keras(flavour, request):
    path = request.getfixturevalue(f"{flavour}_json")
    model = BUILT[flavour]
    graph = read_model(str(path))
    assert graph.format == "keras-json-architecture"
    assert graph.model_class == type(model).__name__
    leaves = dict(_leaves(model))
    layers = {layer.path: layer for layer in graph.layers() if not layer.family.is_input}
    assert sorted(layers) == sorted(leaves)
    for path_, keras_layer in leaves.items():
        assert layers[path_].class_name == type(keras_layer).__name__
    # An architecture: no weights, and it says so.
    assert graph.params is None and not graph.weights_read
    assert any(note.startswith("architecture only") for note in graph.notes), graph.notes


def test_keras3_json_is_the_archive_graph(keras3_json, save_model):
    archive = save_model(f"{PREFIX}-keras3", build_keras3, "keras")
    from_json = read_model(str(keras3_json))
    from_archive = read_model(str(archive), read_weights=False)
    assert _describe(from_json) == _describe(from_archive)
    assert from_json.training == from_archive.training
    assert from_json.training.optimizer == "SGD"
    assert from_json.training.learning_rate == pytest.approx(0.3)
    assert from_json.training.clipvalue == pytest.approx(0.5)


def test_keras2_json_is_the_h5_graph(keras2_json, tmp_path):
    import warnings

    model = BUILT["keras2"]
    h5 = tmp_path / "same-model.h5"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.save(str(h5))
    from_json = read_model(str(keras2_json))
    from_h5 = read_model(str(h5), read_weights=False)
    assert _describe(from_json) == _describe(from_h5)
    shapes = {node.path: node.output_shape for node in from_json.nodes}
    for layer in model.layers:
        assert shapes[layer.name] == tuple(layer.output_shape), layer.name
    assert from_json.keras_version == keras2().__version__
    assert from_json.training is None  # tf-keras's to_json keeps no compile configuration


@pytest.mark.parametrize("name", ["model.h5", "model.hdf5", "model.keras", "model.txt"])
def test_format_comes_from_the_bytes(keras2_json, tmp_path, name):
    path = tmp_path / name
    path.write_bytes(keras2_json.read_bytes())
    graph = read_model(str(path))
    assert graph.format == "keras-json-architecture"
    assert _describe(graph) == _describe(read_model(str(keras2_json)))
    misnamed = [note for note in graph.notes if "but the file is a model architecture" in note]
    assert len(misnamed) == (0 if name.endswith(".txt") else 1)


def test_the_command_line_reports_an_architecture(keras2_json):
    result = CliRunner().invoke(main, ["--isolated", "-j", "1", "--output-format", "json",
                                       str(keras2_json)])
    assert "Traceback" not in result.output
    entry = json.loads(result.stdout)["files"][0]
    assert entry["format"] == "keras-json-architecture" and entry["error"] is None
    assert entry["model"]["params"] is None
    assert entry["model"]["layers"] == len(BUILT["keras2"].layers)
    assert all(layer["estimate"]["stored_weights"] is None for layer in entry["layers"])
    assert "GL401" in {finding["code"] for finding in entry["findings"]}


def test_reading_never_imports_tensorflow(keras3_json, keras2_json):
    heavy, output = _run(CLI_SCRIPT, "--isolated", "-j", "1", str(keras3_json),
                         str(keras2_json))
    assert heavy == [], output
    assert "GL001" not in output


# --- Keras 1 Merge -----------------------------------------------------------------------------

KERAS1_MODES = {"Add": "sum", "Multiply": "mul", "Average": "ave", "Concatenate": "concat"}


def _as_keras1_merge(entry: dict) -> dict:
    """A Keras 2 merge layer entry as Keras 1 wrote it: class Merge, a mode, concat_axis."""
    config = entry["config"]
    keras1 = {"name": config["name"], "mode": KERAS1_MODES[entry["class_name"]],
              "concat_axis": config.get("axis", -1), "dot_axes": -1, "mode_type": "raw",
              "output_shape": None, "output_shape_type": "raw", "output_mask": None,
              "output_mask_type": "raw", "arguments": {}}
    return dict(entry, class_name="Merge", config=keras1)


def test_functional_keras1_merge_layers_are_sized(tmp_path_factory):
    """The same graph with each merge layer written as Keras 1's Merge: the same shapes and
    the same estimate, layer by layer."""
    path = _saved_json(tmp_path_factory, "merges", build_merges)
    config = json.loads(path.read_text())
    keras1 = copy.deepcopy(config)
    keras1["config"]["layers"] = [_as_keras1_merge(entry)
                                  if entry["class_name"] in KERAS1_MODES else entry
                                  for entry in keras1["config"]["layers"]]
    keras1["keras_version"] = "1.2.2"
    keras1_path = path.with_name("merges-keras1.json")
    keras1_path.write_text(json.dumps(keras1))
    modern, old = read_model(str(path)), read_model(str(keras1_path))
    assert [n.layer.kind for n in old.nodes] == [n.layer.kind for n in modern.nodes]
    assert {n.layer.family.name for n in old.nodes if n.layer.class_name == "Merge"} == {"merge"}
    assert [n.output_shape for n in old.nodes] == [n.output_shape for n in modern.nodes]
    modern_estimate = analyse(modern).estimate
    old_estimate = analyse(old).estimate
    for node in modern.nodes:
        assert old_estimate[node.id].to_dict() == modern_estimate[node.id].to_dict(), node.path
    assert not old_estimate.passed_through


def test_sequential_keras1_merge_of_branch_models(tmp_path_factory):
    """Keras 1.2-2.0's Sequential([Merge([left, right], mode="concat"), Dense, Dense]): the
    layout of a public Keras 2.0.6 to_json seen in the wild, derived here from a real model
    with the same graph; every branch layer is read and sized as Keras sizes it."""
    path = _saved_json(tmp_path_factory, "branches", build_branches)
    model = BUILT["branches"]
    config = json.loads(path.read_text())["config"]
    by_name = {entry["config"]["name"]: entry for entry in config["layers"]}

    def branch(name):
        sub = json.loads(BUILT[name].to_json())["config"]["layers"]
        layers = [entry for entry in sub if entry["class_name"] != "InputLayer"]
        first = dict(layers[0], config=dict(
            layers[0]["config"],
            batch_input_shape=[entry for entry in sub
                               if entry["class_name"] == "InputLayer"][0]["config"]
            ["batch_input_shape"]))
        return {"class_name": "Sequential", "config": [first] + layers[1:]}

    merge = _as_keras1_merge(by_name["merge_2"])
    merge["config"]["layers"] = [branch("left"), branch("right")]
    keras206 = {"keras_version": "2.0.6", "class_name": "Sequential",
                "config": [merge, by_name["dense_5"], by_name["dense_6"]],
                "backend": "tensorflow"}
    keras206_path = path.with_name("branches-keras206.h5")  # as committed in the wild
    keras206_path.write_text(json.dumps(keras206))
    graph = read_model(str(keras206_path))
    leaves = dict(_leaves(model))
    flat = {path_.rsplit("/", 1)[-1]: layer for path_, layer in leaves.items()}
    layers = {layer.path: layer for layer in graph.layers() if not layer.family.is_input}
    assert sorted(layers) == sorted(flat)
    shapes = {node.path: node.output_shape for node in graph.nodes}
    for name, keras_layer in flat.items():
        assert shapes[name] == tuple(keras_layer.output_shape), name
    merge_node = next(node for node in graph.nodes if node.path == "merge_2")
    assert sorted(graph.nodes[i].path for i in merge_node.inputs) == ["dropout_6", "flatten_2"]
    assert len(graph.inputs) == 2
    assert not analyse(graph).estimate.passed_through


# --- which JSON files a search reads -----------------------------------------------------------

def test_a_search_reads_only_json_that_looks_like_a_model(keras2_json, tmp_path):
    tree = tmp_path / "repo"
    (tree / "models").mkdir(parents=True)
    (tree / "web").mkdir()
    (tree / "models" / "architecture.json").write_bytes(keras2_json.read_bytes())
    (tree / "web" / "package.json").write_text('{"name": "site", "version": "1.0.0"}')
    (tree / "web" / "list.json").write_text('[{"class_name": "Dense", "config": {}}]')
    (tree / "web" / "late.json").write_text(
        json.dumps({"padding": "x" * 10000, "class_name": "Sequential", "config": {}}))
    # Sniffed as a model but not one: skipped in a search, as an HDF5 data file is.
    (tree / "web" / "lookalike.json").write_text('{"class_name": "Thing", "config": 3}')
    os.symlink(keras2_json, tree / "web" / "outside.json")
    result = CliRunner().invoke(main, ["--isolated", "-j", "1", "--output-format", "json",
                                       str(tree)])
    report = json.loads(result.stdout)
    assert [entry["path"] for entry in report["files"]] == \
        [str(tree / "models" / "architecture.json")]
    assert report["files"][0]["error"] is None
    assert result.exit_code == 0, result.output


def test_an_explicit_json_that_is_no_model_is_an_error(tmp_path):
    path = tmp_path / "settings.json"
    path.write_text('{"name": "x"}')
    result = CliRunner().invoke(main, ["--isolated", "-j", "1", str(path)])
    assert result.exit_code == 2
    assert "not a model architecture (model.to_json() writes an object with 'class_name' " \
           "and 'config')" in result.stdout


# --- hostile JSON --------------------------------------------------------------------------------

BAD_JSON = {
    "truncated": (lambda text: text[: len(text) // 2], "not valid JSON"),
    "not UTF-8": (lambda text: text.replace('"json_keras2"', '"\udcff"'), "not UTF-8"),
    "deep nesting": (lambda text: '{"class_name": "Sequential", "config": ' + "[" * 200000
                     + "]" * 200000 + "}", "nests too deeply"),
    "layer list not a list": (
        lambda text: '{"class_name": "Functional", "config": {"layers": 3}}',
        "layers|configuration"),
    "units not a number": (lambda text: text.replace('"units": 4', '"units": "four"'),
                           "units"),
    "dangling reference": (lambda text: json.dumps(
        {"class_name": "Functional", "config": {
            "name": "m", "layers": [{"class_name": "Dense", "name": "d",
                                     "config": {"name": "d", "units": 2},
                                     "inbound_nodes": [[["nowhere", 0, 0, {}]]]}],
            "input_layers": [], "output_layers": [["d", 0, 0]]}}), "tensor|layer"),
}


@pytest.mark.parametrize("case", list(BAD_JSON))
def test_bad_json_is_a_clear_gl001(keras2_json, tmp_path, case):
    mutate, pattern = BAD_JSON[case]
    path = tmp_path / "model.json"
    path.write_bytes(mutate(keras2_json.read_text()).encode("utf-8", "surrogateescape"))
    result = CliRunner().invoke(main, ["--isolated", "-j", "1", str(path)])
    assert "Traceback" not in result.output
    assert result.exit_code == 2, result.output
    line = next(line for line in result.stdout.splitlines() if "GL001" in line)
    assert re.search(pattern, line), line
    assert "internal error" not in line


def test_json_over_the_size_limit(keras2_json, tmp_path):
    path = tmp_path / "big.json"
    path.write_text(keras2_json.read_text()[:-1] + ', "pad": "' + "x" * (2 << 20) + '"}')
    with pytest.raises(ModelReadError, match="over the 1 MB limit"):
        read_model(str(path), limits=Limits(max_config_mb=1))
    assert read_model(str(path)).format == "keras-json-architecture"


def test_json_not_a_model_is_unsupported_not_a_crash(tmp_path):
    for text in ('{"class_name": 3}', "{}", '{"class_name": "X", "config": "y"}'):
        path = tmp_path / "x.json"
        path.write_text(text)
        with pytest.raises(UnsupportedFormat):
            read_model(str(path))


@pytest.mark.parametrize("which", ["tf-keras 2.13", "tf-keras", "keras 3"])
def test_an_unzipped_archive_config_is_the_archive_graph(which, save_model, tmp_path):
    """The config.json of a .keras archive, committed unzipped: the same graph as the
    archive (tf-keras's names its engine in "module", Keras 3's names no version)."""
    import zipfile
    from pathlib import Path

    if which == "tf-keras 2.13":
        archive = Path(__file__).resolve().parent / "data" / "tf_keras_2_13" / \
            "tf_keras_2_13_functional.keras"
    elif which == "tf-keras":
        archive = save_model(f"{PREFIX}-keras2-archive", build_merges, "keras2")
    else:
        archive = save_model(f"{PREFIX}-keras3", build_keras3, "keras")
    path = tmp_path / "config.json"
    path.write_bytes(zipfile.ZipFile(archive).read("config.json"))
    assert _describe(read_model(str(path))) == _describe(read_model(str(archive),
                                                                    read_weights=False))


def test_a_tokenizer_json_is_not_a_model(tmp_path):
    # Tokenizer.to_json() writes the same {"class_name", "config"} object as a model's; it
    # was read as a subclassed model (exit 0, a GL002 suggesting --custom-objects).
    tokenizer = keras2().preprocessing.text.Tokenizer(num_words=20)
    tokenizer.fit_on_texts(["the gradient vanishes", "the gradient explodes"])
    path = tmp_path / "tokenizer.json"
    path.write_text(tokenizer.to_json(), encoding="utf-8")
    with pytest.raises(UnsupportedFormat, match="Tokenizer"):
        read_model(str(path))
    explicit = CliRunner().invoke(main, ["--isolated", "-j", "1", str(path)])
    assert explicit.exit_code == 2 and "not a Keras model file" in explicit.output
    searched = CliRunner().invoke(main, ["--isolated", "-j", "1", str(tmp_path)])
    assert "tokenizer.json: not a Keras model file, skipped" in searched.output
