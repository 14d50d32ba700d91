"""GitLab Code Quality report (``--output-format gitlab``): the JSON array GitLab reads from
``artifacts:reports:codequality`` and shows in the merge request's Code Quality widget (and,
on tiers that have them, the pipeline's Code Quality tab and the diff).

One issue per finding, with the fields GitLab documents::

    {"description": "GL101 saturating-activation-chain: hidden_1: 10 saturating …",
     "check_name": "GL101",
     "fingerprint": "<64 hex digits>",
     "severity": "critical",
     "location": {"path": "models/deep.keras", "lines": {"begin": 1}}}

and ``type`` ``"issue"`` and ``categories`` ``["Bug Risk"]``, which the Code Climate format
GitLab's is a subset of asks for and GitLab ignores.

- ``location.path`` is the model's path relative to the root of the git repository holding
  it (the working directory outside one), which is the project's root in a GitLab job.
- ``location.lines.begin`` is always 1: a model file is binary and has no lines; the layer
  is named in the description.
- ``fingerprint`` is `report_data.fingerprint` of the rule code, that path and the layer
  path: never a position or a message, so a finding keeps its fingerprint across runs,
  re-orderings and rewordings, and GitLab can tell new findings from fixed ones. GitLab
  keeps only one issue per fingerprint, so a second finding with the same three (the same
  rule on the same layer twice) gets the fingerprint of the three and its number.
- ``severity`` (GitLab's scale: info, minor, major, critical, blocker): an ``error`` is
  ``critical`` (the default gate fails on it: the model is unlikely to train as it is), a
  ``warning`` is ``major`` (a real risk, gating with ``--fail-on warning``), an ``info`` is
  ``info``; a file that could not be read (GL001) and a probe that could not run are
  ``blocker``, since nothing was checked and the run exits 2 whatever ``--fail-on`` says.
  ``minor`` is not used.

A probe that could not run on a model is an issue of its own (``check_name``
``gradlint-probe``), so the widget says why the job failed.

Names, messages and paths come from the model file and the file system. The description is
text for people and gets `printable` (control characters shown as ``\\x1b``); every other
string is data, kept as it is except that a lone surrogate becomes the text ``\\udcff``, so
the report is valid Unicode JSON.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from gradlint.findings import probe_suffix, related_suffix
from gradlint.renderers.report_data import fingerprint, probe_failure, repository_path
from gradlint.safe_text import map_strings, printable, valid_unicode

SEVERITIES = {"error": "critical", "warning": "major", "info": "info"}
# What nothing can make pass: a file that was not checked at all, a probe that did not run.
NOT_CHECKED = "blocker"
GITLAB_SEVERITIES = ("info", "minor", "major", "critical", "blocker")
PROBE_CHECK = "gradlint-probe"
CATEGORIES = ["Bug Risk"]


def _issue(check_name: str, description: str, severity: str, path: str,
           key: str) -> dict[str, Any]:
    return {
        "type": "issue",
        "check_name": check_name,
        "description": printable(description),
        "categories": list(CATEGORIES),
        "fingerprint": key,
        "severity": severity,
        "location": {"path": path, "lines": {"begin": 1}},
    }


def code_quality(report) -> list[dict[str, Any]]:
    """The Code Quality issues of a report, as a list of dicts."""
    issues: list[dict[str, Any]] = []
    seen: Counter[str] = Counter()

    def key(code: str, path: str, layer: str | None) -> str:
        first = fingerprint(code, path, layer)
        seen[first] += 1
        if seen[first] == 1:
            return first
        return fingerprint(code, path, f"{layer or ''}\x1f{seen[first]}")

    for result in report.files:
        path = repository_path(result.path)
        for finding in result.findings:
            description = f"{finding.code} {finding.name}: "
            if finding.layer:
                description += f"{finding.layer}: "
            description += finding.message + related_suffix(finding) + probe_suffix(finding.probe)
            severity = NOT_CHECKED if result.unreadable else \
                SEVERITIES.get(finding.severity, "major")
            issues.append(_issue(finding.code, description, severity, path,
                                 key(finding.code, path, finding.layer)))
        failure = probe_failure({"probe": result.probe})
        if failure:
            issues.append(_issue(PROBE_CHECK, f"{PROBE_CHECK}: {failure}", NOT_CHECKED, path,
                                 key(PROBE_CHECK, path, None)))
    return map_strings(issues, valid_unicode)


def render(report, options) -> str:
    return json.dumps(code_quality(report), indent=2, allow_nan=False) + "\n"
