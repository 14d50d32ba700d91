"""Hostile configuration values: one value of a real saved model's configuration rewritten
(in a Keras 3 archive's config.json, or in a tf-keras .h5 file's `model_config` attribute),
or one stored kernel made one-dimensional.

A value no Keras could have saved and that the shapes or the estimate would compute with
(``units: {}``, ``strides: [0, 0]``, a dict inside a recorded shape) makes the file
unreadable: GL001 naming the layer and the key, exit status 2, no traceback. An odd value
the estimate can live with (a NaN initializer stddev, a 1-D stored kernel, a huge but
finite slope) leaves the file linted, says what was passed through, and prints no warning.
"""

from __future__ import annotations

import io
import json
import math
import shutil
import warnings
import zipfile

import h5py
import numpy as np
import pytest

import gradlint
from gradlint import activations, initializers
from gradlint.config import Settings
from gradlint.engine import lint_file
from gradlint.graph import Activation

from conftest import keras2, keras3, run_gradlint

PREFIX = "test_hostile_config_values"
NAN, INF = math.nan, math.inf


def build_keras3():
    """Dense, Conv1D, Conv2D (one grouped), LeakyReLU, LSTM and BatchNormalization."""
    keras = keras3()
    layers = keras.layers
    image = keras.Input((12, 12, 4), name="image")
    x = layers.Conv2D(8, 3, name="conv2d")(image)
    x = layers.Conv2D(8, 3, groups=2, name="grouped")(x)
    x = layers.LeakyReLU(negative_slope=0.1, name="leaky")(x)
    x = layers.MaxPooling2D(name="pool")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    sequence = keras.Input((10, 3), name="sequence")
    y = layers.Conv1D(6, 3, name="conv1d")(sequence)
    y = layers.LSTM(5, name="lstm")(y)
    z = layers.Concatenate(name="concat")([x, y])
    z = layers.Dense(16, activation="relu", name="dense_1",
                     kernel_initializer=keras.initializers.RandomNormal(stddev=0.05))(z)
    z = layers.BatchNormalization(name="bn")(z)
    z = layers.Dense(3, name="out")(z)
    model = keras.Model([image, sequence], z, name="hostile_base")
    model.compile(keras.optimizers.Adam(learning_rate=1e-3), "mse")
    return model


def build_tf_keras():
    """A tf-keras Sequential model with Conv1D, LeakyReLU, LSTM, Reshape((-1, ...)) and
    Dense, saved as legacy HDF5 (which records no tensor shapes: they are inferred)."""
    keras = keras2()
    layers = keras.layers
    model = keras.Sequential([
        layers.Conv1D(6, 3, input_shape=(10, 3), name="conv1d"),
        layers.LeakyReLU(alpha=0.2, name="leaky"),
        layers.LSTM(8, return_sequences=True, name="lstm"),
        layers.Reshape((-1, 4), name="reshape"),
        layers.Flatten(name="flatten"),
        layers.Dense(4, activation="relu", name="dense_1"),
        layers.Dense(1, name="out"),
    ], name="hostile_h5")
    model.compile(keras.optimizers.Adam(learning_rate=1e-3), "mse")
    return model


@pytest.fixture(scope="module")
def base(save_model):
    return save_model(f"{PREFIX}-keras3", build_keras3)


@pytest.fixture(scope="module")
def base_h5(save_model):
    return save_model(f"{PREFIX}-tf-keras", build_tf_keras, "h5")


# --- rewriting one value -------------------------------------------------------------------

def _layers(node):
    """Every serialized layer ({"class_name", "config": {...}}) in a configuration."""
    if isinstance(node, dict):
        if isinstance(node.get("class_name"), str) and isinstance(node.get("config"), dict):
            yield node
        for value in node.values():
            yield from _layers(value)
    elif isinstance(node, list):
        for value in node:
            yield from _layers(value)


def layer_entry(config: dict, name: str) -> dict:
    for entry in _layers(config):
        if entry["config"].get("name") == name:
            return entry
    raise KeyError(name)


def set_key(name: str, key: str, value):
    """An edit: layer `name`'s config key `key` set to `value`."""
    def edit(config):
        layer_entry(config, name)["config"][key] = value
    return edit


def without_input_layer(edit):
    """Keras 2.2 wrote no InputLayer into a Sequential model: the first layer's
    `batch_input_shape` gives the input."""
    def remove_then_edit(config):
        config["config"]["layers"] = [entry for entry in config["config"]["layers"]
                                      if entry["class_name"] != "InputLayer"]
        edit(config)
    return remove_then_edit


def set_initializer(name: str, key: str, value):
    def edit(config):
        layer_entry(config, name)["config"]["kernel_initializer"]["config"][key] = value
    return edit


def set_recorded_shape(name: str, shape):
    """Keras 3 records a `shape` on every input tensor of a call: rewrite layer `name`'s."""
    def edit(config):
        tensor = layer_entry(config, name)["inbound_nodes"][0]["args"][0]
        tensor["config"]["shape"] = shape
    return edit


def set_history(name: str, history):
    def edit(config):
        tensor = layer_entry(config, name)["inbound_nodes"][0]["args"][0]
        tensor["config"]["keras_history"] = history
    return edit


def set_model_key(key: str, value):
    def edit(config):
        config["config"][key] = value
    return edit


def set_optimizer(key: str, value):
    def edit(config):
        config["compile_config"]["optimizer"]["config"][key] = value
    return edit


def rewrite_archive(source, target, edit=None, weights_edit=None):
    """A copy of the archive at `source` with `edit(config)` applied to config.json (as
    json writes it: NaN and Infinity as Python's json writes them), and `weights_edit(h5)`
    to model.weights.h5; the other members unchanged."""
    with zipfile.ZipFile(source) as archive:
        members = [(info, archive.read(info)) for info in archive.infolist()]
    with zipfile.ZipFile(target, "w") as archive:
        for info, data in members:
            if info.filename == "config.json" and edit is not None:
                config = json.loads(data)
                edit(config)
                data = json.dumps(config).encode()
            if info.filename == "model.weights.h5" and weights_edit is not None:
                buffer = io.BytesIO(data)
                with h5py.File(buffer, "r+") as handle:
                    weights_edit(handle)
                data = buffer.getvalue()
            archive.writestr(info, data)
    return target


def rewrite_h5(source, target, edit):
    """A copy of the tf-keras .h5 file with `edit(config)` applied to `model_config`."""
    shutil.copyfile(source, target)
    with h5py.File(target, "r+") as handle:
        raw = handle.attrs["model_config"]
        text = raw.decode() if isinstance(raw, bytes) else str(raw)
        config = json.loads(text)
        edit(config)
        handle.attrs["model_config"] = json.dumps(config)
    return target


def one_dimensional_kernel(group_prefix: str):
    """A weights edit: the first kernel (2-D or more) under `group_prefix` rewritten as a
    1-D dataset of as many values."""
    def edit(handle):
        found = []
        handle[group_prefix].visititems(
            lambda name, item: found.append(name)
            if isinstance(item, h5py.Dataset) and len(item.shape) >= 2 else None)
        path = f"{group_prefix}/{sorted(found)[0]}"
        size = int(np.prod(handle[path].shape))
        dtype = handle[path].dtype
        del handle[path]
        handle.create_dataset(path, data=np.linspace(-0.5, 0.5, size).astype(dtype))
    return edit


def lint_one(path):
    report = gradlint.lint(str(path))
    assert len(report.files) == 1
    return report, report.files[0]


def gl001_message(result) -> str:
    messages = [finding.message for finding in result.findings if finding.code == "GL001"]
    assert messages, f"no GL001 for {result.path}: {[f.code for f in result.findings]}"
    return messages[0]


# --- values no Keras could have saved: GL001 naming the layer and the key -----------------

FATAL = [
    # (case id, edit, what the GL001 message must say)
    ("units-dict", set_key("dense_1", "units", {}),
     "layer 'dense_1': 'units' must be a positive whole number (got {})"),
    ("units-list", set_key("dense_1", "units", [0, 0, 0]),
     "layer 'dense_1': 'units' must be a positive whole number (got [0, 0, 0])"),
    ("units-nan", set_key("dense_1", "units", NAN),
     "layer 'dense_1': 'units' must be a positive whole number (got NaN)"),
    ("units-inf", set_key("dense_1", "units", INF),
     "layer 'dense_1': 'units' must be a positive whole number (got Infinity)"),
    ("units-minus-inf", set_key("dense_1", "units", -INF),
     "layer 'dense_1': 'units' must be a positive whole number (got -Infinity)"),
    ("units-negative", set_key("dense_1", "units", -1),
     "layer 'dense_1': 'units' must be a positive whole number (got -1)"),
    ("units-huge", set_key("dense_1", "units", 1e308),
     "layer 'dense_1': 'units' must be a positive whole number, no larger than 2**40 "
     "(got 1e+308)"),
    ("units-string", set_key("dense_1", "units", "16"),
     "layer 'dense_1': 'units' must be a positive whole number (got \"16\")"),
    ("lstm-units", set_key("lstm", "units", -1),
     "layer 'lstm': 'units' must be a positive whole number (got -1)"),
    ("strides-zero", set_key("conv2d", "strides", [0, 0, 0]),
     "layer 'conv2d': 'strides' must be a positive whole number or a list of 2 of them "
     "(got [0, 0, 0])"),
    ("strides-zeros", set_key("conv2d", "strides", [0, 0]),
     "layer 'conv2d': 'strides' must be a positive whole number or a list of 2 of them "
     "(got [0, 0])"),
    ("strides-huge", set_key("conv2d", "strides", 1e59),
     "layer 'conv2d': 'strides' must be a positive whole number or a list of 2 of them, no "
     "larger than 2**40 (got 1e+59)"),
    ("groups-negative", set_key("grouped", "groups", -1),
     "layer 'grouped': 'groups' must be a positive whole number (got -1)"),
    ("groups-tiny", set_key("grouped", "groups", 1e-300),
     "layer 'grouped': 'groups' must be a positive whole number (got 1e-300)"),
    ("groups-not-dividing", set_key("grouped", "groups", 3),
     "layer 'grouped': 'groups' must be a whole number that divides 'filters' (8) (got 3)"),
    ("filters-string", set_key("conv2d", "filters", "abc"),
     "layer 'conv2d': 'filters' must be a positive whole number (got \"abc\")"),
    ("kernel-size-zero", set_key("conv1d", "kernel_size", [0]),
     "layer 'conv1d': 'kernel_size' must be a positive whole number (or a list of one) "
     "(got [0])"),
    ("dilation-nan", set_key("conv1d", "dilation_rate", NAN),
     "layer 'conv1d': 'dilation_rate' must be a positive whole number (or a list of one) "
     "(got NaN)"),
    ("pool-size-dict", set_key("pool", "pool_size", {"x": 2}),
     "layer 'pool': 'pool_size' must be a positive whole number or a list of 2 of them "
     "(got {\"x\": 2})"),
    ("epsilon-negative", set_key("bn", "epsilon", -1.0),
     "layer 'bn': 'epsilon' must be a finite number of at least 0 (got -1.0)"),
    ("concat-axis", set_key("concat", "axis", "last"),
     "layer 'concat': 'axis' must be a whole number (got \"last\")"),
    ("slope-nan", set_key("leaky", "negative_slope", NAN),
     "layer 'leaky': 'negative_slope' must be a finite number (got NaN)"),
    ("slope-string", set_key("leaky", "negative_slope", "x"),
     "layer 'leaky': 'negative_slope' must be a finite number (got \"x\")"),
    ("recorded-shape-dict", set_recorded_shape("dense_1", [None, {}]),
     "layer 'dense_1': in the input it reads from 'concat', 'shape' must be a list of whole "
     "numbers from 0 to 2**40 or nulls (entry 1 of [null, {}] is {})"),
    ("recorded-shape-huge", set_recorded_shape("dense_1", [None, 1e308]),
     "layer 'dense_1': in the input it reads from 'concat', 'shape' must be a list of whole "
     "numbers from 0 to 2**40 or nulls (entry 1 of [null, 1e+308] is 1e+308)"),
    ("batch-shape-negative", set_key("image", "batch_shape", [None, 12, -12, 4]),
     "layer 'image': 'batch_shape' must be a list of whole numbers from 0 to 2**40 or nulls "
     "(entry 2 of [null, 12, -12, 4] is -12)"),
    ("batch-shape-product", set_key("image", "batch_shape", [None, 2 ** 30, 2 ** 30, 4]),
     "layer 'image': 'batch_shape' describes more than 2**40 values per sample"),
    ("keras-history-index", set_history("dense_1", ["concat", 0, -1]),
     "layer 'dense_1': an input's 'keras_history' must be [layer name, node index, tensor "
     "index] with whole-number indexes (got [\"concat\", 0, -1])"),
    ("no-outputs", set_model_key("output_layers", {}),
     "the model names no outputs (its 'output_layers' is {})"),
]


@pytest.fixture(scope="module")
def fatal_files(base, tmp_path_factory):
    directory = tmp_path_factory.mktemp("fatal")
    return {case: rewrite_archive(base, directory / f"{case}.keras", edit)
            for case, edit, _ in FATAL}


@pytest.mark.parametrize("case, expected", [(case, expected) for case, _, expected in FATAL],
                         ids=[case for case, _, _ in FATAL])
def test_unusable_value_is_gl001_naming_layer_and_key(fatal_files, case, expected):
    report, result = lint_one(fatal_files[case])
    assert result.unreadable
    assert expected in gl001_message(result)
    assert "internal error" not in gl001_message(result)
    assert report.exit_code() == 2


def test_unusable_values_on_the_command_line(fatal_files, base):
    """All the files in one run: each its own GL001, the intact model still linted."""
    paths = [str(path) for path in fatal_files.values()]
    completed = run_gradlint("--output-format", "json", "--isolated", *paths, str(base))
    assert completed.returncode == 2, completed.stderr
    assert "Traceback" not in completed.stderr
    files = {entry["path"]: entry for entry in json.loads(completed.stdout)["files"]}
    for case, _, expected in FATAL:
        entry = files[str(fatal_files[case])]
        codes = [finding["code"] for finding in entry["findings"]]
        assert codes == ["GL001"], (case, codes)
        assert expected in entry["findings"][0]["message"], case
    assert not any(f["code"] == "GL001" for f in files[str(base)]["findings"])


# --- tf-keras legacy HDF5: the same checks on `model_config` -------------------------------

FATAL_H5 = [
    ("units-dict", set_key("dense_1", "units", {}),
     "layer 'dense_1': 'units' must be a positive whole number (got {})"),
    ("lstm-units-nan", set_key("lstm", "units", NAN),
     "layer 'lstm': 'units' must be a positive whole number (got NaN)"),
    ("kernel-size-list", set_key("conv1d", "kernel_size", [3, 3]),
     "layer 'conv1d': 'kernel_size' must be a positive whole number (or a list of one) "
     "(got [3, 3])"),
    ("alpha-nan", set_key("leaky", "alpha", NAN),
     "layer 'leaky': 'alpha' must be a finite number (got NaN)"),
    ("batch-input-shape-dict",
     set_key("conv1d_input", "batch_input_shape", [None, {"dim": 10}, 3]),
     "layer 'conv1d_input': 'batch_input_shape' must be a list of whole numbers from 0 to 2**40 "
     "or nulls (entry 1 of [null, {\"dim\": 10}, 3] is {\"dim\": 10})"),
    ("keras-2.2-first-layer-shape", without_input_layer(
        set_key("conv1d", "batch_input_shape", [None, -10, 3])),
     "layer 'conv1d': 'batch_input_shape' must be a list of whole numbers from 0 to 2**40 or "
     "nulls (entry 1 of [null, -10, 3] is -10)"),
    ("target-shape", set_key("reshape", "target_shape", [-1, -1]),
     "layer 'reshape': 'target_shape' must be a list of whole numbers (at most one of them "
     "-1) (got [-1, -1])"),
]


@pytest.mark.parametrize("case, edit, expected", FATAL_H5, ids=[c for c, _, _ in FATAL_H5])
def test_unusable_value_in_legacy_h5(base_h5, tmp_path, case, edit, expected):
    path = rewrite_h5(base_h5, tmp_path / f"{case}.h5", edit)
    report, result = lint_one(path)
    assert expected in gl001_message(result)
    assert report.exit_code() == 2


def test_unusable_value_in_legacy_h5_command_line(base_h5, tmp_path):
    case, edit, expected = FATAL_H5[0]
    path = rewrite_h5(base_h5, tmp_path / "units.h5", edit)
    completed = run_gradlint("--isolated", str(path))
    assert completed.returncode == 2
    assert "Traceback" not in completed.stderr
    assert "GL001 [error]" in completed.stdout and expected in completed.stdout


def test_reshape_with_inferred_dimension_in_legacy_h5(base_h5):
    """Reshape((-1, 4)) in a file that records no shapes: the -1 is worked out from the
    input, never left as a negative size (which made positions negative)."""
    _, result = lint_one(base_h5)
    assert result.error is None, result.error
    from gradlint.readers import read_model

    graph = read_model(str(base_h5))
    shapes = {node.path: node.output_shape for node in graph.nodes}
    assert shapes["reshape"] == (None, 16, 4)
    assert shapes["flatten"] == (None, 64)


# --- odd but harmless values: linted, passed through with a note, no warning --------------

def lint_quietly(path, **settings):
    """Lint in this process with every warning an error: a warning would become a GL001
    'internal error' and fail the test."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result, analysis = lint_file(str(path), Settings(**settings), keep_analysis=True)
    return result, analysis


def test_nan_initializer_stddev_passes_the_layer_through(base, tmp_path, recwarn):
    path = rewrite_archive(base, tmp_path / "stddev-nan.keras",
                           set_initializer("dense_1", "stddev", NAN))
    result, analysis = lint_quietly(path)
    assert result.error is None, result.error
    assert not recwarn.list
    notes = " ".join(result.notes)
    assert ("layer 'dense_1': its kernel_initializer RandomNormal is not usable ('stddev' must "
            "be a finite number (got NaN)); the estimate from the initializers passes the "
            "signal through this layer") in notes
    assert "passes the signal unchanged through layers it cannot size: dense_1" in notes
    node = next(n for n in analysis.graph.nodes if n.path == "dense_1")
    assert analysis.estimate[node.id].passed_through
    # The stored weights still size it.
    assert not analysis.weights_estimate[node.id].passed_through


HARMLESS = [
    ("slope-huge", set_key("leaky", "negative_slope", 1e308)),
    ("stddev-huge", set_initializer("dense_1", "stddev", 1e200)),
    ("stddev-minus-inf", set_initializer("dense_1", "stddev", -INF)),
    ("momentum-nan", set_key("bn", "momentum", NAN)),
]


@pytest.mark.parametrize("case, edit", HARMLESS, ids=[case for case, _ in HARMLESS])
def test_huge_parameters_give_a_defined_estimate_without_warnings(base, tmp_path, recwarn,
                                                                   case, edit):
    path = rewrite_archive(base, tmp_path / f"{case}.keras", edit)
    result, analysis = lint_quietly(path)
    assert result.error is None, result.error
    assert not recwarn.list
    for estimate in (analysis.estimate, analysis.weights_estimate):
        for record in estimate.nodes:
            for value in (record.forward_scale, record.gradient, record.kernel_gradient,
                          record.input_scale, record.pre_activation_scale):
                assert value is None or not math.isnan(value)
    json.dumps(result.to_dict())


def test_huge_slope_is_reported_as_exploding(base, tmp_path):
    """A LeakyReLU slope of 1e308 overflows the estimate: it is +inf, and GL203 says so."""
    path = rewrite_archive(base, tmp_path / "slope.keras",
                           set_key("leaky", "negative_slope", 1e308))
    _, result = lint_one(path)
    assert result.error is None, result.error
    assert any(finding.code == "GL203" for finding in result.findings)


def test_hostile_parameters_print_no_warning_on_the_command_line(base, tmp_path):
    paths = [rewrite_archive(base, tmp_path / "slope.keras",
                             set_key("leaky", "negative_slope", 1e308)),
             rewrite_archive(base, tmp_path / "stddev.keras",
                             set_initializer("dense_1", "stddev", 1e200)),
             rewrite_archive(base, tmp_path / "stddev-nan.keras",
                             set_initializer("dense_1", "stddev", NAN))]
    completed = run_gradlint("--isolated", "--exit-zero", *map(str, paths),
                             env={"PYTHONWARNINGS": "error"})
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "Warning" not in completed.stderr and "Traceback" not in completed.stderr
    assert "GL001" not in completed.stdout


@pytest.mark.parametrize("layer, prefix, class_name", [
    ("conv1d", "layers/conv1d", "Conv1D"), ("lstm", "layers/lstm", "LSTM")])
def test_one_dimensional_stored_kernel_is_ignored_with_a_note(base, tmp_path, layer, prefix,
                                                              class_name):
    path = rewrite_archive(base, tmp_path / f"{layer}-1d.keras",
                           weights_edit=one_dimensional_kernel(prefix))
    result, analysis = lint_quietly(path)
    assert result.error is None, result.error
    stats = next(n.layer for n in analysis.graph.nodes if n.path == layer).weight("kernel")
    assert len(stats.shape) == 1
    rank = 3 if class_name == "Conv1D" else 2
    assert (f"layer '{layer}': its stored kernel has shape {stats.shape}, but a {class_name} "
            f"kernel has {rank} dimensions; the estimate ignores that tensor for this "
            "layer") in result.notes
    node = next(n for n in analysis.graph.nodes if n.path == layer)
    assert analysis.weights_estimate[node.id].kernel_gradient is not None
    completed = run_gradlint("--isolated", "--exit-zero", str(path))
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "Traceback" not in completed.stderr


@pytest.mark.parametrize("key, value, expected", [
    ("learning_rate", INF, INF), ("learning_rate", NAN, None),
    ("learning_rate", 10 ** 400, INF)])
def test_hostile_learning_rate(base, tmp_path, key, value, expected):
    path = rewrite_archive(base, tmp_path / "rate.keras", set_optimizer(key, value))
    result, analysis = lint_quietly(path)
    assert result.error is None, result.error
    assert analysis.graph.training.learning_rate == expected
    assert any(f.code == "GL403" for f in result.findings) == (expected is not None)


def test_non_finite_clipnorm_clips_nothing(base, tmp_path):
    path = rewrite_archive(base, tmp_path / "clip.keras", set_optimizer("clipnorm", NAN))
    result, analysis = lint_quietly(path)
    assert result.error is None, result.error
    assert analysis.graph.training.clipnorm is None
    assert any(f.code == "GL402" for f in result.findings)


# --- the arithmetic itself ----------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(set(activations.ALIASES.values())))
def test_moments_are_defined_for_any_variance_and_parameter(name):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for parameter in (None, 0.0, 1.0, -1e308, 1e308):
            for q in (0.0, 5e-324, 1e-300, 1.0, 1e30, 1e300, 1e308, INF, NAN, -1.0):
                moment = activations.moments(Activation(name, parameter), q)
                for value in (moment.mean, moment.second, moment.derivative_second):
                    assert not math.isnan(value), (name, parameter, q, moment)


@pytest.mark.parametrize("config, problem", [
    ({"class_name": "RandomNormal", "config": {"stddev": NAN}}, "'stddev' must be a finite"),
    ({"class_name": "TruncatedNormal", "config": {"mean": "0"}}, "'mean' must be a finite"),
    ({"class_name": "RandomUniform", "config": {"maxval": [1]}}, "'maxval' must be a finite"),
    ({"class_name": "VarianceScaling", "config": {"scale": -2.0}},
     "'scale' must be a positive number"),
    ({"class_name": "Orthogonal", "config": {"gain": INF}}, "'gain' must be a finite"),
    ({"class_name": "Constant", "config": {"value": NAN}}, "'value' must be a finite"),
])
def test_unusable_initializer_parameters(config, problem):
    parsed = initializers.parse(config)
    assert parsed.kind == "unknown" and problem in parsed.problem
    assert parsed.second_moment(4.0, 4.0, (4, 4)) is None


def test_huge_initializer_parameters_overflow_to_infinity():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        uniform = initializers.parse({"class_name": "RandomUniform",
                                      "config": {"minval": -1e308, "maxval": 1e308}})
        normal = initializers.parse({"class_name": "RandomNormal", "config": {"stddev": 1e200}})
    assert uniform.second_moment(4.0, 4.0) == INF
    assert normal.second_moment(4.0, 4.0) == INF
