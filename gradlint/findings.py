"""Findings: what a rule reports. A rule yields `Problem`s; the engine turns each into a
`Finding` stamped with the rule's code, name and (possibly overridden) severity."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SEVERITIES = ("error", "warning", "info")
SEVERITY_RANK = {"info": 1, "warning": 2, "error": 3}
FAIL_LEVELS = ("error", "warning", "info", "never")


@dataclass
class Problem:
    """One problem a rule found. `severity` None means the rule's configured severity."""

    message: str
    layer: str | None = None
    layers: list[str] = field(default_factory=list)
    severity: str | None = None
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass
class Finding:
    code: str
    name: str
    severity: str
    message: str
    layer: str | None = None
    layers: list[str] = field(default_factory=list)
    evidence: dict[str, Any] = field(default_factory=dict)
    probe: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        result = {
            "code": self.code,
            "name": self.name,
            "severity": self.severity,
            "layer": self.layer,
            "layers": list(self.layers),
            "message": self.message,
            "evidence": self.evidence,
        }
        if self.probe is not None:
            result["probe"] = self.probe
        return result

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Finding":
        return cls(code=data["code"], name=data["name"], severity=data["severity"],
                   message=data["message"], layer=data.get("layer"),
                   layers=list(data.get("layers") or []), evidence=dict(data.get("evidence") or {}),
                   probe=data.get("probe"))


def probe_suffix(probe: dict[str, Any] | None) -> str:
    """How every format appends a finding's probe verdict to its message:
    " (probe: confirmed; measured: ...)", or "" without a verdict."""
    if not isinstance(probe, dict) or not probe.get("verdict"):
        return ""
    summary = probe.get("summary")
    return f" (probe: {probe['verdict']}{'; ' + summary if summary else ''})"


def severity_below(value: float, error_below: float, warning_below: float) -> str | None:
    """'error' or 'warning' when `value` falls under a threshold, else None."""
    if value < error_below:
        return "error"
    if value < warning_below:
        return "warning"
    return None


def severity_above(value: float, error_above: float, warning_above: float) -> str | None:
    if value > error_above:
        return "error"
    if value > warning_above:
        return "warning"
    return None


def number(value: float | None) -> str:
    """A number as findings print it: three significant digits."""
    if value is None:
        return "unknown"
    if value == 0:
        return "0"
    if 1e-3 <= abs(value) < 1e4:
        return f"{value:.3g}"
    return f"{value:.2e}"


def span(paths: list[str]) -> str:
    """'a' or 'a … b (n layers)' for a list of layer paths."""
    if not paths:
        return ""
    if len(paths) == 1:
        return f"'{paths[0]}'"
    return f"'{paths[0]}' … '{paths[-1]}' ({len(paths)} layers)"
