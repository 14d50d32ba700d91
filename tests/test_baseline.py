"""Baselines: a baseline turns a red gate green, a new finding turns it red again, and
entries that no longer match anything are noted without failing."""

from __future__ import annotations

import json
import shutil

import pytest

import report_models
from conftest import run_gradlint

BASELINE = "gradlint-baseline.json"


BUILDERS = {"deep": report_models.deep_sigmoid, "deeper": report_models.deeper_sigmoid,
            "shallow": report_models.shallow_sigmoid, "clean": report_models.relu_he,
            "rnn": report_models.simple_rnn}


class Models:
    """Saved models by name, built on first use (once per session)."""

    def __init__(self, save_model):
        self._save = save_model

    def __getitem__(self, name):
        return self._save(f"baseline_{name}", BUILDERS[name])


@pytest.fixture(scope="module")
def built(save_model):
    return Models(save_model)


@pytest.fixture
def project(tmp_path, built):
    """A project with one flagged and one clean model."""
    (tmp_path / "models").mkdir()
    shutil.copy(built["deep"], tmp_path / "models" / "deep.keras")
    shutil.copy(built["clean"], tmp_path / "models" / "clean.keras")
    return tmp_path


def gradlint(*args, cwd):
    return run_gradlint("-j", "1", *args, cwd=cwd)


def test_baseline_turns_the_gate_green_and_a_new_finding_red(project, built):
    assert gradlint("models", cwd=project).returncode == 1  # red: GL101 on deep.keras

    created = gradlint("--create-baseline", BASELINE, "models", cwd=project)
    assert created.returncode == 0, created.stderr
    assert "recorded 1 finding in gradlint-baseline.json" in created.stderr

    green = gradlint("--baseline", BASELINE, "models", cwd=project)
    assert green.returncode == 0, green.stdout
    assert "::" not in green.stdout  # no finding lines
    assert "note: baseline gradlint-baseline.json: 1 known finding not shown" in green.stdout
    assert "Found 0 findings in 2 models." in green.stdout

    # A new flagged model turns it red again, and only the new finding is printed.
    shutil.copy(built["deep"], project / "models" / "copy_of_deep.keras")
    red = gradlint("--baseline", BASELINE, "models", cwd=project)
    assert red.returncode == 1
    findings = [line for line in red.stdout.splitlines() if " GL" in line and "::" in line]
    assert findings == [line for line in findings if line.startswith("models/copy_of_deep.keras::")]
    assert len(findings) == 1

    # So does a new finding in a model the baseline already knows.
    (project / "models" / "copy_of_deep.keras").unlink()
    shutil.copy(built["rnn"], project / "models" / "clean.keras")
    red = gradlint("--baseline", BASELINE, "models", cwd=project)
    assert red.returncode == 1
    assert "models/clean.keras::rnn: GL401 [error]" in red.stdout


def test_entries_are_keyed_by_path_layer_and_rule(project, built):
    gradlint("--create-baseline", BASELINE, "models", cwd=project)
    data = json.loads((project / BASELINE).read_text(encoding="utf-8"))
    assert data["version"] == 1
    [entry] = data["findings"]
    assert {k: entry[k] for k in ("path", "layer", "code", "count")} == \
        {"path": "models/deep.keras", "layer": "hidden_1", "code": "GL101", "count": 1}
    # Two more layers change the message but not the key: still a known finding.
    shutil.copy(built["deeper"], project / "models" / "deep.keras")
    result = gradlint("--baseline", BASELINE, "models/clean.keras", "models/deep.keras",
                      cwd=project)
    assert result.returncode == 0, result.stdout
    # The baseline's paths are relative to its own directory, not to the working directory.
    (project / "scripts").mkdir()
    result = gradlint("--baseline", f"../{BASELINE}", "../models", cwd=project / "scripts")
    assert result.returncode == 0, result.stdout


def test_stale_entries_are_noted_not_failed(project, built):
    shutil.copy(built["rnn"], project / "models" / "rnn.keras")
    gradlint("--create-baseline", BASELINE, "models", cwd=project)
    # deep.keras is fixed, rnn.keras is deleted.
    shutil.copy(built["shallow"], project / "models" / "deep.keras")
    (project / "models" / "rnn.keras").unlink()
    result = gradlint("--baseline", BASELINE, "models", cwd=project)
    assert result.returncode == 0, result.stdout
    assert "models/deep.keras: note: baseline entry GL101 at layer 'hidden_1' no longer " \
           "matches anything" in result.stdout
    assert "note: baseline entry GL401 at layer 'rnn' for models/rnn.keras: the model no " \
           "longer exists" in result.stdout
    assert "4 entries no longer match anything (refresh with --create-baseline)" in result.stdout
    # JSON output carries what the baseline did per file.
    data = json.loads(gradlint("--baseline", BASELINE, "--output-format", "json", "models",
                               cwd=project).stdout)
    deep = next(f for f in data["files"] if f["path"].endswith("deep.keras"))
    assert deep["baseline"]["suppressed"] == 0
    assert deep["baseline"]["stale"][0]["code"] == "GL101"


def test_models_not_linted_in_this_run_are_not_stale(project):
    """pre-commit passes only the changed files: the other models' entries stay quiet."""
    gradlint("--create-baseline", BASELINE, "models", cwd=project)
    result = gradlint("--baseline", BASELINE, "models/clean.keras", cwd=project)
    assert result.returncode == 0
    assert "no longer" not in result.stdout


def test_baseline_from_the_configuration_file(project):
    gradlint("--create-baseline", BASELINE, "models", cwd=project)
    (project / "pyproject.toml").write_text(f'[tool.gradlint]\nbaseline = "{BASELINE}"\n',
                                            encoding="utf-8")
    (project / "models" / "nested").mkdir()
    # Found from a subdirectory: the file's value is relative to the configuration file.
    result = gradlint("..", cwd=project / "models" / "nested")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 known finding not shown" in result.stdout
    (project / "pyproject.toml").write_text("[tool.gradlint]\nbaseline = 3\n", encoding="utf-8")
    result = gradlint("models", cwd=project)
    assert result.returncode == 2 and "'baseline' must be a file name" in result.stderr


def test_unreadable_files_are_never_baselined(project):
    (project / "models" / "broken.keras").write_bytes(b"")
    created = gradlint("--create-baseline", BASELINE, "models", cwd=project)
    assert created.returncode == 2  # an unreadable file fails even while recording
    codes = [e["code"] for e in json.loads((project / BASELINE).read_text())["findings"]]
    assert codes == ["GL101"]
    assert gradlint("--baseline", BASELINE, "models", cwd=project).returncode == 2


@pytest.mark.parametrize("content, message", [
    (None, "does not exist (create it with --create-baseline)"),
    ("{not json", "is not valid JSON"),
    ('{"version": 1, "findings": [{"path": 1}]}', "entry 1 needs 'path'"),
    ('{"version": 7, "findings": []}', "has version 7"),
])
def test_bad_baseline_is_a_clear_usage_error(project, content, message):
    if content is not None:
        (project / BASELINE).write_text(content, encoding="utf-8")
    result = gradlint("--baseline", BASELINE, "models", cwd=project)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


# --- what a baseline does to the report: suppressed, not counted, shown only in SARIF and JSON --

def test_baselined_findings_move_to_suppressed_and_count_nowhere(project, built):
    import copy

    import gradlint
    from gradlint.baseline import apply, create

    shutil.copy(built["rnn"], project / "models" / "rnn.keras")
    paths = [str(project / "models" / name) for name in ("deep.keras", "clean.keras",
                                                          "rnn.keras")]
    report = gradlint.lint(paths)
    assert report.exit_code() == 1
    assert create(report, str(project / BASELINE)) == 4
    original = {result.path: list(result.findings) for result in report.files}

    untouched = copy.deepcopy(report)
    outcome = apply(report, str(project / BASELINE))
    assert outcome.suppressed == 4 and not outcome.stale
    for result in report.files:
        # The same Finding objects, in their order, moved out of `findings`.
        assert result.findings == []
        assert [id(f) for f in result.suppressed] == [id(f) for f in original[result.path]]
        assert result.baseline_file == str(project / BASELINE)
    assert report.findings == [] and report.counts() == {"error": 0, "warning": 0, "info": 0}
    assert report.statistics() == []
    assert report.exit_code() == 0 and report.exit_code(fail_on="info") == 0
    summary = report.summary()
    assert summary["findings"] == 0 and summary["suppressed"] == 4

    # The JSON contract lists them per file, right after the findings, in their form.
    data = report.to_dict()
    rnn = next(f for f in data["files"] if f["path"].endswith("rnn.keras"))
    assert list(rnn)[list(rnn).index("findings") + 1] == "suppressed"
    assert rnn["findings"] == []
    assert rnn["suppressed"] == [f.to_dict() for f in original[rnn["path"]]]
    assert rnn["baseline"] == {"suppressed": 3}
    assert data["summary"]["suppressed"] == 4
    assert json.loads(report.to_json())["files"][0]["suppressed"][0]["code"] == "GL101"
    # Without a baseline the list is there and empty.
    assert all(f["suppressed"] == [] for f in untouched.to_dict()["files"])
    assert untouched.summary()["suppressed"] == 0


@pytest.mark.parametrize("format", ["text", "github", "junit", "markdown", "html"])
def test_other_formats_show_baselined_findings_nowhere(project, format):
    """Every format but SARIF and JSON renders a baselined report exactly as if the baselined
    findings had been dropped, as they were before they were kept as `suppressed`."""
    import gradlint
    from gradlint.baseline import apply, create
    from gradlint.renderers import RenderOptions, render

    paths = [str(project / "models" / "deep.keras"), str(project / "models" / "clean.keras")]
    create(gradlint.lint(paths), str(project / BASELINE))
    report = gradlint.lint(paths)
    apply(report, str(project / BASELINE))
    assert sum(len(result.suppressed) for result in report.files) == 1
    import copy

    dropped = copy.deepcopy(report)  # the same run (and times), without the baselined ones
    for result in dropped.files:
        result.suppressed = []
    options = RenderOptions()
    assert render(format, report, options) == render(format, dropped, options)
    assert "GL101" not in render("text", report, options)


def test_sarif_with_a_baseline_exits_as_the_other_formats(project):
    gradlint("--create-baseline", BASELINE, "models", cwd=project)
    for format in ("text", "json", "sarif", "github"):
        result = gradlint("--baseline", BASELINE, "--output-format", format, "models",
                          cwd=project)
        assert result.returncode == 0, (format, result.stdout, result.stderr)
    sarif = json.loads(gradlint("--baseline", BASELINE, "--output-format", "sarif", "models",
                                cwd=project).stdout)
    [result] = sarif["runs"][0]["results"]
    assert result["ruleId"] == "GL101" and result["baselineState"] == "unchanged"
    assert result["suppressions"][0]["kind"] == "external"
