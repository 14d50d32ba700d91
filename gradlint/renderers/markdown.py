"""Markdown report (GitHub-flavoured), fit for a pull-request comment: a summary table, a
findings table, and per model a collapsible ``<details>`` section with each finding's
explanation and fix and the per-layer gradient estimate (with the probe's measurements when
it ran). Rendered from `templates/report.md.j2`.

Names, messages and paths come from the model file and the file system; the template shows
every one of them through `escape` (``e``), `cell` or `html_text` (``h``). Control
characters and lone surrogates are shown as visible escapes (``\\x1b``, ``\\udcff``, by
`printable`); Markdown syntax characters are backslash-escaped so a name cannot make
emphasis, code, a link, an image or raw HTML, nor start a heading, list or quote; ``://``,
``www.`` and an e-mail's ``@`` are escaped so GitHub does not turn them into links; a line
break becomes ``<br>``, so nothing ends a table row, a paragraph or the ``<details>`` block.
"""

from __future__ import annotations

import re
from typing import Any

from gradlint import __version__
from gradlint.renderers.report_data import (SEVERITY_ORDER, file_counts, format_fraction,
                                            format_number, plural, probe_status, report_dict,
                                            rule_doc, sorted_findings)
from gradlint.safe_text import printable
from gradlint.renderers.templating import render_template

SEVERITY_MARKS = {"error": "❌ error", "warning": "⚠️ warning", "info": "ℹ️ info"}
VERDICT_MARKS = {"confirmed": "confirmed", "not-confirmed": "not confirmed"}
# Characters that Markdown inline syntax (emphasis, code, links, HTML, tables,
# strikethrough, entities) might read as syntax, escaped with a backslash.
SPECIAL = re.compile(r"([\\`*_\[\]<>|~&])")
# What GitHub's autolinks start from: a URL's "://", "www.", an e-mail address's "@".
AUTOLINK = re.compile(r"(?i)(?<=[a-z0-9])(:)(?=//)|(?<=www)(\.)|(?<=[\w.+-])(@)(?=[\w-])")
# A start that would open a block (heading, list item, setext underline or thematic
# break): its marker gets a backslash. Only the start of a string can be the start of a
# line, since line breaks become <br>.
BLOCK_START = re.compile(r"^(?:(#)(?=#{0,5}(?:\s|$))|([-+])(?=\s|$)|([=-])(?=[=-]*\s*$)"
                         r"|(\d{1,9})([.)])(?=\s|$))")
LINE_BREAK = re.compile(r"\s*\n\s*")


def _lines(text: Any) -> str:
    """`printable`, with newlines kept (the caller makes them <br>) and a carriage return on
    its own, which CommonMark reads as a line ending, shown as ``\\r``."""
    value = printable(str(text).replace("\r\n", "\n"), line_breaks=True)
    return value.replace("\r", "\\r")


def _literal(text: Any) -> str:
    value = _lines(text)
    value = SPECIAL.sub(r"\\\1", value)
    value = AUTOLINK.sub(lambda match: "\\" + match.group(match.lastindex), value)
    return BLOCK_START.sub(_escape_block_start, value)


def _escape_block_start(match: re.Match) -> str:
    if match.group(4):  # "1." or "1)"
        return f"{match.group(4)}\\{match.group(5)}"
    return "\\" + match.group(match.lastindex)


def escape(text: Any) -> str:
    """Text as literal Markdown inline content, on one line (a line break becomes <br>)."""
    return LINE_BREAK.sub("<br>", _literal(text))


def cell(text: Any) -> str:
    """Text as the content of a table cell: escaped, on one line."""
    value = _literal(text).strip()
    return LINE_BREAK.sub("<br>", value) if value else " "


def html_text(text: Any) -> str:
    """Text as the content of an HTML element in the Markdown (the <summary>): HTML-escaped,
    control characters shown escaped, on one line."""
    from markupsafe import escape as escape_html

    value = str(escape_html(_lines(text)))
    return LINE_BREAK.sub("<br>", value)


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
    text = render_template("report.md.j2", autoescape=False, e=escape, cell=cell, h=html_text,
                           **view(report))
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"
