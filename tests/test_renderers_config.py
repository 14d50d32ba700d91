"""The text, JSON and SARIF renderers on a report over configs saved by real Keras
(tests/data/configs/report-*.json, the models of tests/report_models.py), without
TensorFlow. The Keras renderer tests (tests/test_renderer_*.py, tests/test_cli.py) render
real files through the command line."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from gradlint.renderers import render

from config_models import report_from_configs

SARIF_SCHEMA = Path(__file__).resolve().parent / "data" / "sarif-schema-2.1.0.json"
MODELS = ("report-deep-sigmoid-keras", "report-simple-rnn-keras", "report-relu-he-keras")
# (file, layer, code, severity) of each finding, in the report's order.
EXPECTED = [
    ("report-deep-sigmoid-keras.keras", "hidden_1", "GL101", "error"),
    ("report-simple-rnn-keras.keras", "rnn", "GL401", "error"),
    ("report-simple-rnn-keras.keras", "rnn", "GL402", "warning"),
    ("report-simple-rnn-keras.keras", None, "GL403", "warning"),
]


@pytest.fixture(scope="module")
def report():
    return report_from_configs(*MODELS)


def test_text_has_one_line_per_finding_a_fix_line_and_the_summary(report):
    lines = render("text", report).splitlines()
    findings = [line for line in lines[:-1] if not line.startswith("    ")]
    assert [line.split(" [")[0] for line in findings] == [
        f"{path}{'::' + layer if layer else ''}: {code}" for path, layer, code, _ in EXPECTED]
    assert [line.split(" [")[1].split("]")[0] for line in findings] == \
        [severity for *_, severity in EXPECTED]
    assert sum(line.startswith("    fix: ") for line in lines) == 4
    assert "'hidden_1' … 'hidden_10' (10 layers)" in findings[0]
    assert lines[-1] == "Found 4 findings (2 errors, 2 warnings) in 3 models."


def test_text_quiet_drops_the_fix_lines(report):
    from gradlint.renderers import RenderOptions

    text = render("text", report, RenderOptions(quiet=True))
    assert "    fix: " not in text


def test_json_is_the_report_contract(report):
    data = json.loads(render("json", report))
    assert data["version"] == 2
    assert data == json.loads(report.to_json())
    assert [file["path"] for file in data["files"]] == [f"{name}.keras" for name in MODELS]
    assert data["summary"]["findings"] == 4
    assert data["summary"]["by_severity"] == {"error": 2, "warning": 2, "info": 0}
    assert data["summary"]["files_linted"] == 3
    found = [(file["path"], finding["layer"], finding["code"], finding["severity"])
             for file in data["files"] for finding in file["findings"]]
    assert found == EXPECTED
    deep = data["files"][0]
    assert deep["model"]["name"] == "deep_sigmoid"
    assert deep["model"]["layers"] == 11
    assert [layer["path"] for layer in deep["layers"]] == \
        [f"hidden_{i}" for i in range(1, 11)] + ["classifier"]
    assert data["files"][2]["findings"] == []


def test_sarif_is_valid_and_has_one_result_per_finding(report):
    schema = json.loads(SARIF_SCHEMA.read_text(encoding="utf-8"))
    log = json.loads(render("sarif", report))
    jsonschema.validators.validator_for(schema)(schema).validate(log)
    (run,) = log["runs"]
    results = run["results"]
    assert [(result["ruleId"], result["level"]) for result in results] == \
        [(code, severity) for *_, code, severity in EXPECTED]
    rules = run["tool"]["driver"]["rules"]
    assert [rules[result["ruleIndex"]]["id"] for result in results] == \
        [result["ruleId"] for result in results]
    uris = [result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
            for result in results]
    assert [uri.rsplit("/", 1)[-1] for uri in uris] == [path for path, *_ in EXPECTED]
    fingerprints = [result["partialFingerprints"]["gradlintFinding/v1"] for result in results]
    assert len(set(fingerprints)) == 4
