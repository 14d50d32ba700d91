"""JUnit XML: one test suite per model, one test case per model and rule."""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ElementTree

import pytest

import report_models
from conftest import run_gradlint
from gradlint.rule_registry import all_rules

STATIC_RULES = sorted(rule.code for rule in all_rules() if not rule.probe)


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
    assert result.returncode in (1, 2), result.stderr
    assert result.stdout.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    return ElementTree.fromstring(result.stdout.split("\n", 1)[1])


def cases(suite) -> dict[str, ElementTree.Element]:
    return {case.get("name").split()[0]: case for case in suite.findall("testcase")}


def test_one_case_per_model_and_rule(models):
    root = junit("models/deep.keras", "models/rnn.keras", "models/clean.keras", cwd=models)
    assert root.tag == "testsuites"
    suites = {suite.get("name"): suite for suite in root.findall("testsuite")}
    assert set(suites) == {"models/deep.keras", "models/rnn.keras", "models/clean.keras"}
    for path, suite in suites.items():
        by_code = cases(suite)
        assert sorted(by_code) == STATIC_RULES
        assert all(case.get("classname") == path for case in by_code.values())
        assert int(suite.get("tests")) == len(STATIC_RULES)
    assert int(root.get("tests")) == 3 * len(STATIC_RULES)
    assert cases(suites["models/deep.keras"])["GL101"].get("name") == \
        "GL101 saturating-activation-chain"


def test_findings_at_the_fail_level_fail_and_the_rest_are_recorded(models):
    root = junit("models/deep.keras", "models/rnn.keras", "models/clean.keras", cwd=models)
    suites = {suite.get("name"): suite for suite in root.findall("testsuite")}
    deep = cases(suites["models/deep.keras"])
    failure = deep["GL101"].find("failure")
    assert failure is not None and failure.get("type") == "error"
    assert failure.text.startswith("hidden_1: GL101 [error] 10 saturating activations")
    assert all(case.find("failure") is None for code, case in deep.items() if code != "GL101")
    rnn = cases(suites["models/rnn.keras"])
    assert rnn["GL401"].find("failure") is not None
    # Warnings do not fail under the default --fail-on error, but stay visible.
    assert rnn["GL402"].find("failure") is None
    assert "GL402 [warning]" in rnn["GL402"].find("system-out").text
    assert int(suites["models/rnn.keras"].get("failures")) == 1
    assert int(suites["models/clean.keras"].get("failures")) == 0
    assert int(root.get("failures")) == 2


def test_fail_on_warning_makes_warnings_failures(models):
    root = junit("--fail-on", "warning", "models/rnn.keras", cwd=models)
    [suite] = root.findall("testsuite")
    rnn = cases(suite)
    for code in ("GL401", "GL402", "GL403"):
        assert rnn[code].find("failure") is not None, code
    assert rnn["GL402"].find("failure").get("type") == "warning"
    assert suite.get("failures") == "3"


def test_selected_rules_only(models):
    root = junit("--select", "GL1,GL4", "models/rnn.keras", cwd=models)
    [suite] = root.findall("testsuite")
    assert sorted(cases(suite)) == sorted(c for c in STATIC_RULES if c[2] in "14")


def test_unreadable_model_is_an_error_case(models):
    root = junit("models/empty.h5", "models/clean.keras", cwd=models)
    suites = {suite.get("name"): suite for suite in root.findall("testsuite")}
    [case] = suites["models/empty.h5"].findall("testcase")
    assert case.get("name") == "GL001 unreadable-model"
    error = case.find("error")
    assert error is not None and "empty" in error.get("message")
    assert root.get("errors") == "1"


def test_probe_that_could_not_run_is_an_error_case(models):
    import gradlint
    from gradlint.renderers import RenderOptions, render

    data = gradlint.lint(str(models / "models" / "clean.keras")).to_dict()
    data["files"][0]["probe"] = {"ran": False, "error": "the probe extra is not installed",
                                 "seeds": None, "batch": None, "training_mode": None,
                                 "loss": None, "seconds": None}
    root = ElementTree.fromstring(render("junit", data, RenderOptions()).split("\n", 1)[1])
    [suite] = root.findall("testsuite")
    probe = cases(suite)["probe"]
    assert "the probe extra is not installed" in probe.find("error").get("message")
    assert suite.get("errors") == "1"
    # Without the probe's measurements, its rules are not listed as passing test cases.
    assert sorted(code for code in cases(suite) if code != "probe") == STATIC_RULES
