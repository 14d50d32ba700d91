"""The legacy HDF5 reader: full-model `.h5` files written by tf-keras, and Keras 2.2/2.3-style
files derived from them (see `legacy_files`): graph, initializers, training configuration
and weight statistics."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

import gradlint
from gradlint.readers import read_model

from conftest import keras2
from legacy_files import derive_legacy_h5, read_root_attributes

PREFIX = "test_reader_legacy_h5"
BUILT: dict[str, object] = {}


def build_sequential():
    keras = keras2()
    layers = keras.layers
    model = keras.Sequential([
        layers.Dense(16, activation="tanh", input_shape=(8,), name="hidden_tanh"),
        layers.Dense(16, activation="sigmoid", kernel_initializer="he_normal",
                     name="hidden_sigmoid"),
        layers.Dense(12, activation="relu",
                     kernel_initializer=keras.initializers.RandomNormal(stddev=0.02),
                     name="hidden_relu"),
        layers.Dense(1, name="out"),
    ], name="legacy_sequential")
    model.compile(keras.optimizers.SGD(learning_rate=0.5, momentum=0.9), "mse")
    BUILT["sequential"] = model
    return model


def build_functional():
    keras = keras2()
    layers = keras.layers
    left = keras.Input((6,), name="left")
    right = keras.Input((6,), name="right")
    shared = layers.Dense(10, activation="relu", kernel_initializer="lecun_normal",
                          name="shared")
    encoder = keras.Sequential([keras.Input((10,)),
                                layers.Dense(8, activation="elu", name="enc_dense")],
                               name="encoder")
    merged = layers.Concatenate(name="merge")([encoder(shared(left)), shared(right)])
    head = layers.Dense(3, activation="softmax", name="head")(merged)
    model = keras.Model([left, right], head, name="legacy_functional")
    model.compile(keras.optimizers.Adam(learning_rate=0.05), "categorical_crossentropy")
    BUILT["functional"] = model
    return model


def build_recurrent():
    keras = keras2()
    layers = keras.layers
    inputs = keras.Input((12, 4), name="sequence")
    x = layers.SimpleRNN(8, return_sequences=True, name="simple")(inputs)
    x = layers.Bidirectional(layers.LSTM(6), name="bi_lstm")(x)
    outputs = layers.Dense(1, name="out")(x)
    model = keras.Model(inputs, outputs, name="legacy_recurrent")
    model.compile(keras.optimizers.Adam(learning_rate=1e-3, clipnorm=1.0), "mse")
    BUILT["recurrent"] = model
    return model


@pytest.fixture(scope="module")
def sequential_h5(save_model):
    return save_model(f"{PREFIX}-sequential", build_sequential, "h5")


@pytest.fixture(scope="module")
def functional_h5(save_model):
    return save_model(f"{PREFIX}-functional", build_functional, "h5")


@pytest.fixture(scope="module")
def recurrent_h5(save_model):
    return save_model(f"{PREFIX}-recurrent", build_recurrent, "h5")


def _weight_role(name: str) -> str:
    role = name.rsplit("/", 1)[-1].split(":", 1)[0]
    return ("backward_" + role) if "backward" in name else role


def _check_weights(graph, model) -> None:
    """Every weighted Keras layer's arrays, against the statistics gradlint read."""
    by_path = {layer.path: layer for layer in graph.layers()}
    checked = 0
    for keras_layer in model.layers:
        inner_layers = getattr(keras_layer, "layers", None)
        targets = [(f"{keras_layer.name}/{inner.name}", inner) for inner in inner_layers] \
            if inner_layers is not None else [(keras_layer.name, keras_layer)]
        for path, layer in targets:
            if not layer.weights:
                continue
            stats = by_path[path].weights
            assert len(stats) == len(layer.weights), path
            for variable, array, found in zip(layer.weights, layer.get_weights(), stats):
                values = np.asarray(array, dtype=np.float64)
                assert found.role == _weight_role(variable.name), (path, variable.name)
                assert found.shape == values.shape, (path, variable.name)
                assert found.mean == pytest.approx(values.mean(), rel=1e-6, abs=1e-9)
                assert found.std == pytest.approx(values.std(), rel=1e-5, abs=1e-9)
                assert found.zero_fraction == pytest.approx(
                    float(np.mean(values == 0.0)), abs=1e-12)
                assert found.finite is True
                checked += 1
    assert checked > 0


def _lint_dict(path, **options):
    result = gradlint.lint(str(path), **options).to_dict()
    assert len(result["files"]) == 1
    return result["files"][0]


def _comparable(file_result):
    """What must not change when the same model is written by an older Keras. Messages may
    name the initializer as the file spells it (`VarianceScaling` for `HeNormal`), so the
    findings are compared by code, severity and layers."""
    findings = [(f["code"], f["severity"], f["layer"], tuple(f["layers"]))
                for f in file_result["findings"]]
    model = dict(file_result["model"])
    model.pop("keras_version")
    model.pop("class")
    return {"layers": file_result["layers"], "findings": sorted(findings), "model": model}


# --- files written by tf-keras --------------------------------------------------------------

def test_tf_keras_sequential_graph(sequential_h5):
    model = BUILT["sequential"]
    graph = read_model(str(sequential_h5))
    assert graph.format == "keras-legacy-h5"
    assert graph.keras_version.startswith("2.")
    assert graph.model_class == "Sequential"
    assert graph.name == model.name
    assert graph.graph_stored
    paths = [node.path for node in graph.nodes if node.layer.kind != "input"]
    assert paths == [layer.name for layer in model.layers]
    assert len(graph.inputs) == 1
    assert graph.nodes[graph.inputs[0]].output_shape == (None, 8)
    for node in graph.nodes[1:]:
        keras_layer = model.get_layer(node.path)
        assert node.layer.class_name == type(keras_layer).__name__
        assert str(node.layer.activation) == keras_layer.activation.__name__
        assert node.output_shape == tuple(keras_layer.output.shape)


def test_tf_keras_sequential_initializers(sequential_h5):
    model = BUILT["sequential"]
    graph = read_model(str(sequential_h5), read_weights=False)
    by_path = {layer.path: layer for layer in graph.layers()}
    for keras_layer in model.layers:
        fan_in, fan_out = keras_layer.kernel.shape
        config = keras_layer.kernel_initializer.get_config()
        name = type(keras_layer.kernel_initializer).__name__
        if name == "GlorotUniform":
            expected = 2.0 / (fan_in + fan_out)
        elif name == "HeNormal":
            expected = 2.0 / fan_in
        else:
            assert name == "RandomNormal"
            expected = config["stddev"] ** 2 + config["mean"] ** 2
        initializer = by_path[keras_layer.name].kernel_initializer
        assert initializer.second_moment(fan_in, fan_out) == pytest.approx(expected)


def test_tf_keras_training_config(sequential_h5, functional_h5):
    sgd = read_model(str(sequential_h5), read_weights=False).training
    assert sgd.optimizer == "SGD"
    assert sgd.learning_rate == pytest.approx(
        float(BUILT["sequential"].optimizer.learning_rate.numpy()))
    assert sgd.loss == "mse"
    adam = read_model(str(functional_h5), read_weights=False).training
    assert adam.optimizer == "Adam"
    assert adam.learning_rate == pytest.approx(
        float(BUILT["functional"].optimizer.learning_rate.numpy()))


def test_tf_keras_sequential_weights(sequential_h5):
    graph = read_model(str(sequential_h5))
    assert graph.weights_read
    _check_weights(graph, BUILT["sequential"])
    assert graph.params == BUILT["sequential"].count_params()


def test_tf_keras_functional_nested_and_shared(functional_h5):
    model = BUILT["functional"]
    graph = read_model(str(functional_h5))
    assert graph.model_class == "Functional"
    paths = [node.path for node in graph.nodes]
    assert paths.count("shared") == 1 and paths.count("shared@1") == 1
    assert "encoder/enc_dense" in paths
    assert len(graph.inputs) == 2 and len(graph.outputs) == 1
    shared_nodes = [node for node in graph.nodes if node.layer.path == "shared"]
    assert shared_nodes[0].layer is shared_nodes[1].layer
    merge = next(node for node in graph.nodes if node.path == "merge")
    sources = {graph.nodes[source].path for source in merge.inputs}
    assert sources == {"encoder/enc_dense", "shared@1"}
    _check_weights(graph, model)
    assert graph.params == model.count_params()


def test_tf_keras_recurrent_weights_and_clipping(recurrent_h5):
    model = BUILT["recurrent"]
    graph = read_model(str(recurrent_h5))
    by_path = {layer.path: layer for layer in graph.layers()}
    assert by_path["simple"].kind == "recurrent"
    assert by_path["bi_lstm"].inner is not None
    assert by_path["bi_lstm"].inner.class_name == "LSTM"
    for name in ("simple", "bi_lstm"):
        keras_layer = model.get_layer(name)
        shapes = sorted(tuple(w.shape) for w in keras_layer.get_weights())
        assert sorted(s.shape for s in by_path[name].weights) == shapes
    assert {s.role for s in by_path["bi_lstm"].weights} >= {"kernel", "backward_kernel"}
    assert graph.training.clipnorm == pytest.approx(1.0)


# --- Keras 2.2/2.3-style files derived from them ------------------------------------------

@pytest.fixture(scope="module", params=["2.2.4", "2.3.1"])
def old_sequential(request, sequential_h5, tmp_path_factory):
    target = tmp_path_factory.mktemp("legacy") / f"{PREFIX}-sequential-{request.param}.h5"
    return derive_legacy_h5(sequential_h5, target, keras_version=request.param)


@pytest.fixture(scope="module")
def old_functional(functional_h5, tmp_path_factory):
    target = tmp_path_factory.mktemp("legacy") / f"{PREFIX}-functional-2.2.4.h5"
    return derive_legacy_h5(functional_h5, target)


@pytest.fixture(scope="module")
def old_recurrent(recurrent_h5, tmp_path_factory):
    target = tmp_path_factory.mktemp("legacy") / f"{PREFIX}-recurrent-2.2.4.h5"
    return derive_legacy_h5(recurrent_h5, target)


def test_derived_file_looks_like_keras_2_2(old_sequential):
    """The derivation itself: what the older files differ in is really rewritten."""
    attributes = read_root_attributes(old_sequential)
    for name in ("keras_version", "model_config", "training_config", "backend"):
        assert isinstance(attributes[name], bytes), name
    assert attributes["keras_version"].decode().startswith("2.")
    config = json.loads(attributes["model_config"])
    layers = config["config"]["layers"]
    assert [layer["class_name"] for layer in layers] == ["Dense"] * 4
    assert layers[0]["config"]["batch_input_shape"] == [None, 8]
    assert layers[0]["config"]["kernel_initializer"] == {
        "class_name": "VarianceScaling",
        "config": {"scale": 1.0, "mode": "fan_avg", "distribution": "uniform", "seed": None}}
    assert "module" not in attributes["model_config"].decode()
    optimizer = json.loads(attributes["training_config"])["optimizer_config"]
    assert optimizer["class_name"] == "SGD"
    assert "lr" in optimizer["config"] and "learning_rate" not in optimizer["config"]


def test_derived_sequential_reads_like_its_source(old_sequential, sequential_h5):
    version = read_root_attributes(old_sequential)["keras_version"].decode()
    graph = read_model(str(old_sequential))
    assert graph.keras_version == version
    assert graph.format == "keras-legacy-h5"
    assert graph.graph_stored
    source = read_model(str(sequential_h5))
    assert [n.path for n in graph.nodes if n.layer.kind != "input"] == \
        [n.path for n in source.nodes if n.layer.kind != "input"]
    assert graph.nodes[graph.inputs[0]].output_shape == (None, 8)
    assert [str(layer.activation) for layer in graph.layers()][1:] == \
        [str(layer.activation) for layer in source.layers()][1:]
    _check_weights(graph, BUILT["sequential"])
    assert _comparable(_lint_dict(old_sequential)) == _comparable(_lint_dict(sequential_h5))


def test_derived_initializers_have_the_same_variance(old_sequential):
    model = BUILT["sequential"]
    graph = read_model(str(old_sequential), read_weights=False)
    by_path = {layer.path: layer for layer in graph.layers()}
    glorot = by_path["hidden_tanh"].kernel_initializer
    assert glorot.name == "VarianceScaling"
    he = by_path["hidden_sigmoid"].kernel_initializer
    for name, initializer, expected in (
            ("hidden_tanh", glorot, lambda fi, fo: 2.0 / (fi + fo)),
            ("hidden_sigmoid", he, lambda fi, fo: 2.0 / fi)):
        fan_in, fan_out = model.get_layer(name).kernel.shape
        assert initializer.second_moment(fan_in, fan_out) == pytest.approx(
            expected(fan_in, fan_out))
    assert he.family == "he" and glorot.family == "glorot"


def test_derived_training_config_uses_lr(old_sequential, old_recurrent):
    training = read_model(str(old_sequential), read_weights=False).training
    assert training.optimizer == "SGD"
    assert training.learning_rate == pytest.approx(0.5)
    recurrent = read_model(str(old_recurrent), read_weights=False).training
    assert recurrent.optimizer == "Adam"
    assert recurrent.learning_rate == pytest.approx(1e-3)
    assert recurrent.clipnorm == pytest.approx(1.0)


def test_derived_large_learning_rate_is_still_found(old_sequential):
    codes = [f["code"] for f in _lint_dict(old_sequential)["findings"]]
    assert "GL403" in codes


def test_derived_functional_model_class(old_functional, functional_h5):
    config = json.loads(read_root_attributes(old_functional)["model_config"])
    assert config["class_name"] == "Model"
    nested = next(layer for layer in config["config"]["layers"] if layer["name"] == "encoder")
    assert nested["config"]["layers"][0]["config"]["batch_input_shape"] == [None, 10]
    graph = read_model(str(old_functional))
    assert graph.model_class == "Model"
    assert [n.path for n in graph.nodes] == [n.path for n in read_model(str(functional_h5)).nodes]
    _check_weights(graph, BUILT["functional"])
    assert _comparable(_lint_dict(old_functional)) == _comparable(_lint_dict(functional_h5))


def test_derived_recurrent_model(old_recurrent, recurrent_h5):
    graph = read_model(str(old_recurrent))
    by_path = {layer.path: layer for layer in graph.layers()}
    assert by_path["bi_lstm"].inner.class_name == "LSTM"
    assert _comparable(_lint_dict(old_recurrent)) == _comparable(_lint_dict(recurrent_h5))


def test_sequential_config_stored_as_a_list(sequential_h5, tmp_path):
    """Keras 2.2.0-2.2.2 stored a Sequential model's configuration as a bare list of layers
    (the dict with 'name' and 'layers' came with 2.2.3); such a file has its layer graph."""
    old = derive_legacy_h5(sequential_h5, tmp_path / f"{PREFIX}-list.h5", keras_version="2.2.2",
                           sequential_as_list=True)
    assert isinstance(json.loads(read_root_attributes(old)["model_config"])["config"], list)
    graph = read_model(str(old))
    assert graph.graph_stored
    assert [n.path for n in graph.nodes if n.layer.kind != "input"] == \
        [layer.name for layer in BUILT["sequential"].layers]
    # The list form stores no model name; everything else must match.
    listed, modern = _comparable(_lint_dict(old)), _comparable(_lint_dict(sequential_h5))
    assert listed["model"].pop("name") == "sequential"
    modern["model"].pop("name")
    assert listed == modern


def test_no_weights_keeps_the_initializer_estimate(old_sequential):
    with_weights = _lint_dict(old_sequential)
    without = _lint_dict(old_sequential, weights=False)
    assert without["model"]["params"] is None
    assert with_weights["model"]["params"] == BUILT["sequential"].count_params()
    for full, fast in zip(with_weights["layers"], without["layers"]):
        assert full["path"] == fast["path"]
        assert fast["estimate"]["stored_weights"] is None
        assert full["estimate"]["stored_weights"] is not None
        for key in ("forward_scale", "gradient", "kernel_gradient"):
            assert full["estimate"][key] == fast["estimate"][key]


def test_hdf5_suffix_is_searched_and_read(old_sequential, tmp_path):
    from click.testing import CliRunner

    from gradlint.cli import main

    folder = tmp_path / "models"
    folder.mkdir()
    shutil.copyfile(old_sequential, folder / "old_model.hdf5")
    result = CliRunner().invoke(main, ["--isolated", "--output-format", "json", "-j", "1",
                                       str(folder)])
    report = json.loads(result.stdout)
    assert [f["path"] for f in report["files"]] == [str(folder / "old_model.hdf5")]
    assert report["files"][0]["error"] is None
    assert report["files"][0]["format"] == "keras-legacy-h5"


KERAS1_CONV = {"nb_filter": 8, "nb_row": 3, "nb_col": 3, "border_mode": "same",
               "subsample": [1, 1], "init": "glorot_uniform", "bias": True,
               "dim_ordering": "tf", "activation": "relu"}


def _keras1_file(tmp_path, save_model, drop=()):
    """A Keras 1.2 file: a tf-keras CNN rewritten with the configuration keys Keras 1.2 used
    (`nb_filter`, `nb_row`/`nb_col`, `border_mode`, `subsample`, `init`, `output_dim`)."""
    import h5py

    def build():
        keras = keras2()
        return keras.Sequential([
            keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv",
                                input_shape=(16, 16, 3)),
            keras.layers.Flatten(name="flatten"),
            keras.layers.Dense(4, name="output")])

    target = derive_legacy_h5(save_model("legacy-keras1-cnn", build, "h5"),
                              tmp_path / "keras1.h5", keras_version="1.2.1")
    with h5py.File(target, "r+") as handle:
        config = json.loads(handle.attrs["model_config"])
        layers = config["config"] if isinstance(config["config"], list) \
            else config["config"]["layers"]
        for layer in layers:
            old = layer["config"]
            keep = {key: old[key] for key in ("name", "trainable", "batch_input_shape")
                    if key in old}
            if layer["class_name"] == "Conv2D":
                layer["class_name"] = "Convolution2D"
                layer["config"] = {**keep, **KERAS1_CONV}
            elif layer["class_name"] == "Dense":
                layer["config"] = {**keep, "output_dim": 4, "init": "glorot_uniform",
                                   "bias": True, "activation": "linear"}
            for key in drop:
                layer["config"].pop(key, None)
        handle.attrs["model_config"] = np.bytes_(json.dumps(config))
    return target


def test_keras_1_configuration_keys_are_read(tmp_path, save_model):
    result = gradlint.lint(str(_keras1_file(tmp_path, save_model))).files[0]
    assert result.error is None, result.error
    layers = {layer["path"]: layer for layer in result.layers}
    assert layers["conv"]["class"] == "Convolution2D" and layers["conv"]["kind"] == "conv"
    assert layers["conv"]["estimate"]["kernel_gradient"] is not None
    assert layers["output"]["estimate"]["forward_scale"] is not None


def test_a_keras_1_convolution_without_its_filters_is_unreadable(tmp_path, save_model):
    result = gradlint.lint(str(_keras1_file(tmp_path, save_model, drop=("nb_filter",)))
                           ).files[0]
    assert result.error is not None and "'filters' is missing" in result.error["message"]


def _keras1_weight_names(path, bias_shift=0.0):
    """The file's weights stored as Keras 1 stored them: `model_weights/conv/conv_W:0` and
    `conv_b:0` (the layer's name and a letter), with `bias_shift` added to the biases."""
    import h5py

    with h5py.File(path, "r+") as handle:
        for layer_name, group in handle["model_weights"].items():
            names = [n.decode() if isinstance(n, bytes) else str(n)
                     for n in group.attrs.get("weight_names", [])]
            renamed = []
            for name in names:
                letter = {"kernel": "W", "bias": "b"}[name.rsplit("/", 1)[-1].split(":")[0]]
                values = group[name][()] + (bias_shift if letter == "b" else 0.0)
                del group[name]
                group[f"{layer_name}_{letter}:0"] = values
                renamed.append(f"{layer_name}_{letter}:0")
            for child in [key for key in group if isinstance(group[key], h5py.Group)]:
                del group[child]
            group.attrs["weight_names"] = np.array([n.encode() for n in renamed])
    return path


def test_keras_1_weight_names_reach_the_stored_weights_estimate(tmp_path, save_model):
    # Keras 1 named tensors `<layer>_W` and `<layer>_b`: read, but mapped to no role, so the
    # stored-weights rules (GL103, GL206, GL207) could never fire on a Keras 1 file.
    healthy = _keras1_weight_names(_keras1_file(tmp_path, save_model))
    graph = read_model(str(healthy))
    conv = next(layer for layer in graph.layers() if layer.path == "conv")
    assert [stats.role for stats in conv.weights] == ["kernel", "bias"]
    assert conv.weight("kernel").shape == (3, 3, 3, 8)
    assert gradlint.lint(str(healthy)).files[0].findings == []
    dead = tmp_path / "dead"
    dead.mkdir()
    silenced = _keras1_weight_names(_keras1_file(dead, save_model), bias_shift=-50.0)
    codes = {f.code: f for f in gradlint.lint(str(silenced)).files[0].findings}
    assert "GL103" in codes and codes["GL103"].layer == "conv"


def test_the_probe_says_why_it_cannot_load_a_keras_1_file(tmp_path, save_model):
    # Keras 3 failed with "pop expected at most 1 argument, got 2", tf-keras with
    # "Keyword argument not understood: input_dtype": now the reason, in words.
    path = _keras1_file(tmp_path, save_model)
    result = gradlint.lint(str(path), probe=True).files[0]
    assert result.error is None
    assert result.probe is not None and result.probe.get("ran") is False
    message = json.dumps(result.probe)
    assert "written by Keras 1.2.1" in message and "neither Keras 3 nor tf-keras" in message
