"""HTML report: one self-contained page (inline CSS and SVG, no scripts, nothing fetched)
for one or several models, from `templates/report.html.j2`.

Per model: a summary, the findings grouped by severity with each rule's explanation and fix
(from its documentation), a chart of the estimated gradient per layer on a log scale with
the probe's measurements beside it when the probe ran, and the layer stack with flagged
layers highlighted. Light and dark colour schemes follow the reader's system setting, and
the page prints cleanly. `render_fragment` gives the same report without the surrounding
document, for `Report._repr_html_` in Jupyter.

Names, messages and paths come from the model file and the file system. Jinja autoescapes
every template variable (text, attributes, the SVG chart's titles and labels); before that,
`view` passes every string of the report through `printable`, so control characters and
lone surrogates (which no UTF-8 page can hold) are shown as visible escapes (``\\x1b``,
``\\udcff``) rather than dropped, turned into U+FFFD or left to reorder the text around
them.
"""

from __future__ import annotations

import html
import math
import re
from typing import Any

from gradlint import __version__
from gradlint.renderers.report_data import (SEVERITY_ORDER, as_float, file_counts,
                                            format_fraction, format_number, plural,
                                            probe_status, report_dict, rule_doc,
                                            sorted_findings)
from gradlint.safe_text import map_strings, printable
from gradlint.renderers.templating import read_template, render_template

SEVERITY_LABELS = {"error": "Errors", "warning": "Warnings", "info": "Info"}

# Chart geometry, in SVG user units (the SVG scales to the page's width).
CHART_WIDTH = 760
CHART_HEIGHT = 280
MARGIN = {"left": 58, "right": 14, "top": 14, "bottom": 44}
SERIES = (
    ("estimate", "kernel_gradient", "Estimated kernel gradient", "estimate"),
    ("estimate", "gradient", "Estimated gradient at pre-activations", "gradient"),
    ("measured", "kernel_gradient", "Measured kernel gradient (probe)", "measured"),
)


# --- rule documentation as HTML -------------------------------------------------------------

INLINE_CODE = re.compile(r"`([^`]+)`")
STRONG = re.compile(r"\*\*([^*]+)\*\*")
EMPHASIS = re.compile(r"(?<![\w*])\*([^*\s][^*]*?)\*(?![\w*])")


def _inline(text: str) -> str:
    parts = INLINE_CODE.split(text)
    out = []
    for index, part in enumerate(parts):
        if index % 2:
            out.append(f"<code>{html.escape(part)}</code>")
        else:
            escaped = html.escape(part)
            escaped = STRONG.sub(r"<strong>\1</strong>", escaped)
            escaped = EMPHASIS.sub(r"<em>\1</em>", escaped)
            out.append(escaped)
    return "".join(out)


def doc_html(text: str):
    """The small Markdown of rule docstrings (paragraphs, ``-`` lists, indented code,
    inline code and emphasis) as safe HTML."""
    from markupsafe import Markup

    def is_code(line: str) -> bool:
        return line.startswith("    ")

    def is_item(line: str) -> bool:
        return line.lstrip().startswith("- ")

    blocks: list[str] = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        if not line.strip():
            index += 1
        elif is_code(line):
            code = []
            while index < len(lines) and (is_code(lines[index]) or not lines[index].strip()):
                code.append(lines[index][4:])
                index += 1
            blocks.append(f"<pre><code>{html.escape(chr(10).join(code).rstrip())}</code></pre>")
        elif is_item(line):
            items: list[str] = []
            while index < len(lines) and lines[index].strip() and not is_code(lines[index]):
                current = lines[index].strip()
                if is_item(current):
                    items.append(current[2:])
                else:  # a list item's continuation line
                    items[-1] += " " + current
                index += 1
            blocks.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in items) + "</ul>")
        else:
            paragraph = []
            while index < len(lines) and lines[index].strip() and not is_code(lines[index]) \
                    and not is_item(lines[index]):
                paragraph.append(lines[index].strip())
                index += 1
            blocks.append(f"<p>{_inline(' '.join(paragraph))}</p>")
    return Markup("\n".join(blocks))


# --- the chart ------------------------------------------------------------------------------

def _log(value: Any) -> float | None:
    number = as_float(value)
    if number is None or math.isnan(number):
        return None
    if number <= 0:
        return -math.inf
    if math.isinf(number):
        return math.inf
    return math.log10(number)


def _decade_label(exponent: int) -> str:
    if exponent == 0:
        return "1"
    if exponent == 1:
        return "10"
    return f"1e{exponent}"


def chart(layers: list[dict[str, Any]], flagged: dict[str, str]) -> dict[str, Any] | None:
    """Geometry of the per-layer gradient chart, or None when no layer has a number."""
    rows = [layer for layer in layers if layer.get("weighted")] or layers
    rows = [layer for layer in rows
            if any(_log((layer.get(group) or {}).get(key)) is not None
                   for group, key, _, _ in SERIES)]
    if not rows:
        return None
    finite = [value for layer in rows for group, key, _, _ in SERIES
              if (value := _log((layer.get(group) or {}).get(key))) is not None
              and math.isfinite(value)]
    low = math.floor(min(finite + [0.0]))
    high = math.ceil(max(finite + [0.0]))
    if high - low < 3:
        low = min(low, high - 3)
    low, high = max(low, -60), min(high, 60)
    left, top = MARGIN["left"], MARGIN["top"]
    width = CHART_WIDTH - MARGIN["left"] - MARGIN["right"]
    height = CHART_HEIGHT - MARGIN["top"] - MARGIN["bottom"]
    count = len(rows)
    step = width / count

    def x_of(index: int) -> float:
        return round(left + step * (index + 0.5), 2)

    def y_of(exponent: float) -> float:
        clamped = min(max(exponent, low), high)
        return round(top + height * (high - clamped) / (high - low), 2)

    decade_step = max(1, math.ceil((high - low) / 8))
    ticks = [{"y": y_of(e), "label": _decade_label(e)}
             for e in range(high, low - 1, -1) if (e - low) % decade_step == 0 or e == 0]
    bands = []
    for bottom, top_exponent, label in ((low, -3, "vanishing (below 1e-3)"),
                                        (3, high, "exploding (above 1e3)")):
        if top_exponent > bottom and low <= top_exponent and bottom <= high:
            y_top, y_bottom = y_of(top_exponent), y_of(bottom)
            bands.append({"y": y_top, "height": round(y_bottom - y_top, 2), "label": label})

    series = []
    for group, key, label, css in SERIES:
        points, path, pen_down = [], [], False
        for index, layer in enumerate(rows):
            exponent = _log((layer.get(group) or {}).get(key))
            if exponent is None:
                pen_down = False
                continue
            x, y = x_of(index), y_of(exponent)
            clipped = "low" if exponent < low else "high" if exponent > high else None
            path.append(f"{'L' if pen_down else 'M'}{x} {y}")
            pen_down = True
            radius = 3.2 if count <= 60 else 2.2
            points.append({"x": x, "y": y, "clipped": clipped, "r": radius,
                           "small": round(radius * 0.6, 2),
                           "corner_x": round(x - radius, 2), "corner_y": round(y - radius, 2),
                           "side": round(2 * radius, 2),
                           "title": f"{layer['path']}: {label.lower()} "
                                    f"{format_number((layer.get(group) or {}).get(key))}"})
        if points:
            series.append({"label": label, "css": css, "path": " ".join(path),
                           "points": points})

    highlights = []
    for index, layer in enumerate(rows):
        severity = flagged.get(layer["path"])
        if severity:
            highlights.append({"x": round(x_of(index) - step / 2, 2),
                               "width": round(max(step, 2.0), 2), "severity": severity,
                               "title": f"{layer['path']}: flagged ({severity})"})
    label_every = max(1, math.ceil(count / 16))
    labelled = list(range(0, count, label_every))
    if labelled[-1] != count - 1:  # always label the output layer, without crowding
        if count - 1 - labelled[-1] <= label_every / 2:
            labelled.pop()
        labelled.append(count - 1)
    labels = [{"x": x_of(index), "text": _short(rows[index]["path"]), "index": index + 1}
              for index in labelled]
    return {"width": CHART_WIDTH, "height": CHART_HEIGHT, "left": left, "top": top,
            "right": left + width, "bottom": top + height, "ticks": ticks, "bands": bands,
            "series": series, "highlights": highlights, "labels": labels,
            "named_labels": count <= 16, "count": count}


def _short(path: str, limit: int = 18) -> str:
    leaf = path.rsplit("/", 1)[-1]
    return leaf if len(leaf) <= limit else leaf[:limit - 1] + "…"


# --- the view of one model ------------------------------------------------------------------

def _evidence_items(evidence: Any) -> list[tuple[str, str]]:
    if not isinstance(evidence, dict):
        return []
    items = []
    for key, value in evidence.items():
        if value is None or value == [] or value == {}:
            continue
        if isinstance(value, float) or (isinstance(value, str) and value in ("nan", "inf", "-inf")):
            text = format_number(value)
        elif isinstance(value, (list, tuple)):
            text = ", ".join(format_number(v) if isinstance(v, float) else str(v) for v in value)
        elif isinstance(value, dict):
            text = ", ".join(f"{k}: {format_number(v) if isinstance(v, float) else v}"
                             for k, v in value.items())
        else:
            text = str(value)
        items.append((key.replace("_", " "), text))
    return items


def _finding_view(finding: dict[str, Any]) -> dict[str, Any]:
    doc = rule_doc(finding.get("code", ""))
    probe = finding.get("probe") if isinstance(finding.get("probe"), dict) else None
    return {
        "code": finding.get("code", ""),
        "name": finding.get("name", ""),
        "severity": finding.get("severity", "info"),
        "layer": finding.get("layer"),
        "layers": finding.get("layers") or [],
        "message": finding.get("message", ""),
        "evidence": _evidence_items(finding.get("evidence")),
        "probe": None if probe is None else {
            "verdict": probe.get("verdict") or "",
            "summary": re.sub(r"^measured:\s*", "", probe.get("summary") or ""),
            "measured": _evidence_items(probe.get("measured")),
        },
        "summary": doc.summary if doc else "",
        "explanation": doc_html(doc.explanation) if doc and doc.explanation else None,
        "fix": doc_html(doc.fix) if doc and doc.fix else None,
    }


def _log_position(value: Any, low: float = -6.0, high: float = 1.0) -> float | None:
    """Where a value sits on a log axis from 10^low to 10^high, as a percentage."""
    exponent = _log(value)
    if exponent is None:
        return None
    clamped = min(max(exponent, low), high)
    return round(100 * (clamped - low) / (high - low), 1)


def _file_view(file: dict[str, Any], number: int) -> dict[str, Any]:
    findings = sorted_findings(list(file.get("findings") or []))
    flagged: dict[str, str] = {}
    codes: dict[str, list[str]] = {}
    for finding in findings:
        for path in [finding.get("layer"), *(finding.get("layers") or [])]:
            if not path:
                continue
            flagged.setdefault(path, finding.get("severity", "info"))
            if finding.get("code") not in codes.setdefault(path, []):
                codes[path].append(finding.get("code"))
    layers = list(file.get("layers") or [])
    has_measured = any(isinstance(layer.get("measured"), dict) for layer in layers)
    layer_rows = []
    for index, layer in enumerate(layers):
        estimate = layer.get("estimate") or {}
        measured = layer.get("measured") if isinstance(layer.get("measured"), dict) else {}
        depth = layer.get("path", "").count("/")
        fraction = measured.get("saturated_fraction")
        if fraction is None:
            fraction = measured.get("dead_fraction")
        layer_rows.append({
            "index": index + 1,
            "path": layer.get("path", ""),
            "depth": depth,
            "class": layer.get("class") or "",
            "activation": layer.get("activation") or "",
            "weighted": bool(layer.get("weighted")),
            "severity": flagged.get(layer.get("path", "")),
            "codes": codes.get(layer.get("path", ""), []),
            "forward_scale": format_number(estimate.get("forward_scale")),
            "gradient": format_number(estimate.get("gradient")),
            "kernel_gradient": format_number(estimate.get("kernel_gradient")),
            "bar": _log_position(estimate.get("kernel_gradient") if layer.get("weighted")
                                 else estimate.get("gradient")),
            "measured_kernel_gradient": format_number(measured.get("kernel_gradient")),
            "measured_bar": _log_position(measured.get("kernel_gradient")),
            "measured_forward_scale": format_number(measured.get("forward_scale")),
            "measured_fraction": format_fraction(fraction),
            "measured_fraction_kind": "saturated" if measured.get("saturated_fraction") is not None
            else "dead" if measured.get("dead_fraction") is not None else "",
        })
    groups = []
    for severity in SEVERITY_ORDER:
        members = [_finding_view(f) for f in findings if f.get("severity") == severity]
        if members:
            groups.append({"severity": severity, "label": SEVERITY_LABELS[severity],
                           "findings": members})
    model = file.get("model") or {}
    probe = file.get("probe") if isinstance(file.get("probe"), dict) else None
    facts = [("Format", file.get("format") or "–")]
    if model:
        facts += [("Model", f"{model.get('name') or '–'} ({model.get('class') or '–'})"),
                  ("Layers", str(model.get("layers", "–"))),
                  ("Parameters", f"{model['params']:,}" if isinstance(model.get("params"), int)
                   else "not read"),
                  ]
        if model.get("keras_version"):
            facts.append(("Saved by Keras", str(model["keras_version"])))
    counts = file_counts(file)
    return {
        "id": f"model-{number}",
        "number": number,
        "path": file.get("path", ""),
        "error": file.get("error"),
        "facts": facts,
        "counts": counts,
        "worst": next((s for s in SEVERITY_ORDER if counts[s]), None),
        "total": sum(counts.values()),
        "groups": groups,
        "notes": list(file.get("notes") or []),
        "probe": probe,
        "probe_status": probe_status(file),
        "probe_ran": bool(probe and probe.get("ran")),
        "layers": layer_rows,
        "has_measured": has_measured,
        "chart": chart(layers, flagged),
        "flagged_count": sum(1 for row in layer_rows if row["severity"]),
    }


def view(report) -> dict[str, Any]:
    data = map_strings(report_dict(report), printable)
    files = [_file_view(file, number) for number, file in enumerate(data.get("files", []), 1)]
    summary = data.get("summary") or {}
    counts = summary.get("by_severity") or {s: 0 for s in SEVERITY_ORDER}
    models = plural(len(files), "model")
    headline = ", ".join(plural(counts.get(s, 0), s) for s in SEVERITY_ORDER if counts.get(s))
    return {
        "version": __version__,
        "files": files,
        "counts": counts,
        "summary": summary,
        "title": f"gradlint report: {models}" + (f", {headline}" if headline else ", no findings"),
        "models": models,
        "headline": headline or "no findings",
        "worst": next((s for s in SEVERITY_ORDER if counts.get(s)), None),
        "severities": SEVERITY_ORDER,
    }


def _render(report, document: bool) -> str:
    from markupsafe import Markup

    return render_template("report.html.j2", autoescape=True, document=document,
                           css=Markup(read_template("report.css")), **view(report))


def render(report, options=None) -> str:
    return _render(report, document=True)


def render_fragment(report) -> str:
    """The report without ``<html>``/``<head>``, with its styles scoped to the report, for
    notebooks."""
    return _render(report, document=False)
