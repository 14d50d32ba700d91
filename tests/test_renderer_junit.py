"""JUnit XML: one test case per model (in a test suite named by the model's path), passing
when the model has no finding at or above the fail level, failing with those findings listed
otherwise, in error when the file could not be read or the probe could not run; `time` from
the run's measurement and a `timestamp`."""

from __future__ import annotations

import copy
import datetime
import shutil
import xml.etree.ElementTree as ElementTree

import pytest

import gradlint
import report_models
from conftest import run_gradlint
from gradlint.renderers import RenderOptions, render


@pytest.fixture(scope="module")
def models(save_model, tmp_path_factory):
    directory = tmp_path_factory.mktemp("renderer_junit")
    (directory / "models").mkdir()
    for name, build in (("deep", report_models.deep_sigmoid), ("rnn", report_models.simple_rnn),
                        ("clean", report_models.relu_he)):
        shutil.copy(save_model(f"renderer_junit_{name}", build),
                    directory / "models" / f"{name}.keras")
    (directory / "models" / "empty.h5").write_bytes(b"")
    return directory


def junit(*args, cwd) -> ElementTree.Element:
    result = run_gradlint("--output-format", "junit", "-j", "1", *args, cwd=cwd)
    assert result.returncode in (0, 1, 2), result.stderr
    assert result.stdout.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    return ElementTree.fromstring(result.stdout.split("\n", 1)[1])


def parse(output: str) -> ElementTree.Element:
    return ElementTree.fromstring(output.split("\n", 1)[1])


def suites(root) -> dict[str, ElementTree.Element]:
    return {suite.get("name"): suite for suite in root.findall("testsuite")}


def case(suite) -> ElementTree.Element:
    [only] = suite.findall("testcase")
    return only


def test_one_case_per_model(models):
    root = junit("models/deep.keras", "models/rnn.keras", "models/clean.keras", cwd=models)
    assert root.tag == "testsuites"
    by_path = suites(root)
    assert set(by_path) == {"models/deep.keras", "models/rnn.keras", "models/clean.keras"}
    for path, suite in by_path.items():
        testcase = case(suite)
        assert testcase.get("name") == path and testcase.get("file") == path
        assert testcase.get("classname") == "gradlint"
        assert suite.get("tests") == "1"
    assert int(root.get("tests")) == 3
    # When the run started, in ISO 8601, on the test suites and on each suite.
    started = datetime.datetime.fromisoformat(root.get("timestamp"))
    assert abs(datetime.datetime.now(datetime.timezone.utc) - started) < \
        datetime.timedelta(minutes=5)
    assert all(suite.get("timestamp") == root.get("timestamp") for suite in by_path.values())


def test_findings_at_the_fail_level_fail_and_the_rest_are_recorded(models):
    root = junit("models/deep.keras", "models/rnn.keras", "models/clean.keras", cwd=models)
    by_path = suites(root)
    failure = case(by_path["models/deep.keras"]).find("failure")
    assert failure is not None and failure.get("type") == "error"
    assert failure.text.startswith("hidden_1: GL101 [error] 10 saturating activations")
    assert failure.get("message") == failure.text  # one failing finding: it is the message
    rnn = case(by_path["models/rnn.keras"])
    assert rnn.find("failure") is not None
    assert rnn.find("failure").text.startswith("rnn: GL401 [error]")
    # Warnings do not fail under the default --fail-on error, but stay visible.
    assert "GL402" not in rnn.find("failure").text
    assert "GL402 [warning]" in rnn.find("system-out").text
    assert "GL403 [warning]" in rnn.find("system-out").text
    assert int(by_path["models/rnn.keras"].get("failures")) == 1
    clean = case(by_path["models/clean.keras"])
    assert list(clean) == []  # passed, nothing to say
    assert int(by_path["models/clean.keras"].get("failures")) == 0
    assert int(root.get("failures")) == 2


def test_fail_on_warning_makes_warnings_failures(models):
    root = junit("--fail-on", "warning", "models/rnn.keras", cwd=models)
    [suite] = root.findall("testsuite")
    failure = case(suite).find("failure")
    lines = failure.text.splitlines()
    assert [line.split(" [")[0].split()[-1] for line in lines] == ["GL401", "GL402", "GL403"]
    assert failure.get("type") == "error"  # the worst of them
    assert failure.get("message").startswith("3 findings at or above warning; the first: "
                                             "rnn: GL401 [error]")
    assert case(suite).find("system-out") is None
    assert suite.get("failures") == "1"


def test_fail_on_never_passes_everything(models):
    root = junit("--fail-on", "never", "models/deep.keras", "models/rnn.keras", cwd=models)
    assert root.get("failures") == "0" and root.get("errors") == "0"
    for suite in root.findall("testsuite"):
        assert case(suite).find("failure") is None
        assert "[error]" in case(suite).find("system-out").text


def test_selected_rules_only(models):
    # GL401 is the RNN's only error; without it, nothing fails.
    root = junit("--select", "GL1,GL2,GL3", "models/rnn.keras", cwd=models)
    [suite] = root.findall("testsuite")
    assert case(suite).find("failure") is None and suite.get("failures") == "0"


def test_unreadable_model_is_an_error_case(models):
    root = junit("models/empty.h5", "models/clean.keras", cwd=models)
    by_path = suites(root)
    testcase = case(by_path["models/empty.h5"])
    assert testcase.get("name") == "models/empty.h5"
    error = testcase.find("error")
    assert error is not None and error.get("type") == "GL001" and "empty" in error.get("message")
    assert testcase.find("failure") is None
    assert root.get("errors") == "1" and root.get("failures") == "0"


def test_probe_that_could_not_run_is_an_error_case(models):
    report = gradlint.lint([str(models / "models" / "clean.keras"),
                            str(models / "models" / "deep.keras")])
    for result in report.files:
        result.probe = {"ran": False, "error": "the probe extra is not installed",
                        "seeds": None, "batch": None, "training_mode": None, "loss": None,
                        "seconds": None}
    root = parse(render("junit", report, RenderOptions()))
    clean, deep = (case(suite) for suite in root.findall("testsuite"))
    error = clean.find("error")
    assert error.get("type") == "probe"
    assert error.get("message") == "the probe could not run: the probe extra is not installed"
    # The exit status is 2 for it, whatever the findings: an error, with the failing findings
    # listed after the reason.
    assert deep.find("failure") is None
    assert deep.find("error").text.splitlines()[1].startswith("hidden_1: GL101 [error]")
    assert root.get("errors") == "2" and root.get("failures") == "0"


def test_time_and_timestamp_come_from_the_run(models):
    report = gradlint.lint([str(models / "models" / "deep.keras"),
                            str(models / "models" / "rnn.keras")])
    assert all(result.seconds > 0 for result in report.files)  # the run times each file
    untimed = copy.deepcopy(report)
    for result in untimed.files:
        result.seconds = None
    # A report without the per-file time says nothing rather than a made-up 0.
    assert all(element.get("time") is None
               for element in parse(render("junit", untimed, RenderOptions())).iter())
    timed = copy.deepcopy(report)
    for result, seconds in zip(timed.files, (0.25, 1.5)):
        result.seconds = seconds
    timed.started = datetime.datetime(2025, 3, 4, 5, 6, 7, tzinfo=datetime.timezone.utc)
    root = parse(render("junit", timed, RenderOptions()))
    assert [case(suite).get("time") for suite in root.findall("testsuite")] == \
        ["0.250", "1.500"]
    assert [suite.get("time") for suite in root.findall("testsuite")] == ["0.250", "1.500"]
    assert root.get("time") == "1.750"
    assert root.get("timestamp") == "2025-03-04T05:06:07+00:00"


def test_notes_are_properties_of_the_suite(models):
    report = gradlint.lint(str(models / "models" / "clean.keras"))
    report.files[0].notes.append("baseline entry no longer matches: dense_9 GL101")
    [suite] = parse(render("junit", report, RenderOptions())).findall("testsuite")
    [prop] = suite.find("properties")
    assert prop.get("name") == "note" and "dense_9" in prop.get("value")
    assert list(suite)[0].tag == "properties"


def test_many_models_are_one_case_each(models, tmp_path):
    (tmp_path / "models").mkdir()
    for index in range(12):
        source = ("deep", "rnn", "clean")[index % 3]
        shutil.copy(models / "models" / f"{source}.keras",
                    tmp_path / "models" / f"{index:02d}_{source}.keras")
    root = junit("-j", "2", "models", cwd=tmp_path)
    assert root.get("tests") == "12" and len(list(root.iter("testcase"))) == 12
    assert root.get("failures") == "8"  # the sigmoid stacks and the RNNs
