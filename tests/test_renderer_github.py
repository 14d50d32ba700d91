"""GitHub Actions workflow commands: one annotation per finding, escaped as the runner
expects, within GitHub's caps (10 annotations of each kind per step): models worst first,
each model's findings together, an overflow annotation per kind that says how many more
there are, and repeated GL002 findings for one custom class in one model collapsed."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

import gradlint
import report_models
import conftest
from conftest import keras3, run_gradlint
from gradlint.renderers import RenderOptions, render
from gradlint.renderers.github import ANNOTATIONS_PER_KIND, escape_data, escape_property

COMMAND = re.compile(r"^::(error|warning|notice) file=([^,:]*),title=([^,:]*)::(.*)$")
# A run-level annotation (no file): the overflow of one kind.
OVERFLOW = re.compile(r"^::(error|warning|notice) title=([^,:]*)::(.*)$")
PREFIX = "test_renderer_github"


def unescape(value: str) -> str:
    """What the Actions runner does to a command's value."""
    for escaped, raw in (("%0D", "\r"), ("%0A", "\n"), ("%3A", ":"), ("%2C", ","),
                         ("%25", "%")):
        value = value.replace(escaped, raw)
    return value


@pytest.fixture(scope="module")
def models(save_model):
    return {
        "deep": save_model("renderer_github_deep_sigmoid", report_models.deep_sigmoid),
        "rnn": save_model("renderer_github_simple_rnn", report_models.simple_rnn),
        "clean": save_model("renderer_github_relu_he", report_models.relu_he),
    }


@pytest.fixture
def repository(tmp_path, models):
    root = tmp_path / "repo"
    (root / "models").mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    shutil.copy(models["deep"], root / "models" / "deep.keras")
    shutil.copy(models["rnn"], root / "models" / "rnn.keras")
    shutil.copy(models["clean"], root / "models" / "clean.keras")
    return root


def test_one_annotation_per_finding(repository):
    (repository / "scripts").mkdir()
    result = run_gradlint("--output-format", "github", "-j", "1", "../models",
                          cwd=repository / "scripts")
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    commands = [COMMAND.match(line) for line in lines if line.startswith("::")]
    assert all(commands), lines
    assert len(commands) == 4
    assert lines[-1].startswith("gradlint: 4 findings (2 errors, 2 warnings) in 3 models")
    by_title = {unescape(m.group(3)): m for m in commands}
    gl101 = by_title["GL101 saturating-activation-chain"]
    assert gl101.group(1) == "error"
    # The path is relative to the repository's root, not to the working directory.
    assert unescape(gl101.group(2)) == "models/deep.keras"
    assert unescape(gl101.group(4)).startswith("hidden_1: 10 saturating activations")
    assert by_title["GL402 recurrent-without-clipping"].group(1) == "warning"
    assert unescape(by_title["GL402 recurrent-without-clipping"].group(4)).startswith("rnn: ")
    assert by_title["GL403 large-learning-rate"].group(1) == "warning"


def test_clean_model_prints_no_annotation(repository):
    result = run_gradlint("--output-format", "github", "-q", "-j", "1", "models/clean.keras",
                          cwd=repository)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""


def test_properties_escape_colon_and_comma(tmp_path, models):
    (tmp_path / "odd").mkdir()
    shutil.copy(models["deep"], tmp_path / "odd" / "a,b:c 100%.keras")
    result = run_gradlint("--output-format", "github", "-j", "1", "odd", cwd=tmp_path)
    [line] = [line for line in result.stdout.splitlines() if line.startswith("::")]
    match = COMMAND.match(line)
    assert match, line
    assert match.group(2) == "odd/a%2Cb%3Ac 100%25.keras"
    assert unescape(match.group(2)) == "odd/a,b:c 100%.keras"


def test_data_escapes_percent_and_newlines(models):
    report = gradlint.lint(str(models["deep"]))
    finding = report.files[0].findings[0]
    finding.message = "50% of units\nare saturated\r, see: hidden_1"
    finding.severity = "info"
    output = render("github", report, RenderOptions(quiet=True))
    [line] = output.splitlines()
    assert line.startswith("::notice file=")
    match = COMMAND.match(line)
    assert match, line
    assert match.group(4) == "hidden_1: 50%25 of units%0Aare saturated%0D, see: hidden_1"
    assert unescape(match.group(4)) == "hidden_1: 50% of units\nare saturated\r, see: hidden_1"


def test_escape_functions_follow_the_runner_rules():
    assert escape_data("a%b\r\nc:d,e") == "a%25b%0D%0Ac:d,e"
    assert escape_property("a%b\r\nc:d,e") == "a%25b%0D%0Ac%3Ad%2Ce"


def test_probe_that_could_not_run_is_an_error_annotation(models):
    report = gradlint.lint(str(models["clean"]))
    report.files[0].probe = {"ran": False, "error": "custom layer MyBlock: pass "
                             "--custom-objects", "seeds": None, "batch": None,
                             "training_mode": None, "loss": None, "seconds": None}
    [line] = render("github", report, RenderOptions(quiet=True)).splitlines()
    match = COMMAND.match(line)
    assert match and match.group(1) == "error" and unescape(match.group(3)) == "gradlint probe"
    assert unescape(match.group(4)) == \
        "the probe could not run: custom layer MyBlock: pass --custom-objects"


def scale_class():
    """A registered custom layer class (once per session), flagged by GL002 on every layer."""
    return conftest.scale_layer_class(keras3(), PREFIX, "LayerScale")


def custom_blocks():
    """12 dense layers, each followed by a LayerScale: 12 GL002 infos for one class and one
    GL302 warning (13 Glorot/ReLU layers in a row without normalization, over which the
    estimated signal falls)."""
    keras = keras3()
    layer_scale = scale_class()
    x = inputs = keras.Input((32,))
    for index in range(12):
        x = keras.layers.Dense(32, activation="relu", kernel_initializer="glorot_uniform",
                               name=f"dense_{index}")(x)
        x = layer_scale(1.0, name=f"scale_{index}")(x)
    return keras.Model(inputs, keras.layers.Dense(1, name="head")(x), name="custom_blocks")


def test_repeated_custom_layers_are_one_annotation(repository, save_model):
    shutil.copy(save_model("renderer_github_custom", custom_blocks),
                repository / "models" / "custom.keras")
    report = gradlint.lint(str(repository / "models" / "custom.keras"))
    assert sum(1 for finding in report.findings if finding.code == "GL002") == 12
    lines = render("github", report, RenderOptions(quiet=True)).splitlines()
    notices = [COMMAND.match(line) for line in lines if line.startswith("::notice")]
    [notice] = notices
    assert unescape(notice.group(3)) == "GL002 unknown-layer"
    assert unescape(notice.group(4)) == (
        "scale_0: 'scale_0' is a custom layer (class LayerScale); its code is not read, so "
        "the estimate passes the signal through it unchanged; 11 more layers of class "
        "LayerScale likewise: 'scale_1', 'scale_2', 'scale_3', 'scale_4', …, 'scale_11'")
    assert [COMMAND.match(line).group(1) for line in lines] == ["warning", "notice"]


@pytest.fixture(scope="module")
def crowded(models, save_model, tmp_path_factory):
    """A repository with more findings of every kind than GitHub shows: 6 SimpleRNN models
    (an error and two warnings each), 6 sigmoid stacks (an error each), 12 custom-layer
    models (a warning and 12 GL002 infos each) and 2 clean models."""
    root = tmp_path_factory.mktemp("renderer_github_crowded")
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    (root / "models").mkdir()
    custom = save_model("renderer_github_custom", custom_blocks)
    sources = [("rnn", models["rnn"])] * 6 + [("deep", models["deep"])] * 6 + \
        [("custom", custom)] * 12 + [("clean", models["clean"])] * 2
    for index, (kind, source) in enumerate(sources):
        shutil.copy(source, root / "models" / f"{index:02d}_{kind}.keras")
    return root


def test_annotations_respect_githubs_caps(crowded):
    result = run_gradlint("--output-format", "github", "-j", "2", "models", cwd=crowded)
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    commands = [line for line in lines if line.startswith("::")]
    by_kind = {kind: [line for line in commands if line.startswith(f"::{kind} ")]
               for kind in ("error", "warning", "notice")}
    # Every finding left out is in the log, as a line that cannot start a command.
    logged = [re.match(r"^gradlint: (models/\S+?)(::\S+)?: GL\d{3} \[(error|warning|info)\] ",
                       line) for line in lines]
    logged = [match for match in logged if match]
    left_out = {kind: [m.group(1) for m in logged if m.group(3) == severity]
                for kind, severity in (("error", "error"), ("warning", "warning"),
                                       ("notice", "info"))}
    findings = {"error": 12, "warning": 24, "notice": 12 * 12}   # findings of each kind
    per_annotation = {"error": 1, "warning": 1, "notice": 12}     # GL002s are collapsed
    for kind, of_kind in by_kind.items():
        # At most 10 per kind: 9 findings and, last, the overflow, which belongs to the run.
        assert len(of_kind) == ANNOTATIONS_PER_KIND, (kind, of_kind)
        assert all(COMMAND.match(line) for line in of_kind[:-1])
        overflow = OVERFLOW.match(of_kind[-1])
        assert overflow, of_kind[-1]
        more = findings[kind] - 9 * per_annotation[kind]
        assert len(left_out[kind]) == more
        word = {"error": "errors", "warning": "warnings", "notice": "info findings"}[kind]
        assert unescape(overflow.group(2)) == f"gradlint: {more} more {word}"
        assert unescape(overflow.group(3)).startswith(
            f"{more} more {word} in {len(set(left_out[kind]))} models are not annotated: "
            f"GitHub shows at most 10 {kind} annotations per step.")
        assert "this step's log" in overflow.group(3)
    # Models worst first, each model's annotations together.
    paths = [unescape(COMMAND.match(line).group(2)) for line in commands if COMMAND.match(line)]
    runs = [path for index, path in enumerate(paths) if index == 0 or paths[index - 1] != path]
    assert len(runs) == len(set(runs)), runs
    kinds = [path.split("_")[-1].split(".")[0] for path in runs]
    assert kinds == sorted(kinds, key=["rnn", "deep", "custom"].index), kinds
    # Each custom model's 12 GL002 findings are one notice.
    notices = [unescape(COMMAND.match(line).group(4)) for line in by_kind["notice"][:-1]]
    assert all("11 more layers of class LayerScale likewise" in text for text in notices)
    assert lines[-1] == "gradlint: 180 findings (12 errors, 24 warnings, 144 infos) in 26 models"
    assert all(line.startswith(("::", "gradlint: ")) for line in lines)
