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
    fix: "Fix | None" = None  # what would remove it (`Fix`), when the rule knows


@dataclass(frozen=True)
class Edit:
    """One setting changed by a fix: ``kernel_initializer`` of ``dense_1`` from
    ``glorot_uniform`` to ``he_normal``. `layer` is None for the optimizer."""

    setting: str
    old: Any
    new: Any
    layer: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"layer": self.layer, "setting": self.setting, "old": self.old, "new": self.new}


@dataclass
class Fix:
    """What removes a finding, as data. `scope` is "layer" (settings of layers, whose
    re-initialized kernels are re-drawn), "optimizer" (the saved compile configuration) or
    "structural" (add normalization, a shortcut: said, never applied). `automatic` says
    whether `gradlint fix` can apply it (`reason` why not); `safe` whether it applies by
    default (an activation swap changes the function the model computes: only on request).
    `estimate_after` is the estimate once the fix is applied: {"quantity", "at", "before",
    "after", "resolved"} (filled in by `gradlint.fix.estimate`)."""

    scope: str
    description: str
    edits: list[Edit] = field(default_factory=list)
    automatic: bool = True
    safe: bool = True
    reason: str | None = None
    quantity: str | None = "gradient"  # the estimate `estimate_after` compares ...
    at: str | None = None  # ... at this layer (default: the first edited layer)
    estimate_after: dict[str, Any] | None = None

    @property
    def layer(self) -> str | None:
        return self.edits[0].layer if self.edits else None

    def to_dict(self) -> dict[str, Any]:
        first = self.edits[0] if self.edits else None
        return {"scope": self.scope, "automatic": self.automatic, "safe": self.safe,
                "description": self.description, "reason": self.reason,
                "layer": first.layer if first else None,
                "setting": first.setting if first else None,
                "old": first.old if first else None, "new": first.new if first else None,
                "edits": [edit.to_dict() for edit in self.edits],
                "estimate_after": self.estimate_after}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Fix":
        return cls(scope=data["scope"], description=data.get("description", ""),
                   edits=[Edit(setting=e["setting"], old=e.get("old"), new=e.get("new"),
                               layer=e.get("layer")) for e in data.get("edits") or []],
                   automatic=bool(data.get("automatic", True)),
                   safe=bool(data.get("safe", True)), reason=data.get("reason"),
                   quantity=(data.get("estimate_after") or {}).get("quantity"),
                   at=(data.get("estimate_after") or {}).get("at"),
                   estimate_after=data.get("estimate_after"))


def fix_summary(fix: "Fix | None", code: str | None = None) -> str:
    """How every format states a finding's fix in one phrase: "kernel_initializer
    glorot_uniform → he_normal at 'dense_1' … 'dense_9' (9 layers) (fixes it: 8e-06 → 0.4 at
    'dense_1')", or "" without a fix."""
    if fix is None:
        return ""
    if not fix.automatic or not fix.edits:
        return f"{fix.description} (no automatic fix{': ' + fix.reason if fix.reason else ''})"
    settings = []
    for edit in fix.edits:
        text = f"{edit.setting} {_shown(edit.old)} → {_shown(edit.new)}"
        if text not in settings:
            settings.append(text)
    layers = [edit.layer for edit in fix.edits if edit.layer is not None]
    layers = list(dict.fromkeys(layers))
    where = f" at {span(layers)}" if layers else " on the optimizer"
    text = ", ".join(settings[:3]) + (" …" if len(settings) > 3 else "") + where
    after = fix.estimate_after
    others = after.get("remaining") if isinstance(after, dict) else None
    if isinstance(after, dict) and after.get("after") is not None:
        verb = "fixes it" if after.get("resolved") else "does not remove the finding"
        if after.get("resolved") and others:
            verb = (f"removes this finding; {', '.join(others)} "
                    f"{'remains' if len(others) == 1 else 'remain'}")
        before = number(after.get("before"))
        text += f" ({verb}: {before} → {number(after['after'])} at '{after.get('at')}')"
    elif isinstance(after, dict) and after.get("resolved") is not None:
        text += " (fixes it)" if after["resolved"] else " (does not remove the finding)"
    if not fix.safe:
        text += (f" [changes the function the model computes: applied only with "
                 f"gradlint fix --select={code or 'its-rule'}]")
    return text


def _shown(value: Any) -> str:
    return "none" if value is None else str(value)


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
    fix: Fix | None = None
    # Findings of the same cause, reported inside this one (`gradlint.folding`).
    related: list["Finding"] = field(default_factory=list)

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
        if self.fix is not None:
            result["fix"] = self.fix.to_dict()
        result["related"] = [finding.to_dict() for finding in self.related]
        return result

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Finding":
        return cls(code=data["code"], name=data["name"], severity=data["severity"],
                   message=data["message"], layer=data.get("layer"),
                   layers=list(data.get("layers") or []), evidence=dict(data.get("evidence") or {}),
                   probe=data.get("probe"),
                   fix=Fix.from_dict(data["fix"]) if isinstance(data.get("fix"), dict)
                   else None,
                   related=[cls.from_dict(item) for item in data.get("related") or []
                            if isinstance(item, dict)])


def related_suffix(finding: "Finding") -> str:
    """How every format names the findings folded into one: " (also: GL301, GL302)", or
    "" when none are."""
    if not finding.related:
        return ""
    return f" (also: {', '.join(related.code for related in finding.related)})"


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


def adaptive_thresholds(analysis, options: dict, error_key: str = "error-below",
                        warning_key: str = "warning-below") -> tuple[float, float]:
    """A vanishing rule's (`error-below`, `warning-below`) for the optimizer the file names.

    An optimizer that adapts its step sizes (Adam and its kin) takes steps of the usual size
    from a uniformly smaller gradient, so both thresholds are multiplied by the rule's
    `adaptive-factor`. Measured on scikit-learn's digits (bench/adaptive_optimizer.py): MLPs
    whose estimated first-layer gradient is 1.8e-3 of the output layer's train to 88% with
    Adam (90-97% at Glorot), 2.6e-4 to 83%, and from 6.7e-5 down fail (35-43%); with SGD
    all of them stay at chance (9%). A file saved without a compile configuration names no
    optimizer, so an error there needs what fails under either: the error threshold times
    the factor, the warning threshold as it is."""
    error, warning = options[error_key], options[warning_key]
    factor = options.get("adaptive-factor", 1.0)
    training = analysis.graph.training
    if training is None or training.optimizer is None:
        return error * factor, warning
    if training.adapts_step_sizes:
        return error * factor, warning * factor
    return error, warning


def min_change(analysis, options: dict) -> float:
    """A depth rule's `min-change`, divided by its `adaptive-factor` under an optimizer that
    adapts its step sizes (see `adaptive_thresholds`): 10x becomes 100x."""
    training = analysis.graph.training
    if training is not None and training.adapts_step_sizes:
        return options["min-change"] / options.get("adaptive-factor", 1.0)
    return options["min-change"]


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


def number_range(values: list[float], spread: float = 1.5) -> str:
    """Values several layers share, as findings print them: the first alone when they lie
    within `spread` of each other, else "lowest to highest"."""
    low, high = min(values), max(values)
    return number(values[0]) if high <= spread * low else f"{number(low)} to {number(high)}"


def span(paths: list[str]) -> str:
    """'a' or 'a … b (n layers)' for a list of layer paths."""
    if not paths:
        return ""
    if len(paths) == 1:
        return f"'{paths[0]}'"
    return f"'{paths[0]}' … '{paths[-1]}' ({len(paths)} layers)"
