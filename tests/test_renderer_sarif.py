"""SARIF output: valid against the official SARIF 2.1.0 schema, one location per result with
the model's path relative to the repository root, fingerprints from rule, path and layer."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import jsonschema
import pytest

import report_models
from conftest import run_gradlint

# The OASIS SARIF 2.1.0 schema (errata 01), vendored so the suite needs nothing beside the clone.
SCHEMA = Path(__file__).resolve().parent / "data" / "sarif-schema-2.1.0.json"


@pytest.fixture(scope="module")
def sarif_validator():
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    return validator_class(schema)


@pytest.fixture(scope="module")
def models(save_model):
    return {
        "deep": save_model("renderer_sarif_deep_sigmoid", report_models.deep_sigmoid),
        "rnn": save_model("renderer_sarif_simple_rnn", report_models.simple_rnn),
        "clean": save_model("renderer_sarif_relu_he", report_models.relu_he),
    }


@pytest.fixture
def repository(tmp_path, models):
    """A git repository with the models under models/ and models/sequence/."""
    root = tmp_path / "repo"
    (root / "models" / "sequence").mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    shutil.copy(models["deep"], root / "models" / "deep sigmoid.keras")
    shutil.copy(models["rnn"], root / "models" / "sequence" / "rnn.keras")
    shutil.copy(models["clean"], root / "models" / "clean.keras")
    (root / "models" / "broken.keras").write_bytes(b"PK\x03\x04 truncated")
    return root


def sarif_of(*args, cwd) -> dict:
    result = run_gradlint("--output-format", "sarif", "-j", "1", *args, cwd=cwd)
    assert result.returncode in (0, 1, 2), result.stderr
    return json.loads(result.stdout)


def test_sarif_validates_against_the_official_schema(repository, sarif_validator):
    log = sarif_of("models", cwd=repository)
    errors = sorted(sarif_validator.iter_errors(log), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors[:10])
    assert log["version"] == "2.1.0"
    run = log["runs"][0]
    assert run["tool"]["driver"]["name"] == "gradlint"
    codes = sorted(result["ruleId"] for result in run["results"])
    assert codes == ["GL001", "GL101", "GL401", "GL402", "GL403"]


def test_every_result_has_one_location_relative_to_the_repository_root(repository):
    # Run from a subdirectory: the URI is still relative to the repository's root.
    log = sarif_of("..", cwd=repository / "models" / "sequence")
    results = log["runs"][0]["results"]
    assert results
    uris = set()
    for result in results:
        assert len(result["locations"]) == 1
        physical = result["locations"][0]["physicalLocation"]
        assert physical["region"] == {"startLine": 1}
        uri = physical["artifactLocation"]["uri"]
        assert not uri.startswith(("/", ".."))
        uris.add(uri)
    assert uris == {"models/deep%20sigmoid.keras", "models/sequence/rnn.keras",
                    "models/broken.keras"}


def test_outside_a_repository_paths_are_relative_to_the_working_directory(tmp_path, models):
    (tmp_path / "nets").mkdir()
    shutil.copy(models["deep"], tmp_path / "nets" / "deep.keras")
    log = sarif_of("nets", cwd=tmp_path)
    [result] = log["runs"][0]["results"]
    assert result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == \
        "nets/deep.keras"


def test_fingerprints_come_from_rule_path_and_layer(repository, tmp_path):
    first = sarif_of("models", cwd=repository)["runs"][0]["results"]
    again = sarif_of("models", cwd=repository)["runs"][0]["results"]
    fingerprints = [r["partialFingerprints"] for r in first]
    assert fingerprints == [r["partialFingerprints"] for r in again], "not stable across runs"
    # Findings in one binary file do not collapse into one: every result differs.
    keys = [f["gradlintFinding/v1"] for f in fingerprints]
    lines = [f["primaryLocationLineHash"] for f in fingerprints]
    assert len(set(keys)) == len(keys) and len(set(lines)) == len(lines)
    rnn = [r for r in first if "rnn.keras" in
           r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]]
    assert {r["ruleId"] for r in rnn} == {"GL401", "GL402", "GL403"}
    # The same model at another path is another finding.
    shutil.copy(repository / "models" / "sequence" / "rnn.keras",
                repository / "models" / "rnn_copy.keras")
    moved = sarif_of("models", cwd=repository)["runs"][0]["results"]
    copy_keys = {r["partialFingerprints"]["gradlintFinding/v1"] for r in moved
                 if r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
                 == "models/rnn_copy.keras"}
    assert len(copy_keys) == 3 and not copy_keys & set(keys)


def test_layer_is_named_in_logical_locations_and_message(repository):
    results = sarif_of("models", cwd=repository)["runs"][0]["results"]
    gl401 = next(r for r in results if r["ruleId"] == "GL401")
    [logical] = gl401["locations"][0]["logicalLocations"]
    assert logical["name"] == "rnn"
    assert logical["fullyQualifiedName"] == "models/sequence/rnn.keras::rnn"
    assert "'rnn'" in gl401["message"]["text"]
    assert gl401["message"]["text"].startswith("Layer 'rnn':")
    assert gl401["level"] == "error"
    gl403 = next(r for r in results if r["ruleId"] == "GL403")
    assert gl403["level"] == "warning"


def test_rules_carry_help_text_from_their_documentation(repository):
    run = sarif_of("models", cwd=repository)["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    by_id = {rule["id"]: rule for rule in rules}
    gl101 = by_id["GL101"]
    assert gl101["name"] == "saturating-activation-chain"
    assert "Use instead" in gl101["help"]["text"]
    assert "## Why it hurts gradient flow" in gl101["help"]["markdown"]
    assert "HeNormal" in gl101["help"]["text"]
    assert gl101["defaultConfiguration"]["level"] == "error"
    for result in run["results"]:
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]


def test_unreadable_file_is_a_result_and_a_notification(repository):
    run = sarif_of("models", cwd=repository)["runs"][0]
    gl001 = next(r for r in run["results"] if r["ruleId"] == "GL001")
    assert gl001["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == \
        "models/broken.keras"
    invocation = run["invocations"][0]
    assert invocation["executionSuccessful"] is False
    assert "broken.keras" in invocation["toolExecutionNotifications"][0]["message"]["text"]


def test_clean_model_gives_a_valid_log_without_results(repository, sarif_validator):
    log = sarif_of("models/clean.keras", cwd=repository)
    assert log["runs"][0]["results"] == []
    assert log["runs"][0]["invocations"][0]["executionSuccessful"] is True
    assert not list(sarif_validator.iter_errors(log))


def test_probe_that_could_not_run_is_a_notification(models, sarif_validator):
    import gradlint
    from gradlint.renderers import render

    data = gradlint.lint(str(models["deep"])).to_dict()
    data["files"][0]["probe"] = {"ran": False, "error": "the model has a Lambda layer; pass "
                                 "--unsafe-load", "seeds": None, "batch": None,
                                 "training_mode": None, "loss": None, "seconds": None}
    log = json.loads(render("sarif", data))
    assert not list(sarif_validator.iter_errors(log))
    invocation = log["runs"][0]["invocations"][0]
    assert invocation["executionSuccessful"] is False
    [notification] = invocation["toolExecutionNotifications"]
    assert "the probe could not run: the model has a Lambda layer" in \
        notification["message"]["text"]
