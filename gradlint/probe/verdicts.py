"""Verdicts: whether the measurement bears out each static finding about gradient flow.

Every static finding whose claim a gradient measurement can check gets
``finding.probe = {"verdict": "confirmed" | "not-confirmed", "summary": str, "measured": {...}}``.
A vanishing claim (GL101, GL201, GL202, GL204 with a zero kernel, GL301, GL302) is confirmed
when the measured kernel gradient of the layers it names, or of the first weighted layer,
falls below the static rule's own warning threshold relative to the output layer's, or when
the forward signal collapses before the output (the kernel gradient is the forward signal
times the backward gradient, so a collapsed signal starves every layer even at a ratio near
one), or when the layers it names saturate. An exploding claim (GL203, GL205) is confirmed by
NaN/Inf, by a signal entering some layer above the rule's warning threshold, or by a
first/last ratio above 3e2 (GL902's warning). GL401 is confirmed when the input gradient through time falls
below 1e-2 from the last step to the first. Optimizer findings (GL402, GL403) describe
training, which the probe does not run, and get no verdict.

`fold_duplicates` then drops a probe finding (GL901, GL902, GL905) that only repeats a
confirmed static finding of the same kind and at least the same severity.
"""

from __future__ import annotations

import math
from typing import Any, Callable

from gradlint.findings import SEVERITY_RANK, number

VANISHING_CODES = ("GL101", "GL201", "GL202", "GL301", "GL302")
EXPLODING_CODES = ("GL203", "GL205")
RECURRENT_CODES = ("GL401",)
VANISH_BELOW = 1e-2
EXPLODE_ABOVE = 1e2
RATIO_ABOVE = 3e2  # GL902's warning: ResNet50 measures up to 113 and trains well
TIME_RATIO_BELOW = 1e-2
SATURATED_ABOVE = 0.5
FAMILY_OF_PROBE_RULE = {"GL901": "vanishing", "GL902": "exploding", "GL905": "recurrent"}
FAMILY_OF_STATIC_RULE = {**{c: "vanishing" for c in VANISHING_CODES + ("GL204",)},
                         **{c: "exploding" for c in EXPLODING_CODES},
                         **{c: "recurrent" for c in RECURRENT_CODES}}


def _verdict(confirmed: bool, summary: str, measured: dict[str, Any]) -> dict[str, Any]:
    return {"verdict": "confirmed" if confirmed else "not-confirmed",
            "summary": summary, "measured": measured}


def _named_kernels(finding, measurements):
    paths = list(finding.layers) or ([finding.layer] if finding.layer else [])
    found = []
    for path in paths:
        kernel = measurements.kernel(path)
        if kernel is not None and not kernel.embedding and kernel.relative is not None:
            found.append(kernel)
    return found


def _saturation(finding, measurements) -> tuple[float | None, str | None]:
    worst, where = None, None
    for path in list(finding.layers) or []:
        call = measurements.call(path)
        if call is not None and call.saturated_fraction is not None and \
                (worst is None or call.saturated_fraction > worst):
            worst, where = call.saturated_fraction, path
    return worst, where


def _flow(measurements) -> dict[str, Any]:
    first, last = measurements.first_and_last()
    ratio = measurements.first_last_ratio()
    largest, largest_at = measurements.largest_input_scale()
    return {
        "first_layer": first.path if first else None,
        "last_layer": last.path if last else None,
        "first_last_ratio": ratio,
        "first_kernel_gradient_norm": first.gradient_norm if first else None,
        "last_kernel_gradient_norm": last.gradient_norm if last else None,
        "output_input_scale": measurements.head_input_scale(),
        "largest_input_scale": largest,
        "largest_input_scale_at": largest_at,
        "nonfinite": list(measurements.nonfinite),
    }


def _flow_text(flow: dict[str, Any]) -> str:
    parts = []
    if flow["first_last_ratio"] is not None:
        parts.append(f"first/last kernel gradient {number(flow['first_last_ratio'])} "
                     f"('{flow['first_layer']}' {number(flow['first_kernel_gradient_norm'])}, "
                     f"'{flow['last_layer']}' {number(flow['last_kernel_gradient_norm'])})")
    if flow["output_input_scale"] is not None:
        parts.append(f"signal entering '{flow['last_layer']}' "
                     f"{number(flow['output_input_scale'])}")
    return "; ".join(parts)


def vanishing(finding, measurements, options) -> dict[str, Any]:
    threshold = float(options.get("warning-below", VANISH_BELOW))
    flow = _flow(measurements)
    named = _named_kernels(finding, measurements)
    weakest = min(named, key=lambda k: k.relative) if named else None
    saturated, saturated_at = _saturation(finding, measurements)
    measured = dict(flow, weakest_layer=weakest.path if weakest else None,
                    weakest_kernel_gradient=weakest.relative if weakest else None,
                    max_saturated_fraction=saturated)
    reasons = []
    if weakest is not None and weakest.relative < threshold:
        reasons.append(f"'{weakest.path}' gets {number(weakest.relative)} of the output "
                       "layer's kernel gradient")
    ratio = flow["first_last_ratio"]
    if ratio is not None and ratio < threshold and (weakest is None or
                                                     weakest.path != flow["first_layer"]):
        reasons.append(f"first/last kernel gradient {number(ratio)}")
    head = flow["output_input_scale"]
    if head is not None and head < threshold:
        reasons.append(f"the forward signal collapses to {number(head)} before "
                       f"'{flow['last_layer']}'")
    if saturated is not None and saturated > SATURATED_ABOVE:
        reasons.append(f"{saturated:.0%} of '{saturated_at}' is saturated")
    if finding.code in ("GL301", "GL302"):
        reasons.extend(_exploding_reasons(flow, EXPLODE_ABOVE))
    if reasons:
        return _verdict(True, "measured: " + "; ".join(reasons), measured)
    detail = _flow_text(flow)
    if weakest is not None and weakest.path != flow["first_layer"]:
        detail += f"; weakest named layer '{weakest.path}' {number(weakest.relative)}"
    return _verdict(False, f"measured gradient flow is healthy: {detail}", measured)


def _exploding_reasons(flow: dict[str, Any], threshold: float) -> list[str]:
    reasons = []
    if flow["nonfinite"]:
        reasons.append(f"NaN or Inf in {', '.join(flow['nonfinite'][:3])}")
    largest = flow["largest_input_scale"]
    if largest is not None and (not math.isfinite(largest) or largest > threshold):
        reasons.append(f"the signal entering '{flow['largest_input_scale_at']}' has standard "
                       f"deviation {number(largest)}")
    ratio = flow["first_last_ratio"]
    if ratio is not None and (not math.isfinite(ratio) or ratio > max(threshold, RATIO_ABOVE)):
        reasons.append(f"first/last kernel gradient {number(ratio)}")
    return reasons


def exploding(finding, measurements, options) -> dict[str, Any]:
    flow = _flow(measurements)
    if finding.code == "GL205":
        reasons = [f"NaN or Inf in {', '.join(flow['nonfinite'][:3])}"] if flow["nonfinite"] \
            else []
    else:
        reasons = _exploding_reasons(flow, float(options.get("warning-above", EXPLODE_ABOVE)))
    if reasons:
        return _verdict(True, "measured: " + "; ".join(reasons), flow)
    largest = flow["largest_input_scale"]
    detail = _flow_text(flow)
    if largest is not None:
        detail += f"; largest signal entering a layer {number(largest)}"
    return _verdict(False, f"measured values stay finite and bounded: {detail}", flow)


def constant_kernel(finding, measurements, options) -> dict[str, Any] | None:
    kernel = measurements.kernel(finding.layer) if finding.layer else None
    if kernel is None:
        return None
    value = finding.evidence.get("value")
    measured: dict[str, Any] = {"units_identical": kernel.units_identical,
                                "kernel_gradient_norm": kernel.gradient_norm}
    if value == 0 or value == 0.0:
        earlier = []
        for path in measurements.order:
            if path == kernel.path:
                break
            other = measurements.kernels.get(path)
            if other is not None and not other.embedding:
                earlier.append(other)
        starved = [k for k in earlier if k.gradient_norm == 0.0]
        measured["earlier_layers"] = len(earlier)
        measured["earlier_layers_without_gradient"] = len(starved)
        if earlier and len(starved) == len(earlier):
            return _verdict(True, f"measured: the {len(earlier)} weighted layer"
                            f"{'s' if len(earlier) != 1 else ''} before '{kernel.path}' get "
                            "exactly zero gradient", measured)
    if kernel.gradient_norm == 0.0:
        return _verdict(True, f"measured: '{kernel.path}' gets no gradient at all", measured)
    if kernel.units_identical:
        return _verdict(True, f"measured: every unit of '{kernel.path}' gets the same "
                        "gradient, so the units stay identical", measured)
    if value == 0 or value == 0.0:
        return _verdict(False, f"measured: gradient still reaches the layers before "
                        f"'{kernel.path}'", measured)
    return _verdict(False, f"measured: the units of '{kernel.path}' get different gradients "
                    "(the layers after it break the symmetry)", measured)


def recurrent(finding, measurements, options) -> dict[str, Any] | None:
    path = finding.layer
    record = measurements.recurrent.get(path) if path else None
    if record is None or record.ratio is None:
        return None
    measured = {"time_steps": record.length, "first_last_ratio": record.ratio,
                "decay_per_step": record.decay_per_step, "cell": record.cell}
    text = (f"the input gradient at the first of {record.length} steps is "
            f"{number(record.ratio)} of the last step's (x{number(record.decay_per_step)} per "
            "step)")
    return _verdict(record.ratio < TIME_RATIO_BELOW, f"measured: {text}", measured)


HANDLERS: dict[str, Callable] = {
    **{code: vanishing for code in VANISHING_CODES},
    "GL203": exploding,
    "GL205": exploding,
    "GL204": constant_kernel,
    "GL401": recurrent,
}


def attach_verdicts(findings, measurements, options_for: Callable[[str], dict]) -> None:
    """Give every gradient-flow finding its verdict (in place)."""
    for finding in findings:
        handler = HANDLERS.get(finding.code)
        if handler is None or finding.probe is not None:
            continue
        try:
            verdict = handler(finding, measurements, options_for(finding.code))
        except (TypeError, ValueError, ZeroDivisionError):  # a verdict must not stop the report
            verdict = None
        if verdict is not None:
            finding.probe = verdict


def fold_duplicates(findings: list) -> list:
    """Drop probe findings that a confirmed static finding of the same kind already names."""
    kept = []
    for finding in findings:
        family = FAMILY_OF_PROBE_RULE.get(finding.code)
        if family is not None and any(
                FAMILY_OF_STATIC_RULE.get(other.code) == family
                and other.probe is not None and other.probe.get("verdict") == "confirmed"
                and SEVERITY_RANK[other.severity] >= SEVERITY_RANK[finding.severity]
                and (family != "recurrent" or other.layer == finding.layer)
                for other in findings):
            continue
        kept.append(finding)
    return kept
