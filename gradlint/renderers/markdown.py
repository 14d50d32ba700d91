"""Markdown report (GitHub-flavoured), fit for a pull-request comment: a summary table, a
findings table, and per model a collapsible ``<details>`` section with each finding's
explanation and fix and the per-layer gradient estimate (with the probe's measurements when
it ran). Rendered from `templates/report.md.j2`.
"""

from __future__ import annotations

import re
from typing import Any

from gradlint import __version__
from gradlint.renderers.report_data import (SEVERITY_ORDER, file_counts, format_fraction,
                                            format_number, plural, probe_status, report_dict,
                                            rule_doc, sorted_findings)
from gradlint.renderers.templating import render_template

SEVERITY_MARKS = {"error": "❌ error", "warning": "⚠️ warning", "info": "ℹ️ info"}
VERDICT_MARKS = {"confirmed": "confirmed", "not-confirmed": "not confirmed"}
# Characters that Markdown inline syntax (emphasis, code, links, HTML, tables,
# strikethrough, entities) might read as syntax, escaped with a backslash.
SPECIAL = re.compile(r"([\\`*_\[\]<>|~&])")


def escape(text: Any) -> str:
    """Text as literal Markdown inline content."""
    return SPECIAL.sub(r"\\\1", str(text)).replace("\r", "")


def cell(text: Any) -> str:
    """Text as the content of a table cell: escaped, on one line."""
    value = escape(text).strip()
    return re.sub(r"\s*\n\s*", "<br>", value) if value else " "


def _layer_rows(file: dict[str, Any], flagged: dict[str, list[str]]) -> list[dict[str, Any]]:
    rows = []
    for index, layer in enumerate(file.get("layers") or [], 1):
        path = layer.get("path", "")
        if not (layer.get("weighted") or path in flagged):
            continue
        estimate = layer.get("estimate") or {}
        measured = layer.get("measured") if isinstance(layer.get("measured"), dict) else {}
        fraction = ""
        if measured.get("saturated_fraction") is not None:
            fraction = f"{format_fraction(measured['saturated_fraction'])} saturated"
        elif measured.get("dead_fraction") is not None:
            fraction = f"{format_fraction(measured['dead_fraction'])} dead"
        rows.append({
            "index": index, "path": path, "class": layer.get("class") or "",
            "activation": layer.get("activation") or "",
            "gradient": format_number(estimate.get("gradient")),
            "kernel_gradient": format_number(estimate.get("kernel_gradient")),
            "forward_scale": format_number(estimate.get("forward_scale")),
            "measured_kernel_gradient": format_number(measured.get("kernel_gradient")),
            "measured_forward_scale": format_number(measured.get("forward_scale")),
            "measured_fraction": fraction,
            "flags": ", ".join(flagged.get(path, [])),
        })
    return rows


def _file_view(file: dict[str, Any]) -> dict[str, Any]:
    findings = sorted_findings(list(file.get("findings") or []))
    flagged: dict[str, list[str]] = {}
    views = []
    for finding in findings:
        for path in [finding.get("layer"), *(finding.get("layers") or [])]:
            if path and finding.get("code") not in flagged.setdefault(path, []):
                flagged[path].append(finding.get("code"))
        doc = rule_doc(finding.get("code", ""))
        probe = finding.get("probe") if isinstance(finding.get("probe"), dict) else None
        views.append({
            "code": finding.get("code", ""), "name": finding.get("name", ""),
            "severity": finding.get("severity", "info"),
            "mark": SEVERITY_MARKS.get(finding.get("severity"), finding.get("severity", "")),
            "layer": finding.get("layer") or "",
            "message": finding.get("message", ""),
            "verdict": VERDICT_MARKS.get(probe.get("verdict"), probe.get("verdict") or "")
            if probe else "",
            "probe_summary": (probe.get("summary") or "") if probe else "",
            "explanation": doc.explanation if doc else "",
            "fix": doc.fix if doc else "",
        })
    counts = file_counts(file)
    model = file.get("model") or {}
    layers = _layer_rows(file, flagged)
    return {
        "path": file.get("path", ""),
        "format": file.get("format") or "",
        "model": model,
        "params": f"{model['params']:,}" if isinstance(model.get("params"), int) else "not read",
        "layer_count": model.get("layers", len(file.get("layers") or [])) if model else "–",
        "error": file.get("error"),
        "counts": counts,
        "headline": ", ".join(plural(counts[s], s) for s in SEVERITY_ORDER if counts[s])
        or "no findings",
        "findings": views,
        "notes": list(file.get("notes") or []),
        "probe_status": probe_status(file),
        "probe_ran": bool(isinstance(file.get("probe"), dict) and file["probe"].get("ran")),
        "layers": layers,
        "has_measured": any(isinstance(layer.get("measured"), dict)
                            for layer in file.get("layers") or []),
    }


def view(report) -> dict[str, Any]:
    data = report_dict(report)
    files = [_file_view(file) for file in data.get("files", [])]
    summary = data.get("summary") or {}
    counts = summary.get("by_severity") or {}
    headline = ", ".join(plural(counts.get(s, 0), s) for s in SEVERITY_ORDER if counts.get(s))
    return {
        "version": __version__,
        "files": files,
        "findings": [(file, finding) for file in files for finding in file["findings"]],
        "models": plural(len(files), "model"),
        "headline": headline or "no findings",
        "unreadable": summary.get("files_unreadable", 0),
        "severities": SEVERITY_ORDER,
        "any_verdict": any(f["verdict"] for file in files for f in file["findings"]),
    }


def render(report, options=None) -> str:
    text = render_template("report.md.j2", autoescape=False, e=escape, cell=cell, **view(report))
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"
