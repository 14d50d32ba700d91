"""Probe verdicts: the measurements each rule's `confirm` reads to say whether the probe bears
out its finding, and the folding of probe findings that only repeat a confirmed one.

A static rule that claims something about gradient flow declares it (``CLAIMS`` =
"vanishing", "exploding" or "recurrent") and judges its own findings in ``confirm(finding,
measurements, options)`` with its own thresholds; this module has the shared readings:

- `vanishing`: confirmed when the measured kernel gradient of the layers the finding names,
  or of the first weighted layer, falls below the rule's threshold relative to the output
  layer's, when the forward signal collapses before the output (each kernel gradient is the
  forward signal times the backward gradient, so a collapsed signal starves every layer even
  at a ratio near one), or when the named layers saturate;
- `exploding`: NaN/Inf, a signal entering some layer above the rule's threshold, or a
  first/last ratio above it;
- `nonfinite`, `constant_kernel`, `recurrent`: NaN/Inf only; a constant kernel's starved or
  identical units; the input gradient through time.

A verdict is ``{"verdict": "confirmed" | "not-confirmed", "summary": str, "measured": {...}}``.
When the probe measured no kernel gradient at all (every weight frozen with
``trainable=False``), the gradient-flow readings give no verdict unless something else they
read (NaN, saturation) confirms the finding: an empty measurement is not a healthy one, and
the probe says in a note why nothing was measured.
Probe rules declare what they measure (``MEASURES``), so that `fold_duplicates` drops one
that only repeats a confirmed static finding of the same kind and at least its severity.
Nothing here imports TensorFlow: measurements are plain data.
"""

from __future__ import annotations

import math
from typing import Any, Callable

from gradlint.findings import SEVERITY_RANK, number

# Most of a layer's units beyond +-5: GL903's warning, where sigmoid/tanh gradients are
# below 1e-4 of their peak.
SATURATED_ABOVE = 0.5


def _verdict(confirmed: bool, summary: str, measured: dict[str, Any]) -> dict[str, Any]:
    return {"verdict": "confirmed" if confirmed else "not-confirmed",
            "summary": summary, "measured": measured}


def _named_kernels(finding, measurements):
    paths = list(finding.layers) or ([finding.layer] if finding.layer else [])
    found = []
    for path in paths:
        kernel = measurements.kernel(path)
        # A relative of NaN is 0/0: no gradient anywhere, which `_flow` reports instead.
        if kernel is not None and not kernel.embedding and kernel.relative is not None \
                and not math.isnan(kernel.relative):
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
    flow = {
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
    if measurements.gradient_absent():
        flow["no_gradient"] = True
    return flow


def _nothing_measured(flow: dict[str, Any]) -> bool:
    """No kernel gradient was measured (a frozen model): there is no flow to judge."""
    return flow["first_layer"] is None


def _flow_text(flow: dict[str, Any]) -> str:
    parts = []
    if flow.get("no_gradient"):
        parts.append(f"no gradient: the kernel gradients of '{flow['first_layer']}' and "
                     f"'{flow['last_layer']}' are exactly zero")
    elif flow["first_last_ratio"] is not None:
        parts.append(f"first/last kernel gradient {number(flow['first_last_ratio'])} "
                     f"('{flow['first_layer']}' {number(flow['first_kernel_gradient_norm'])}, "
                     f"'{flow['last_layer']}' {number(flow['last_kernel_gradient_norm'])})")
    if flow["output_input_scale"] is not None:
        parts.append(f"signal entering '{flow['last_layer']}' "
                     f"{number(flow['output_input_scale'])}")
    return "; ".join(parts)


def vanishing(finding, measurements, below: float, *, exploding_above: float | None = None,
              ratio_above: float | None = None) -> dict[str, Any] | None:
    """Confirmed below `below` (see the module's docstring); with `exploding_above` and
    `ratio_above`, an exploding measurement confirms it too (a depth finding claims that the
    gradient fails to flow either way)."""
    threshold = float(below)
    flow = _flow(measurements)
    named = _named_kernels(finding, measurements)
    weakest = min(named, key=lambda k: k.relative) if named else None
    saturated, saturated_at = _saturation(finding, measurements)
    measured = dict(flow, weakest_layer=weakest.path if weakest else None,
                    weakest_kernel_gradient=weakest.relative if weakest else None,
                    max_saturated_fraction=saturated)
    reasons = []
    if flow.get("no_gradient"):
        reasons.append(f"no gradient at all: the kernel gradients of '{flow['first_layer']}' "
                       f"and '{flow['last_layer']}' are exactly zero")
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
    if exploding_above is not None:
        reasons.extend(_exploding_reasons(flow, exploding_above, ratio_above or exploding_above))
    if reasons:
        return _verdict(True, "measured: " + "; ".join(reasons), measured)
    if _nothing_measured(flow):
        return None
    detail = _flow_text(flow)
    if weakest is not None and weakest.path != flow["first_layer"]:
        detail += f"; weakest named layer '{weakest.path}' {number(weakest.relative)}"
    return _verdict(False, f"measured gradient flow is healthy: {detail}", measured)


# For rules about depth (GL301, GL302), which have no gradient threshold of their own: the
# static rules' warnings, a kernel gradient below 1e-2 of the output layer's (GL101, GL201),
# or, since depth fails either way, a signal above 1e2 (GL203) or a first/last ratio above
# 3e2 (GL902's warning; keras.applications ResNet50 measures up to 113 and trains well).
DEPTH_BELOW = 1e-2
DEPTH_SIGNAL_ABOVE = 1e2
DEPTH_RATIO_ABOVE = 3e2


def depth(finding, measurements) -> dict[str, Any] | None:
    """Confirmed when the gradient measurably vanishes or explodes (the thresholds above)."""
    return vanishing(finding, measurements, DEPTH_BELOW, exploding_above=DEPTH_SIGNAL_ABOVE,
                     ratio_above=DEPTH_RATIO_ABOVE)


def _exploding_reasons(flow: dict[str, Any], threshold: float,
                       ratio_above: float) -> list[str]:
    reasons = []
    if flow["nonfinite"]:
        reasons.append(f"NaN or Inf in {', '.join(flow['nonfinite'][:3])}")
    largest = flow["largest_input_scale"]
    if largest is not None and (not math.isfinite(largest) or largest > threshold):
        reasons.append(f"the signal entering '{flow['largest_input_scale_at']}' has standard "
                       f"deviation {number(largest)}")
    ratio = flow["first_last_ratio"]
    if ratio is not None and (not math.isfinite(ratio) or ratio > ratio_above):
        reasons.append(f"first/last kernel gradient {number(ratio)}")
    return reasons


def exploding(finding, measurements, above: float,
              ratio_above: float) -> dict[str, Any] | None:
    """Confirmed by NaN/Inf, a signal entering some layer above `above`, or a first/last
    kernel-gradient ratio above `ratio_above`."""
    return _exploding_verdict(measurements, lambda flow: _exploding_reasons(flow, above,
                                                                            ratio_above))


def nonfinite(finding, measurements) -> dict[str, Any] | None:
    """Confirmed by NaN or Inf anywhere in the measurement."""
    return _exploding_verdict(measurements, lambda flow: [
        f"NaN or Inf in {', '.join(flow['nonfinite'][:3])}"] if flow["nonfinite"] else [])


def _exploding_verdict(measurements, reasons_of) -> dict[str, Any] | None:
    flow = _flow(measurements)
    reasons = reasons_of(flow)
    if reasons:
        return _verdict(True, "measured: " + "; ".join(reasons), flow)
    if _nothing_measured(flow):
        return None
    largest = flow["largest_input_scale"]
    detail = _flow_text(flow)
    if largest is not None:
        detail += f"; largest signal entering a layer {number(largest)}"
    return _verdict(False, f"measured values stay finite and bounded: {detail}", flow)


def constant_kernel(finding, measurements) -> dict[str, Any] | None:
    """Confirmed when the layers before a zero kernel get no gradient at all, or when the
    constant kernel's units get identical gradients (so they stay identical)."""
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


def recurrent(finding, measurements, below: float) -> dict[str, Any] | None:
    """Confirmed when the loss gradient at the first input step is below `below` of the
    last step's."""
    path = finding.layer
    record = measurements.recurrent.get(path) if path else None
    if record is None or record.ratio is None:
        return None
    measured = {"time_steps": record.length, "first_last_ratio": record.ratio,
                "decay_per_step": record.decay_per_step, "cell": record.cell}
    text = (f"the input gradient at the first of {record.length} steps is "
            f"{number(record.ratio)} of the last step's (x{number(record.decay_per_step)} per "
            "step)")
    return _verdict(record.ratio < below, f"measured: {text}", measured)


def give_verdicts(findings, measurements, rules: dict, options_for: Callable[[str], dict]) -> None:
    """Each finding of a rule with a `confirm` gets that rule's verdict (in place); `rules`
    maps codes to rules."""
    for finding in findings:
        rule = rules.get(finding.code)
        if rule is None or rule.confirm is None or finding.probe is not None:
            continue
        try:
            verdict = rule.confirm(finding, measurements, options_for(finding.code))
        except (TypeError, ValueError, ZeroDivisionError, KeyError):
            verdict = None  # a verdict must not stop the report
        if verdict is not None:
            finding.probe = verdict


def fold_duplicates(findings: list, rules: dict) -> list:
    """Drop probe findings that a confirmed static finding of the same kind already names."""
    kept = []
    for finding in findings:
        family = getattr(rules.get(finding.code), "measures", None)
        if family is not None and any(
                getattr(rules.get(other.code), "claims", None) == family
                and other.probe is not None and other.probe.get("verdict") == "confirmed"
                and SEVERITY_RANK[other.severity] >= SEVERITY_RANK[finding.severity]
                and (family != "recurrent" or other.layer == finding.layer)
                for other in findings):
            continue
        kept.append(finding)
    return kept
