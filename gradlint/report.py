"""The report: every linted file with its findings, and the versioned JSON contract.

JSON contract, version 1 (``version`` changes only when a field is removed or changes
meaning; new fields may appear at any time)::

    {"version": 1,
     "files": [{"path", "format",
                "model": {"name", "class", "layers", "params"} | null,
                "layers": [{"path", "class", "kind", "activation",
                            "estimate": {"forward_scale", "gradient", "kernel_gradient",
                                         "stored_weights": {...} | null},
                            "measured": null | {"kernel_gradient", "kernel_gradient_norm",
                                                "gradient_to_weight", "forward_scale",
                                                "saturated_fraction", "dead_fraction"}}],
                "findings": [{"code", "name", "severity", "layer", "layers", "message",
                              "evidence",
                              "probe": {"verdict", "summary", "measured"} (with --probe)}],
                "notes": [str],
                "error": null | {"code", "message"},
                "probe": null | {"ran", "error", "seeds", "batch", "training_mode", "loss",
                                 "seconds", ...}}],
     "summary": {"findings", "by_severity": {"error", "warning", "info"},
                 "files_linted", "files_unreadable", "files_probe_failed"}}

``measured`` is null when the probe did not run or the layer has no kernel; its
``kernel_gradient`` is relative to the output layer's, as the estimate's is.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from gradlint.findings import SEVERITIES, SEVERITY_RANK, Finding

JSON_VERSION = 1


@dataclass
class FileResult:
    """One linted file."""

    path: str
    format: str | None = None
    model: dict[str, Any] | None = None
    layers: list[dict[str, Any]] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: dict[str, str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # The gradient probe's run ({"ran", "error", "seeds", "batch", "training_mode", "loss",
    # "seconds", ...}); None when the probe was not asked for.
    probe: dict[str, Any] | None = None
    # Where gradlint itself failed on this file: the traceback, shown only with --debug.
    traceback: str | None = field(default=None, repr=False, compare=False)

    @property
    def unreadable(self) -> bool:
        return self.error is not None

    @property
    def probe_failed(self) -> bool:
        """The probe was asked for but could not run on this file."""
        return self.probe is not None and not self.probe.get("ran")

    def to_dict(self) -> dict[str, Any]:
        result = {
            "path": self.path,
            "format": self.format,
            "model": self.model,
            "layers": self.layers,
            "findings": [finding.to_dict() for finding in self.findings],
            "notes": list(self.notes),
            "error": self.error,
            "probe": self.probe,
        }
        result.update(self.extra)
        return finite(result)


@dataclass
class Report:
    """What `gradlint.lint` returns; `to_dict` is the JSON contract."""

    files: list[FileResult] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    # What the run could not do but that fails nothing (a searched directory without models).
    warnings: list[str] = field(default_factory=list)

    @property
    def findings(self) -> list[Finding]:
        return [finding for result in self.files for finding in result.findings]

    def counts(self) -> dict[str, int]:
        counter = Counter(finding.severity for finding in self.findings)
        return {severity: counter.get(severity, 0) for severity in SEVERITIES}

    def summary(self) -> dict[str, Any]:
        unreadable = sum(1 for result in self.files if result.unreadable)
        return {
            "findings": len(self.findings),
            "by_severity": self.counts(),
            "files_linted": len(self.files) - unreadable,
            "files_unreadable": unreadable,
            "files_probe_failed": sum(1 for result in self.files if result.probe_failed),
        }

    def statistics(self) -> list[tuple[str, str, int]]:
        """(code, name, count) per rule, most frequent first."""
        counter = Counter((finding.code, finding.name) for finding in self.findings)
        return [(code, name, count) for (code, name), count in
                sorted(counter.items(), key=lambda item: (-item[1], item[0][0]))]

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": JSON_VERSION,
            "files": [result.to_dict() for result in self.files],
            "warnings": list(self.warnings),
            "summary": self.summary(),
        }

    def to_json(self, indent: int | None = 2) -> str:
        """The contract as JSON text that strict parsers accept: every string as the file
        holds it (control characters as JSON escapes), except that a lone surrogate (a
        non-UTF-8 byte of a path, decoded with surrogateescape, or a ``\\udcff`` escape in
        the file's own JSON), which no UTF-8 text can hold, is written as the six characters
        ``\\udcff``: it names the original byte, as in every other format."""
        text = json.dumps(self.to_dict(), indent=indent, allow_nan=False, default=_jsonable)
        # Everything non-ASCII is escaped, so a surrogate can only appear as such an escape;
        # without one, the usual case, the text is already valid.
        if "\\ud" in text:
            from gradlint.safe_text import map_strings, valid_unicode

            data = map_strings(json.loads(text), valid_unicode)
            text = json.dumps(data, indent=indent, allow_nan=False)
        return text

    def _repr_html_(self) -> str:
        """The HTML report, shown inline when a notebook displays a Report."""
        from gradlint.renderers.html import render_fragment

        return render_fragment(self)

    def exit_code(self, fail_on: str = "error", exit_zero: bool = False) -> int:
        """0: nothing at or above `fail_on`; 1: findings at or above it; 2: a file could not
        be read, or the probe was asked for and could not run on it (2 wins; `exit_zero`
        turns 1 into 0 but never hides 2)."""
        if any(result.unreadable or result.probe_failed for result in self.files):
            return 2
        if fail_on == "never" or exit_zero:
            return 0
        threshold = SEVERITY_RANK[fail_on]
        if any(SEVERITY_RANK[finding.severity] >= threshold for finding in self.findings):
            return 1
        return 0


def finite(value: Any) -> Any:
    """The same data with NaN and infinities as the strings "nan", "inf" and "-inf", which
    strict JSON parsers accept."""
    if isinstance(value, float):
        if value != value:
            return "nan"
        if value in (float("inf"), float("-inf")):
            return "inf" if value > 0 else "-inf"
        return value
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(item) for item in value]
    return value


def _jsonable(value: Any) -> Any:
    if isinstance(value, (set, tuple)):
        return list(value)
    if hasattr(value, "item"):
        return value.item()
    return str(value)
