"""SARIF output: valid against the official SARIF 2.1.0 schema, one location per result with
the model's path relative to the repository root (an absolute file URI outside one),
fingerprints from rule, path and layer, rules within code scanning's limits, and baselined
findings kept as suppressed results."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import warnings
from pathlib import Path

import jsonschema
import pytest

import report_models
from conftest import REPO, keras3, run_gradlint

# The OASIS SARIF 2.1.0 schema (errata 01), vendored so the suite needs nothing beside the clone.
SCHEMA = Path(__file__).resolve().parent / "data" / "sarif-schema-2.1.0.json"
# An absolute URI, as upload-sarif checks the schema's "uri" format: a scheme, no spaces.
ABSOLUTE_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:[^\s]*$")
DOCS_URL = "https://example.invalid/OWNER/gradlint/blob/v0.1.0/docs/rules.md"
BASELINE = "gradlint-baseline.json"


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


def sarif_run(*args, cwd, env=None):
    result = run_gradlint("--output-format", "sarif", "-j", "1", *args, cwd=cwd, env=env)
    assert result.returncode in (0, 1, 2), result.stderr
    return result.returncode, json.loads(result.stdout)


def sarif_of(*args, cwd, env=None) -> dict:
    return sarif_run(*args, cwd=cwd, env=env)[1]


def schema_errors(validator, log) -> str:
    errors = sorted(validator.iter_errors(log), key=lambda e: list(e.path))
    return "\n".join(f"{list(e.path)}: {e.message}" for e in errors[:10])


def artifact_locations(run) -> list[dict]:
    """Every artifactLocation of a run: artifacts, results and notifications."""
    locations = [artifact["location"] for artifact in run["artifacts"]]
    locations += [location["physicalLocation"]["artifactLocation"]
                  for result in run["results"] for location in result["locations"]]
    for invocation in run["invocations"]:
        locations += [location["physicalLocation"]["artifactLocation"]
                      for note in invocation.get("toolExecutionNotifications", [])
                      for location in note["locations"]]
    return locations


def upload_sarif_window(data: bytes) -> str:
    """The characters upload-sarif hashes for a result on line 1 of a file."""
    text = data.decode("latin-1").replace("\r\n", "\n").replace("\r", "\n")
    return text.replace(" ", "").replace("\t", "")[:100]


def uri_of(result) -> str:
    return result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]


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


def test_inside_a_repository_uris_are_relative_with_a_base_id(repository, sarif_validator):
    # Run from outside the repository: the URI is relative to the repository's root, not to
    # the working directory, and %SRCROOT% says so.
    log = sarif_of("repo/models", cwd=repository.parent)
    assert not schema_errors(sarif_validator, log)
    run = log["runs"][0]
    for location in artifact_locations(run):
        assert location["uriBaseId"] == "%SRCROOT%", location
        assert not location["uri"].startswith(("/", "..", "file:")), location
    assert {uri_of(result) for result in run["results"]} == {
        "models/deep%20sigmoid.keras", "models/sequence/rnn.keras", "models/broken.keras"}
    root = run["originalUriBaseIds"]["%SRCROOT%"]
    assert root["uri"] == repository.as_uri() + "/"
    assert ABSOLUTE_URI.match(root["uri"]) and "uriBaseId" not in root
    assert root["description"]["text"]


def test_outside_a_repository_uris_are_absolute_file_uris_without_a_base(tmp_path, models,
                                                                         sarif_validator):
    assert not any((directory / ".git").exists() for directory in [tmp_path, *tmp_path.parents])
    (tmp_path / "nets").mkdir()
    shutil.copy(models["deep"], tmp_path / "nets" / "deep.keras")
    log = sarif_of("nets", cwd=tmp_path)
    assert not schema_errors(sarif_validator, log)
    run = log["runs"][0]
    [result] = run["results"]
    expected = (tmp_path / "nets" / "deep.keras").as_uri()
    assert uri_of(result) == expected
    for location in artifact_locations(run):
        assert location["uri"] == expected and "uriBaseId" not in location
    assert "originalUriBaseIds" not in run
    # What people read still names the file relative to the working directory.
    [logical] = result["locations"][0]["logicalLocations"]
    assert logical["fullyQualifiedName"] == "nets/deep.keras::hidden_1"
    assert result["properties"]["model"] == "nets/deep.keras"


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

    report = gradlint.lint(str(models["deep"]))
    report.files[0].probe = {"ran": False, "error": "the model has a Lambda layer; pass "
                             "--unsafe-load", "seeds": None, "batch": None,
                             "training_mode": None, "loss": None, "seconds": None}
    log = json.loads(render("sarif", report))
    assert not list(sarif_validator.iter_errors(log))
    invocation = log["runs"][0]["invocations"][0]
    assert invocation["executionSuccessful"] is False
    [notification] = invocation["toolExecutionNotifications"]
    assert "the probe could not run: the model has a Lambda layer" in \
        notification["message"]["text"]


# --- rules: code scanning's limits, help, precision and severity ------------------------------

def test_every_rule_fits_code_scanning_limits(repository, sarif_validator):
    from gradlint.renderers.report_data import rule_doc
    from gradlint.renderers.sarif import DESCRIPTION_LIMIT, SHORTENED
    from gradlint.rule_registry import all_rules

    log = sarif_of("models", cwd=repository)
    assert not schema_errors(sarif_validator, log)
    by_id = {rule["id"]: rule for rule in log["runs"][0]["tool"]["driver"]["rules"]}
    assert DESCRIPTION_LIMIT == 1024
    shortened = set()
    for rule in all_rules():
        descriptor = by_id[rule.code]
        doc = rule_doc(rule.code)
        full = descriptor["fullDescription"]["text"]
        assert 0 < len(full) <= 1024, (rule.code, len(full))
        assert 0 < len(descriptor["shortDescription"]["text"]) <= 1024
        assert descriptor["shortDescription"]["text"] == doc.summary
        assert len(descriptor["name"]) <= 255
        what = doc.what or doc.summary
        if len(what) <= 1024:
            assert full == what, rule.code
        else:
            # Cut at a sentence or paragraph, and said so; the whole text is in the help.
            shortened.add(rule.code)
            assert full.endswith(SHORTENED), rule.code
            head = full[:-len(SHORTENED)]
            assert what.startswith(head) and head.endswith((".", ";")), (rule.code, head[-40:])
            assert len(head) > 600, rule.code
        assert what in descriptor["help"]["text"]
        assert what in descriptor["help"]["markdown"]
    # The three rules whose "What it flags" runs past the limit (1,035, 1,602 and 1,268
    # characters when this test was written).
    assert {"GL202", "GL901", "GL902"} <= shortened


def test_a_description_without_a_sentence_to_cut_at_is_cut_at_a_word():
    from gradlint.renderers.sarif import SHORTENED, shorten

    text = "word " * 400
    short = shorten(text)
    assert len(short) <= 1024 and short.endswith("word…" + SHORTENED)
    assert shorten("A sentence.") == "A sentence."


def test_rules_carry_help_uri_precision_and_problem_severity(repository):
    from gradlint.rule_registry import all_rules

    log = sarif_of("models", cwd=repository, env={"GRADLINT_DOCS_URL": DOCS_URL})
    by_id = {rule["id"]: rule for rule in log["runs"][0]["tool"]["driver"]["rules"]}
    headings = set(re.findall(r"^## (GL\d{3} \S+)$", (REPO / "docs" / "rules.md").read_text(
        encoding="utf-8"), re.MULTILINE))
    problem = {"error": "error", "warning": "warning", "info": "recommendation"}
    for rule in all_rules():
        descriptor = by_id[rule.code]
        # GitHub's anchor of the heading "## GL101 saturating-activation-chain".
        assert f"{rule.code} {rule.name}" in headings
        assert descriptor["helpUri"] == f"{DOCS_URL}#{rule.code.lower()}-{rule.name}"
        properties = descriptor["properties"]
        assert properties["precision"] == rule.precision
        assert properties["problem.severity"] == problem[rule.severity]
        assert "security-severity" not in properties  # not security findings
        assert properties["tags"][0] == "gradient-flow"


def test_help_uri_without_a_configured_url(repository, monkeypatch):
    """From a source checkout the rules link to its docs/rules.md; installed from a git
    repository, to that repository's file at the installed commit; never a relative URI."""
    from gradlint.renderers import sarif

    log = sarif_of("models/clean.keras", cwd=repository, env={"GRADLINT_DOCS_URL": ""})
    rules = log["runs"][0]["tool"]["driver"]["rules"]
    expected = (REPO / "docs" / "rules.md").as_uri()
    if Path(sarif.__file__).resolve().parents[2] == REPO:  # the tests run from the checkout
        assert rules[0]["helpUri"] == f"{expected}#gl001-unreadable-model"
    for rule in rules:
        assert "helpUri" not in rule or ABSOLUTE_URI.match(rule["helpUri"]), rule["helpUri"]

    monkeypatch.delenv("GRADLINT_DOCS_URL", raising=False)
    origin = {"url": "https://user:secret@github.com/OWNER/gradlint.git",
              "vcs_info": {"vcs": "git", "requested_revision": "v0.1.0",
                           "commit_id": "0123456789abcdef0123456789abcdef01234567"}}
    monkeypatch.setattr(sarif, "_install_origin", lambda: origin)
    sarif._installed_docs_url.cache_clear()
    try:
        assert sarif.help_uri("GL101", "saturating-activation-chain") == (
            "https://github.com/OWNER/gradlint/blob/0123456789abcdef0123456789abcdef01234567"
            "/docs/rules.md#gl101-saturating-activation-chain")
        # A relative value could not be uploaded: it is not used.
        monkeypatch.setenv("GRADLINT_DOCS_URL", "docs/rules.md")
        assert sarif.help_uri("GL101", "x").startswith("https://github.com/OWNER/gradlint/")
    finally:
        sarif._installed_docs_url.cache_clear()


# --- fingerprints -----------------------------------------------------------------------------

def test_fingerprints_survive_saving_the_model_again(repository):
    """A .keras file's bytes change on every save (its metadata records the time), which is
    why the fingerprint never hashes the file: the same model saved twice, and a model built
    again with other weights, keep their fingerprints."""
    from gradlint.renderers.report_data import fingerprint

    keras = keras3()
    target = repository / "models" / "resaved.keras"

    def save(model):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.save(str(target))
        return target.read_bytes()

    def fingerprints():
        results = sarif_of("models/resaved.keras", cwd=repository)["runs"][0]["results"]
        return {(r["ruleId"], r["locations"][0]["logicalLocations"][0]["name"]):
                r["partialFingerprints"] for r in results}

    model = report_models.simple_rnn()
    first_bytes = save(model)
    first = fingerprints()
    time.sleep(1.1)  # the saved time has a resolution of one second
    second_bytes = save(model)
    second = fingerprints()
    time.sleep(1.1)
    third_bytes = save(report_models.simple_rnn())  # built again: other random weights
    third = fingerprints()
    assert first_bytes != second_bytes != third_bytes
    # What upload-sarif would hash for "line 1": the first 100 characters but spaces and tabs.
    assert upload_sarif_window(first_bytes) != upload_sarif_window(second_bytes)
    assert first == second == third
    assert set(first) == {("GL401", "rnn"), ("GL402", "rnn"), ("GL403", "resaved.keras")}
    # Made of rule, path and layer only: no line, no message.
    for (code, _), prints in first.items():
        layer = None if code == "GL403" else "rnn"
        key = fingerprint(code, "models/resaved.keras", layer)
        assert prints == {"gradlintFinding/v1": key, "primaryLocationLineHash": f"{key[:32]}:1"}
    # Two rules on one layer differ.
    assert first["GL401", "rnn"] != first["GL402", "rnn"]

    # One rule on two layers differs too.
    save(keras.Sequential([keras.Input((60, 8)),
                           keras.layers.SimpleRNN(16, return_sequences=True, name="rnn_a"),
                           keras.layers.SimpleRNN(16, name="rnn_b"),
                           keras.layers.Dense(1, name="score")], name="two_rnn"))
    two = fingerprints()
    assert set(two) == {("GL401", "rnn_a"), ("GL401", "rnn_b")}
    assert two["GL401", "rnn_a"] != two["GL401", "rnn_b"]


def test_fingerprints_ignore_the_message(repository, save_model):
    path = repository / "models" / "deep sigmoid.keras"
    [before] = sarif_of(str(path), cwd=repository)["runs"][0]["results"]
    # Two more sigmoid layers: the message's numbers change, the finding does not.
    shutil.copy(save_model("renderer_sarif_deeper_sigmoid", report_models.deeper_sigmoid), path)
    [after] = [r for r in sarif_of(str(path), cwd=repository)["runs"][0]["results"]
               if r["ruleId"] == "GL101"]
    assert before["message"]["text"] != after["message"]["text"]
    assert before["partialFingerprints"] == after["partialFingerprints"]


# --- baselines --------------------------------------------------------------------------------

def test_baselined_results_are_kept_as_suppressed(repository, models, sarif_validator):
    """With --baseline the known findings stay in the log, suppressed, so code scanning does
    not close their alerts as fixed; the exit status is that of the new findings alone."""
    paths = ["models/deep sigmoid.keras", "models/sequence"]
    status, plain = sarif_run(*paths, cwd=repository)
    assert status == 1
    assert all("baselineState" not in r and "suppressions" not in r
               for r in plain["runs"][0]["results"])
    created = run_gradlint("-j", "1", "--create-baseline", BASELINE, *paths, cwd=repository)
    assert created.returncode == 0, created.stderr

    status, log = sarif_run("--baseline", BASELINE, *paths, cwd=repository)
    assert status == 0  # every finding is known: the gate is green
    assert not schema_errors(sarif_validator, log)
    results = log["runs"][0]["results"]
    assert sorted(r["ruleId"] for r in results) == ["GL101", "GL401", "GL402", "GL403"]
    for result in results:
        assert result["baselineState"] == "unchanged"
        assert result["suppressions"] == [{
            "kind": "external", "status": "accepted",
            "justification": f"recorded in the gradlint baseline {BASELINE}"}]
    # The same results as without the baseline, fingerprints included.
    strip = ("suppressions", "baselineState")
    assert [{k: v for k, v in r.items() if k not in strip} for r in results] == \
        plain["runs"][0]["results"]

    # A new finding is "new", unsuppressed, and fails the gate; the known ones stay as they were.
    shutil.copy(models["deep"], repository / "models" / "sequence" / "copy.keras")
    status, log = sarif_run("--baseline", BASELINE, *paths, cwd=repository)
    assert status == 1
    assert not schema_errors(sarif_validator, log)
    results = log["runs"][0]["results"]
    new = [r for r in results if r["baselineState"] == "new"]
    assert [uri_of(r) for r in new] == ["models/sequence/copy.keras"]
    assert "suppressions" not in new[0] and new[0]["ruleId"] == "GL101"
    assert sorted(r["ruleId"] for r in results if r["baselineState"] == "unchanged") == \
        ["GL101", "GL401", "GL402", "GL403"]
    assert {r["baselineState"] for r in results} == {"new", "unchanged"}

    # A baseline entry that matches nothing is no result at all (no "absent"): its alert
    # closes as fixed.
    (repository / "models" / "sequence" / "copy.keras").unlink()
    (repository / "models" / "sequence" / "rnn.keras").unlink()
    status, log = sarif_run("--baseline", BASELINE, *paths, cwd=repository)
    assert status == 0
    results = log["runs"][0]["results"]
    assert [(r["ruleId"], r["baselineState"]) for r in results] == [("GL101", "unchanged")]
    assert not schema_errors(sarif_validator, log)


def test_with_a_baseline_an_unreadable_file_is_new_and_still_exits_2(repository):
    """An unreadable file is never baselined: with a baseline its GL001 is a new result and
    the run still exits 2."""
    run_gradlint("-j", "1", "--create-baseline", BASELINE, "models", cwd=repository)
    status, log = sarif_run("--baseline", BASELINE, "models", cwd=repository)
    assert status == 2
    results = log["runs"][0]["results"]
    gl001 = next(r for r in results if r["ruleId"] == "GL001")
    assert gl001["baselineState"] == "new" and "suppressions" not in gl001
    assert all(r["baselineState"] == "unchanged" for r in results if r["ruleId"] != "GL001")
    assert log["runs"][0]["invocations"][0]["executionSuccessful"] is False
