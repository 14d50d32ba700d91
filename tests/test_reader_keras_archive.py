"""The `.keras` archive reader: Keras 3 archives (Functional, Sequential, nested, shared
layers, several inputs and outputs, every way of giving an activation, wrappers, custom
layers, subclassed models), weight statistics, and archives written by tf-keras."""

from __future__ import annotations

import io
import json
import zipfile

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from gradlint.cli import main
from gradlint.readers import read_model

from conftest import keras2, keras3, run_gradlint

PREFIX = "test_reader_keras_archive"
BUILT: dict[str, object] = {}


# --- models -------------------------------------------------------------------------------

def build_multi():
    """Two inputs, a shared layer called twice, a nested Functional model, activation layers
    and two outputs; layer names unlike the class-based keys of the weights file."""
    keras = keras3()
    layers = keras.layers
    enc_in = keras.Input((16,), name="enc_in")
    h = layers.Dense(24, activation="relu", name="dense_1")(enc_in)
    h = layers.Dense(8, activation="tanh", name="dense_2")(h)
    encoder = keras.Model(enc_in, h, name="encoder")
    left = keras.Input((16,), name="left")
    right = keras.Input((16,), name="right")
    shared = layers.Dense(16, activation="sigmoid", name="shared")
    x = layers.Concatenate(name="merge")([encoder(shared(left)), shared(right)])
    x = layers.Activation("relu", name="act_relu")(x)
    x = layers.ReLU(name="relu_layer")(x)
    x = layers.LeakyReLU(negative_slope=0.2, name="leaky")(x)
    x = layers.PReLU(name="prelu")(x)
    x = layers.ELU(alpha=0.5, name="elu")(x)
    regression = layers.Dense(3, name="regression")(x)
    classes = layers.Softmax(name="probabilities")(layers.Dense(4, name="logits")(x))
    model = keras.Model([left, right], [regression, classes], name="multi")
    BUILT["multi"] = model
    return model


def build_activations():
    """A Sequential model with activations as strings, serialized functions and layers."""
    keras = keras3()
    import tensorflow as tf

    layers = keras.layers

    def my_gate(x):
        return keras.ops.tanh(x) * 0.5

    model = keras.Sequential([
        keras.Input((12,)),
        layers.Dense(12, activation="tanh", name="as_string"),
        layers.Dense(12, activation=tf.nn.silu, name="as_function"),
        layers.Dense(12, activation=layers.LeakyReLU(negative_slope=0.1), name="as_layer"),
        layers.Dense(12, activation=my_gate, name="as_custom_function"),
        layers.Dense(12, name="linear_then_layer"),
        layers.ReLU(max_value=6.0, name="relu6_layer"),
        layers.Dense(2, activation="softmax", name="out"),
    ], name="activations")
    BUILT["activations"] = model
    return model


def build_sequential_without_input():
    keras = keras3()
    layers = keras.layers
    model = keras.Sequential([layers.Dense(8, activation="relu", name="hidden"),
                              layers.Dense(2, name="out")], name="deferred")
    model.build((None, 5))
    BUILT["deferred"] = model
    return model


def build_nested_sequential():
    keras = keras3()
    layers = keras.layers
    block = keras.Sequential([keras.Input((8,)), layers.Dense(8, activation="relu", name="inner_a"),
                              layers.Dense(8, activation="relu", name="inner_b")], name="block")
    model = keras.Sequential([keras.Input((8,)), layers.Dense(8, name="first"), block,
                              layers.Dense(1, name="out")], name="outer")
    BUILT["nested_sequential"] = model
    return model


def build_wrappers():
    keras = keras3()
    layers = keras.layers
    inputs = keras.Input((10, 6), name="sequence")
    x = layers.Bidirectional(layers.SimpleRNN(8, return_sequences=True), name="bi")(inputs)
    x = layers.TimeDistributed(layers.Dense(8, activation="relu"), name="per_step")(x)
    x = layers.RNN(layers.SimpleRNNCell(8), name="cell_rnn")(x)
    outputs = layers.Dense(1, name="out")(x)
    model = keras.Model(inputs, outputs, name="wrappers")
    BUILT["wrappers"] = model
    return model


def _register_custom_layer():
    keras = keras3()
    if "gate_class" not in BUILT:
        @keras.saving.register_keras_serializable(package=PREFIX)
        class ScaledGate(keras.layers.Layer):
            def __init__(self, units=8, **kwargs):
                super().__init__(**kwargs)
                self.units = units

            def build(self, shape):
                self.w = self.add_weight(shape=(shape[-1], self.units),
                                         initializer="glorot_uniform", name="w")

            def call(self, x):
                return keras.ops.tanh(x @ self.w) / 100.0

            def get_config(self):
                return {**super().get_config(), "units": self.units}

        BUILT["gate_class"] = ScaledGate
    return BUILT["gate_class"]


def build_custom_layer():
    keras = keras3()
    layers = keras.layers
    gate = _register_custom_layer()
    inputs = keras.Input((8,), name="features")
    x = layers.Dense(8, activation="relu", name="before")(inputs)
    x = gate(8, name="gate")(x)
    x = layers.Lambda(lambda t: t * 2.0, name="doubler")(x)
    outputs = layers.Dense(1, name="out")(x)
    model = keras.Model(inputs, outputs, name="custom")
    BUILT["custom"] = model
    return model


def _subclassed(nan: bool):
    keras = keras3()
    layers = keras.layers
    key = "subclass_class"
    if key not in BUILT:
        @keras.saving.register_keras_serializable(package=PREFIX)
        class TwoLayer(keras.Model):
            def __init__(self, units=8, **kwargs):
                super().__init__(**kwargs)
                self.units = units
                self.hidden = layers.Dense(units, activation="relu")
                self.out = layers.Dense(1)

            def call(self, x):
                return self.out(self.hidden(x))

            def get_config(self):
                return {"units": self.units, "name": self.name}

        BUILT[key] = TwoLayer
    model = BUILT[key](8, name="nan_subclass" if nan else "subclass")
    model(np.zeros((1, 4), dtype="float32"))
    if nan:
        kernel = model.hidden.kernel.numpy()
        kernel[0, 0] = np.nan
        model.hidden.kernel.assign(kernel)
    BUILT["nan_subclass" if nan else "subclass"] = model
    return model


def build_nested_called_twice():
    keras = keras3()
    layers = keras.layers
    tower = keras.Sequential([keras.Input((4,)), layers.Dense(4, activation="tanh", name="proj")],
                             name="tower")
    a = keras.Input((4,), name="a")
    b = keras.Input((4,), name="b")
    model = keras.Model([a, b], layers.Add(name="sum")([tower(a), tower(b)]), name="siamese")
    BUILT["siamese"] = model
    return model


def build_weight_patterns():
    """Kernels with known zeros and non-finite values, set after building."""
    keras = keras3()
    layers = keras.layers
    model = keras.Sequential([keras.Input((6,)),
                              layers.Dense(8, activation="relu", name="half_zero"),
                              layers.Dense(4, activation="relu", name="broken"),
                              layers.Dense(1, name="out")], name="patterns")
    kernel = model.get_layer("half_zero").kernel.numpy()
    kernel[:3] = 0.0
    model.get_layer("half_zero").kernel.assign(kernel)
    broken = model.get_layer("broken").kernel.numpy()
    broken[0, 0] = np.nan
    broken[1, 1] = np.inf
    model.get_layer("broken").kernel.assign(broken)
    BUILT["patterns"] = model
    return model


def build_tf_keras_functional():
    keras = keras2()
    layers = keras.layers
    left = keras.Input((6,), name="left")
    right = keras.Input((6,), name="right")
    shared = layers.Dense(10, activation="relu", name="shared")
    encoder = keras.Sequential([keras.Input((10,)),
                                layers.Dense(8, activation="tanh", name="enc_dense")],
                               name="encoder")
    merged = layers.Concatenate(name="merge")([encoder(shared(left)), shared(right)])
    hidden = layers.Dense(6, activation="sigmoid", name="hidden")(merged)
    out = layers.Dense(1, name="out")(hidden)
    model = keras.Model([left, right], out, name="tfk_functional")
    model.compile(keras.optimizers.Adam(learning_rate=0.05), "mse")
    BUILT["tfk_functional"] = model
    return model


def build_tf_keras_sequential():
    keras = keras2()
    layers = keras.layers
    model = keras.Sequential([keras.Input((8, 3)),
                              layers.SimpleRNN(6, return_sequences=True, name="rnn"),
                              layers.Flatten(name="flat"),
                              layers.Dense(5, activation="relu", name="hidden"),
                              layers.Dense(1, activation="sigmoid", name="prob")], name="tfk_seq")
    BUILT["tfk_sequential"] = model
    return model


# --- helpers ------------------------------------------------------------------------------

def _keras_layers_by_path(model, prefix=""):
    """Every leaf layer of a (possibly nested) Keras model by gradlint's path name, without
    the input layers."""
    found = {}
    for layer in model.layers:
        if type(layer).__name__ == "InputLayer":
            continue
        if hasattr(layer, "layers") and type(layer).__name__ in ("Functional", "Sequential"):
            found.update(_keras_layers_by_path(layer, f"{prefix}{layer.name}/"))
        else:
            found[prefix + layer.name] = layer
    return found


def _summary(values):
    values = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(values)
    good = values[finite]
    return (tuple(values.shape), float(good.mean()) if good.size else 0.0,
            float(good.std()) if good.size else 0.0,
            float(np.mean(values == 0.0)), bool(finite.all()))


def _assert_weights_match(graph, model):
    """Each weighted Keras layer's arrays against the statistics read for the same path."""
    by_path = {layer.path: layer for layer in graph.layers()}
    checked = 0
    for path, keras_layer in _keras_layers_by_path(model).items():
        arrays = [v.numpy() for v in keras_layer.weights]
        if not arrays:
            continue
        assert path in by_path, path
        stats = by_path[path].weights
        expected = sorted(_summary(a) for a in arrays)
        found = sorted((s.shape, s.mean, s.std, s.zero_fraction, s.finite) for s in stats)
        assert len(found) == len(expected), path
        for want, got in zip(expected, found):
            assert got[0] == want[0], path
            assert got[1] == pytest.approx(want[1], rel=1e-5, abs=1e-8), path
            assert got[2] == pytest.approx(want[2], rel=1e-5, abs=1e-8), path
            assert got[3] == pytest.approx(want[3]), path
            assert got[4] == want[4], path
        checked += 1
    assert checked > 0


def _rewrite_archive(source, target, *, strip_names=False, compression=zipfile.ZIP_STORED):
    """Copy a `.keras` archive, optionally removing the `name` attribute Keras 3.6+ writes on
    each `vars` group (as Keras 3.0-3.5 files lack it) and choosing the members' compression."""
    with zipfile.ZipFile(source) as archive:
        members = [(info.filename, archive.read(info)) for info in archive.infolist()]
    rewritten = []
    for name, data in members:
        if name == "model.weights.h5" and strip_names:
            buffer = io.BytesIO(data)
            with h5py.File(buffer, "r+") as weights:
                groups = []
                weights.visititems(lambda key, item: groups.append(item)
                                   if isinstance(item, h5py.Group) and "name" in item.attrs
                                   else None)
                for group in groups:
                    del group.attrs["name"]
            data = buffer.getvalue()
        rewritten.append((name, data))
    with zipfile.ZipFile(target, "w", compression=compression) as archive:
        for name, data in rewritten:
            archive.writestr(name, data)
    return target


def _lint(path, *args):
    result = CliRunner().invoke(main, ["--isolated", "-j", "1", "--output-format", "json",
                                       *args, str(path)])
    assert "Traceback" not in result.output
    return result.exit_code, json.loads(result.stdout)


# --- fixtures -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def multi(save_model):
    return save_model(f"{PREFIX}-multi", build_multi)


@pytest.fixture(scope="module")
def activations_model(save_model):
    return save_model(f"{PREFIX}-activations", build_activations)


@pytest.fixture(scope="module")
def wrappers(save_model):
    return save_model(f"{PREFIX}-wrappers", build_wrappers)


@pytest.fixture(scope="module")
def custom(save_model):
    return save_model(f"{PREFIX}-custom", build_custom_layer)


@pytest.fixture(scope="module")
def subclass(save_model):
    return save_model(f"{PREFIX}-subclass", lambda: _subclassed(nan=False))


@pytest.fixture(scope="module")
def tfk_functional(save_model):
    return save_model(f"{PREFIX}-tfk-functional", build_tf_keras_functional, "keras2")


@pytest.fixture(scope="module")
def tfk_sequential(save_model):
    return save_model(f"{PREFIX}-tfk-sequential", build_tf_keras_sequential, "keras2")


# --- Keras 3 graphs -----------------------------------------------------------------------

def test_functional_graph(multi):
    model = BUILT["multi"]
    graph = read_model(str(multi))
    assert graph.format == "keras-v3-archive"
    assert graph.model_class == "Functional"
    assert graph.name == "multi"
    assert graph.keras_version == keras3().__version__
    assert [graph.nodes[i].path for i in graph.inputs] == ["left", "right"]
    assert [graph.nodes[i].path for i in graph.outputs] == ["regression", "probabilities"]
    expected_paths = set(_keras_layers_by_path(model))
    paths = [node.path for node in graph.nodes if node.layer.kind != "input"]
    assert set(paths) == expected_paths | {"shared@1"}
    assert len(paths) == len(set(paths))
    for node in graph.nodes:
        for source in node.inputs:
            assert source < node.id  # topological order


def test_nested_functional_is_flattened(multi):
    graph = read_model(str(multi))
    by_path = {node.path: node for node in graph.nodes}
    assert "encoder/dense_1" in by_path and "encoder/dense_2" in by_path
    assert "encoder" not in by_path
    assert [graph.nodes[i].path for i in by_path["encoder/dense_1"].inputs] == ["shared"]
    assert [graph.nodes[i].path for i in by_path["encoder/dense_2"].inputs] == ["encoder/dense_1"]
    assert by_path["encoder/dense_2"].output_shape == (None, 8)


def test_shared_layer_called_twice(multi):
    graph = read_model(str(multi))
    by_path = {node.path: node for node in graph.nodes}
    first, second = by_path["shared"], by_path["shared@1"]
    assert first.layer is second.layer
    assert (first.call_index, second.call_index) == (0, 1)
    assert [graph.nodes[i].path for i in first.inputs] == ["left"]
    assert [graph.nodes[i].path for i in second.inputs] == ["right"]
    assert sorted(graph.nodes[i].path for i in by_path["merge"].inputs) == \
        ["encoder/dense_2", "shared@1"]
    assert sum(1 for layer in graph.layers() if layer.path == "shared") == 1
    assert graph.params == BUILT["multi"].count_params()


def test_activation_layers(multi):
    graph = read_model(str(multi))
    activation = {layer.path: str(layer.activation) for layer in graph.layers()}
    assert activation["act_relu"] == "relu"
    assert activation["relu_layer"] == "relu"
    assert activation["leaky"] == "leaky_relu(0.2)"
    assert activation["prelu"] == "relu"  # PReLU starts from Keras's zero alpha
    assert activation["elu"] == "elu(0.5)"
    assert activation["probabilities"] == "softmax"
    assert activation["shared"] == "sigmoid"
    assert activation["encoder/dense_2"] == "tanh"
    kinds = {layer.path: layer.kind for layer in graph.layers()}
    for path in ("act_relu", "relu_layer", "leaky", "prelu", "elu", "probabilities"):
        assert kinds[path] == "activation"


def test_activation_forms(activations_model):
    graph = read_model(str(activations_model))
    config = json.loads(zipfile.ZipFile(activations_model).read("config.json"))
    given = {layer["config"]["name"]: layer["config"].get("activation")
             for layer in config["config"]["layers"]}
    # The forms really are in the file: a string, a serialized function, a layer.
    assert given["as_string"] == "tanh"
    assert isinstance(given["as_function"], dict)
    assert given["as_function"]["class_name"] == "function"
    assert isinstance(given["as_layer"], dict) and given["as_layer"]["class_name"] == "LeakyReLU"
    activation = {layer.path: layer.activation for layer in graph.layers()}
    assert str(activation["as_string"]) == "tanh"
    assert str(activation["as_function"]) == "swish"
    assert str(activation["as_layer"]) == "leaky_relu(0.1)"
    assert activation["as_custom_function"].name.startswith("unknown")
    assert str(activation["linear_then_layer"]) == "linear"
    assert str(activation["relu6_layer"]) == "relu6"
    # In the JSON, a weighted layer followed by an activation layer reports that activation.
    _, report = _lint(activations_model)
    reported = {entry["path"]: entry["activation"] for entry in report["files"][0]["layers"]}
    assert reported["linear_then_layer"] == "relu6"
    assert reported["as_function"] == "swish"


def test_sequential_without_input_layer(save_model):
    path = save_model(f"{PREFIX}-deferred", build_sequential_without_input)
    graph = read_model(str(path))
    assert graph.model_class == "Sequential"
    assert len(graph.inputs) == 1
    assert graph.nodes[graph.inputs[0]].output_shape == (None, 5)
    assert [n.path for n in graph.nodes if n.layer.kind != "input"] == ["hidden", "out"]
    assert [n.output_shape for n in graph.nodes if n.layer.kind != "input"] == \
        [(None, 8), (None, 2)]
    _assert_weights_match(graph, BUILT["deferred"])


def test_nested_sequential(save_model):
    path = save_model(f"{PREFIX}-nested-sequential", build_nested_sequential)
    graph = read_model(str(path))
    paths = [n.path for n in graph.nodes if n.layer.kind != "input"]
    assert paths == ["first", "block/inner_a", "block/inner_b", "out"]
    for node in graph.nodes[1:]:
        assert node.inputs == [node.id - 1]
    _assert_weights_match(graph, BUILT["nested_sequential"])


def test_wrappers(wrappers):
    graph = read_model(str(wrappers))
    layers = {layer.path: layer for layer in graph.layers()}
    bi, per_step, cell_rnn = layers["bi"], layers["per_step"], layers["cell_rnn"]
    assert bi.class_name == "Bidirectional" and bi.inner.class_name == "SimpleRNN"
    assert per_step.class_name == "TimeDistributed" and per_step.inner.class_name == "Dense"
    assert str(per_step.activation) == "relu"
    assert cell_rnn.class_name == "RNN" and cell_rnn.inner.class_name == "SimpleRNNCell"
    shapes = {node.path: node.output_shape for node in graph.nodes}
    for name in ("bi", "per_step", "cell_rnn", "out"):
        assert shapes[name] == tuple(BUILT["wrappers"].get_layer(name).output.shape), name
    _assert_weights_match(graph, BUILT["wrappers"])
    _, report = _lint(wrappers)
    ungated = {f["layer"] for f in report["files"][0]["findings"] if f["code"] == "GL401"}
    assert ungated == {"bi", "cell_rnn"}


def test_custom_layers_are_opaque_nodes(custom):
    graph = read_model(str(custom))
    layers = {layer.path: layer for layer in graph.layers()}
    gate = layers["gate"]
    assert gate.kind == "unknown"
    assert gate.custom
    assert gate.class_name == "ScaledGate"
    assert layers["doubler"].kind == "opaque"
    assert [s.shape for s in gate.weights] == [(8, 8)]
    code, report = _lint(custom)
    result = report["files"][0]
    unknown = {f["layer"]: f for f in result["findings"] if f["code"] == "GL002"}
    assert set(unknown) == {"gate", "doubler"}
    assert all(f["severity"] == "info" for f in unknown.values())
    assert "ScaledGate" in unknown["gate"]["message"]
    entries = {entry["path"]: entry for entry in result["layers"]}
    assert entries["gate"]["kind"] == "unknown"
    # The estimate passes the signal through unchanged: the custom code is never run.
    assert entries["gate"]["estimate"]["forward_scale"] == \
        entries["before"]["estimate"]["forward_scale"]
    assert code == 0


def test_subclassed_model(subclass):
    graph = read_model(str(subclass))
    assert graph.graph_stored is False
    assert graph.model_class == "TwoLayer"
    code, report = _lint(subclass)
    result = report["files"][0]
    assert result["error"] is None
    assert [f["code"] for f in result["findings"]] == ["GL002"]
    assert "graph" in result["findings"][0]["message"]
    assert code == 0


def test_subclassed_model_weights_are_still_checked(save_model):
    """The file of a subclassed model has no layer graph, but its weights are in it: a NaN
    kernel is still found."""
    path = save_model(f"{PREFIX}-nan-subclass", lambda: _subclassed(nan=True))
    code, report = _lint(path)
    codes = [f["code"] for f in report["files"][0]["findings"]]
    assert "GL002" in codes
    assert "GL205" in codes
    assert code == 1
    assert report["files"][0]["model"]["params"] == BUILT["nan_subclass"].count_params()


def test_nested_model_called_twice(save_model):
    """A nested model called twice shares its layers: its weights count once."""
    path = save_model(f"{PREFIX}-siamese", build_nested_called_twice)
    graph = read_model(str(path))
    paths = [n.path for n in graph.nodes if n.layer.kind != "input"]
    assert paths == ["tower/proj", "tower/proj@1", "sum"]
    assert graph.params == BUILT["siamese"].count_params()


def build_nested_functional_outputs():
    """A Functional model whose outputs are the calls of a nested Functional model, called
    twice: Keras 3 numbers those calls from 1 in `output_layers` (the nested model's own
    node is 0) and from 0 where a layer reads them."""
    keras = keras3()
    layers = keras.layers
    encoder_input = keras.Input((4,), name="encoder_input")
    encoder = keras.Model(encoder_input, layers.Dense(3, name="code")(encoder_input),
                          name="encoder")
    a, b = keras.Input((4,), name="a"), keras.Input((6,), name="b")
    b_reduced = layers.Dense(4, name="reduce")(b)
    model = keras.Model([a, b], [encoder(a), encoder(b_reduced)], name="two_codes")
    BUILT["two_codes"] = model
    return model


def test_outputs_that_are_a_nested_models_calls(save_model):
    path = save_model(f"{PREFIX}-two-codes", build_nested_functional_outputs)
    config = json.loads(zipfile.ZipFile(path).read("config.json"))
    assert config["config"]["output_layers"] == [["encoder", 1, 0], ["encoder", 2, 0]]
    graph = read_model(str(path))
    assert [graph.nodes[i].path for i in graph.outputs] == ["encoder/code", "encoder/code@1"]
    # Each output reads its own call: the first the input a, the second the reduced b.
    first, second = (graph.nodes[i] for i in graph.outputs)
    assert graph.nodes[first.inputs[0]].path == "a"
    assert graph.nodes[second.inputs[0]].path == "reduce"
    assert graph.params == BUILT["two_codes"].count_params()


# --- weight statistics --------------------------------------------------------------------

def test_weights_map_to_layers_by_name(multi):
    """Keras keys weights by class (`dense`, `dense_1`, ...) while the layers are named
    `shared`, `logits`, `regression`: statistics must land on the right layer."""
    graph = read_model(str(multi))
    assert graph.weights_read
    _assert_weights_match(graph, BUILT["multi"])
    shared = next(layer for layer in graph.layers() if layer.path == "shared")
    assert [s.role for s in shared.weights] == ["kernel", "bias"]
    assert shared.weight("kernel").shape == (16, 16)
    assert shared.weight("bias").zero_fraction == 1.0


def test_weights_map_by_order_without_name_attributes(multi, tmp_path):
    """Keras 3.0-3.5 wrote no `name` attribute on the `vars` groups: order decides."""
    old = _rewrite_archive(multi, tmp_path / f"{PREFIX}-noname.keras", strip_names=True)
    with zipfile.ZipFile(old) as archive:
        with h5py.File(io.BytesIO(archive.read("model.weights.h5")), "r") as weights:
            names = []
            weights.visititems(
                lambda key, item: names.append(key) if "name" in item.attrs else None)
    assert names == []
    _assert_weights_match(read_model(str(old)), BUILT["multi"])


def test_weights_from_a_compressed_archive(multi, tmp_path):
    deflated = _rewrite_archive(multi, tmp_path / f"{PREFIX}-deflated.keras",
                                compression=zipfile.ZIP_DEFLATED)
    with zipfile.ZipFile(deflated) as archive:
        assert archive.getinfo("model.weights.h5").compress_type == zipfile.ZIP_DEFLATED
    _assert_weights_match(read_model(str(deflated)), BUILT["multi"])


def test_weight_statistics(save_model):
    path = save_model(f"{PREFIX}-patterns", build_weight_patterns)
    model = BUILT["patterns"]
    graph = read_model(str(path))
    layers = {layer.path: layer for layer in graph.layers()}
    half = model.get_layer("half_zero").kernel.numpy()
    stats = layers["half_zero"].weight("kernel")
    assert stats.shape == half.shape
    assert stats.zero_fraction == pytest.approx(float(np.mean(half == 0.0)))
    assert stats.mean == pytest.approx(float(half.astype(np.float64).mean()), rel=1e-5)
    assert stats.std == pytest.approx(float(half.astype(np.float64).std()), rel=1e-5)
    assert stats.finite
    broken = layers["broken"].weight("kernel")
    assert broken.finite is False
    stored = model.get_layer("broken").kernel.numpy()
    assert broken.nonfinite_count == int((~np.isfinite(stored)).sum())
    assert layers["out"].weight("kernel").finite
    _, report = _lint(path)
    non_finite = [f for f in report["files"][0]["findings"] if f["code"] == "GL205"]
    assert [f["layer"] for f in non_finite] == ["broken"]


def build_huge_weights():
    """A diverged model: finite float32 weights whose squares overflow float32."""
    keras = keras3()
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(4, name="diverged"),
                              keras.layers.Dense(1, name="out")], name="diverged")
    kernel = model.get_layer("diverged").kernel.numpy()
    kernel[:] = 1e30
    kernel[0, 0] = -3e30
    model.get_layer("diverged").kernel.assign(kernel)
    BUILT["diverged"] = model
    return model


def test_huge_finite_weights(save_model):
    """Statistics of huge but finite weights are right, and reading them prints nothing on
    standard error (no numpy overflow warnings leak to the user)."""
    path = save_model(f"{PREFIX}-diverged", build_huge_weights)
    stats = {layer.path: layer for layer in read_model(str(path)).layers()}["diverged"]
    values = BUILT["diverged"].get_layer("diverged").kernel.numpy().astype(np.float64)
    kernel = stats.weight("kernel")
    assert kernel.finite
    assert kernel.mean == pytest.approx(values.mean(), rel=1e-6)
    assert kernel.std == pytest.approx(values.std(), rel=1e-5)
    result = run_gradlint("--isolated", path)
    assert result.returncode in (0, 1)
    assert result.stderr == ""


def test_no_weights_reads_no_statistics(multi):
    graph = read_model(str(multi), read_weights=False)
    assert not graph.weights_read
    assert graph.params is None
    assert all(not layer.weights for layer in graph.layers())


# --- archives written by tf-keras ---------------------------------------------------------

def test_tf_keras_archive_graph(tfk_functional):
    model = BUILT["tfk_functional"]
    graph = read_model(str(tfk_functional))
    assert graph.format == "keras-v2-archive"
    assert graph.keras_version.startswith("2.")
    paths = [node.path for node in graph.nodes]
    assert paths.count("shared") == 1 and paths.count("shared@1") == 1
    assert "encoder/enc_dense" in paths
    by_path = {node.path: node for node in graph.nodes}
    assert sorted(graph.nodes[i].path for i in by_path["merge"].inputs) == \
        ["encoder/enc_dense", "shared@1"]
    assert [graph.nodes[i].path for i in graph.outputs] == ["out"]
    assert str(by_path["hidden"].layer.activation) == "sigmoid"
    assert graph.training.optimizer == "Adam"
    assert graph.training.learning_rate == pytest.approx(
        float(model.optimizer.learning_rate.numpy()))
    _assert_weights_match(graph, model)
    assert graph.params == model.count_params()


def test_tf_keras_archive_sequential(tfk_sequential):
    model = BUILT["tfk_sequential"]
    graph = read_model(str(tfk_sequential))
    assert graph.format == "keras-v2-archive"
    assert [n.path for n in graph.nodes if n.layer.kind != "input"] == \
        [layer.name for layer in model.layers]
    assert graph.nodes[graph.inputs[0]].output_shape == tuple(model.input_shape)
    shapes = {n.path: n.output_shape for n in graph.nodes}
    for layer in model.layers:
        assert shapes[layer.name] == tuple(layer.output_shape), layer.name
    _assert_weights_match(graph, model)
    _, report = _lint(tfk_sequential)
    assert "GL401" in {f["code"] for f in report["files"][0]["findings"]}
