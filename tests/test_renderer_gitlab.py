"""GitLab Code Quality (``--output-format gitlab``): the JSON array GitLab documents for
``artifacts:reports:codequality``, checked against the fields GitLab documents; fingerprints
stable across runs and working directories; gradlint's severities on GitLab's scale."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess

import pytest

import gradlint
import report_models
from conftest import run_gradlint
from gradlint.renderers import RenderOptions, render
from gradlint.renderers.gitlab import code_quality
from gradlint.renderers.report_data import fingerprint

# GitLab's severity scale for Code Quality issues.
GITLAB_SEVERITIES = {"info", "minor", "major", "critical", "blocker"}


def validate(issues) -> list[str]:
    """What is wrong with a Code Quality report, by the fields GitLab documents: a JSON array
    of objects, each with a string `description`, `check_name` and `fingerprint`, a
    `severity` from GitLab's scale, and `location.path` (relative to the repository's root)
    with a line in `location.lines.begin` (a positive integer); fingerprints unique."""
    problems = []
    if not isinstance(issues, list):
        return ["the report is not a JSON array"]
    seen = set()
    for index, issue in enumerate(issues):
        where = f"issue {index}"
        if not isinstance(issue, dict):
            problems.append(f"{where} is not an object")
            continue
        for key in ("description", "check_name", "fingerprint"):
            if not isinstance(issue.get(key), str) or not issue[key]:
                problems.append(f"{where}: {key} is not a non-empty string")
        if issue.get("severity") not in GITLAB_SEVERITIES:
            problems.append(f"{where}: severity {issue.get('severity')!r} is not GitLab's")
        location = issue.get("location")
        if not isinstance(location, dict):
            problems.append(f"{where}: no location object")
            continue
        path = location.get("path")
        if not isinstance(path, str) or not path:
            problems.append(f"{where}: location.path is not a non-empty string")
        elif path.startswith(("/", "./")) or "\\" in path or ".." in path.split("/"):
            problems.append(f"{where}: location.path {path!r} is not relative to the root")
        lines = location.get("lines")
        begin = lines.get("begin") if isinstance(lines, dict) else None
        if isinstance(begin, bool) or not isinstance(begin, int) or begin < 1:
            problems.append(f"{where}: location.lines.begin is not a positive integer")
        if issue.get("fingerprint") in seen:
            problems.append(f"{where}: fingerprint {issue.get('fingerprint')} repeats")
        seen.add(issue.get("fingerprint"))
    return problems


def test_validate_catches_what_gitlab_rejects():
    good = {"description": "d", "check_name": "GL101", "fingerprint": "f",
            "severity": "major", "location": {"path": "models/a.keras", "lines": {"begin": 1}}}
    assert validate([good]) == []
    assert validate({"issues": [good]}) == ["the report is not a JSON array"]
    for change, problem in (
            ({"severity": "error"}, "severity 'error'"),
            ({"fingerprint": ""}, "fingerprint is not"),
            ({"location": {"path": "/abs/a.keras", "lines": {"begin": 1}}}, "not relative"),
            ({"location": {"path": "a.keras", "lines": {"begin": 0}}}, "lines.begin"),
            ({"location": {"path": "a.keras"}}, "lines.begin")):
        [found] = validate([{**good, **change}])
        assert problem in found, (change, found)
    assert "repeats" in validate([good, good])[0]


@pytest.fixture(scope="module")
def repository(save_model, tmp_path_factory):
    root = tmp_path_factory.mktemp("renderer_gitlab") / "repo"
    (root / "models" / "nested").mkdir(parents=True)
    (root / "scripts").mkdir()
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    for name, build, target in (
            ("deep", report_models.deep_sigmoid, "models/deep.keras"),
            ("rnn", report_models.simple_rnn, "models/nested/rnn.keras"),
            ("clean", report_models.relu_he, "models/clean.keras")):
        shutil.copy(save_model(f"renderer_gitlab_{name}", build), root / target)
    (root / "models" / "empty.h5").write_bytes(b"")
    return root


def gitlab(*args, cwd):
    result = run_gradlint("--output-format", "gitlab", "-j", "1", *args, cwd=cwd)
    assert result.returncode in (0, 1, 2), result.stderr
    return result, json.loads(result.stdout)


def test_report_has_the_fields_gitlab_documents(repository):
    result, issues = gitlab("models", cwd=repository)
    assert result.returncode == 2  # empty.h5 cannot be read
    assert validate(issues) == [], validate(issues)
    # One issue per finding: GL101, GL401, GL402, GL403 and the unreadable file's GL001.
    assert sorted(issue["check_name"] for issue in issues) == \
        ["GL001", "GL101", "GL401", "GL402", "GL403"]
    by_check = {issue["check_name"]: issue for issue in issues}
    assert by_check["GL101"]["location"] == {"path": "models/deep.keras", "lines": {"begin": 1}}
    assert by_check["GL401"]["location"]["path"] == "models/nested/rnn.keras"
    assert by_check["GL101"]["description"].startswith(
        "GL101 saturating-activation-chain: hidden_1: 10 saturating activations")
    # Binary files have no lines: every issue is on line 1.
    assert {issue["location"]["lines"]["begin"] for issue in issues} == {1}
    assert all(issue["type"] == "issue" for issue in issues)


def test_severities_on_gitlabs_scale(repository):
    _, issues = gitlab("models", cwd=repository)
    severity = {issue["check_name"]: issue["severity"] for issue in issues}
    assert severity == {"GL101": "critical", "GL401": "critical",  # errors
                        "GL402": "major", "GL403": "major",        # warnings
                        "GL001": "blocker"}                        # nothing was checked
    report = gradlint.lint(str(repository / "models" / "clean.keras"))
    report.files[0].findings.append(copy.deepcopy(
        gradlint.lint(str(repository / "models" / "deep.keras")).findings[0]))
    report.files[0].findings[-1].severity = "info"
    report.files[0].probe = {"ran": False, "error": "the probe extra is not installed",
                             "seeds": None, "batch": None, "training_mode": None,
                             "loss": None, "seconds": None}
    issues = code_quality(report)
    assert validate(issues) == []
    assert [(issue["check_name"], issue["severity"]) for issue in issues] == \
        [("GL101", "info"), ("gradlint-probe", "blocker")]
    assert issues[1]["description"] == \
        "gradlint-probe: the probe could not run: the probe extra is not installed"


def test_fingerprints_are_stable(repository):
    _, from_root = gitlab("models", cwd=repository)
    _, from_scripts = gitlab("../models", cwd=repository / "scripts")
    _, again = gitlab("models/nested/rnn.keras", "models/deep.keras", "models/empty.h5",
                      cwd=repository)

    def keys(issues):
        return {(i["check_name"], i["location"]["path"]): i["fingerprint"] for i in issues}

    # The same finding has the same fingerprint whatever the working directory, the order
    # of the paths or which other files were linted ...
    assert keys(from_root) == keys(from_scripts)
    assert keys(again) == keys(from_root)
    # ... and it is the rule, the path from the repository's root and the layer path.
    gl101 = next(issue for issue in from_root if issue["check_name"] == "GL101")
    assert gl101["fingerprint"] == fingerprint("GL101", "models/deep.keras", "hidden_1")


def test_same_rule_on_the_same_layer_twice_gets_two_fingerprints(repository):
    report = gradlint.lint(str(repository / "models" / "deep.keras"))
    twice = copy.deepcopy(report.files[0].findings[0])
    twice.message = "the same rule again on the same layer"
    report.files[0].findings.append(twice)
    issues = code_quality(report)
    assert validate(issues) == []
    assert len({issue["fingerprint"] for issue in issues}) == 2
    # The first keeps the fingerprint it has alone, so adding the second changes nothing.
    assert issues[0]["fingerprint"] == code_quality(
        gradlint.lint(str(repository / "models" / "deep.keras")))[0]["fingerprint"]


def test_clean_models_give_an_empty_array(repository):
    result, issues = gitlab("models/clean.keras", cwd=repository)
    assert result.returncode == 0 and issues == []
    assert result.stdout == "[]\n"


def test_fail_on_is_unchanged(repository):
    result, issues = gitlab("--fail-on", "warning", "models/nested/rnn.keras", cwd=repository)
    assert result.returncode == 1 and len(issues) == 3
    result, _ = gitlab("--exit-zero", "models/nested/rnn.keras", cwd=repository)
    assert result.returncode == 0


def test_description_is_plain_text(repository):
    report = gradlint.lint(str(repository / "models" / "deep.keras"))
    report.files[0].findings[0].message = "red \u001b[31mtext\u001b[0m\nand \udcff"
    [issue] = json.loads(render("gitlab", report, RenderOptions()))
    assert issue["description"].endswith("red \\x1b[31mtext\\x1b[0m\\nand \\udcff")
