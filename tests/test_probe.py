"""The gradient probe (`--probe`): it confirms the static findings it should, stays quiet on
healthy models, refuses unsafe files, loads custom layers only when told where they live,
carries estimate and measurement side by side in the JSON, and fails loudly (exit 2) without
hiding the static findings.

Command-line runs import TensorFlow in a fresh interpreter (seconds each), so each one lints
several files at once; the rest goes through `gradlint.lint(..., probe=True)` in this
process, where Keras is already imported for the fixtures.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

import gradlint
from gradlint.config import ConfigError, Settings, load_settings

import probe_models as models
from conftest import REPO, run_gradlint

PREFIX = "test_probe"
TESTS = Path(__file__).resolve().parent
STATIC_CASES = {  # model -> the static finding the probe must confirm
    "deep_sigmoid": "GL101",
    "tiny_initializer": "GL201",
    "simple_rnn": "GL401",
    "exploding_initializer": "GL203",
}
HEALTHY = ("relu_he", "prenorm_residual")


@pytest.fixture(scope="module")
def saved(save_model):
    def get(name: str, format: str = "keras") -> Path:
        return save_model(f"{PREFIX}-{name}", getattr(models, name), format)

    return get


def probe(path, **options):
    report = gradlint.lint(str(path), probe=True, **options)
    (result,) = report.files
    assert result.probe is not None
    return report, result


def by_code(result):
    return {finding.code: finding for finding in result.findings}


@pytest.fixture(scope="module")
def cli_report(saved):
    """One command-line run over the flagged and the healthy models, as JSON."""
    names = list(STATIC_CASES) + list(HEALTHY)
    paths = [saved(name) for name in names]
    completed = run_gradlint("--probe", "--isolated", "--output-format", "json", *paths,
                             timeout=600)
    assert completed.returncode == 1, completed.stderr
    data = json.loads(completed.stdout)
    files = {Path(entry["path"]).name.split("-", 1)[1].rsplit("-", 1)[0]: entry
             for entry in data["files"]}
    assert sorted(files) == sorted(names)
    return data, files, completed


def test_tensorflow_says_nothing_without_verbose(saved):
    # TensorFlow reads TF_CPP_MIN_LOG_LEVEL once; at 2 its ERROR-level notices still came
    # through ("oneDNN supports DT_BOOL only on platforms with AVX-512"). A level the user
    # set is raised, never lowered.
    completed = run_gradlint("--probe", "--isolated", saved("masked_embedding_lstm"),
                             env={"TF_CPP_MIN_LOG_LEVEL": "2"}, timeout=600)
    assert completed.returncode in (0, 1), completed.stderr
    assert "in 1 model" in completed.stdout
    assert completed.stderr == ""


@pytest.mark.parametrize("name, code", sorted(STATIC_CASES.items()))
def test_probe_confirms_the_static_findings(cli_report, name, code):
    _, files, _ = cli_report
    entry = files[name]
    assert entry["probe"]["ran"] is True, entry["probe"]
    finding = next(f for f in entry["findings"] if f["code"] == code)
    assert finding["severity"] == "error"
    assert finding["probe"]["verdict"] == "confirmed", finding["probe"]
    assert finding["probe"]["summary"].startswith("measured")
    assert isinstance(finding["probe"]["measured"], dict)


@pytest.mark.parametrize("name", HEALTHY)
def test_probe_finds_no_error_on_healthy_stacks(cli_report, name):
    _, files, _ = cli_report
    entry = files[name]
    assert entry["probe"]["ran"] is True
    assert [f["code"] for f in entry["findings"] if f["severity"] == "error"] == []
    # The plain stack's structural warnings are measured and not borne out.
    for finding in entry["findings"]:
        if finding["code"] in ("GL301", "GL302"):
            assert finding["probe"]["verdict"] == "not-confirmed", finding["probe"]


def test_json_carries_estimate_and_measurement_per_layer(cli_report):
    data, files, completed = cli_report
    assert data["version"] == 2
    assert data["summary"]["files_probe_failed"] == 0
    for name, entry in files.items():
        probe_run = entry["probe"]
        assert set(probe_run) >= {"ran", "error", "seeds", "batch", "training_mode", "loss",
                                  "seconds"}
        assert probe_run["training_mode"] is True and probe_run["seeds"] >= 1
        assert probe_run["batch"] >= 1 and probe_run["seconds"] > 0
        assert isinstance(probe_run["loss"], str)
        weighted = [layer for layer in entry["layers"] if layer["weighted"]]
        assert weighted
        for layer in entry["layers"]:
            assert "estimate" in layer and "measured" in layer
        for layer in weighted:
            measured = layer["measured"]
            recurrent = {"input_gradient_by_step"} if layer["kind"] == "recurrent" else set()
            assert set(measured) == {"kernel_gradient", "kernel_gradient_norm",
                                     "gradient_to_weight", "forward_scale",
                                     "saturated_fraction", "dead_fraction"} | recurrent
            assert isinstance(measured["kernel_gradient_norm"], float)
            assert layer["estimate"]["kernel_gradient"] is not None
        # Both ratios are relative to the same output layer.
        assert weighted[-1]["measured"]["kernel_gradient"] == 1.0
        assert weighted[-1]["estimate"]["kernel_gradient"] == 1.0
        for layer in entry["layers"]:
            if not layer["weighted"]:
                assert layer["measured"] is None
    sigmoid_first = next(layer for layer in files["deep_sigmoid"]["layers"] if layer["weighted"])
    # Estimate and measurement agree within an order of magnitude on a plain stack.
    ratio = sigmoid_first["measured"]["kernel_gradient"] / sigmoid_first["estimate"][
        "kernel_gradient"]
    assert 0.1 < ratio < 10
    assert "absl::InitializeLog" not in completed.stderr
    assert "cuda" not in completed.stderr.lower()


def test_static_json_has_null_probe_fields(saved):
    report = gradlint.lint(str(saved("deep_sigmoid")))
    data = report.to_dict()["files"][0]
    assert data["probe"] is None
    assert all(layer["measured"] is None for layer in data["layers"])
    assert all("probe" not in finding for finding in data["findings"])


def test_lambda_model_is_refused_and_custom_layers_need_their_module(saved):
    lambda_path = saved("lambda_model")
    custom_path = saved("custom_layer_model")
    completed = run_gradlint("--probe", "--isolated", "--exit-zero", lambda_path, custom_path,
                             cwd=REPO, timeout=600)
    assert completed.returncode == 2, completed.stdout + completed.stderr
    out = completed.stdout
    # The static findings still print.
    assert f"{lambda_path}::double: GL002 [info]" in out
    assert f"{custom_path}::scaled_0: GL002 [info]" in out
    lines = [line for line in out.splitlines() if ": probe [error]" in line]
    assert len(lines) == 2, out
    assert "Lambda layer (double)" in lines[0] and "--unsafe-load" in lines[0]
    assert "--custom-objects" in lines[1] and "ScaledDense" in lines[1]
    assert "the probe could not run on 2 models" in out


def test_unsafe_load_and_custom_objects_let_the_probe_run(saved):
    lambda_path = saved("lambda_model")
    custom_path = saved("custom_layer_model")
    # The working directory is never on the import path: a module beside the models is
    # named by its file.
    completed = run_gradlint("--probe", "--isolated", "--unsafe-load", "--custom-objects",
                             "./probe_custom_layers.py", "--output-format", "json", lambda_path,
                             custom_path, cwd=TESTS, timeout=600)
    assert completed.returncode == 1, completed.stderr
    files = json.loads(completed.stdout)["files"]
    for entry in files:
        assert entry["probe"]["ran"] is True, entry["probe"]
    custom = files[1]
    # Only the measurement sees the collapse inside the custom layers.
    codes = {f["code"]: f for f in custom["findings"]}
    assert codes["GL901"]["severity"] == "error"
    assert "collapses" in codes["GL901"]["message"]
    measured = {layer["path"]: layer["measured"] for layer in custom["layers"]}
    assert measured["scaled_0"]["kernel_gradient_norm"] is not None


def test_missing_tensorflow_says_how_to_install(saved, tmp_path):
    blocker = tmp_path / "blocked"
    blocker.mkdir()
    for name in ("tensorflow", "keras"):
        (blocker / f"{name}.py").write_text(f"raise ImportError(\"No module named '{name}'\")\n")
    path = saved("deep_sigmoid")
    completed = run_gradlint("--probe", "--isolated", path,
                             env={"PYTHONPATH": str(blocker)})
    assert completed.returncode == 2
    assert "GL101 [error]" in completed.stdout
    assert 'pip install -e ".[probe]"' in completed.stdout
    assert "gradlint[probe]" in completed.stdout


def test_no_probe_overrides_the_file_and_imports_nothing(saved, tmp_path):
    (tmp_path / "gradlint.toml").write_text("probe = true\nprobe-seeds = 2\n")
    script = ("import sys\n"
              "from gradlint.cli import main\n"
              "try:\n    main(['--no-probe', sys.argv[1]])\n"
              "except SystemExit as exit:\n"
              "    print('TF=' + str('tensorflow' in sys.modules or 'keras' in sys.modules))\n"
              "    sys.exit(exit.code)\n")
    import subprocess

    completed = subprocess.run([sys.executable, "-c", script, str(saved("deep_sigmoid"))],
                               cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 1, completed.stderr
    assert "TF=False" in completed.stdout
    assert "probe:" not in completed.stdout


def test_probe_settings_from_the_file(tmp_path):
    config = tmp_path / "gradlint.toml"
    config.write_text('probe = true\nprobe-seeds = 2\nprobe-batch = 8\n'
                      'custom-objects = ["mypackage.layers"]\nunsafe-load = true\n')
    settings = load_settings(str(config))
    assert (settings.probe, settings.probe_seeds, settings.probe_batch) == (True, 2, 8)
    assert settings.custom_objects == ["mypackage.layers"] and settings.unsafe_load is True
    for bad in ("probe = 1\n", "probe-seeds = 0\n", "probe-batch = 2.5\n",
                "custom-objects = 3\n"):
        config.write_text(bad)
        with pytest.raises(ConfigError):
            load_settings(str(config))


def test_command_line_probe_options_beat_the_file(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from gradlint.cli import main

    (tmp_path / "gradlint.toml").write_text("probe = true\nprobe-seeds = 2\n")
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    result = runner.invoke(main, ["check", "--probe-seeds", "5", "--probe-batch", "6",
                                  "--custom-objects", "a.b", "--custom-objects", "c.d",
                                  "--show-settings", "x.keras"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)["settings"]
    assert shown["probe"] is True and shown["probe-seeds"] == 5
    assert shown["probe-batch"] == 6 and shown["custom-objects"] == ["a.b", "c.d"]
    result = runner.invoke(main, ["check", "--no-probe", "--show-settings", "x.keras"])
    assert json.loads(result.output)["settings"]["probe"] is False


def test_exit_status_two_when_the_probe_fails_and_exit_zero_does_not_hide_it(saved):
    report = gradlint.lint(str(saved("lambda_model")), probe=True)
    (result,) = report.files
    assert result.probe_failed and "--unsafe-load" in result.probe["error"]
    assert result.findings and all(f.probe is None for f in result.findings)
    assert report.exit_code() == 2
    assert report.exit_code(exit_zero=True) == 2
    assert report.exit_code(fail_on="never") == 2
    assert report.summary()["files_probe_failed"] == 1


def test_live_model_is_probed_and_left_as_it_was():
    import numpy as np

    model = models.batchnorm_mlp()
    before = [variable.numpy().copy() for variable in model.variables]
    report = gradlint.lint(model, probe=True)
    (result,) = report.files
    assert result.probe["ran"] is True and result.probe["loader"] == "live"
    assert result.probe["loss"] == "categorical_crossentropy"
    measured = {layer["path"]: layer["measured"] for layer in result.layers}
    assert measured["dense"]["kernel_gradient_norm"] > 0
    assert measured["head"]["kernel_gradient"] == 1.0
    relu = next(layer for layer in result.layers if layer["path"] == "relu")
    assert relu["measured"] is None  # no kernel
    after = [variable.numpy() for variable in model.variables]
    for old, new in zip(before, after):
        assert np.array_equal(old, new)
    # The model still runs as a plain Keras model: every patch was taken off again.
    assert "call" not in vars(model.get_layer("dense"))
    model(np.zeros((2, 32), dtype="float32"))


@pytest.mark.parametrize("format", ["keras2", "h5"])
def test_keras2_files_are_probed(saved, format):
    report, result = probe(saved("tf_keras_recurrent", format))
    assert result.probe["ran"] is True, result.probe
    finding = by_code(result)["GL401"]
    assert finding.probe["verdict"] == "confirmed"
    assert finding.probe["measured"]["time_steps"] == 60
    report, result = probe(saved("tf_keras_sigmoid", format))
    assert by_code(result)["GL101"].probe["verdict"] == "confirmed"
    assert result.probe["loss"] == "categorical_crossentropy"
    assert result.probe["loss_source"] == "compile configuration"


def test_seeds_and_batch_follow_the_settings(saved):
    settings = Settings(probe_seeds=2, probe_batch=3)
    _, result = probe(saved("shallow_relu"), settings=settings)
    assert (result.probe["seeds"], result.probe["batch"]) == (2, 3)
    assert result.probe["input_shapes"] == [[3, 64]]


def test_large_models_get_fewer_seeds_and_a_smaller_batch():
    from gradlint.probe.plan import plan

    assert plan(1e5) == (3, 4)
    assert plan(7.1e8) == (2, 4)  # ResNet50 at 96x96
    assert plan(3.9e9) == (1, 2)  # ResNet50 at 224x224
    assert plan(3.9e9, seeds=3) == (3, 2)
    assert plan(3.9e9, batch=8) == (1, 8)
    assert plan(None) == (3, 4)
    # Recurrent layers cost per time step, whatever the batch.
    assert plan(3.3e6, steps=200) == (2, 4)  # LSTM and SimpleRNN over 100 steps
    assert plan(1e6, steps=1000) == (1, 4)


def test_constant_kernel_verdicts(save_model):
    from conftest import keras3

    def build(initializer):
        def make():
            keras = keras3()
            return keras.Sequential([
                keras.Input((16,)),
                keras.layers.Dense(16, activation="relu", name="first"),
                keras.layers.Dense(16, activation="relu", kernel_initializer=initializer,
                                   name="constant"),
                keras.layers.Dense(3, activation="softmax", name="head")])

        return make

    _, result = probe(save_model(f"{PREFIX}-zeros", build("zeros")))
    verdict = by_code(result)["GL204"].probe
    assert verdict["verdict"] == "confirmed"
    assert "exactly zero gradient" in verdict["summary"]
    _, result = probe(save_model(f"{PREFIX}-ones", build("ones")))
    verdict = by_code(result)["GL204"].probe
    # The random head gives each unit its own gradient: the symmetry breaks at once.
    assert verdict["verdict"] == "not-confirmed", verdict


def test_progress_line_only_on_a_terminal(monkeypatch, capsys):
    from gradlint import cli

    class Terminal:
        def __init__(self):
            self.text = ""

        def isatty(self):
            return True

        def write(self, text):
            self.text += text

        def flush(self):
            pass

    assert not cli.Progress("probed").enabled  # captured: not a terminal
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    show = cli.Progress("probed")
    show.update(1, 3, "a.keras")
    assert terminal.text == ""  # nothing in the first second
    show.started -= cli.Progress.DELAY
    show.update(2, 3, "b.keras")
    assert "probed 2/3 files (last: b.keras)" in terminal.text
    show.update(3, 3, "c.keras")
    assert terminal.text.endswith("\r\x1b[K")

def test_recurrent_layers_carry_the_gradient_at_every_time_step(cli_report):
    """A recurrent layer's measurement holds the loss gradient at each input step (what the
    HTML report's time-step chart draws), consistent with the finding's first/last ratio."""
    _, files, _ = cli_report
    layer = next(layer for layer in files["simple_rnn"]["layers"]
                 if layer["measured"] and layer["measured"].get("input_gradient_by_step"))
    steps = layer["measured"]["input_gradient_by_step"]
    assert len(steps) >= 20 and all(value >= 0 for value in steps)
    assert steps[0] < steps[-1]  # the SimpleRNN's gradient fades towards the first step
