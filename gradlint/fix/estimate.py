"""The estimate after a fix: each finding's fix applied to a copy of the graph, the analyses
run again, and the finding's own rule asked whether it still fires. Static only: no file is
written and nothing heavy is imported."""

from __future__ import annotations

from typing import Any, Callable

from gradlint.analysis import Analysis, analyse
from gradlint.findings import Finding, Fix
from gradlint.fix.graph_edits import edited_graph


def _value(analysis: Analysis, path: str | None, quantity: str | None) -> float | None:
    if path is None or quantity is None:
        return None
    node = analysis.node_at(path)
    if node is None:
        return None
    return getattr(analysis.estimate[node.id], quantity, None)


def after(analysis: Analysis, fixes: list[Fix]) -> Analysis:
    """The analyses of the model as `fixes` leave it."""
    return analyse(edited_graph(analysis.graph, fixes), analysis.estimate.mode,
                   analysis.estimate.batch_size)


def resolved(fixed: Analysis, rule, options: dict[str, Any]) -> bool:
    """Whether `rule` finds nothing on the fixed model."""
    return not list(rule.check(fixed, options))


def remaining(fixed: Analysis, rules, options_for: Callable, fixed_rule) -> list[str]:
    """The codes of the other static rules with the same claim (a vanishing or an exploding
    gradient) that still find it on the fixed model, causes only (not a condition such as
    depth, `CONDITION`): a fix that silences its own rule leaves their causes, and the
    estimate after it shows them."""
    if fixed_rule.claims is None:
        return []
    return [rule.code for rule in rules
            if rule.code != fixed_rule.code and rule.claims == fixed_rule.claims
            and not (rule.probe or rule.condition or rule.check is None)
            and next(iter(rule.check(fixed, options_for(rule))), None) is not None]


def with_related(findings: list[Finding]) -> list[Finding]:
    """The findings and, after each, those folded into it as related (root-cause folding):
    a folded finding keeps its own fix."""
    return [item for finding in findings
            for item in [finding, *(getattr(finding, "related", None) or [])]]


def estimate_fixes(analysis: Analysis, findings: list[Finding], rules,
                   options_for: Callable) -> list[str]:
    """Fill in `estimate_after` of every automatic fix among `findings`: {"quantity", "at",
    "before", "after", "resolved", "remaining"}. Returns notes on fixes it could not
    estimate."""
    by_code = {rule.code: rule for rule in rules}
    notes = []
    for finding in with_related(findings):
        fix = finding.fix
        rule = by_code.get(finding.code)
        if fix is None or not fix.automatic or not fix.edits or rule is None:
            continue
        try:
            fixed = after(analysis, [fix])
            at = fix.at or fix.layer or finding.layer
            fix.estimate_after = {
                "quantity": fix.quantity, "at": at if fix.quantity else None,
                "before": _value(analysis, at, fix.quantity),
                "after": _value(fixed, at, fix.quantity),
                "resolved": resolved(fixed, rule, options_for(rule)),
                "remaining": remaining(fixed, rules, options_for, rule),
            }
        except Exception as error:  # an estimate of a fix must not cost the findings
            notes.append(f"the estimate after the {finding.code} fix failed: "
                         f"{type(error).__name__}: {error}")
    return notes
