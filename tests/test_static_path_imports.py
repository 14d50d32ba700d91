"""Linting a file never imports TensorFlow or Keras. The test session imports them to build
its fixtures, so the check runs gradlint in a fresh interpreter and looks at its
`sys.modules` once the lint is done."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import keras2, keras3

PREFIX = "test_static_path_imports"
HEAVY = ("tensorflow", "keras", "tf_keras")

# Runs the command line in-process (one job, so the reading happens in this interpreter)
# and reports which heavy packages ended up imported.
CLI_SCRIPT = """
import json, sys
from gradlint.cli import main
try:
    main(sys.argv[1:], standalone_mode=False)
except SystemExit:
    pass
heavy = sorted({name.split(".")[0] for name in sys.modules} & {"tensorflow", "keras", "tf_keras"})
print("HEAVY-MODULES=" + json.dumps(heavy))
"""

API_SCRIPT = """
import json, sys
import gradlint
paths = [arg for arg in sys.argv[1:] if arg != "--no-weights"]
report = gradlint.lint(paths, weights="--no-weights" not in sys.argv)
print(json.dumps(sorted(f.code for f in report.findings)))
heavy = sorted({name.split(".")[0] for name in sys.modules} & {"tensorflow", "keras", "tf_keras"})
print("HEAVY-MODULES=" + json.dumps(heavy))
"""


def build_keras3():
    keras = keras3()
    layers = keras.layers
    inputs = keras.Input((10, 4), name="sequence")
    x = layers.SimpleRNN(8, name="simple")(inputs)
    x = layers.Dense(8, activation="relu", name="hidden")(x)
    model = keras.Model(inputs, layers.Dense(1, name="out")(x), name="static_keras3")
    model.compile(keras.optimizers.SGD(learning_rate=0.5), "mse")
    return model


def build_keras2():
    keras = keras2()
    model = keras.Sequential([keras.layers.Dense(8, activation="relu", input_shape=(4,),
                                                 name="hidden"),
                              keras.layers.Dense(1, name="out")], name="static_keras2")
    model.compile(keras.optimizers.SGD(learning_rate=0.5), "mse")
    return model


@pytest.fixture(scope="module")
def model_files(save_model):
    return {
        "keras": save_model(f"{PREFIX}-k3", build_keras3, "keras"),
        "keras2": save_model(f"{PREFIX}-k2", build_keras2, "keras2"),
        "h5": save_model(f"{PREFIX}-h5", build_keras2, "h5"),
    }


def _run(script, *args):
    result = subprocess.run([sys.executable, "-c", script, *map(str, args)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    marker = [line for line in result.stdout.splitlines() if line.startswith("HEAVY-MODULES=")]
    assert len(marker) == 1, result.stdout + result.stderr
    return json.loads(marker[0].split("=", 1)[1]), result.stdout


@pytest.mark.parametrize("weights", [True, False], ids=["weights", "no-weights"])
def test_command_line_imports_neither_tensorflow_nor_keras(model_files, weights):
    """All three readers in one process: Keras 3 and tf-keras archives, legacy HDF5."""
    options = [] if weights else ["--no-weights"]
    heavy, output = _run(CLI_SCRIPT, "--isolated", "-j", "1", *options, *model_files.values())
    for path in model_files.values():
        assert f"{path}: GL403 [warning]" in output  # each file really was linted
    assert heavy == []


def test_json_output_imports_neither_tensorflow_nor_keras(model_files):
    heavy, output = _run(CLI_SCRIPT, "--isolated", "-j", "1", "--output-format", "json",
                         *model_files.values())
    for path in model_files.values():
        assert f'"path": "{path}"' in output
    assert heavy == []


@pytest.mark.parametrize("weights", [True, False], ids=["weights", "no-weights"])
def test_python_api_imports_neither_tensorflow_nor_keras(model_files, weights):
    args = [*map(str, model_files.values())] + ([] if weights else ["--no-weights"])
    heavy, output = _run(API_SCRIPT, *args)
    codes = json.loads(output.splitlines()[0])
    assert codes.count("GL403") == 3
    assert "GL401" in codes
    assert heavy == []


def test_fix_command_imports_neither_tensorflow_nor_keras(model_files, tmp_path):
    """`gradlint fix` without --probe or a live model: read, edit, re-draw with numpy,
    write, lint the written file, all without TensorFlow."""
    output = tmp_path / "fixed.keras"
    heavy, output_text = _run(CLI_SCRIPT, "fix", "--isolated", str(model_files["keras"]),
                              "-o", str(output))
    assert "wrote" in output_text or "nothing to fix" in output_text
    assert heavy == []
