"""SARIF 2.1.0 output, for GitHub code scanning and other SARIF consumers.

Every result has one location: the model file's path relative to the root of the git
repository holding it (the working directory outside a repository), with
``region.startLine`` 1, since code scanning rejects an upload with a result that has no
location. The layer is named in ``logicalLocations`` and at the start of the message.
``partialFingerprints`` are built from the rule, the model path and the layer path, so that
findings in one binary file stay apart across runs. Rules carry their documentation as help
text (plain and Markdown).

Names and paths come from the model file and the file system. ``artifactLocation.uri`` is
the path's bytes, percent-encoded (a path that is not UTF-8 keeps its original bytes, as
``%FF``), so it is always a valid URI reference. Message texts are plain text for people
and get `printable` (control characters shown as ``\\x1b``); every other string is data,
kept as it is except that a lone surrogate becomes the text ``\\udcff``, because SARIF is
JSON and must be valid Unicode (see `gradlint.renderers.json_format`).
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any
from urllib.parse import quote

from gradlint import __version__
from gradlint.findings import probe_suffix
from gradlint.renderers.report_data import (all_rule_docs, fingerprint, probe_failure,
                                            report_dict, repository_path, rule_doc)
from gradlint.safe_text import map_strings, path_bytes, printable, valid_unicode

SCHEMA = ("https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/"
          "sarif-schema-2.1.0.json")
LEVELS = {"error": "error", "warning": "warning", "info": "note"}
FINGERPRINT_KEY = "gradlintFinding/v1"
SOURCE_ROOT = "%SRCROOT%"


def _rule_descriptor(doc) -> dict[str, Any]:
    descriptor: dict[str, Any] = {
        "id": doc.code,
        "name": doc.name,
        "shortDescription": {"text": doc.summary},
        "fullDescription": {"text": doc.what or doc.summary},
        "help": {"text": doc.text, "markdown": doc.markdown},
        "defaultConfiguration": {"level": LEVELS.get(doc.severity, "warning")},
        "properties": {"tags": ["gradient-flow", *doc.groups]},
    }
    return descriptor


def _unknown_rule_descriptor(code: str, name: str, severity: str) -> dict[str, Any]:
    return {"id": code, "name": name or code,
            "shortDescription": {"text": name or code},
            "defaultConfiguration": {"level": LEVELS.get(severity, "warning")}}


def _message(finding: dict[str, Any]) -> str:
    layer = finding.get("layer")
    message = finding.get("message") or finding.get("name") or finding.get("code", "")
    if layer:
        message = f"Layer '{layer}': {message}"
    return printable(message + probe_suffix(finding.get("probe")))


def artifact_uri(path: str) -> str:
    """A repository-relative path as a URI reference: its bytes, percent-encoded except
    for unreserved characters and '/'."""
    return quote(path_bytes(path), safe="/")


def _properties(finding: dict[str, Any], model_path: str) -> dict[str, Any]:
    properties: dict[str, Any] = {"model": model_path, "severity": finding.get("severity")}
    if finding.get("layers"):
        properties["layers"] = list(finding["layers"])
    if finding.get("evidence"):
        properties["evidence"] = finding["evidence"]
    if isinstance(finding.get("probe"), dict):
        properties["probe"] = finding["probe"]
    return properties


def sarif_log(report) -> dict[str, Any]:
    """The SARIF log of a report, as a dict."""
    data = report_dict(report)
    docs = all_rule_docs()
    rules = [_rule_descriptor(doc) for doc in docs]
    index = {doc.code: position for position, doc in enumerate(docs)}
    artifacts: list[dict[str, Any]] = []
    artifact_index: dict[str, int] = {}
    results: list[dict[str, Any]] = []
    notifications: list[dict[str, Any]] = []
    seen: Counter[str] = Counter()

    for file in data.get("files", []):
        path = repository_path(file["path"])
        uri = artifact_uri(path)
        if uri not in artifact_index:
            artifact_index[uri] = len(artifacts)
            artifacts.append({"location": {"uri": uri, "uriBaseId": SOURCE_ROOT}})
        problems = [file["error"].get("message", "")] if file.get("error") else []
        if probe_failure(file):
            problems.append(probe_failure(file))
        for problem in problems:
            notifications.append({
                "level": "error",
                "message": {"text": printable(f"{path}: {problem}")},
                "locations": [{"physicalLocation": {"artifactLocation": {
                    "uri": uri, "uriBaseId": SOURCE_ROOT}}}],
            })
        for finding in file.get("findings", []):
            code = finding.get("code", "")
            if code not in index:
                doc = rule_doc(code)
                index[code] = len(rules)
                rules.append(_rule_descriptor(doc) if doc is not None else
                             _unknown_rule_descriptor(code, finding.get("name", ""),
                                                      finding.get("severity", "warning")))
            layer = finding.get("layer")
            key = fingerprint(code, path, layer)
            seen[key] += 1
            location: dict[str, Any] = {
                "physicalLocation": {
                    "artifactLocation": {"uri": uri, "uriBaseId": SOURCE_ROOT,
                                         "index": artifact_index[uri]},
                    "region": {"startLine": 1},
                },
            }
            if layer:
                location["logicalLocations"] = [{
                    "name": layer.rsplit("/", 1)[-1],
                    "fullyQualifiedName": f"{path}::{layer}",
                    "kind": "member",
                }]
            else:
                location["logicalLocations"] = [{"name": path.rsplit("/", 1)[-1],
                                                 "fullyQualifiedName": path,
                                                 "kind": "module"}]
            results.append({
                "ruleId": code,
                "ruleIndex": index[code],
                "level": LEVELS.get(finding.get("severity"), "warning"),
                "message": {"text": _message(finding)},
                "locations": [location],
                "partialFingerprints": {
                    FINGERPRINT_KEY: key if seen[key] == 1 else f"{key}:{seen[key]}",
                    "primaryLocationLineHash": f"{key[:32]}:{seen[key]}",
                },
                "properties": _properties(finding, path),
            })

    invocation: dict[str, Any] = {"executionSuccessful": not notifications}
    if notifications:
        invocation["toolExecutionNotifications"] = notifications
    run = {
        "tool": {"driver": {
            "name": "gradlint",
            "version": __version__,
            "semanticVersion": __version__,
            "rules": rules,
        }},
        "invocations": [invocation],
        "originalUriBaseIds": {SOURCE_ROOT: {
            "description": {"text": "The root of the git repository holding the models "
                                    "(the working directory outside a repository)."}}},
        "artifacts": artifacts,
        "results": results,
        "columnKind": "unicodeCodePoints",
    }
    # Every string valid Unicode (lone surrogates as the text \udcff), so the log encodes.
    return map_strings({"$schema": SCHEMA, "version": "2.1.0", "runs": [run]}, valid_unicode)


def render(report, options) -> str:
    return json.dumps(sarif_log(report), indent=2, allow_nan=False) + "\n"
