"""SARIF 2.1.0 output, for GitHub code scanning and other SARIF consumers.

Locations. Every result has one location, the model file, with ``region.startLine`` 1, since
code scanning rejects an upload with a result that has no location; the layer is named in
``logicalLocations`` and at the start of the message. A file inside a git repository has a
``uri`` relative to the repository's root and the ``uriBaseId`` ``%SRCROOT%``, which
``run.originalUriBaseIds`` defines as that root (files from a second repository in the same
run get ``%SRCROOT2%``, and so on). A file outside every repository has an absolute
``file://`` URI and no ``uriBaseId``; a live model (``<name>``) has its name and no
``uriBaseId``.

Fingerprints. ``partialFingerprints`` are gradlint's own, built from the rule code, the model
path (relative to the repository's root; outside a repository, to the working directory)
and the layer path, never from a line or a message: a model is a binary file, whose "line 1"
(what upload-sarif would otherwise hash) changes whenever the model is saved again, so the
alerts would close and reopen. upload-sarif keeps these and logs a warning for each result
that its own hash differs; docs/ci.md explains it.

Baselines. With ``--baseline``, the findings the baseline records (``FileResult.suppressed``)
are still results, with a suppression of kind ``external`` whose justification names the
baseline file, and ``baselineState`` ``unchanged``; every other result of the run is
``new``. Baseline entries that match nothing are not written as ``absent`` results: code
scanning does not read ``baselineState`` and would open an alert for each, while leaving the
finding out already closes its alert as fixed. Without a baseline no result has a
``baselineState``.

Rules. ``shortDescription`` is the rule's summary; ``fullDescription`` its *What it flags*,
shortened at a sentence or paragraph to code scanning's limit of 1,024 characters when
longer; ``help`` the whole documentation (plain text and Markdown); ``helpUri`` its section
of docs/rules.md (see `docs_url`); ``properties`` its tags, ``precision`` and
``problem.severity``. No rule has a ``security-severity``: gradient-flow risks are not
security vulnerabilities, and the property would make code scanning list them as security
alerts.

Names and paths come from the model file and the file system. ``artifactLocation.uri`` is
the path's bytes, percent-encoded (a path that is not UTF-8 keeps its original bytes, as
``%FF``), so it is always a valid URI reference. Message texts are plain text for people
and get `printable` (control characters shown as ``\\x1b``); every other string is data,
kept as it is except that a lone surrogate becomes the text ``\\udcff``, because SARIF is
JSON and must be valid Unicode (see `gradlint.renderers.json_format`).

Fixes. A finding's fix (`gradlint.findings.Fix`) is in the result's
``properties.fix``, in the JSON contract's form, not in SARIF's ``fixes``: a SARIF fix must
carry at least one ``artifactChange`` with ``replacements`` (regions of the artifact and the
content that replaces them), and the artifact is a binary model file whose edit (the
configuration inside a zip, re-drawn kernels in HDF5) only `gradlint fix` can make; a
replacement of the whole file would need the fixed file's bytes in every log. What the fix
does is in ``properties.fix.description`` and ``properties.fix.edits``.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from gradlint import __version__
from gradlint.findings import probe_suffix, related_suffix
from gradlint.renderers.report_data import (all_rule_docs, fingerprint, git_root,
                                           repository_path, rule_doc)
from gradlint.report import finite
from gradlint.safe_text import map_strings, path_bytes, printable, valid_unicode

SCHEMA = ("https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/"
          "sarif-schema-2.1.0.json")
LEVELS = {"error": "error", "warning": "warning", "info": "note"}
# Code scanning's `problem.severity` values: error, warning, recommendation.
PROBLEM_SEVERITIES = {"error": "error", "warning": "warning", "info": "recommendation"}
FINGERPRINT_KEY = "gradlintFinding/v1"
SOURCE_ROOT = "%SRCROOT%"
# Code scanning shows at most this many characters of a rule's short and full description.
DESCRIPTION_LIMIT = 1024
SHORTENED = "\n\n(Shortened: the rule's help has the whole text.)"


# The absolute URL of docs/rules.md, when set, makes every rule's helpUri.
DOCS_URL_VARIABLE = "GRADLINT_DOCS_URL"
RULES_DOC = "docs/rules.md"
# Where pip's record of a git installation (PEP 610) names a host whose file URLs we know.
BLOB_PATHS = {"github.com": "/blob/", "gitlab.com": "/-/blob/"}

# Places where a description may be cut: before a paragraph or a list item, or after a
# sentence.
_CUTS = re.compile(r"\n\n|\n(?=- )|(?<=\.)\s+(?=[A-Z`])")


# --- rules ------------------------------------------------------------------------------------

def shorten(text: str, limit: int = DESCRIPTION_LIMIT) -> str:
    """`text` if it fits in `limit` characters; otherwise its longest beginning that ends
    at a paragraph, list item or sentence and leaves room for a note saying so (at a word,
    with an ellipsis, if no sentence fits)."""
    if len(text) <= limit:
        return text
    budget = limit - len(SHORTENED)
    ends = [match.start() for match in _CUTS.finditer(text) if match.start() <= budget]
    end = max(ends, default=0)
    if end:
        return text[:end].rstrip() + SHORTENED
    head = text[:budget - 1]
    head = head[:head.rfind(" ")] if " " in head else head
    return head.rstrip() + "…" + SHORTENED


def docs_url() -> str | None:
    """The absolute URL of docs/rules.md for the gradlint that writes the log, or None:

    1. the environment variable GRADLINT_DOCS_URL, if it is an absolute URL;
    2. when pip installed gradlint from a git repository on github.com or gitlab.com (the
       documented way; pip records it, PEP 610), that repository's docs/rules.md at the
       installed commit;
    3. docs/rules.md of the source checkout gradlint runs from, as a file:// URI;
    4. None: the rules then have no helpUri (their help carries the same text).

    Never a relative reference: SARIF requires an absolute URI there, and upload-sarif
    rejects a log whose helpUri is not one."""
    configured = os.environ.get(DOCS_URL_VARIABLE, "").strip()
    if configured and urlsplit(configured).scheme:
        return configured.split("#", 1)[0]
    return _installed_docs_url()


@lru_cache(maxsize=1)
def _installed_docs_url() -> str | None:
    origin = _install_origin()
    vcs = origin.get("vcs_info") if isinstance(origin, dict) else None
    if isinstance(vcs, dict) and vcs.get("vcs") == "git" and isinstance(origin.get("url"), str):
        commit = vcs.get("commit_id")
        parts = urlsplit(origin["url"])
        blob = BLOB_PATHS.get(parts.hostname or "")
        if parts.scheme == "https" and blob and isinstance(commit, str) and commit:
            # Host and path only: never a user name or token from the URL.
            repository = parts.path.rstrip("/").removesuffix(".git")
            return f"https://{parts.hostname}{repository}{blob}{quote(commit)}/{RULES_DOC}"
    checkout = Path(__file__).resolve().parents[2] / RULES_DOC
    if checkout.is_file():
        return checkout.as_uri()
    return None


def _install_origin() -> dict[str, Any] | None:
    """pip's record of where gradlint was installed from (``direct_url.json``), or None."""
    from importlib import metadata

    try:
        text = metadata.distribution("gradlint").read_text("direct_url.json")
        return json.loads(text) if text else None
    except (metadata.PackageNotFoundError, OSError, ValueError):
        return None


def help_uri(code: str, name: str) -> str | None:
    """The rule's section of docs/rules.md (its heading ``## GL101 name`` has the anchor
    ``gl101-name``), or None when no documentation URL is known."""
    base = docs_url()
    return f"{base}#{code.lower()}-{name}" if base else None


def _rule_properties(severity: str, tags: list[str], precision: str = "medium"
                     ) -> dict[str, Any]:
    return {"tags": tags, "precision": precision,
            "problem.severity": PROBLEM_SEVERITIES.get(severity, "warning")}


def _rule_descriptor(doc) -> dict[str, Any]:
    descriptor: dict[str, Any] = {
        "id": doc.code,
        "name": doc.name,
        "shortDescription": {"text": shorten(doc.summary)},
        "fullDescription": {"text": shorten(doc.what or doc.summary)},
        "help": {"text": doc.text, "markdown": doc.markdown},
        "defaultConfiguration": {"level": LEVELS.get(doc.severity, "warning")},
        "properties": _rule_properties(doc.severity, ["gradient-flow", *doc.groups],
                                       doc.precision),
    }
    uri = help_uri(doc.code, doc.name)
    if uri:
        descriptor["helpUri"] = uri
    return descriptor


def _unknown_rule_descriptor(code: str, name: str, severity: str) -> dict[str, Any]:
    text = name or code
    return {"id": code, "name": text,
            "shortDescription": {"text": text},
            "fullDescription": {"text": text},
            "help": {"text": text},
            "defaultConfiguration": {"level": LEVELS.get(severity, "warning")},
            "properties": _rule_properties(severity, [])}


# --- locations --------------------------------------------------------------------------------

def artifact_uri(path: str) -> str:
    """A repository-relative path as a URI reference: its bytes, percent-encoded except
    for unreserved characters and '/'."""
    return quote(path_bytes(path), safe="/")


def file_uri(path: str) -> str:
    """An absolute path as a ``file://`` URI: its bytes, percent-encoded."""
    raw = path_bytes(path)
    if os.sep != "/":
        raw = raw.replace(os.sep.encode(), b"/")
    if not raw.startswith(b"/"):  # a Windows drive: file:///C:/...
        raw = b"/" + raw
    return "file://" + quote(raw, safe="/:")


def _locate(path: str) -> tuple[str | None, str]:
    """(the root of the git repository holding `path` or None, `path` relative to that root,
    or outside every repository to the working directory, '/'-separated)."""
    absolute = os.path.abspath(path)
    directory = absolute if os.path.isdir(absolute) else os.path.dirname(absolute)
    root = git_root(directory)
    if root is None:
        return None, repository_path(path)
    return root, os.path.relpath(absolute, root).replace(os.sep, "/")


@dataclass(frozen=True)
class Place:
    """Where a linted file is, as SARIF names it."""

    path: str  # shown and fingerprinted: relative to the repository's root, '/'-separated
    uri: str
    base: str | None  # the uriBaseId, or None for an absolute URI or a live model

    def artifact_location(self, **extra: Any) -> dict[str, Any]:
        location: dict[str, Any] = {"uri": self.uri}
        if self.base:
            location["uriBaseId"] = self.base
        location.update(extra)
        return location


class Places:
    """The places of one run's files, and the repository roots their base ids stand for."""

    def __init__(self) -> None:
        self.bases: dict[str, str] = {}  # repository root -> uriBaseId

    def of(self, path: str) -> Place:
        if path.startswith("<") and path.endswith(">"):  # a live model: no file
            return Place(path, artifact_uri(path), None)
        root, shown = _locate(path)
        if root is None:
            return Place(shown, file_uri(os.path.abspath(path)), None)
        if root not in self.bases:
            self.bases[root] = (SOURCE_ROOT if not self.bases
                                else f"%SRCROOT{len(self.bases) + 1}%")
        return Place(shown, artifact_uri(shown), self.bases[root])

    def original_uri_base_ids(self) -> dict[str, Any]:
        described = {}
        for root, base in self.bases.items():
            uri = file_uri(root)
            described[base] = {
                "uri": uri if uri.endswith("/") else uri + "/",
                "description": {"text": "The root of the git repository holding the models."
                                if base == SOURCE_ROOT else
                                "The root of another git repository holding linted models."},
            }
        return described


# --- results ----------------------------------------------------------------------------------

def _message(finding) -> str:
    message = finding.message or finding.name or finding.code
    if finding.layer:
        message = f"Layer '{finding.layer}': {message}"
    return printable(message + related_suffix(finding) + probe_suffix(finding.probe))


def _properties(finding, model_path: str) -> dict[str, Any]:
    properties: dict[str, Any] = {"model": model_path, "severity": finding.severity}
    if finding.layers:
        properties["layers"] = list(finding.layers)
    if finding.evidence:
        properties["evidence"] = finite(finding.evidence)
    if isinstance(finding.probe, dict):
        properties["probe"] = finite(finding.probe)
    if getattr(finding, "fix", None) is not None:
        properties["fix"] = finite(finding.fix.to_dict())  # not `fixes`: see the docstring
    return properties


def _problems(result, place: Place) -> list[str]:
    """Why a file could not be read or probed, as notification texts."""
    problems = []
    if result.error is not None:
        problems.append(result.error["message"])
    if result.probe_failed:
        problems.append(f"the probe could not run: {result.probe['error'] or 'no reason given'}")
    return [printable(f"{place.path}: {problem}") for problem in problems]


def sarif_log(report) -> dict[str, Any]:
    """The SARIF log of a `Report`, as a dict."""
    docs = all_rule_docs()
    rules = [_rule_descriptor(doc) for doc in docs]
    index = {doc.code: position for position, doc in enumerate(docs)}
    places = Places()
    artifacts: list[dict[str, Any]] = []
    artifact_index: dict[tuple[str | None, str], int] = {}
    results: list[dict[str, Any]] = []
    notifications: list[dict[str, Any]] = []
    seen: Counter[str] = Counter()

    for file in report.files:
        place = places.of(file.path)
        if (place.base, place.uri) not in artifact_index:
            artifact_index[place.base, place.uri] = len(artifacts)
            artifacts.append({"location": place.artifact_location()})
        for text in _problems(file, place):
            notifications.append({
                "level": "error",
                "message": {"text": text},
                "locations": [{"physicalLocation": {
                    "artifactLocation": place.artifact_location()}}],
            })
        justification = None
        if file.baseline_file is not None:
            baseline = _locate(file.baseline_file)[1]
            justification = printable(f"recorded in the gradlint baseline {baseline}")
        # The baselined findings first: of several findings with one key, the baseline holds
        # the first ones, so this keeps each key's numbering (":2") as it was without it.
        ordered = [(finding, True) for finding in file.suppressed]
        ordered += [(finding, False) for finding in file.findings]
        for finding, baselined in ordered:
            code = finding.code
            if code not in index:
                doc = rule_doc(code)
                index[code] = len(rules)
                rules.append(_rule_descriptor(doc) if doc is not None else
                             _unknown_rule_descriptor(code, finding.name, finding.severity))
            key = fingerprint(code, place.path, finding.layer)
            seen[key] += 1
            location: dict[str, Any] = {
                "physicalLocation": {
                    "artifactLocation": place.artifact_location(
                        index=artifact_index[place.base, place.uri]),
                    "region": {"startLine": 1},
                },
            }
            if finding.layer:
                location["logicalLocations"] = [{
                    "name": finding.layer.rsplit("/", 1)[-1],
                    "fullyQualifiedName": f"{place.path}::{finding.layer}",
                    "kind": "member",
                }]
            else:
                location["logicalLocations"] = [{"name": place.path.rsplit("/", 1)[-1],
                                                 "fullyQualifiedName": place.path,
                                                 "kind": "module"}]
            sarif_result: dict[str, Any] = {
                "ruleId": code,
                "ruleIndex": index[code],
                "level": LEVELS.get(finding.severity, "warning"),
                "message": {"text": _message(finding)},
                "locations": [location],
                "partialFingerprints": {
                    FINGERPRINT_KEY: key if seen[key] == 1 else f"{key}:{seen[key]}",
                    "primaryLocationLineHash": f"{key[:32]}:{seen[key]}",
                },
                "properties": _properties(finding, place.path),
            }
            if baselined:
                sarif_result["suppressions"] = [{"kind": "external", "status": "accepted",
                                                 "justification": justification}]
            if file.baseline_file is not None:
                sarif_result["baselineState"] = "unchanged" if baselined else "new"
            results.append(sarif_result)

    invocation: dict[str, Any] = {"executionSuccessful": not notifications}
    if notifications:
        invocation["toolExecutionNotifications"] = notifications
    run: dict[str, Any] = {
        "tool": {"driver": {
            "name": "gradlint",
            "version": __version__,
            "semanticVersion": __version__,
            "rules": rules,
        }},
        "invocations": [invocation],
    }
    if places.bases:
        run["originalUriBaseIds"] = places.original_uri_base_ids()
    run.update({"artifacts": artifacts, "results": results, "columnKind": "unicodeCodePoints"})
    # Every string valid Unicode (lone surrogates as the text \udcff), so the log encodes.
    return map_strings({"$schema": SCHEMA, "version": "2.1.0", "runs": [run]}, valid_unicode)


def render(report, options) -> str:
    return json.dumps(sarif_log(report), indent=2, allow_nan=False) + "\n"
