"""JUnit XML, for CI systems that show test reports (GitLab, Jenkins, Azure Pipelines).

One test suite per model and one test case per model and rule: a rule that found nothing
passes, a rule with findings at or above the fail level (``--fail-on``, default ``error``)
fails with every such finding in the failure's text, and findings below it are kept in the
test case's ``system-out``. A model that could not be read is one test case in error.

Names, messages and paths come from the model file and the file system. XML 1.0 forbids
most control characters and every lone surrogate, and CI systems show failure text as
plain text, so every value from the report goes through `_clean` (`printable`): control
characters, lone surrogates and U+FFFE/U+FFFF are shown as visible escapes (``\\x1b``,
``\\udcff``), which say more than U+FFFD would. Lines of several findings are joined after
that, with real newlines.
"""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from typing import Any

from gradlint.findings import SEVERITY_RANK, probe_suffix
from gradlint.rules.unreadable_model import CODE as UNREADABLE
from gradlint.renderers.report_data import (probe_failure, report_dict, repository_path,
                                            rule_doc)
from gradlint.safe_text import printable



def _clean(text: Any) -> str:
    """A value from the report as one line of text that XML 1.0 allows."""
    return printable(text)


def _rule_codes(file: dict[str, Any], options) -> list[str]:
    """The rules that ran on a file: the selected ones (every rule by default), the probe's
    only where the probe measured the model."""
    from gradlint.rule_registry import all_rules

    probe = file.get("probe")
    probe_ran = isinstance(probe, dict) and bool(probe.get("ran"))
    probe_rules = {rule.code for rule in all_rules() if rule.probe}
    candidates = options.rules if options.rules is not None else \
        [rule.code for rule in all_rules()]
    codes = [code for code in candidates if code not in probe_rules or probe_ran]
    for finding in file.get("findings", []):
        if finding.get("code") and finding["code"] not in codes:
            codes.append(finding["code"])
    return sorted(codes)


def _line(finding: dict[str, Any]) -> str:
    location = f"{finding['layer']}: " if finding.get("layer") else ""
    text = f"{location}{finding.get('code', '')} [{finding.get('severity', '')}] " \
           f"{finding.get('message', '')}"
    return text + probe_suffix(finding.get("probe"))


def _failing(severity: str | None, fail_on: str) -> bool:
    if fail_on == "never" or severity not in SEVERITY_RANK:
        return False
    return SEVERITY_RANK[severity] >= SEVERITY_RANK.get(fail_on, SEVERITY_RANK["error"])


def render(report, options) -> str:
    data = report_dict(report)
    root = ElementTree.Element("testsuites", name="gradlint")
    totals = {"tests": 0, "failures": 0, "errors": 0}
    for file in data.get("files", []):
        path = _clean(repository_path(file["path"]))
        suite = ElementTree.SubElement(root, "testsuite", name=path)
        counts = {"tests": 0, "failures": 0, "errors": 0}
        if file.get("error"):
            case = ElementTree.SubElement(suite, "testcase", classname=path,
                                          name=f"{UNREADABLE} unreadable-model", time="0")
            message = _clean(file["error"].get("message", "the file could not be read"))
            error = ElementTree.SubElement(case, "error", type=UNREADABLE, message=message)
            error.text = message
            counts["tests"] += 1
            counts["errors"] += 1
        else:
            by_code: dict[str, list[dict[str, Any]]] = {}
            for finding in file.get("findings", []):
                by_code.setdefault(finding.get("code", ""), []).append(finding)
            for code in _rule_codes(file, options):
                findings = by_code.get(code, [])
                doc = rule_doc(code)
                name = doc.name if doc else (findings[0].get("name", "") if findings else "")
                case = ElementTree.SubElement(suite, "testcase", classname=path,
                                              name=_clean(f"{code} {name}".strip()), time="0")
                counts["tests"] += 1
                failing, passing = [], []
                for finding in findings:
                    failing_now = _failing(finding.get("severity"), options.fail_on)
                    (failing if failing_now else passing).append(finding)
                if failing:
                    worst = max(failing, key=lambda f: SEVERITY_RANK[f["severity"]])
                    failure = ElementTree.SubElement(
                        case, "failure", type=worst["severity"],
                        message=_clean(_line(failing[0])))
                    failure.text = "\n".join(_clean(_line(f)) for f in failing)
                    counts["failures"] += 1
                if passing:
                    output = ElementTree.SubElement(case, "system-out")
                    output.text = "\n".join(_clean(_line(f)) for f in passing)
        failure = probe_failure(file)
        if failure:
            case = ElementTree.SubElement(suite, "testcase", classname=path, name="probe",
                                          time="0")
            error = ElementTree.SubElement(case, "error", type="probe", message=_clean(failure))
            error.text = _clean(failure)
            counts["tests"] += 1
            counts["errors"] += 1
        for key, value in counts.items():
            suite.set(key, str(value))
            totals[key] += value
        suite.set("skipped", "0")
        for note in file.get("notes") or []:
            properties = suite.find("properties")
            if properties is None:
                properties = ElementTree.Element("properties")
                suite.insert(0, properties)
            ElementTree.SubElement(properties, "property", name="note", value=_clean(note))
    for key, value in totals.items():
        root.set(key, str(value))
    ElementTree.indent(root)
    body = ElementTree.tostring(root, encoding="unicode")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + body + "\n"
