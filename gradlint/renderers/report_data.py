"""What several renderers need from one report: the rules' documentation in sections, paths
relative to the repository, and stable finding keys. Renderers read the typed `Report`; a
file's layer entries, model summary and probe run are the JSON contract's dicts there too.
Nothing here imports jinja2.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

SEVERITY_ORDER = ("error", "warning", "info")
SECTION = re.compile(r"^##\s+(.+?)\s*$", re.MULTILINE)
EXPLANATION_SECTIONS = ("Why it hurts gradient flow", "Why it matters")
FIX_SECTIONS = ("Use instead",)


@dataclass(frozen=True)
class RuleDoc:
    """A rule's docstring split at its ``## `` headings."""

    code: str
    name: str
    severity: str
    summary: str
    sections: dict[str, str] = field(default_factory=dict)
    groups: tuple[str, ...] = ()
    precision: str = "medium"

    def section(self, *titles: str) -> str:
        for title in titles:
            text = self.sections.get(title)
            if text:
                return text
        return ""

    @property
    def what(self) -> str:
        return self.section("What it flags")

    @property
    def explanation(self) -> str:
        return self.section(*EXPLANATION_SECTIONS)

    @property
    def fix(self) -> str:
        return self.section(*FIX_SECTIONS)

    @property
    def example(self) -> str:
        return self.section("Example")

    @property
    def text(self) -> str:
        """The whole documentation as plain text."""
        parts = [self.summary]
        for title, body in self.sections.items():
            parts.append(f"{title}\n{body}")
        return "\n\n".join(parts)

    @property
    def markdown(self) -> str:
        parts = [self.summary]
        for title, body in self.sections.items():
            parts.append(f"## {title}\n\n{body}")
        return "\n\n".join(parts)


def split_doc(doc: str) -> tuple[str, dict[str, str]]:
    """(summary paragraph, {heading: body}) of a rule docstring."""
    import textwrap

    text = textwrap.dedent(doc).strip("\n")
    headings = list(SECTION.finditer(text))
    head = text[:headings[0].start()] if headings else text
    summary = " ".join(line.strip() for line in head.strip().splitlines())
    sections: dict[str, str] = {}
    for index, match in enumerate(headings):
        end = headings[index + 1].start() if index + 1 < len(headings) else len(text)
        sections[match.group(1)] = text[match.end():end].strip("\n").rstrip()
    return summary, sections


@lru_cache(maxsize=None)
def rule_doc(code: str) -> RuleDoc | None:
    """The documentation of the rule with this code, or None when no rule has it."""
    from gradlint.rule_registry import find_rule

    rule = find_rule(code)
    if rule is None:
        return None
    summary, sections = split_doc(rule.doc)
    return RuleDoc(code=rule.code, name=rule.name, severity=rule.severity, summary=summary,
                   sections=sections, groups=tuple(rule.groups), precision=rule.precision)


def all_rule_docs() -> list[RuleDoc]:
    from gradlint.rule_registry import all_rules

    return [doc for doc in (rule_doc(rule.code) for rule in all_rules()) if doc is not None]


@lru_cache(maxsize=256)
def git_root(directory: str) -> str | None:
    """The nearest directory at or above `directory` holding ``.git``, or None."""
    current = directory
    while True:
        if os.path.exists(os.path.join(current, ".git")):
            return current
        parent = os.path.dirname(current)
        if parent == current:
            return None
        current = parent


def repository_root(path: str) -> str:
    """The root of the git repository holding `path`, or the working directory outside one."""
    absolute = os.path.abspath(path)
    directory = absolute if os.path.isdir(absolute) else os.path.dirname(absolute)
    return git_root(directory) or os.getcwd()


def repository_path(path: str) -> str:
    """`path` relative to its repository's root (see `repository_root`), '/'-separated.
    Paths that are not files (a live model's ``<name>``) are returned as they are."""
    if path.startswith("<") and path.endswith(">"):
        return path
    absolute = os.path.abspath(path)
    root = repository_root(path)
    try:
        relative = os.path.relpath(absolute, root)
    except ValueError:  # another drive on Windows
        relative = absolute
    if relative.startswith(".." + os.sep) or relative == "..":
        relative = path
    return relative.replace(os.sep, "/")


def fingerprint(code: str, path: str, layer: str | None) -> str:
    """A stable identity for a finding: rule, model path and layer path, never a position."""
    key = "\x1f".join((code, path, layer or ""))
    # surrogatepass: a path that is not UTF-8 or a name with a lone surrogate gets a stable
    # key too; for every other string the bytes are UTF-8's, so fingerprints do not change.
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def as_float(value: Any) -> float | None:
    """A number from the JSON contract (which writes NaN and infinities as strings)."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def format_number(value: Any) -> str:
    """Three significant digits, as the findings print numbers; '–' when unknown."""
    number = as_float(value)
    if number is None:
        return "–"
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "∞" if number > 0 else "−∞"
    if number == 0:
        return "0"
    if 1e-3 <= abs(number) < 1e4:
        return f"{number:.3g}"
    return f"{number:.2e}"


def format_fraction(value: Any) -> str:
    number = as_float(value)
    if number is None or math.isnan(number):
        return "–"
    return f"{100 * number:.0f}%"


def plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def file_counts(file: dict[str, Any]) -> dict[str, int]:
    counts = {severity: 0 for severity in SEVERITY_ORDER}
    for finding in file.get("findings") or []:
        severity = finding.get("severity")
        if severity in counts:
            counts[severity] += 1
    return counts


def probe_status(file: dict[str, Any]) -> str | None:
    """One line on the probe for a file, or None when it was not asked for."""
    probe = file.get("probe")
    if not isinstance(probe, dict):
        return None
    if not probe.get("ran"):
        reason = probe.get("error") or "it did not run"
        return f"probe did not run: {reason}"
    parts = []
    if probe.get("seeds") is not None:
        parts.append(plural(int(probe["seeds"]), "seed"))
    if probe.get("batch") is not None:
        parts.append(f"batch {probe['batch']}")
    if probe.get("training_mode") is not None:
        parts.append("training mode" if probe["training_mode"] else "inference mode")
    if probe.get("loss"):
        parts.append(f"loss {probe['loss']}")
    seconds = as_float(probe.get("seconds"))
    if seconds is not None:
        parts.append(f"{seconds:.1f} s")
    return "probe ran" + (f": {', '.join(parts)}" if parts else "")


def probe_failure(file: dict[str, Any]) -> str | None:
    """Why the probe could not run on a file it was asked for, or None."""
    probe = file.get("probe")
    if isinstance(probe, dict) and not probe.get("ran"):
        return f"the probe could not run: {probe.get('error') or 'no reason given'}"
    return None


def finding_title(finding: dict[str, Any]) -> str:
    return f"{finding.get('code', '')} {finding.get('name', '')}".strip()


def sorted_findings(findings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Most severe first, otherwise in the order the rules reported them."""
    rank = {severity: index for index, severity in enumerate(SEVERITY_ORDER)}
    return sorted(findings, key=lambda f: rank.get(f.get("severity"), len(rank)))
