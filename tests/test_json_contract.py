"""The JSON output is the versioned contract documented in `gradlint.report`: checked with a
JSON Schema written here, against models whose numbers the checks derive from Keras."""

from __future__ import annotations

import json

import jsonschema
import numpy as np
import pytest
from click.testing import CliRunner

import gradlint
from gradlint.cli import main

from conftest import keras2, keras3

PREFIX = "test_json_contract"
BUILT: dict[str, object] = {}

NUMBER = {"anyOf": [{"type": "number"}, {"enum": ["nan", "inf", "-inf"]}]}
NUMBER_OR_NULL = {"anyOf": [NUMBER, {"type": "null"}]}
ESTIMATE_VALUES = {
    "type": "object",
    "required": ["forward_scale", "gradient", "kernel_gradient"],
    "properties": {key: NUMBER_OR_NULL for key in ("forward_scale", "gradient", "kernel_gradient")},
}
# A finding's optional fix (an addition to version 2).
EDIT = {
    "type": "object",
    "required": ["layer", "setting", "old", "new"],
    "properties": {"layer": {"type": ["string", "null"]},
                   "setting": {"type": "string", "minLength": 1}},
}
FIX = {
    "type": "object",
    "required": ["scope", "automatic", "safe", "description", "layer", "setting", "old", "new",
                 "edits", "estimate_after"],
    "properties": {
        "scope": {"enum": ["layer", "optimizer", "structural"]},
        "automatic": {"type": "boolean"},
        "safe": {"type": "boolean"},
        "description": {"type": "string", "minLength": 1},
        "reason": {"type": ["string", "null"]},
        "layer": {"type": ["string", "null"]},
        "setting": {"type": ["string", "null"]},
        "edits": {"type": "array", "items": EDIT},
        "estimate_after": {"anyOf": [{"type": "null"}, {
            "type": "object",
            "required": ["quantity", "at", "before", "after", "resolved", "remaining"],
            "properties": {"quantity": {"type": ["string", "null"]},
                           "at": {"type": ["string", "null"]},
                           "before": NUMBER_OR_NULL, "after": NUMBER_OR_NULL,
                           "resolved": {"type": "boolean"},
                           "remaining": {"type": "array", "items": {"type": "string"}}},
        }]},
    },
}
SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["version", "files", "summary"],
    "properties": {
        "version": {"const": 2},
        "files": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["path", "format", "model", "layers", "findings", "error"],
                "properties": {
                    "path": {"type": "string", "minLength": 1},
                    "format": {"type": ["string", "null"]},
                    "model": {
                        "anyOf": [{"type": "null"}, {
                            "type": "object",
                            "required": ["name", "layers", "params"],
                            "properties": {
                                "name": {"type": "string"},
                                "class": {"type": "string"},
                                "layers": {"type": "integer", "minimum": 0},
                                "params": {"type": ["integer", "null"], "minimum": 0},
                            },
                        }],
                    },
                    "estimate": {
                        "anyOf": [{"type": "null"}, {
                            "type": "object",
                            "required": ["mode", "batch_size"],
                            "properties": {
                                "mode": {"enum": ["training", "inference"]},
                                "batch_size": {"type": "integer", "minimum": 1},
                            },
                        }],
                    },
                    "layers": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["path", "class", "activation", "estimate"],
                            "properties": {
                                "family": {"type": ["string", "null"]},
                                "path": {"type": "string", "minLength": 1},
                                "class": {"type": "string", "minLength": 1},
                                "activation": {"type": ["string", "null"]},
                                "estimate": {
                                    "allOf": [ESTIMATE_VALUES, {
                                        "type": "object",
                                        "properties": {"stored_weights": {
                                            "anyOf": [{"type": "null"}, ESTIMATE_VALUES]}},
                                    }],
                                },
                            },
                        },
                    },
                    "findings": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["code", "name", "severity", "layer", "layers",
                                         "message", "evidence"],
                            "properties": {
                                "code": {"type": "string", "pattern": r"^GL\d{3}$"},
                                "name": {"type": "string", "pattern": r"^[a-z0-9]+(-[a-z0-9]+)*$"},
                                "severity": {"enum": ["error", "warning", "info"]},
                                "layer": {"type": ["string", "null"]},
                                "layers": {"type": "array", "items": {"type": "string"}},
                                "message": {"type": "string", "minLength": 1},
                                "evidence": {"type": "object"},
                                "fix": FIX,
                                # findings of the same cause (gradlint.folding), each a
                                # finding with an empty `related`
                                "related": {"type": "array", "items": {
                                    "type": "object",
                                    "required": ["code", "severity", "message", "related"],
                                    "properties": {
                                        "code": {"type": "string", "pattern": r"^GL\d{3}$"},
                                        "related": {"maxItems": 0}}}},
                            },
                        },
                    },
                    "notes": {"type": "array", "items": {"type": "string"}},
                    "error": {
                        "anyOf": [{"type": "null"}, {
                            "type": "object",
                            "required": ["code", "message"],
                            "properties": {"code": {"const": "GL001"},
                                           "message": {"type": "string", "minLength": 1}},
                        }],
                    },
                },
            },
        },
        "summary": {
            "type": "object",
            "required": ["findings", "by_severity", "files_linted", "files_unreadable"],
            "properties": {
                "findings": {"type": "integer", "minimum": 0},
                "by_severity": {
                    "type": "object",
                    "required": ["error", "warning", "info"],
                    "properties": {key: {"type": "integer", "minimum": 0}
                                   for key in ("error", "warning", "info")},
                },
                "files_linted": {"type": "integer", "minimum": 0},
                "files_unreadable": {"type": "integer", "minimum": 0},
            },
        },
    },
}


def build_mixed():
    """Several findings of several severities, a custom layer, a nested model and a kernel
    with NaN in it."""
    keras = keras3()
    layers = keras.layers

    @keras.saving.register_keras_serializable(package=PREFIX)
    class Passthrough(layers.Layer):
        def call(self, x):
            return x

    enc_in = keras.Input((16,), name="enc_in")
    h = enc_in
    for index in range(6):
        h = layers.Dense(16, activation="sigmoid", name=f"sig_{index}")(h)
    encoder = keras.Model(enc_in, h, name="encoder")
    inputs = keras.Input((16,), name="features")
    x = Passthrough(name="custom")(encoder(inputs))
    x = layers.Dense(8, activation="relu", name="hidden")(x)
    outputs = layers.Dense(1, name="out")(x)
    model = keras.Model(inputs, outputs, name="mixed")
    model.compile(keras.optimizers.SGD(learning_rate=0.5), "mse")
    kernel = model.get_layer("hidden").kernel.numpy()
    kernel[0, 0] = np.nan
    model.get_layer("hidden").kernel.assign(kernel)
    BUILT["mixed"] = model
    return model


def build_sequential():
    keras = keras3()
    layers = keras.layers
    model = keras.Sequential([keras.Input((10,)),
                              layers.Dense(12, activation="tanh", name="first"),
                              layers.Dropout(0.1, name="drop"),
                              layers.Dense(6, activation="relu", name="second"),
                              layers.Dense(2, activation="softmax", name="out")], name="plain")
    BUILT["plain"] = model
    return model


def build_legacy():
    keras = keras2()
    model = keras.Sequential([keras.layers.Dense(8, activation="relu", input_shape=(4,),
                                                 name="hidden"),
                              keras.layers.Dense(1, name="out")], name="legacy")
    model.compile(keras.optimizers.Adam(learning_rate=0.5), "mse")
    BUILT["legacy"] = model
    return model


@pytest.fixture(scope="module")
def files(save_model, tmp_path_factory):
    broken = tmp_path_factory.mktemp("contract") / "broken.keras"
    broken.write_bytes(b"PK\x03\x04" + b"\x00" * 40)
    return {
        "mixed": str(save_model(f"{PREFIX}-mixed", build_mixed)),
        "plain": str(save_model(f"{PREFIX}-plain", build_sequential)),
        "legacy": str(save_model(f"{PREFIX}-legacy", build_legacy, "h5")),
        "broken": str(broken),
    }


def _strict_loads(text):
    def reject(constant):
        raise ValueError(f"not strict JSON: {constant}")

    return json.loads(text, parse_constant=reject)


@pytest.fixture(scope="module")
def report(files):
    result = CliRunner().invoke(main, ["--isolated", "-j", "1", "--output-format", "json",
                                       *files.values()])
    assert result.exit_code == 2
    return _strict_loads(result.stdout)


def _file(report, path):
    return next(file for file in report["files"] if file["path"] == path)


def test_schema(report):
    jsonschema.validate(report, SCHEMA)
    assert report["version"] == 2 and isinstance(report["version"], int)


def test_schema_is_not_vacuous(report):
    """The schema rejects what the contract forbids."""
    broken = json.loads(json.dumps(report))
    broken["files"][0]["findings"].append({"code": "X1", "name": "Bad Name", "severity": "fatal",
                                           "layer": 3, "layers": "a", "message": "",
                                           "evidence": []})
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, SCHEMA)
    missing = json.loads(json.dumps(report))
    del missing["summary"]["files_unreadable"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(missing, SCHEMA)


def test_files_in_command_line_order(report, files):
    assert [file["path"] for file in report["files"]] == list(files.values())


def test_summary_counts(report):
    findings = [f for file in report["files"] for f in file["findings"]]
    summary = report["summary"]
    assert summary["findings"] == len(findings)
    for severity in ("error", "warning", "info"):
        assert summary["by_severity"][severity] == sum(
            1 for f in findings if f["severity"] == severity)
    unreadable = sum(1 for file in report["files"] if file["error"] is not None)
    assert summary["files_unreadable"] == unreadable == 1
    assert summary["files_linted"] == len(report["files"]) - unreadable


def test_unreadable_file(report, files):
    broken = _file(report, files["broken"])
    assert broken["error"]["code"] == "GL001"
    assert broken["error"]["message"]
    assert [f["code"] for f in broken["findings"]] in ([], ["GL001"])
    assert broken["layers"] == []
    assert broken["model"] is None


def test_model_summary(report, files):
    for key in ("mixed", "plain", "legacy"):
        model = BUILT[key]
        entry = _file(report, files[key])["model"]
        assert entry["name"] == model.name
        assert entry["params"] == model.count_params()


def test_layer_count_and_entries(report, files):
    model = BUILT["plain"]
    result = _file(report, files["plain"])
    assert result["model"]["layers"] == len(model.layers)
    assert [layer["path"] for layer in result["layers"]] == [layer.name for layer in model.layers]
    for entry, layer in zip(result["layers"], model.layers):
        assert entry["class"] == type(layer).__name__
        activation = getattr(layer, "activation", None)
        if activation is not None:
            assert entry["activation"] == activation.__name__


def test_nested_and_custom_layers(report, files):
    result = _file(report, files["mixed"])
    paths = [layer["path"] for layer in result["layers"]]
    assert [f"encoder/sig_{index}" for index in range(6)] == \
        [path for path in paths if path.startswith("encoder/")]
    custom = next(layer for layer in result["layers"] if layer["path"] == "custom")
    assert custom["class"] == "Passthrough"
    codes = {f["code"] for f in result["findings"]}
    assert {"GL002", "GL205", "GL403"} <= codes
    assert {f["severity"] for f in result["findings"]} == {"error", "warning", "info"}


def test_findings_refer_to_layers_of_the_model(report):
    for file in report["files"]:
        if file["error"]:
            continue
        paths = {layer["path"] for layer in file["layers"]}
        for finding in file["findings"]:
            if finding["layer"] is not None:
                assert finding["layer"] in paths, finding
            assert set(finding["layers"]) <= paths, finding


def test_evidence_names_the_numbers(report, files):
    result = _file(report, files["mixed"])
    non_finite = next(f for f in result["findings"] if f["code"] == "GL205")
    assert non_finite["layer"] == "hidden"
    assert non_finite["evidence"]
    learning_rate = next(f for f in result["findings"] if f["code"] == "GL403")
    assert 0.5 in [value for value in learning_rate["evidence"].values()
                   if isinstance(value, (int, float))]


def test_estimates_with_and_without_weights(report, files):
    for key in ("mixed", "plain", "legacy"):
        for layer in _file(report, files[key])["layers"]:
            assert layer["estimate"]["stored_weights"] is not None
    fast = CliRunner().invoke(main, ["--isolated", "-j", "1", "--output-format", "json",
                                     "--no-weights", files["plain"]])
    data = _strict_loads(fast.stdout)
    jsonschema.validate(data, SCHEMA)
    assert data["files"][0]["model"]["params"] is None
    assert all(layer["estimate"]["stored_weights"] is None for layer in data["files"][0]["layers"])


def test_api_report_is_the_same_contract(report, files):
    api = gradlint.lint(list(files.values()))
    assert _strict_loads(api.to_json()) == report
    assert api.to_dict() == report
    assert api.exit_code() == 2


def test_live_model_report_follows_the_contract(files):
    data = _strict_loads(gradlint.lint(BUILT["plain"]).to_json())
    jsonschema.validate(data, SCHEMA)
    assert data["files"][0]["model"]["params"] == BUILT["plain"].count_params()


def test_fix_is_an_optional_addition(report, files):
    """Version 2 gains a `fix` object on findings that have one: structural fixes say so and
    carry no edit; automatic ones name the layer, setting, old and new value and the
    estimate after them."""
    findings = [f for file in report["files"] for f in file["findings"]]
    assert report["version"] == 2
    fixed = [f for f in findings if "fix" in f]
    assert fixed and len(fixed) < len(findings)  # optional: GL001/GL002/GL205 carry none
    for finding in fixed:
        fix = finding["fix"]
        assert (fix["scope"] == "structural") == (not fix["automatic"] and not fix["edits"]) \
            or fix["scope"] == "optimizer"
    gl101 = next(f for f in fixed if f["code"] == "GL101")["fix"]
    assert gl101["setting"] == "activation" and gl101["new"] == "relu" and not gl101["safe"]
    assert gl101["estimate_after"]["resolved"] is True
