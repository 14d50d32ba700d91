"""`gradlint fix` and fixes as data: each fixing rule's fix applied to a real saved model
(Keras 3 `.keras`, tf-keras `.keras`, legacy `.h5`), the fixed file loaded in Keras and
linted again, every untouched weight compared byte for byte, the input never written."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile

import h5py
import numpy as np
import pytest

import gradlint
from conftest import keras2, keras3, run_gradlint
from gradlint.fix.apply import fix_file
from gradlint.fix.config_edits import FixError
from gradlint.findings import fix_summary

PREFIX = "test_fix"


def relu_glorot_stack(depth=20, width=16):
    keras = keras3()
    layers = [keras.Input((width,))] + \
        [keras.layers.Dense(width, activation="relu", name=f"dense_{i}") for i in range(depth)]
    return keras.Sequential(layers + [keras.layers.Dense(1, name="out")], name="relu_glorot")


def mixed_causes_stack():
    """Every third layer too small (GL201), the rest ReLU with Glorot (GL202): fixing either
    cause leaves the other's."""
    keras = keras3()
    layers = [keras.Input((32,))]
    for i in range(30):
        init = keras.initializers.RandomNormal(stddev=0.05) if i % 3 == 0 else "glorot_uniform"
        layers.append(keras.layers.Dense(32, activation="relu", kernel_initializer=init,
                                         name=f"dense_{i}"))
    return keras.Sequential(layers + [keras.layers.Dense(1, name="out")], name="mixed")


def tanh_small_stack():
    keras = keras2()
    def init():
        return keras.initializers.RandomNormal(stddev=0.01)

    layers = [keras.layers.Dense(32, activation="tanh", kernel_initializer=init(),
                                 input_shape=(32,), name="tanh_0")]
    layers += [keras.layers.Dense(32, activation="tanh", kernel_initializer=init(),
                                  name=f"tanh_{i}") for i in range(1, 10)]
    model = keras.Sequential(layers + [keras.layers.Dense(1, name="out")], name="tanh_small")
    model.compile(keras.optimizers.SGD(0.01), "mse")
    return model


def lstm_unclipped():
    keras = keras2()
    inputs = keras.Input((12, 4))
    x = keras.layers.LSTM(8, name="lstm")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(1, name="out")(x), name="lstm_unclipped")
    model.compile("adam", "mse")  # by name: tf-keras saves the string
    return model


def lstm_unclipped_keras3():
    keras = keras3()
    inputs = keras.Input((12, 4))
    x = keras.layers.LSTM(8, name="lstm")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(1, name="out")(x), name="lstm3")
    model.compile(keras.optimizers.Adam(1e-3), "mse")
    return model


def wide_stack():
    keras = keras3()
    layers = [keras.Input((32,))] + [keras.layers.Dense(
        32, activation="relu", kernel_initializer=keras.initializers.RandomNormal(stddev=0.5),
        name=f"wide_{i}") for i in range(10)]
    return keras.Sequential(layers + [keras.layers.Dense(1, name="out")], name="wide")


def zero_kernel():
    keras = keras3()
    return keras.Sequential([keras.Input((8,)),
                             keras.layers.Dense(8, activation="relu", kernel_initializer="zeros",
                                                name="zero"),
                             keras.layers.Dense(1, name="out")], name="zero_kernel")


def large_rate():
    keras = keras3()
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(1, name="out")], name="lr")
    model.compile(keras.optimizers.SGD(learning_rate=5.0), "mse")
    return model


def sigmoid_chain():
    keras = keras3()
    layers = [keras.Input((16,))] + [keras.layers.Dense(16, activation="sigmoid",
                                                        name=f"sig_{i}") for i in range(10)]
    return keras.Sequential(layers + [keras.layers.Dense(1, name="out")], name="sigmoid")


def shallow_relu():
    """The near miss: three ReLU/Glorot layers shrink the signal by too little to matter."""
    keras = keras3()
    layers = [keras.Input((16,))] + [keras.layers.Dense(16, activation="relu") for _ in range(3)]
    return keras.Sequential(layers + [keras.layers.Dense(1)], name="shallow")


def trained_relu():
    keras = keras3()
    model = relu_glorot_stack(depth=20, width=8)
    model.compile(keras.optimizers.SGD(1e-3), "mse")
    data = np.random.default_rng(0).normal(size=(32, 8)).astype("float32")
    model.fit(data, data[:, :1], epochs=1, verbose=0)
    return model


@pytest.fixture(scope="module")
def models(save_model):
    return {
        "relu": save_model(f"{PREFIX}-relu", relu_glorot_stack, "keras"),
        "tanh": save_model(f"{PREFIX}-tanh", tanh_small_stack, "h5"),
        "lstm": save_model(f"{PREFIX}-lstm", lstm_unclipped, "keras2"),
        "lstm3": save_model(f"{PREFIX}-lstm3", lstm_unclipped_keras3, "keras"),
        "wide": save_model(f"{PREFIX}-wide", wide_stack, "keras"),
        "zero": save_model(f"{PREFIX}-zero", zero_kernel, "keras"),
        "rate": save_model(f"{PREFIX}-rate", large_rate, "keras"),
        "shallow": save_model(f"{PREFIX}-shallow", shallow_relu, "keras"),
        "sigmoid": save_model(f"{PREFIX}-sigmoid", sigmoid_chain, "keras"),
        "trained": save_model(f"{PREFIX}-trained", trained_relu, "keras"),
        "mixed": save_model(f"{PREFIX}-mixed", mixed_causes_stack, "keras"),
    }


def digest(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def datasets(path) -> dict[str, bytes]:
    """Every HDF5 dataset of a model file (a `.keras` archive's weights member) as bytes."""
    path = str(path)
    if path.endswith(".keras"):
        with zipfile.ZipFile(path) as archive:
            handle = h5py.File(io.BytesIO(archive.read("model.weights.h5")), "r")
    else:
        handle = h5py.File(path, "r")
    found = {}
    with handle:
        handle.visititems(lambda name, item: found.__setitem__(
            "/" + name, np.asarray(item[()]).tobytes()) if isinstance(item, h5py.Dataset)
            else None)
    return found


def load(path, format):
    """The model as Keras loads it, compiled from the saved compile configuration."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if format == "keras":
            return keras3().saving.load_model(str(path))
        return keras2().models.load_model(str(path))


def codes(path) -> set[str]:
    """Every finding's code, those folded into another as related too."""
    return {item.code for finding in gradlint.lint(str(path)).findings
            for item in [finding, *getattr(finding, "related", [])]}


CASES = [  # (model, format, the code whose fix is checked)
    ("relu", "keras", "GL202"),
    ("tanh", "h5", "GL201"),
    ("lstm", "keras2", "GL402"),
    ("lstm3", "keras", "GL402"),
    ("wide", "keras", "GL203"),
    ("zero", "keras", "GL204"),
    ("rate", "keras", "GL403"),
    ("sigmoid", "keras", "GL101"),
]


@pytest.mark.parametrize("name, format, code", CASES, ids=[case[0] for case in CASES])
def test_fix_removes_the_finding(models, tmp_path, name, format, code):
    source = models[name]
    before_digest, before = digest(source), datasets(source)
    finding = next(item for f in gradlint.lint(str(source)).findings
                   for item in [f, *getattr(f, "related", [])] if item.code == code)
    assert finding.fix is not None and finding.fix.automatic and finding.fix.edits
    assert finding.fix.estimate_after["resolved"] is True
    output = tmp_path / f"fixed{source.suffix}"
    result = fix_file(str(source), str(output), select=[code])
    assert result.written and result.verified == {code: True}
    assert code not in codes(output)
    model = load(output, format)  # Keras loads the fixed file
    if code == "GL402":
        assert float(model.optimizer.clipnorm) == 1.0
    if code == "GL403":
        assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(0.1)
    assert digest(source) == before_digest  # the input is never written
    after = datasets(output)
    assert set(after) == set(before)
    touched = set(result.redrawn) | {change.split(": ")[1] for change in result.changes
                                     if change.startswith("optimizer state: ")}
    for dataset, data in before.items():
        if dataset in touched:
            assert after[dataset] != data
        else:
            assert after[dataset] == data, dataset  # untouched, byte for byte


def test_redrawn_kernels_follow_the_new_initializer(models, tmp_path):
    output = tmp_path / "relu.keras"
    result = fix_file(str(models["relu"]), str(output))
    model = load(output, "keras")
    for layer in model.layers[:-1]:
        kernel = np.asarray(layer.kernel)
        assert abs(kernel.var() * kernel.shape[0] / 2.0 - 1.0) < 0.35  # He: 2 / fan_in
    assert layer.get_config()["kernel_initializer"]["class_name"] == "HeNormal"
    # Seeded: the same seed re-draws the same kernels.
    again = fix_file(str(models["relu"]), str(tmp_path / "again.keras"))
    assert datasets(output) == datasets(tmp_path / "again.keras")
    assert again.redrawn == result.redrawn


def test_the_three_models_of_the_issue_lint_clean(models, tmp_path):
    """A 20-layer ReLU/Glorot stack, a 10-layer tanh stack with RandomNormal(0.01), an LSTM
    saved without clipping: each fixed file loads and lints clean of what was fixed."""
    for name, format, fixed_codes in (("relu", "keras", {"GL202"}), ("tanh", "h5", {"GL201"}),
                                      ("lstm", "keras2", {"GL402"})):
        output = tmp_path / f"{name}{models[name].suffix}"
        result = fix_file(str(models[name]), str(output))
        assert {finding.code for finding in result.applied} == fixed_codes
        assert not fixed_codes & codes(output)
        load(output, format)


def test_fix_as_data_in_the_json_contract(models):
    report = gradlint.lint(str(models["relu"])).to_dict()
    fix = next(f for f in report["files"][0]["findings"] if f["code"] == "GL202")["fix"]
    assert fix["scope"] == "layer" and fix["setting"] == "kernel_initializer"
    assert (fix["old"], fix["new"]) == ("glorot_uniform", "he_normal")
    assert fix["estimate_after"]["before"] < 1e-2 < fix["estimate_after"]["after"]
    every = [item for f in report["files"][0]["findings"] for item in [f, *f.get("related", [])]]
    structural = next(f for f in every if f["code"] == "GL301")["fix"]
    assert structural["scope"] == "structural" and structural["automatic"] is False
    assert structural["edits"] == []


def test_text_shows_the_fix(models):
    result = run_gradlint("--isolated", "-j", "1", str(models["relu"]))
    line = next(line for line in result.stdout.splitlines() if line.startswith("    fix: "
                                                                                "kernel_init"))
    assert "glorot_uniform → he_normal at 'dense_0'" in line and "(fixes it: " in line


def test_a_fix_that_leaves_another_cause_says_so(models):
    findings = {f.code: f for f in gradlint.lint(str(models["mixed"])).files[0].findings}
    for code, other in (("GL201", "GL202"), ("GL202", "GL201")):
        after = findings[code].fix.estimate_after
        assert after["resolved"] is True and after["remaining"] == [other]
        assert f"(removes this finding; {other} remains: " in fix_summary(findings[code].fix)
    # The near miss: one cause, whose fix leaves nothing of the kind.
    single = next(f for f in gradlint.lint(str(models["relu"])).files[0].findings
                  if f.code == "GL202")
    assert single.fix.estimate_after["remaining"] == []
    assert "(fixes it: " in fix_summary(single.fix)


def test_near_miss_has_no_fix(models, tmp_path):
    assert "GL202" not in codes(models["shallow"])
    output = tmp_path / "shallow.keras"
    result = fix_file(str(models["shallow"]), str(output))
    assert not result.applied and not result.written and not output.exists()


def test_dry_run_select_ignore(models, tmp_path):
    output = tmp_path / "never.keras"
    cli = run_gradlint("fix", str(models["relu"]), "-o", str(output), "--dry-run", "--isolated")
    assert cli.returncode == 0, cli.stderr
    assert "dense_0: kernel_initializer: glorot_uniform → he_normal" in cli.stdout
    assert not output.exists()
    ignored = fix_file(str(models["relu"]), None, dry_run=True, ignore=["GL202"])
    assert not ignored.applied and ("GL202", "not selected") in \
        [(finding.code, reason) for finding, reason in ignored.not_applied]
    # GL101's activation swap applies only when selected.
    selected = fix_file(str(models["tanh"]), None, dry_run=True, select=["GL201"])
    assert [finding.code for finding in selected.applied] == ["GL201"]


def test_trained_checkpoint_is_refused(models, tmp_path):
    output = tmp_path / "trained.keras"
    with pytest.raises(FixError, match="trained checkpoint"):
        fix_file(str(models["trained"]), str(output))
    assert not output.exists()
    cli = run_gradlint("fix", str(models["trained"]), "-o", str(output), "--isolated")
    assert cli.returncode == 2 and "--reinitialize-trained" in cli.stderr
    assert "Traceback" not in cli.stderr
    result = fix_file(str(models["trained"]), str(output), reinitialize_trained=True)
    assert result.written and "stepped" in result.trained
    assert "GL202" not in codes(output)


def test_refuses_to_write_the_input(models):
    before = digest(models["relu"])
    cli = run_gradlint("fix", str(models["relu"]), "-o", str(models["relu"]), "--isolated")
    assert cli.returncode == 2 and "never writes its input" in cli.stderr
    assert digest(models["relu"]) == before
    bad = run_gradlint("fix", str(models["relu"]), "-o", "x.h5", "--isolated")
    assert bad.returncode == 2 and "must end in .keras" in bad.stderr


def test_json_output(models, tmp_path):
    output = tmp_path / "lstm.keras"
    cli = run_gradlint("fix", str(models["lstm"]), "-o", str(output), "--isolated",
                       "--output-format", "json")
    assert cli.returncode == 0, cli.stderr
    data = json.loads(cli.stdout)
    assert data["written"] and data["applied"][0]["code"] == "GL402"
    assert data["applied"][0]["verified"] is True
    assert data["changes"] == ["optimizer: clipnorm: None → 1.0"]
    assert data["redrawn"] == []


def test_activation_swap_only_on_request(models):
    default = fix_file(str(models["sigmoid"]), None, dry_run=True)
    assert not default.applied
    [(finding, reason)] = [(f, r) for f, r in default.not_applied if f.code == "GL101"]
    assert "--select GL101" in reason and finding.fix.safe is False


def test_unconfirmed_fix_is_not_applied(models, tmp_path, monkeypatch):
    """A fix the probe does not confirm is reported and left out unless --force."""
    from gradlint.fix import verify
    from gradlint.report import FileResult

    def probed(path, settings):
        return FileResult(path=path, layers=[{"weighted": True,
                                              "measured": {"kernel_gradient": 1e-5}}])

    monkeypatch.setattr(verify, "_probed", probed)
    output = tmp_path / "unconfirmed.keras"
    result = fix_file(str(models["relu"]), str(output), probe=True)
    assert result.probe["verdicts"] == {"GL202": "not confirmed"}
    assert not result.applied and not output.exists()
    assert any(f.code == "GL202" and "did not confirm" in reason
               for f, reason in result.not_applied)
    forced = fix_file(str(models["relu"]), str(output), probe=True, force=True)
    assert forced.written and forced.probe["unconfirmed"] == ["GL202"]


def test_sarif_carries_the_fix_in_properties(models):
    """SARIF's `fixes` need artifactChanges (byte replacements of the artifact), which a
    binary model file's fix cannot be: the fix is in the result's properties instead, and
    the log stays valid against the vendored SARIF 2.1.0 schema."""
    from pathlib import Path

    import jsonschema

    from gradlint.renderers import RenderOptions, render

    report = gradlint.lint(str(models["relu"]))
    log = json.loads(render("sarif", report, RenderOptions()))
    schema = json.loads((Path(__file__).parent / "data" / "sarif-schema-2.1.0.json").read_text())
    jsonschema.validate(log, schema)
    results = log["runs"][0]["results"]
    gl202 = next(result for result in results if result["ruleId"] == "GL202")
    assert "fixes" not in gl202
    assert gl202["properties"]["fix"]["new"] == "he_normal"


def clipped_lstm():
    keras = keras3()
    inputs = keras.Input((12, 4))
    x = keras.layers.LSTM(8)(inputs)
    model = keras.Model(inputs, keras.layers.Dense(1)(x), name="clipped")
    model.compile(keras.optimizers.Adam(1e-3, clipnorm=1.0), "mse")
    return model


def two_wide_layers():
    keras = keras3()
    return keras.Sequential([keras.Input((32,))] + [keras.layers.Dense(
        32, activation="relu", kernel_initializer=keras.initializers.RandomNormal(stddev=0.5))
        for _ in range(2)] + [keras.layers.Dense(1)], name="two_wide")


@pytest.mark.parametrize("build, code", [(shallow_relu, "GL202"), (clipped_lstm, "GL402"),
                                         (two_wide_layers, "GL203")],
                         ids=["GL202", "GL402", "GL203"])
def test_near_misses_get_no_fix(save_model, tmp_path, build, code):
    path = save_model(f"{PREFIX}-near-{code}", build, "keras")
    assert code not in codes(path)
    result = fix_file(str(path), str(tmp_path / "near.keras"), select=[code])
    assert not result.applied and not result.written


@pytest.mark.parametrize("name", ["he_normal", "he_uniform", "glorot_uniform", "glorot_normal",
                                  "lecun_normal", "lecun_uniform"])
def test_numpy_draws_match_keras(name):
    """`initializers.draw` against Keras's own initializer on a conv kernel's shape: the same
    variance (fans: receptive field times channels) and, for the truncated normal, the same
    bound of two standard deviations."""
    from gradlint import initializers

    keras = keras3()
    shape = (3, 3, 32, 64)
    ours = initializers.draw(name, shape, np.random.default_rng(0))
    theirs = np.asarray(keras.initializers.get(name)(shape))
    assert ours.var() == pytest.approx(theirs.var(), rel=0.03)
    assert np.abs(ours).max() == pytest.approx(np.abs(theirs).max(), rel=0.03)


def moved_weights():
    """Never compiled, so no optimizer state: only the stored kernel says it moved."""
    model = relu_glorot_stack(depth=20, width=16)
    layer = model.get_layer("dense_3")
    layer.kernel.assign(layer.kernel.numpy() * 3.0)
    return model


def test_weights_unlike_their_initializer_count_as_trained(save_model, tmp_path):
    path = save_model(f"{PREFIX}-moved", moved_weights, "keras")
    with pytest.raises(FixError,
                       match=r"stored kernel of .dense_3. has an RMS [23]\.\d+ times"):
        fix_file(str(path), str(tmp_path / "moved.keras"))
