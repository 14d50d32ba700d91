"""Configuration: `[tool.gradlint]` in pyproject.toml or a standalone gradlint.toml found
above the working directory, --config, --isolated, the command line beating the file,
per-file and per-layer ignores, per-rule options and severities, and clear errors."""

from __future__ import annotations

import json
import shutil
import textwrap

import pytest
from click.testing import CliRunner

from gradlint.cli import main

from conftest import keras3, run_gradlint

PREFIX = "test_config"


def build_sigmoid_stack():
    """Eight sigmoid layers (GL101 at `sig_0`) saved with too large a learning rate (GL403)."""
    keras = keras3()
    inputs = keras.Input((32,), name="features")
    x = inputs
    for index in range(8):
        x = keras.layers.Dense(32, activation="sigmoid", name=f"sig_{index}")(x)
    model = keras.Model(inputs, keras.layers.Dense(1, name="out")(x), name="sigmoid_stack")
    model.compile(keras.optimizers.SGD(learning_rate=0.5), "mse")
    return model


def build_nested_stack():
    """The same chain inside a nested model, so that its findings have `encoder/...` paths."""
    keras = keras3()
    inner_in = keras.Input((32,), name="inner_in")
    x = inner_in
    for index in range(8):
        x = keras.layers.Dense(32, activation="sigmoid", name=f"sig_{index}")(x)
    encoder = keras.Model(inner_in, x, name="encoder")
    inputs = keras.Input((32,), name="features")
    return keras.Model(inputs, keras.layers.Dense(1, name="out")(encoder(inputs)), name="nested")


@pytest.fixture(scope="module")
def stack(save_model):
    return save_model(f"{PREFIX}-stack", build_sigmoid_stack)


@pytest.fixture(scope="module")
def nested(save_model):
    return save_model(f"{PREFIX}-nested", build_nested_stack)


@pytest.fixture
def project(tmp_path, stack, monkeypatch):
    """A project directory holding the model at models/model.keras; the working directory
    is models/deeper, two levels below the project root."""
    root = tmp_path / "project"
    models = root / "models"
    (models / "deeper").mkdir(parents=True)
    shutil.copyfile(stack, models / "model.keras")
    monkeypatch.chdir(models / "deeper")
    return root


def write(path, text):
    path.write_text(textwrap.dedent(text))
    return path


def run(*args):
    """The command line in this process, with one job."""
    result = CliRunner().invoke(main, ["-j", "1", *map(str, args)])
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        repr(result.exception)
    return result


def findings(*args):
    result = run("--output-format", "json", *args)
    assert result.exit_code in (0, 1), result.output
    report = json.loads(result.stdout)
    return sorted((f["code"], f["severity"], f["layer"] or "") for file in report["files"]
                  for f in file["findings"])


def lint_codes(*args):
    return sorted({code for code, _, _ in findings(*args)})


def test_defaults_without_a_file(project):
    assert lint_codes("../model.keras") == ["GL101", "GL403"]


# --- where the file is found --------------------------------------------------------------

def test_pyproject_above_the_working_directory(project):
    write(project / "pyproject.toml", """
        [project]
        name = "something"

        [tool.gradlint]
        ignore = ["GL403"]
    """)
    assert lint_codes("../model.keras") == ["GL101"]
    shown = json.loads(run("--show-settings", "../model.keras").stdout)
    assert shown["config-file"] == str(project / "pyproject.toml")


def test_standalone_gradlint_toml(project):
    write(project / "gradlint.toml", """
        select = ["GL4"]
    """)
    assert lint_codes("../model.keras") == ["GL403"]


def test_pyproject_without_a_gradlint_table_is_passed_over(project):
    write(project / "gradlint.toml", 'select = ["GL4"]\n')
    write(project / "models" / "pyproject.toml", '[project]\nname = "models"\n')
    assert lint_codes("../model.keras") == ["GL403"]


def test_the_nearest_file_wins(project):
    write(project / "gradlint.toml", 'select = ["GL4"]\n')
    write(project / "models" / "pyproject.toml", '[tool.gradlint]\nselect = ["GL1"]\n')
    assert lint_codes("../model.keras") == ["GL101"]


def test_config_option(project, tmp_path):
    elsewhere = write(tmp_path / "ci-settings.toml", 'select = ["GL403"]\n')
    write(project / "gradlint.toml", 'select = ["GL1"]\n')
    assert lint_codes("--config", elsewhere, "../model.keras") == ["GL403"]
    pyproject = write(tmp_path / "pyproject.toml", '[tool.gradlint]\nignore = ["GL1"]\n')
    assert lint_codes("--config", pyproject, "../model.keras") == ["GL403"]


def test_config_option_missing_file(project, tmp_path):
    result = run("--config", tmp_path / "nope.toml", "../model.keras")
    assert result.exit_code == 2
    assert "nope.toml" in result.stderr


def test_config_option_pyproject_without_a_table(project, tmp_path):
    pyproject = write(tmp_path / "pyproject.toml", '[project]\nname = "x"\n')
    result = run("--config", pyproject, "../model.keras")
    assert result.exit_code == 2
    assert "tool.gradlint" in result.stderr


def test_isolated_ignores_every_file(project):
    write(project / "gradlint.toml", 'select = ["GL4"]\nnot-a-key = 1\n')
    assert lint_codes("--isolated", "../model.keras") == ["GL101", "GL403"]


# --- the command line beats the file --------------------------------------------------------

def test_command_line_select_beats_file_select(project):
    write(project / "gradlint.toml", 'select = ["GL4"]\n')
    assert lint_codes("--select", "GL1", "../model.keras") == ["GL101"]


def test_command_line_fail_on_beats_the_file(project):
    write(project / "gradlint.toml", 'fail-on = "never"\n')
    assert run("../model.keras").exit_code == 0
    assert run("--fail-on", "error", "../model.keras").exit_code == 1


def test_command_line_select_beats_file_ignore(project):
    """As in ruff: a rule selected on the command line runs even if the file ignores it."""
    write(project / "gradlint.toml", 'ignore = ["GL101"]\n')
    assert lint_codes("../model.keras") == ["GL403"]
    assert lint_codes("--select", "GL101", "../model.keras") == ["GL101"]


def test_file_extend_select_and_command_line_ignore(project):
    write(project / "gradlint.toml", 'select = ["GL4"]\nextend-select = ["GL1"]\n')
    assert lint_codes("../model.keras") == ["GL101", "GL403"]
    assert lint_codes("--ignore", "GL403", "../model.keras") == ["GL101"]


def test_weights_key(project):
    write(project / "gradlint.toml", "weights = false\n")
    report = json.loads(run("--output-format", "json", "../model.keras").stdout)
    assert report["files"][0]["model"]["params"] is None


# --- per-file and per-layer ignores ---------------------------------------------------------

def test_per_file_ignores(project):
    shutil.copyfile(project / "models" / "model.keras", project / "models" / "legacy_model.keras")
    write(project / "gradlint.toml", """
        [per-file-ignores]
        "**/legacy_*.keras" = ["GL101", "large-learning-rate"]
    """)
    report = json.loads(run("--output-format", "json", "..").stdout)
    by_name = {file["path"].rsplit("/", 1)[-1]: sorted(f["code"] for f in file["findings"])
               for file in report["files"]}
    assert by_name == {"legacy_model.keras": [], "model.keras": ["GL101", "GL403"]}


def test_per_file_ignores_relative_to_the_config_file(project):
    write(project / "gradlint.toml", """
        [per-file-ignores]
        "models/*.keras" = ["GL4"]
    """)
    assert lint_codes("../model.keras") == ["GL101"]


def test_per_layer_ignores(project):
    write(project / "gradlint.toml", """
        [per-layer-ignores]
        "sig_*" = ["GL101"]
    """)
    assert lint_codes("../model.keras") == ["GL403"]


def test_per_layer_ignores_only_drop_the_named_codes(project):
    write(project / "gradlint.toml", """
        [per-layer-ignores]
        "sig_*" = ["GL403", "GL2"]
        "out" = ["GL101"]
    """)
    assert lint_codes("../model.keras") == ["GL101", "GL403"]


def test_per_layer_ignores_on_nested_paths(project, nested):
    shutil.copyfile(nested, project / "models" / "nested.keras")
    everything = findings("../nested.keras")
    assert any(code == "GL101" and layer.startswith("encoder/") for code, _, layer in everything)
    write(project / "gradlint.toml", """
        [per-layer-ignores]
        "encoder/*" = ["saturating-activation-chain"]
    """)
    assert "GL101" not in lint_codes("../nested.keras")


# --- per-rule options and severities ---------------------------------------------------------

def _gl101_gradient(project):
    report = json.loads(run("--isolated", "--output-format", "json", "../model.keras").stdout)
    finding = next(f for f in report["files"][0]["findings"] if f["code"] == "GL101")
    return finding["evidence"]["gradient"]


@pytest.mark.parametrize("table", ["GL101", "saturating-activation-chain", "sigmoid-chain"])
def test_rule_options(project, table):
    gradient = _gl101_gradient(project)
    assert 0 < gradient < 1e-3  # an error by default
    config = project / "gradlint.toml"
    write(config, f"""
        [rules.{table}]
        error-below = {gradient / 100!r}
        warning-below = {gradient * 10!r}
    """)
    assert ("GL101", "warning", "sig_0") in findings("../model.keras")
    write(config, f"""
        [rules.{table}]
        error-below = {gradient / 100!r}
        warning-below = {gradient / 10!r}
    """)
    assert "GL101" not in lint_codes("../model.keras")
    write(config, f"""
        [rules.{table}]
        min-layers = 20
    """)
    assert "GL101" not in lint_codes("../model.keras")


def test_rule_options_in_pyproject(project):
    write(project / "pyproject.toml", """
        [tool.gradlint.rules.GL101]
        min-layers = 20
    """)
    assert lint_codes("../model.keras") == ["GL403"]


@pytest.mark.parametrize("table", ["GL403", "large-learning-rate"])
def test_severity_override(project, table):
    write(project / "gradlint.toml", f"""
        select = ["GL403"]

        [rules.{table}]
        severity = "error"
    """)
    assert findings("../model.keras") == [("GL403", "error", "")]
    assert run("../model.keras").exit_code == 1


def test_severity_override_downwards(project):
    write(project / "gradlint.toml", """
        [rules.GL101]
        severity = "info"
    """)
    assert ("GL101", "info", "sig_0") in findings("../model.keras")
    assert run("../model.keras").exit_code == 0


# --- errors in the file -------------------------------------------------------------------

@pytest.mark.parametrize("text, fragment", [
    ('colour = "always"\n', "colour"),
    ('select = 3\n', "select"),
    ('select = ["GL000"]\n', "GL000"),
    ('ignore = ["no-such-rule"]\n', "no-such-rule"),
    ('extend-select = [1, 2]\n', "extend-select"),
    ('fail-on = "sometimes"\n', "fail-on"),
    ('respect-gitignore = "yes"\n', "respect-gitignore"),
    ('weights = 0\n', "weights"),
    ('per-file-ignores = ["a"]\n', "per-file-ignores"),
    ('[per-file-ignores]\n"*.keras" = 3\n', "per-file-ignores"),
    ('[per-file-ignores]\n"*.keras" = ["GL000"]\n', "GL000"),
    ('[per-layer-ignores]\n"dense*" = ["not-a-rule"]\n', "not-a-rule"),
    ('[rules.GL000]\nseverity = "error"\n', "GL000"),
    ('[rules.GL101]\nerror-beneath = 1e-3\n', "error-beneath"),
    ('[rules.GL101]\nerror-below = "small"\n', "error-below"),
    ('[rules.GL101]\nmin-layers = 2.5\n', "min-layers"),
    ('[rules.GL101]\nseverity = "fatal"\n', "severity"),
    ('rules = 5\n', "rules"),
    ('select = [\n', "TOML"),
])
def test_bad_configuration(project, text, fragment):
    config = write(project / "gradlint.toml", text)
    result = run("../model.keras")
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert fragment in result.stderr
    assert result.stderr.startswith("gradlint: error: ")
    assert "Traceback" not in result.stderr
    assert config.exists()


def test_unknown_rule_option_lists_the_known_ones(project):
    write(project / "gradlint.toml", "[rules.GL101]\nthreshold = 1\n")
    result = run("../model.keras")
    assert result.exit_code == 2
    for option in ("error-below", "warning-below", "min-layers", "severity"):
        assert option in result.stderr


def test_bad_pyproject_table(project):
    write(project / "pyproject.toml", "[tool.gradlint]\nbogus = true\n")
    result = run("../model.keras")
    assert result.exit_code == 2
    assert "bogus" in result.stderr and "pyproject.toml" in result.stderr


def test_bad_configuration_in_the_real_process(project):
    write(project / "gradlint.toml", "unknown-key = 1\n")
    result = run_gradlint("../model.keras", cwd=project / "models" / "deeper")
    assert result.returncode == 2
    assert "unknown-key" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_settings_are_resolved_once_and_never_changed(tmp_path):
    """One immutable settings object per run: the command line's values are merged in
    `config.resolve`, and linting never changes the settings its caller passed."""
    import dataclasses

    import gradlint
    from gradlint.config import CommandLine, Settings, resolve

    (tmp_path / "gradlint.toml").write_text('select = ["GL1"]\nignore = ["GL101"]\n'
                                            "[limits]\ntimeout = 30\n")
    settings = resolve(str(tmp_path / "gradlint.toml"), False,
                       CommandLine(extend_select=("GL2",), timeout=5.0, no_weights=True))
    assert settings.select == ["GL1"] and settings.ignore == ["GL101"]
    assert settings.extend_select == ["GL2"] and not settings.read_weights
    assert settings.limits.timeout == 5.0  # the command line wins over [limits]
    fresh = resolve(str(tmp_path / "gradlint.toml"), False, CommandLine(select=("GL3",)))
    assert fresh.select == ["GL3"] and fresh.ignore == [] and fresh.limits.timeout == 30
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.probe = True
    mine = Settings()
    gradlint.lint(str(tmp_path / "missing.keras"), settings=mine, select=["GL1"], weights=False)
    assert mine == Settings()


# --- per-file configuration, as ruff resolves it -----------------------------------------

@pytest.fixture
def repository(tmp_path, stack):
    """repo/pyproject.toml ignores GL403; repo/legacy/gradlint.toml selects only GL4. The
    same model sits at repo/model.keras and repo/legacy/model.keras."""
    root = tmp_path / "repo"
    (root / "legacy").mkdir(parents=True)
    shutil.copy(stack, root / "model.keras")
    shutil.copy(stack, root / "legacy" / "model.keras")
    write(root / "pyproject.toml", """
        [tool.gradlint]
        ignore = ["GL403"]
        fail-on = "warning"
    """)
    write(root / "legacy" / "gradlint.toml", """
        select = ["GL4"]
        fail-on = "never"
    """)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    return root, elsewhere


def _codes_by_file(completed):
    return {entry["path"]: sorted(f["code"] for f in entry["findings"])
            for entry in json.loads(completed.stdout)["files"]}


def test_configuration_is_found_from_each_file_not_the_working_directory(repository):
    from conftest import run_gradlint

    root, elsewhere = repository
    completed = run_gradlint("--output-format", "json", root, cwd=elsewhere)
    codes = _codes_by_file(completed)
    assert codes[str(root / "model.keras")] == ["GL101"]  # repo/pyproject.toml: no GL403
    assert codes[str(root / "legacy" / "model.keras")] == ["GL403"]  # the closest wins
    # fail-on applies to the whole run: from the working directory's configuration, which
    # here is none (error), not from either file's.
    assert completed.returncode == 1


def test_command_line_and_config_option_win_over_the_files(repository):
    from conftest import run_gradlint

    root, elsewhere = repository
    selected = _codes_by_file(run_gradlint("--output-format", "json", "--select", "GL1",
                                           root, cwd=elsewhere))
    assert set(map(tuple, selected.values())) == {("GL101",)}
    named = _codes_by_file(run_gradlint("--output-format", "json", "--config",
                                        root / "legacy" / "gradlint.toml", root, cwd=elsewhere))
    assert set(map(tuple, named.values())) == {("GL403",)}  # --config: for every file
    isolated = _codes_by_file(run_gradlint("--output-format", "json", "--isolated", root,
                                           cwd=elsewhere))
    assert set(map(tuple, isolated.values())) == {("GL101", "GL403")}


def test_run_wide_keys_come_from_the_working_directory(repository):
    from conftest import run_gradlint

    root, _ = repository
    completed = run_gradlint("--output-format", "json", ".", cwd=root / "legacy")
    assert completed.returncode == 0  # legacy/gradlint.toml: fail-on = "never"
    completed = run_gradlint("--output-format", "json", "legacy", cwd=root)
    assert completed.returncode == 1  # repo/pyproject.toml: fail-on = "warning", GL403
