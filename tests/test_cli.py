"""The command line: exit codes, rule selection, fail levels, output options, the rule and
rules commands, the text line format, colour, and --show-settings."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys

import pytest
from click.testing import CliRunner

import gradlint
from gradlint.cli import main
from gradlint.rule_registry import all_rules

from conftest import keras3, run_gradlint

PREFIX = "test_cli"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def build_error_model():
    """Eight sigmoid layers: the saturating-activation chain is an error, nothing else fires."""
    keras = keras3()
    inputs = keras.Input((32,), name="features")
    x = inputs
    for index in range(8):
        x = keras.layers.Dense(32, activation="sigmoid", name=f"sig_{index}")(x)
    return keras.Model(inputs, keras.layers.Dense(1, name="out")(x), name="sigmoid_stack")


def build_warning_model():
    """A healthy little network saved with a learning rate too large for SGD: one warning."""
    keras = keras3()
    model = keras.Sequential([keras.Input((16,)),
                              keras.layers.Dense(16, activation="relu",
                                                 kernel_initializer="he_normal", name="hidden"),
                              keras.layers.Dense(1, name="out")], name="large_rate")
    model.compile(keras.optimizers.SGD(learning_rate=0.5), "mse")
    return model


def build_info_model():
    """A custom layer: an info finding only."""
    keras = keras3()

    @keras.saving.register_keras_serializable(package=PREFIX)
    class Halve(keras.layers.Layer):
        def call(self, x):
            return x * 0.5

    inputs = keras.Input((16,), name="features")
    x = keras.layers.Dense(16, activation="relu", kernel_initializer="he_normal",
                           name="hidden")(inputs)
    x = Halve(name="halve")(x)
    return keras.Model(inputs, keras.layers.Dense(1, name="out")(x), name="custom")


def build_clean_model():
    keras = keras3()
    return keras.Sequential([keras.Input((16,)),
                             keras.layers.Dense(16, activation="relu",
                                                kernel_initializer="he_normal", name="hidden"),
                             keras.layers.Dense(1, name="out")], name="clean")


@pytest.fixture(scope="module")
def models(save_model, tmp_path_factory):
    paths = {
        "error": save_model(f"{PREFIX}-error", build_error_model),
        "warning": save_model(f"{PREFIX}-warning", build_warning_model),
        "info": save_model(f"{PREFIX}-info", build_info_model),
        "clean": save_model(f"{PREFIX}-clean", build_clean_model),
    }
    broken = tmp_path_factory.mktemp("cli") / "broken.keras"
    broken.write_bytes(b"PK\x03\x04 not really a zip")
    paths["broken"] = broken
    return {name: str(path) for name, path in paths.items()}


def cli(*args, env=None):
    """The command line in this process. One job, so that no worker process is forked from a
    test process that has TensorFlow loaded."""
    arguments = list(map(str, args))
    if arguments and arguments[0] not in ("check", "rule", "rules", "--version"):
        arguments = ["--isolated", "-j", "1", *arguments]
    result = CliRunner().invoke(main, arguments, env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        repr(result.exception)
    return result


def codes(result):
    report = json.loads(result.stdout)
    return sorted(f["code"] for file in report["files"] for f in file["findings"])


def test_models_have_the_findings_the_tests_rely_on(models):
    """The severities below are derived from these models; check them once."""
    def severities(name):
        return sorted({f.severity for f in gradlint.lint(models[name]).findings})

    assert "error" in severities("error")
    assert severities("warning") == ["warning"]
    assert severities("info") == ["info"]
    assert severities("clean") == []


# --- exit codes ---------------------------------------------------------------------------

@pytest.mark.parametrize("names, options, expected", [
    (["clean"], [], 0),
    (["warning"], [], 0),
    (["info"], [], 0),
    (["error"], [], 1),
    (["error", "warning"], [], 1),
    (["error", "broken"], [], 2),
    (["clean", "broken"], [], 2),
    (["error"], ["--exit-zero"], 0),
    (["error", "broken"], ["--exit-zero"], 2),
    (["warning"], ["--fail-on", "warning"], 1),
    (["info"], ["--fail-on", "warning"], 0),
    (["info"], ["--fail-on", "info"], 1),
    (["error"], ["--fail-on", "never"], 0),
    (["broken"], ["--fail-on", "never"], 2),
    (["warning"], ["--fail-on", "warning", "--exit-zero"], 0),
])
def test_exit_codes(models, names, options, expected):
    result = cli(*options, *[models[name] for name in names])
    assert result.exit_code == expected, result.output


def test_exit_codes_of_the_real_process(models):
    clean = run_gradlint("--isolated", models["clean"])
    assert (clean.returncode, clean.stderr) == (0, "")
    error = run_gradlint("--isolated", models["error"])
    assert (error.returncode, error.stderr) == (1, "")
    both = run_gradlint("--isolated", "--exit-zero", models["error"], models["broken"])
    assert both.returncode == 2
    assert "Traceback" not in both.stderr
    assert f"{models['broken']}: GL001 [error]" in both.stdout
    assert f"{models['error']}::" in both.stdout


def test_explicit_check_command(models):
    assert cli("check", "--isolated", "-j", "1", models["error"]).exit_code == 1


# --- rule selection -----------------------------------------------------------------------

@pytest.mark.parametrize("selector, expected", [
    ("GL101", ["GL101"]),
    ("GL1", ["GL101"]),
    ("GL4", ["GL403"]),
    ("GL403", ["GL403"]),
    ("large-learning-rate", ["GL403"]),
    ("saturating-activation-chain", ["GL101"]),
    ("sigmoid-chain", ["GL101"]),  # an alias
    ("optimizer", ["GL403"]),      # a group
    ("vanishing", ["GL101"]),      # a group
    ("GL101,GL403", ["GL101", "GL403"]),
    ("GL2", []),
])
def test_select(models, selector, expected):
    result = cli("--select", selector, "--output-format", "json",
                 models["error"], models["warning"])
    assert codes(result) == expected


def test_select_repeated(models):
    result = cli("--select", "GL101", "--select", "GL403", "--output-format", "json",
                 models["error"], models["warning"])
    assert codes(result) == ["GL101", "GL403"]


@pytest.mark.parametrize("selector", ["GL101", "GL1", "saturating-activation-chain", "vanishing"])
def test_ignore(models, selector):
    result = cli("--ignore", selector, "--output-format", "json", models["error"],
                 models["warning"])
    assert codes(result) == ["GL403"]
    assert result.exit_code == 0


def test_extend_select(models):
    result = cli("--select", "GL4", "--extend-select", "GL101", "--output-format", "json",
                 models["error"], models["warning"])
    assert codes(result) == ["GL101", "GL403"]
    result = cli("--select", "GL4", "--extend-select", "GL1", "--ignore", "GL403",
                 "--output-format", "json", models["error"], models["warning"])
    assert codes(result) == ["GL101"]


@pytest.mark.parametrize("option", ["--select", "--ignore", "--extend-select"])
def test_unknown_selector(models, option):
    result = cli(option, "GL0009x", models["clean"])
    assert result.exit_code == 2
    assert "GL0009x" in result.stderr
    assert result.stdout == ""


def test_unknown_selector_in_the_real_process(models):
    result = run_gradlint("--isolated", "--select", "no-such-rule", models["clean"])
    assert result.returncode == 2
    assert "no-such-rule" in result.stderr
    assert "Traceback" not in result.stderr


# --- output options -----------------------------------------------------------------------

def test_text_line_format(models):
    result = cli(models["error"], models["warning"], models["info"])
    report = gradlint.lint([models["error"], models["warning"], models["info"]]).to_dict()
    lines = result.stdout.splitlines()
    for file in report["files"]:
        for finding in file["findings"]:
            location = f"{file['path']}::{finding['layer']}" if finding["layer"] else file["path"]
            expected = (f"{location}: {finding['code']} [{finding['severity']}] "
                        f"{finding['message']}")
            assert expected in lines
    pattern = re.compile(r"^(?P<path>[^:]+)(::(?P<layer>\S+))?: (?P<code>GL\d{3}) "
                         r"\[(?P<severity>error|warning|info)\] (?P<message>.+)$")
    finding_lines = [line for line in lines if pattern.match(line)]
    assert len(finding_lines) == sum(len(file["findings"]) for file in report["files"])
    gl101 = next(pattern.match(line) for line in finding_lines if " GL101 " in line)
    assert gl101["path"] == models["error"]
    assert gl101["layer"].startswith("sig_")
    assert gl101["severity"] == "error"
    assert lines[-1].startswith("Found ")


def test_summary_line_counts(models):
    result = cli(models["error"], models["warning"], models["info"], models["broken"])
    summary = gradlint.lint([models["error"], models["warning"], models["info"],
                             models["broken"]]).summary()
    last = result.stdout.splitlines()[-1]
    assert f"Found {summary['findings']} findings" in last
    assert f"in {summary['files_linted']} models" in last
    assert "1 file could not be read" in last


def test_statistics(models):
    paths = [models["error"], models["warning"], models["info"]]
    result = cli("--statistics", *paths)
    report = gradlint.lint(paths)
    lines = result.stdout.splitlines()
    rows = [line.split() for line in lines if re.match(r"^\s*\d+\s+GL\d{3}\s+\S+$", line)]
    expected = {}
    for finding in report.findings:
        expected[(finding.code, finding.name)] = expected.get((finding.code, finding.name), 0) + 1
    assert {(row[1], row[2]): int(row[0]) for row in rows} == expected
    assert not any("::" in line for line in lines)  # no finding lines
    assert result.exit_code == 1


def test_quiet(models):
    loud = cli(models["error"], models["info"])
    quiet = cli("-q", models["error"], models["info"])
    finding_lines = [line for line in loud.stdout.splitlines() if " GL" in line]
    assert finding_lines
    assert quiet.stdout.splitlines() == finding_lines
    assert not any(line.startswith("Found ") for line in quiet.stdout.splitlines())
    assert quiet.exit_code == loud.exit_code == 1


def test_output_format_json(models):
    result = cli("--output-format", "json", models["error"], models["warning"])
    report = json.loads(result.stdout)
    assert report["version"] == 2
    assert [file["path"] for file in report["files"]] == [models["error"], models["warning"]]
    assert report["summary"]["files_linted"] == 2
    assert result.exit_code == 1


def test_output_file(models, tmp_path):
    target = tmp_path / "out" / "report.json"
    target.parent.mkdir()
    result = cli("--output-format", "json", "-o", target, models["warning"])
    assert result.stdout == ""
    assert result.exit_code == 0
    report = json.loads(target.read_text())
    assert report["files"][0]["path"] == models["warning"]
    text_target = tmp_path / "report.txt"
    result = cli("--output-file", text_target, models["error"])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert f"{models['error']}::" in text_target.read_text()
    assert not ANSI.search(text_target.read_text())


def test_no_weights(models):
    full = json.loads(cli("--output-format", "json", models["error"]).stdout)["files"][0]
    fast = json.loads(cli("--no-weights", "--output-format", "json",
                          models["error"]).stdout)["files"][0]
    assert full["model"]["params"] > 0
    assert fast["model"]["params"] is None
    assert all(layer["estimate"]["stored_weights"] is None for layer in fast["layers"])
    assert any(layer["estimate"]["stored_weights"] is not None for layer in full["layers"])
    assert [f["code"] for f in fast["findings"]] == [f["code"] for f in full["findings"]]


def test_parallel_jobs_give_the_same_report(models):
    paths = [models[name] for name in ("error", "warning", "info", "clean", "broken")]
    serial = run_gradlint("--isolated", "-j", "1", "--output-format", "json", *paths)
    parallel = run_gradlint("--isolated", "-j", "2", "--output-format", "json", *paths)
    assert parallel.returncode == serial.returncode == 2
    assert parallel.stderr == ""
    assert json.loads(parallel.stdout) == json.loads(serial.stdout)
    assert [file["path"] for file in json.loads(parallel.stdout)["files"]] == paths


# --- the rule and rules commands, --version ----------------------------------------------

def test_rule_command():
    result = cli("rule", "GL101")
    assert result.exit_code == 0
    rule = next(r for r in all_rules() if r.code == "GL101")
    assert result.stdout.startswith(f"GL101 {rule.name} ({rule.severity})")
    assert rule.doc.strip().splitlines()[0] in result.stdout
    assert "## Why" in result.stdout or "Why" in result.stdout
    by_name = cli("rule", "saturating-activation-chain")
    assert by_name.stdout == result.stdout
    lower = cli("rule", "gl101")
    assert lower.stdout == result.stdout


def test_rule_command_json():
    result = cli("rule", "GL403", "--output-format", "json")
    data = json.loads(result.stdout)
    rule = next(r for r in all_rules() if r.code == "GL403")
    assert (data["code"], data["name"], data["severity"]) == (rule.code, rule.name, rule.severity)
    assert data["options"] == rule.options


def test_unknown_rule():
    result = cli("rule", "GL000")
    assert result.exit_code == 2
    assert "GL000" in result.stderr


def test_rules_command():
    result = cli("rules")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    rules = all_rules()
    assert len(lines) == len(rules)
    for line, rule in zip(lines, rules):
        assert line.split()[:3] == [rule.code, rule.name, rule.severity]
    as_json = json.loads(cli("rules", "--output-format", "json").stdout)
    assert [r["code"] for r in as_json] == [r.code for r in rules]
    assert {"GL001", "GL002", "GL101", "GL403"} <= {r["code"] for r in as_json}


def test_version():
    result = cli("--version")
    assert result.exit_code == 0
    assert gradlint.__version__ in result.stdout
    process = run_gradlint("--version")
    assert process.returncode == 0 and gradlint.__version__ in process.stdout


# --- colour -------------------------------------------------------------------------------

def _run_on_terminal(args, env):
    """Run gradlint with its standard output on a pseudo-terminal; return what it printed."""
    master, slave = pty.openpty()
    process = subprocess.Popen([sys.executable, "-m", "gradlint", *args], stdout=slave,
                               stderr=subprocess.PIPE, env=env)
    os.close(slave)
    output = _read_terminal(master, 60)
    process.wait(timeout=60)
    return output, process.returncode


def _read_terminal(master: int, timeout: float) -> str:
    """Everything written to a pseudo-terminal until its other end closes; closes it."""
    chunks = []
    while True:
        ready, _, _ = select.select([master], [], [], timeout)
        if not ready:
            break
        try:
            data = os.read(master, 4096)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    return b"".join(chunks).decode()


def _environment(**changes):
    env = {key: value for key, value in os.environ.items()
           if key not in ("NO_COLOR", "FORCE_COLOR")}
    env.update(changes)
    return env


def test_colour_on_a_terminal(models):
    output, code = _run_on_terminal(["--isolated", models["error"]], _environment())
    assert code == 1
    assert ANSI.search(output), output


def test_no_colour_when_no_color_is_set(models):
    output, code = _run_on_terminal(["--isolated", models["error"]], _environment(NO_COLOR="1"))
    assert code == 1
    assert "GL101" in output
    assert not ANSI.search(output)


def test_no_colour_when_output_is_not_a_terminal(models):
    result = subprocess.run([sys.executable, "-m", "gradlint", "--isolated", models["error"]],
                            capture_output=True, text=True, env=_environment(), timeout=120)
    assert result.returncode == 1
    assert "GL101" in result.stdout
    assert not ANSI.search(result.stdout)


def test_command_ends_after_exit_handlers_and_with_every_byte_written(models):
    # The command ends with os._exit (no teardown of the interpreter): exit handlers must
    # still run, the exit code must be the report's and a long output must arrive whole.
    script = ("import atexit, sys\n"
              "atexit.register(lambda: sys.stderr.write('HANDLER-RAN'))\n"
              "sys.argv = ['gradlint', *sys.argv[1:]]\n"
              "from gradlint.cli import run\n"
              "run()\n"
              "sys.stderr.write('NOT-REACHED')\n")
    for args, code in (([models["error"]], 1), ([models["clean"]], 0), (["--bogus"], 2)):
        result = subprocess.run([sys.executable, "-c", script, "--isolated",
                                 "--output-format", "json", *args],
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == code, result.stderr
        assert "HANDLER-RAN" in result.stderr and "NOT-REACHED" not in result.stderr
        if code != 2:
            assert json.loads(result.stdout)["files"]


# --- --show-settings ---------------------------------------------------------------------

def test_show_settings(models):
    result = cli("--show-settings", "--select", "GL1,GL4", "--ignore", "GL403",
                 "--fail-on", "warning", "--no-weights", models["error"])
    assert result.exit_code == 0
    shown = json.loads(result.stdout)
    settings = shown["settings"]
    assert settings["select"] == ["GL1", "GL4"]
    assert settings["ignore"] == ["GL403"]
    assert settings["fail-on"] == "warning"
    assert settings["weights"] is False
    expected = sorted(r.code for r in all_rules()
                      if r.code.startswith(("GL1", "GL4")) and r.code != "GL403")
    assert sorted(shown["selected-rules"]) == expected
    assert "GL101 [" not in result.stdout  # nothing was linted


def test_show_settings_defaults_are_a_valid_configuration(models, tmp_path):
    """The keys are exactly the configuration file's, with every rule's options: writing
    them back as a configuration file is accepted and changes nothing."""
    shown = json.loads(cli("--show-settings", models["clean"]).stdout)
    assert sorted(shown["selected-rules"]) == sorted(r.code for r in all_rules())
    assert shown["config-file"] is None
    settings = shown["settings"]
    from gradlint.config import FILE_KEYS, Settings, table_values

    assert set(settings) == set(FILE_KEYS)
    assert settings["rules"]["GL101"] == {"severity": "error", "error-below": 1e-3,
                                          "warning-below": 1e-2, "min-layers": 4}
    assert settings["limits"]["timeout"] == 300
    written = {key: value for key, value in settings.items()
               if value is not None and key != "baseline"}
    assert Settings(**table_values(written, "shown")).as_configuration() == settings


@pytest.mark.parametrize("arguments, expected", [
    (["chek", "models"], "no command and no file named 'chek'; did you mean 'check'?"),
    (["--select", "GL1O1", "x.keras"], "'GL1O1' names no rule, code prefix, alias or group; "
                                       "did you mean 'GL101'?"),
    (["--ignore", "saturating-activaton-chain", "x.keras"],
     "did you mean 'saturating-activation-chain'?"),
])
def test_did_you_mean_on_the_command_line(tmp_path, arguments, expected):
    completed = run_gradlint("--isolated", *arguments, cwd=tmp_path) if arguments[0] != "chek" \
        else run_gradlint(*arguments, cwd=tmp_path)
    assert completed.returncode == 2
    assert expected in completed.stderr


@pytest.mark.parametrize("table, expected", [
    ('ignroe = ["GL101"]\n', "unknown key 'ignroe'; did you mean 'ignore'?"),
    ('[rules.saturating-activaton-chain]\nseverity = "info"\n',
     "'rules.saturating-activaton-chain': no rule has that code or name; did you mean "
     "'saturating-activation-chain'?"),
    ('[rules.GL101]\nwarning-belw = 0.1\n', "has no option 'warning-belw'; did you mean "
                                            "'warning-below'?"),
    ('[limits]\ntimout = 5\n', "'limits.timout': no such limit; did you mean 'timeout'?"),
])
def test_did_you_mean_in_the_configuration(tmp_path, table, expected):
    (tmp_path / "gradlint.toml").write_text(table)
    completed = run_gradlint("x.keras", cwd=tmp_path)
    assert completed.returncode == 2
    assert expected in completed.stderr


def test_several_outputs_from_one_run(models, tmp_path):
    """One run, several formats: text on standard output, the others in files, so a probe
    run is never repeated per format."""
    sarif, data, html, markdown = (tmp_path / name for name in
                                   ("out.sarif", "out.json", "report.html", "report.md"))
    completed = run_gradlint("--isolated", "--output-format", f"sarif:{sarif}",
                             "--output-format", f"json:{data}", "--report", str(html),
                             "--report", str(markdown), models["error"])
    assert completed.returncode == 1
    assert "GL101 [error]" in completed.stdout  # text, the default, still on stdout
    assert json.loads(sarif.read_text())["version"] == "2.1.0"
    assert json.loads(data.read_text())["summary"]["findings"] >= 1
    assert html.read_text().lstrip().lower().startswith("<!doctype html")
    assert "GL101" in markdown.read_text()


def test_one_output_on_standard_output(models):
    completed = run_gradlint("--isolated", "--output-format", "json",
                             "--output-format", "sarif", models["error"])
    assert completed.returncode == 2
    assert "only one output can go to standard output" in completed.stderr
    completed = run_gradlint("--isolated", "--output-format", "jsno", models["error"])
    assert completed.returncode == 2 and "did you mean 'json'?" in completed.stderr


def test_statistics_in_json(models):
    completed = run_gradlint("--isolated", "--statistics", "--output-format", "json",
                             models["error"])
    counts = json.loads(completed.stdout)
    assert {"code": "GL101", "name": "saturating-activation-chain", "count": 1} in counts
    text = run_gradlint("--isolated", "--statistics", "--output-format", "sarif",
                        models["error"]).stdout
    assert "GL101  saturating-activation-chain" in text  # other formats: the table


@pytest.fixture(scope="module")
def many_models(models, tmp_path_factory):
    """A directory of 150 real model files (copies), enough for a run of over a second."""
    import shutil

    folder = tmp_path_factory.mktemp("many")
    for index in range(150):
        name = ("error", "clean", "warning")[index % 3]
        shutil.copy(models[name], folder / f"model_{index:03d}.keras")
    return folder


def test_streamed_text_is_the_report_in_its_order(many_models, tmp_path):
    """Printed file by file as they finish, the text is the same, byte for byte, as the
    whole report written at the end (-o)."""
    streamed = run_gradlint("--isolated", "-j", "2", many_models)
    written = tmp_path / "out.txt"
    whole = run_gradlint("--isolated", "-j", "2", "-o", written, many_models)
    assert streamed.returncode == whole.returncode == 1
    assert streamed.stdout == written.read_text()
    assert "gradlint: linted" not in streamed.stderr  # never off a terminal


@pytest.fixture(scope="module")
def very_many_models(models, tmp_path_factory):
    """600 real model files (copies): a run that takes well over the progress line's one
    second even on an idle machine (150 took 0.9 s there once)."""
    import shutil

    folder = tmp_path_factory.mktemp("very-many")
    for index in range(600):
        name = ("error", "clean", "warning")[index % 3]
        shutil.copy(models[name], folder / f"model_{index:03d}.keras")
    return folder


def test_progress_line_on_a_terminal(very_many_models, tmp_path):
    """With standard error on a terminal, a run of over a second shows one progress line,
    rewritten in place and cleared before the summary."""
    master, slave = pty.openpty()
    # Standard output to a file: 600 files' findings would fill a pipe nobody reads yet.
    with open(tmp_path / "stdout.txt", "wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "gradlint", "--isolated", "-j",
                                    "1", str(very_many_models)], stdout=out, stderr=slave)
        os.close(slave)
        terminal = _read_terminal(master, 120)
        process.wait(timeout=120)
    stdout = (tmp_path / "stdout.txt").read_bytes()
    assert re.search(r"\r\x1b\[Kgradlint: linted \d+/600 files \(last: .*model_\d+\.keras\)",
                     terminal), (terminal[-300:], stdout[-300:])
    assert terminal.endswith("\r\x1b[K")
    assert b"Found " in stdout
