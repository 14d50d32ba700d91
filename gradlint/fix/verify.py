"""`gradlint fix --probe`: the gradient probe measures the input and the fixed model, and
each applied fix gets a verdict from the measurement.

A fix of a finding about gradient flow (its rule `CLAIMS` "vanishing" or "exploding") is
*confirmed* when the fixed model's measured first/last kernel-gradient ratio lies in the
healthy band, between GL901's ``warning-ratio-below`` (1e-2) and GL902's
``warning-ratio-above`` (3e2), the thresholds read from those rules, and the probe's own
GL901/GL902 no longer fire on it; otherwise *not confirmed*. A fix of a finding no
measurement can judge (GL402's clipnorm, GL403's learning rate: about training, not the
gradients at initialization) gets "no verdict". This imports TensorFlow (the probe).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from gradlint.findings import number

PROBE_CODES = ("GL901", "GL902")


def first_last_ratio(result) -> float | None:
    """The first weighted layer's measured kernel gradient relative to the output layer's,
    from a probed file's layer list."""
    for layer in result.layers:
        measured = layer.get("measured")
        if layer.get("weighted") and measured and measured.get("kernel_gradient") is not None:
            return measured["kernel_gradient"]
    return None


def healthy_band() -> tuple[float, float]:
    from gradlint.rule_registry import find_rule

    return (find_rule("GL901").options["warning-ratio-below"],
            find_rule("GL902").options["warning-ratio-above"])


def _probed(path: str, settings):
    from gradlint.engine import lint_paths

    report = lint_paths([path], dataclasses.replace(settings, probe=True), jobs=1)
    result = report.files[0]
    if result.probe_failed:
        from gradlint.fix.config_edits import FixError

        raise FixError(f"the probe could not run on {path}: {result.probe.get('error')}")
    return result


def probe_both(path: str, output: str, fix_result, settings) -> dict[str, Any]:
    """{"before", "after" (first/last ratios), "band", "verdicts": {code: verdict},
    "unconfirmed": [codes], "lines": [text]}."""
    from gradlint.rule_registry import find_rule

    before, after = _probed(path, settings), _probed(output, settings)
    ratio_before, ratio_after = first_last_ratio(before), first_last_ratio(after)
    low, high = healthy_band()
    probe_findings = {finding.code for finding in after.findings if finding.code in PROBE_CODES}
    healthy = ratio_after is not None and low <= ratio_after <= high and not probe_findings
    verdicts, unconfirmed, lines = {}, [], []
    lines.append(f"measured first/last kernel-gradient ratio: {number(ratio_before)} → "
                 f"{number(ratio_after)} (healthy: {number(low)} to {number(high)})")
    for finding in fix_result.applied:
        rule = find_rule(finding.code)
        if rule is None or rule.claims not in ("vanishing", "exploding"):
            verdicts[finding.code] = "no verdict"
        elif healthy:
            verdicts[finding.code] = "confirmed"
        else:
            verdicts[finding.code] = "not confirmed"
            unconfirmed.append(finding.code)
        lines.append(f"{finding.code}: {verdicts[finding.code]}")
    if probe_findings:
        lines.append(f"the probe still finds {', '.join(sorted(probe_findings))} on the fixed "
                     "model")
    return {"before": ratio_before, "after": ratio_after, "band": [low, high],
            "verdicts": verdicts, "unconfirmed": unconfirmed, "lines": lines}
