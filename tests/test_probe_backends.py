"""The probe on its second Keras backend (`--probe-backend jax`): the same models measured
on TensorFlow and on JAX give the same numbers and the same verdicts, the JAX process never
imports TensorFlow, tf-keras files are refused there with a clear message, and the probe's
safety attacks (tests/test_probe_safety.py) fail against the JAX process too.

Both backends differentiate the identical NumPy batch and targets (`batch.py`, drawn from
`np.random.default_rng(seed)` in the same order), so the numbers differ only by each
backend's float32 arithmetic: measured here they agree to the 4 significant digits the JSON
keeps. The stated tolerance is 1% relative (`RELATIVE`) for every kernel-gradient ratio,
kernel-gradient norm, forward scale and per-step recurrent input gradient, and 0.02 absolute
(`FRACTION`) for saturated and dead fractions.

The TensorFlow side runs in this process; the JAX side in the one JAX process of the
session (`gradlint.probe.worker`), which pays its start (about 3 s) once.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

import gradlint
from gradlint.config import Settings

import probe_models as models
from conftest import keras2, keras3, run_gradlint

pytest.importorskip("jax")

PREFIX = "test_probe_backends"
RELATIVE = 1e-2
FRACTION = 0.02
# name -> (builder, the codes both backends must report)
CASES = {
    "deep_sigmoid": (models.deep_sigmoid, {"GL101"}),
    "dead_relu": (models.dead_relu, None),
    "saturated_tanh": (models.saturated_tanh, None),
    "simple_rnn": (models.simple_rnn, {"GL401"}),
    "lstm": (models.lstm, None),
    "dict_inputs": (models.dict_inputs, None),
}


def batchnorm_cnn():
    """Conv2D, BatchNormalization and ReLU twice, pooled into a softmax: measured at the
    settings' batch size (32), the batch statistics' batch."""
    keras = keras3()
    keras.utils.set_random_seed(3)
    layers = keras.layers
    inputs = keras.Input((12, 12, 3))
    x = inputs
    for index in range(2):
        x = layers.Conv2D(8, 3, padding="same", name=f"conv_{index}")(x)
        x = layers.BatchNormalization(name=f"norm_{index}")(x)
        x = layers.Activation("relu", name=f"relu_{index}")(x)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = layers.Dense(5, activation="softmax", name="head")(x)
    return keras.Model(inputs, outputs, name="batchnorm_cnn")


CASES["batchnorm_cnn"] = (batchnorm_cnn, None)


@pytest.fixture(scope="module")
def paths(save_model):
    return {name: save_model(f"{PREFIX}-{name}", build) for name, (build, _) in CASES.items()}


@pytest.fixture(scope="module")
def reports(paths):
    """Both backends over every model: one lint each (TensorFlow here, JAX in its process)."""
    names = sorted(paths)
    results = {}
    for backend in ("tensorflow", "jax"):
        report = gradlint.lint([str(paths[name]) for name in names], probe=True,
                               settings=Settings(probe_backend=backend))
        results[backend] = {name: file for name, file in zip(names, report.files)}
    return results


def close(a, b, relative=RELATIVE) -> bool:
    if a is None or b is None:
        return a is b
    if not (math.isfinite(a) and math.isfinite(b)):
        return (math.isnan(a) and math.isnan(b)) or a == b
    return math.isclose(a, b, rel_tol=relative, abs_tol=1e-12)


def _compare_numbers(tf_result, jax_result) -> list[str]:
    """What differs between the two backends' measurements of one model, beyond the
    tolerances."""
    problems = []
    for result, backend in ((tf_result, "tensorflow"), (jax_result, "jax")):
        if result.probe["ran"] is not True or result.probe.get("backend") != backend:
            return [f"{backend}: the probe did not run: {result.probe}"]
    for key in ("seeds", "batch", "batch_statistics", "input_shapes", "reference_layer",
                "loss", "nonfinite"):
        if tf_result.probe[key] != jax_result.probe[key]:
            problems.append(f"probe {key}: {tf_result.probe[key]} != {jax_result.probe[key]}")
    tf_layers = {entry["path"]: entry["measured"] for entry in tf_result.layers}
    jax_layers = {entry["path"]: entry["measured"] for entry in jax_result.layers}
    if tf_layers.keys() != jax_layers.keys():
        return problems + [f"layers: {sorted(tf_layers)} != {sorted(jax_layers)}"]
    measured = 0
    for path, tf_entry in tf_layers.items():
        jax_entry = jax_layers[path]
        if (tf_entry is None) != (jax_entry is None):
            problems.append(f"{path}: measured on one backend only")
            continue
        if tf_entry is None:
            continue
        measured += 1
        for key in ("kernel_gradient", "kernel_gradient_norm", "gradient_to_weight",
                    "forward_scale"):
            if not close(tf_entry[key], jax_entry[key]):
                problems.append(f"{path} {key}: {tf_entry[key]} != {jax_entry[key]}")
        for key in ("saturated_fraction", "dead_fraction"):
            a, b = tf_entry[key], jax_entry[key]
            if (a is None) != (b is None) or (a is not None and abs(a - b) > FRACTION):
                problems.append(f"{path} {key}: {a} != {b}")
        tf_steps = tf_entry.get("input_gradient_by_step")
        jax_steps = jax_entry.get("input_gradient_by_step")
        if (tf_steps is None) != (jax_steps is None) or (tf_steps and (
                len(tf_steps) != len(jax_steps) or
                not all(close(a, b) for a, b in zip(tf_steps, jax_steps)))):
            problems.append(f"{path} input_gradient_by_step: {tf_steps} != {jax_steps}")
    if measured < 2:
        problems.append(f"only {measured} layers measured")
    return problems


def _verdicts(result):
    every = result.findings + [r for f in result.findings for r in f.related]
    return sorted((f.code, f.severity, (f.probe or {}).get("verdict")) for f in every)


def test_both_backends_measure_the_same_numbers_and_verdicts(reports):
    """One test over every model, so that one test worker alone pays for both backends."""
    problems = []
    for name in sorted(CASES):
        tf_result, jax_result = reports["tensorflow"][name], reports["jax"][name]
        problems += [f"{name}: {p}" for p in _compare_numbers(tf_result, jax_result)]
        if _verdicts(tf_result) != _verdicts(jax_result):
            problems.append(f"{name}: verdicts {_verdicts(tf_result)} != "
                            f"{_verdicts(jax_result)}")
        expected = CASES[name][1]
        if expected and not expected <= {f.code for f in tf_result.findings}:
            problems.append(f"{name}: {expected} not found")
    assert not problems, "\n".join(problems)
    # The number GL901/GL902 judge, on the deepest model: ratios near 1e-5 agree too.
    ratios = [next(e for e in reports[backend]["deep_sigmoid"].layers if e["measured"])
              ["measured"]["kernel_gradient"] for backend in ("tensorflow", "jax")]
    assert ratios[0] < 1e-3 and close(*ratios)
    # What the JAX process imported, after measuring all of them: never TensorFlow.
    from gradlint.probe.worker import imported_modules

    modules = imported_modules("jax")
    assert "jax" in modules and "keras" in modules
    assert "tensorflow" not in modules and "tf_keras" not in modules


def tf_keras_sigmoid():
    """Written by tf-keras: 8 sigmoid layers, each named, so that building it here leaves
    tf-keras's name counter (which names other modules' unnamed layers) as it was."""
    tf_keras = keras2()
    layers = [tf_keras.Input((16,))] + [
        tf_keras.layers.Dense(32, activation="sigmoid", name=f"{PREFIX}_hidden_{index}")
        for index in range(8)] + [tf_keras.layers.Dense(3, activation="softmax",
                                                        name=f"{PREFIX}_head")]
    return tf_keras.Sequential(layers, name=f"{PREFIX}_tf_keras_sigmoid")


def test_a_tf_keras_file_is_refused_on_jax_with_a_clear_message(save_model):
    path = save_model(f"{PREFIX}-tf-keras", tf_keras_sigmoid, "h5")
    report = gradlint.lint(str(path), probe=True, settings=Settings(probe_backend="jax"))
    (result,) = report.files
    assert result.probe["ran"] is False
    assert "tf-keras" in result.probe["error"] and "--probe-backend tensorflow" in \
        result.probe["error"]
    assert report.exit_code() == 2
    assert any(f.code == "GL101" for f in result.findings)  # the static findings stay


def test_the_option_and_the_key_resolve_in_the_settings(tmp_path):
    from gradlint.config import CommandLine, ConfigError, load_settings, resolve

    (tmp_path / "gradlint.toml").write_text('probe-backend = "jax"\n')
    assert load_settings(str(tmp_path / "gradlint.toml")).probe_backend == "jax"
    line = CommandLine(probe_backend="tensorflow")
    assert resolve(str(tmp_path / "gradlint.toml"), False, line).probe_backend == "tensorflow"
    assert Settings().probe_backend == "tensorflow"
    (tmp_path / "bad.toml").write_text('probe-backend = "torch"\n')
    with pytest.raises(ConfigError, match="probe-backend"):
        load_settings(str(tmp_path / "bad.toml"))


# -- The safety attacks, against the JAX process -------------------------------------------

def _keras3_lambda_model(marker: Path):
    """A Keras 3 model whose Lambda writes `marker` when it runs (when the model is rebuilt
    on loading, or called)."""
    keras = keras3()
    path = str(marker)
    inputs = keras.Input((4,))
    x = keras.layers.Lambda(lambda t: t if open(path, "w").write("ran") else t,
                            output_shape=(4,), name="payload")(inputs)
    outputs = keras.layers.Dense(1, name="out")(x)
    return keras.Model(inputs, outputs, name="payload_model")


@pytest.fixture(scope="module")
def payload(tmp_path_factory):
    directory = tmp_path_factory.mktemp(f"{PREFIX}-payload")
    marker = directory / "payload-ran"
    path = directory / "payload.keras"
    _keras3_lambda_model(marker).save(str(path))
    marker.unlink(missing_ok=True)
    return path, marker


def test_the_lambda_check_refuses_the_file_on_jax(payload):
    path, marker = payload
    report = gradlint.lint(str(path), probe=True, settings=Settings(probe_backend="jax"))
    (result,) = report.files
    assert "Lambda layer (payload)" in result.probe["error"]
    assert "--unsafe-load" in result.probe["error"]
    assert not marker.exists()


def test_the_jax_process_loads_only_in_safe_mode(payload, tmp_path):
    """The JAX process's loader itself, without gradlint's Lambda check (no analysis):
    Keras 3's safe mode must refuse the stored lambda; the control shows the payload live."""
    from gradlint.probe.environment import ProbeError
    from gradlint.probe.worker import measure_in_worker

    path, marker = payload
    copy = tmp_path / "model.keras"
    copy.write_bytes(path.read_bytes())
    with pytest.raises(ProbeError, match="safe mode.*--unsafe-load"):
        measure_in_worker(str(copy), None, Settings(), "jax")
    assert not marker.exists()
    measure_in_worker(str(copy), None, Settings(unsafe_load=True), "jax")
    assert marker.exists()
    marker.unlink()


def test_polyglots_are_refused_before_the_jax_process(tmp_path):
    from test_probe_safety import _lambda_model, _polyglot

    marker = tmp_path / "payload-ran"
    source = tmp_path / "payload.h5"
    _lambda_model(marker).save(str(source))
    marker.unlink(missing_ok=True)
    path = _polyglot(source, tmp_path / "polyglot.keras")
    completed = run_gradlint("--probe", "--probe-backend", "jax", "--isolated",
                             "--output-format", "json", path, timeout=300)
    assert completed.returncode == 2, completed.stderr
    (entry,) = json.loads(completed.stdout)["files"]
    assert "both a zip archive and an HDF5 file" in entry["error"]["message"]
    assert not marker.exists()


def test_planted_modules_in_the_working_directory_never_reach_the_jax_process(paths,
                                                                              tmp_path):
    """The command line from an untrusted directory: modules named like what the JAX
    process imports (its bootstrap, Keras, JAX) and a custom-objects file named by path."""
    marker = tmp_path / "planted-ran"
    for name in ("keras", "jax", "json", "pickle", "tf_keras", "tensorflow"):
        (tmp_path / f"{name}.py").write_text(f"open({str(marker)!r}, 'w').write({name!r})\n")
    (tmp_path / "mylayers.py").write_text("LOADED = True\n")
    completed = run_gradlint("--probe", "--probe-backend", "jax", "--isolated",
                             "--output-format", "json", "--custom-objects", "./mylayers.py",
                             paths["deep_sigmoid"], cwd=tmp_path, timeout=300)
    assert "Traceback" not in completed.stderr, completed.stderr
    (entry,) = json.loads(completed.stdout)["files"]
    assert entry["probe"]["ran"] is True, entry["probe"]
    assert entry["probe"]["backend"] == "jax"
    assert not marker.exists(), marker.read_text()
