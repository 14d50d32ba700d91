"""GitHub Actions workflow commands: one annotation per finding, escaped as the runner
expects."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

import gradlint
import report_models
from conftest import run_gradlint
from gradlint.renderers import RenderOptions, render
from gradlint.renderers.github import escape_data, escape_property

COMMAND = re.compile(r"^::(error|warning|notice) file=([^,:]*),title=([^,:]*)::(.*)$")


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
    data = gradlint.lint(str(models["deep"])).to_dict()
    finding = data["files"][0]["findings"][0]
    finding["message"] = "50% of units\nare saturated\r, see: hidden_1"
    finding["severity"] = "info"
    output = render("github", data, RenderOptions(quiet=True))
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
    data = gradlint.lint(str(models["clean"])).to_dict()
    data["files"][0]["probe"] = {"ran": False, "error": "custom layer MyBlock: pass "
                                 "--custom-objects", "seeds": None, "batch": None,
                                 "training_mode": None, "loss": None, "seconds": None}
    [line] = render("github", data, RenderOptions(quiet=True)).splitlines()
    match = COMMAND.match(line)
    assert match and match.group(1) == "error" and unescape(match.group(3)) == "gradlint probe"
    assert unescape(match.group(4)) == \
        "the probe could not run: custom layer MyBlock: pass --custom-objects"
