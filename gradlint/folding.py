"""One finding per cause: findings about a condition (a deep plain route, a long run without
normalization) are reported inside the finding that names the cause of the same effect.

A 30-layer ReLU stack with Glorot init gets GL202 (ReLU paired with Glorot: the cause, with
its fix), and GL301 and GL302 describe the same vanishing gradient over the same layers.
Reporting all three says one thing three times and hides which change fixes it. So a finding
of a *condition* rule (``CONDITION = True`` in the rule module) whose layers overlap those of
a *cause* finding with the same claim (``CLAIMS``, "vanishing" or "exploding") is moved into
that finding's `related` list: the JSON keeps it whole, the text says "also: GL301, GL302".
Only a cause at least as severe takes it in, so folding never lowers the exit code.

Selection and suppression happen before folding: ignoring GL202 (``--ignore GL202``, a
`noqa`-style per-layer ignore, a baseline) leaves GL301 and GL302 standing as findings of
their own. A condition finding with no cause beside it stays a finding of its own.
"""

from __future__ import annotations

from typing import Iterable

from gradlint.findings import SEVERITY_RANK, Finding


def _span(finding: Finding) -> set[str]:
    return set(finding.layers) | ({finding.layer} if finding.layer else set())


def fold(findings: list[Finding], rules: Iterable) -> list[Finding]:
    """`findings` with every condition finding that a cause finding explains moved into
    the cause's `related` list; the order is otherwise kept."""
    by_code = {rule.code: rule for rule in rules}

    def claim(finding: Finding) -> str | None:
        rule = by_code.get(finding.code)
        return rule.claims if rule is not None else None

    def condition(finding: Finding) -> bool:
        rule = by_code.get(finding.code)
        return bool(rule is not None and rule.condition)

    causes = [finding for finding in findings if not condition(finding) and claim(finding)]
    causes.sort(key=lambda finding: -SEVERITY_RANK.get(finding.severity, 0))
    kept = []
    for finding in findings:
        host = None
        if condition(finding) and claim(finding):
            span = _span(finding)
            rank = SEVERITY_RANK.get(finding.severity, 0)
            host = next((cause for cause in causes
                         if claim(cause) == claim(finding) and _span(cause) & span
                         and SEVERITY_RANK.get(cause.severity, 0) >= rank), None)
        if host is None:
            kept.append(finding)
        else:
            host.related.append(finding)
    return kept
