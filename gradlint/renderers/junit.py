"""JUnit XML, for CI systems that show test reports (GitLab, Jenkins, Azure Pipelines).

One test case per model, in a test suite of its own named by the model's path (relative to
the repository's root), classname ``gradlint``, name and ``file`` the model's path:

- it passes when the model has no finding at or above the fail level (``--fail-on``, default
  ``error``; ``never``: nothing fails);
- it fails otherwise: the ``failure`` (``type`` the worst severity among them) lists every
  such finding, one per line, as ``layer: CODE [severity] message``;
- a model that could not be read (GL001), or that the probe was asked for and could not run
  on, is a test case in ``error``, whose text also lists any failing findings, as the exit
  status 2 wins over 1;
- findings below the fail level are kept in the test case's ``system-out``, and the file's
  notes as ``property`` elements of its suite.

``time`` is the time the run measured for the file (`FileResult.seconds`), in seconds; a
report without it has no ``time`` attributes, rather than a made-up 0. ``timestamp`` (ISO
8601) is when the run started (`Report.started`), or when the report was rendered if the
report does not say.

Names, messages and paths come from the model file and the file system. XML 1.0 forbids
most control characters and every lone surrogate, and CI systems show failure text as
plain text, so every value from the report goes through `_clean` (`printable`): control
characters, lone surrogates and U+FFFE/U+FFFF are shown as visible escapes (``\\x1b``,
``\\udcff``), which say more than U+FFFD would. Lines of several findings are joined after
that, with real newlines.
"""

from __future__ import annotations

import datetime
import xml.etree.ElementTree as ElementTree
from typing import Any

from gradlint.findings import SEVERITY_RANK, probe_suffix, related_suffix
from gradlint.renderers.report_data import plural, probe_failure, repository_path
from gradlint.safe_text import printable

CLASSNAME = "gradlint"


def _clean(text: Any) -> str:
    """A value from the report as one line of text that XML 1.0 allows."""
    return printable(text)


def _line(finding) -> str:
    location = f"{finding.layer}: " if finding.layer else ""
    return (f"{location}{finding.code} [{finding.severity}] {finding.message}"
            + related_suffix(finding) + probe_suffix(finding.probe))


def _failing(severity: str | None, fail_on: str) -> bool:
    if fail_on == "never" or severity not in SEVERITY_RANK:
        return False
    return SEVERITY_RANK[severity] >= SEVERITY_RANK.get(fail_on, SEVERITY_RANK["error"])


def _seconds(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if value == value and value >= 0 else None


def _timestamp(report) -> str:
    started = getattr(report, "started", None)
    if isinstance(started, (int, float)) and not isinstance(started, bool):
        started = datetime.datetime.fromtimestamp(started, datetime.timezone.utc)
    if not isinstance(started, datetime.datetime):
        started = datetime.datetime.now(datetime.timezone.utc)
    return started.isoformat(timespec="seconds")


def _case(suite: ElementTree.Element, result, path: str, fail_on: str) -> str | None:
    """The model's test case; its outcome: None (passed), "failure" or "error"."""
    case = ElementTree.SubElement(suite, "testcase", classname=CLASSNAME, name=path, file=path)
    seconds = _seconds(getattr(result, "seconds", None))
    if seconds is not None:
        case.set("time", f"{seconds:.3f}")
    if result.error:
        message = _clean(result.error.get("message") or "the file could not be read")
        error = ElementTree.SubElement(case, "error", type=_clean(result.error.get("code")
                                                                   or "GL001"),
                                       message=message)
        error.text = message
        return "error"
    failing = [f for f in result.findings if _failing(f.severity, fail_on)]
    passing = [f for f in result.findings if not _failing(f.severity, fail_on)]
    outcome = None
    lines = [_clean(_line(finding)) for finding in failing]
    failure_text = probe_failure({"probe": result.probe})
    if failure_text:
        error = ElementTree.SubElement(case, "error", type="probe",
                                       message=_clean(failure_text))
        error.text = "\n".join([_clean(failure_text), *lines])
        outcome = "error"
    elif failing:
        worst = max(failing, key=lambda finding: SEVERITY_RANK[finding.severity])
        message = lines[0] if len(failing) == 1 else \
            f"{plural(len(failing), 'finding')} at or above {fail_on}; the first: {lines[0]}"
        failure = ElementTree.SubElement(case, "failure", type=worst.severity, message=message)
        failure.text = "\n".join(lines)
        outcome = "failure"
    if passing:
        output = ElementTree.SubElement(case, "system-out")
        output.text = "\n".join(_clean(_line(finding)) for finding in passing)
    return outcome


def render(report, options) -> str:
    timestamp = _timestamp(report)
    root = ElementTree.Element("testsuites", name="gradlint", timestamp=timestamp)
    totals = {"tests": 0, "failures": 0, "errors": 0}
    total_seconds: float | None = None
    for result in report.files:
        path = _clean(repository_path(result.path))
        suite = ElementTree.SubElement(root, "testsuite", name=path)
        if result.notes:
            properties = ElementTree.SubElement(suite, "properties")
            for note in result.notes:
                ElementTree.SubElement(properties, "property", name="note", value=_clean(note))
        outcome = _case(suite, result, path, options.fail_on)
        counts = {"tests": 1, "failures": int(outcome == "failure"),
                  "errors": int(outcome == "error")}
        for key, value in counts.items():
            suite.set(key, str(value))
            totals[key] += value
        suite.set("skipped", "0")
        seconds = _seconds(getattr(result, "seconds", None))
        if seconds is not None:
            suite.set("time", f"{seconds:.3f}")
            total_seconds = (total_seconds or 0.0) + seconds
        suite.set("timestamp", timestamp)
    for key, value in totals.items():
        root.set(key, str(value))
    if total_seconds is not None:
        root.set("time", f"{total_seconds:.3f}")
    ElementTree.indent(root)
    body = ElementTree.tostring(root, encoding="unicode")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + body + "\n"
