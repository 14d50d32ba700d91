"""Markdown (GitHub-flavoured), in two modes, both rendered from `templates/report.md.j2`.

`render`, what ``--output-format markdown`` and ``--report FILE.md`` write, is the
pull-request comment. For a binary model file it is the only channel that reaches the pull
request (SARIF alerts and annotations have no diff line to sit on), and GitHub refuses a
comment longer than 65,536 characters, so the comment always fits: pieces go in by priority
until the budget (`COMMENT_LIMIT`, counted in UTF-16 code units, which is never less than
the characters) is spent, and a closing note says what was left out and where the full
report is. The priority, highest first:

1. the headline and the summary rows of the models with findings, worst first (most errors,
   then warnings, then info; a file that could not be read and a probe that could not run
   count as errors);
2. the error and warning findings, worst first, in a table; repeated GL002 findings for one
   custom layer class in one model are one row (`github.collapse_repeats`);
3. what those findings' rules mean and what to do, once per rule, in ``<details>``;
4. the info findings;
5. per model with findings, a ``<details>`` section with the model, the probe, its notes and
   its layer table (only the flagged layers when the whole table does not fit);
6. the info rules' explanations;
7. the summary rows of the models without findings (the first of them, up to a tenth of
   the limit, come before the flagged models' sections: which models were checked and found
   clean is worth that much).

Models without findings never get a layer table in the comment. `render_full` is the whole
report: every model, each finding with its rule's explanation and fix, and every model's
layer table (with the probe's measurements when it ran).

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
from dataclasses import dataclass
from typing import Any

from gradlint import __version__
from gradlint.findings import SEVERITY_RANK, fix_summary, related_suffix
from gradlint.renderers.github import (badness, collapse_repeats, worst_first,
                                       worst_first_findings)
from gradlint.renderers.report_data import (SEVERITY_ORDER, format_fraction, format_number,
                                            plural, probe_status, rule_doc)
from gradlint.renderers.templating import environment
from gradlint.safe_text import printable

TEMPLATE = "report.md.j2"
# GitHub's limit on the body of an issue or pull-request comment.
COMMENT_LIMIT = 65_536
# The share of the comment that the summary rows of models without findings may take before
# the flagged models' sections; the rest of them come last.
CLEAN_ROWS_SHARE = 0.1
# Run warnings (a searched directory without models) shown in the comment, at most.
WARNINGS_SHOWN = 5

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


# --- what the template shows, from the typed report ----------------------------------------

def _counts(result) -> dict[str, int]:
    counts = {severity: 0 for severity in SEVERITY_ORDER}
    for finding in result.findings:
        if finding.severity in counts:
            counts[finding.severity] += 1
    return counts


def _layer_rows(result, flagged: dict[str, list[str]]) -> list[dict[str, Any]]:
    rows = []
    for index, layer in enumerate(result.layers or [], 1):
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


def _finding_view(finding, message: str | None = None, layer: str | None = None,
                  with_summary: bool = False) -> dict[str, Any]:
    doc = rule_doc(finding.code)
    probe = finding.probe if isinstance(finding.probe, dict) else None
    verdict = VERDICT_MARKS.get(probe.get("verdict"), probe.get("verdict") or "") \
        if probe else ""
    summary = (probe.get("summary") or "") if probe else ""
    if with_summary and verdict and summary:
        verdict = f"{verdict}: {summary}"
    return {
        "code": finding.code, "name": finding.name, "severity": finding.severity,
        "mark": SEVERITY_MARKS.get(finding.severity, finding.severity),
        "layer": (finding.layer or "") if layer is None else layer,
        "message": (finding.message + related_suffix(finding)) if message is None else message,
        "verdict": verdict,
        "probe_summary": summary,
        "explanation": doc.explanation if doc else "",
        "fix": doc.fix if doc else "",
        "automatic_fix": fix_summary(getattr(finding, "fix", None), finding.code),
    }


def _file_view(result) -> dict[str, Any]:
    findings = worst_first_findings(list(result.findings))
    flagged: dict[str, list[str]] = {}
    for finding in findings:
        for path in [finding.layer, *(finding.layers or [])]:
            if path and finding.code not in flagged.setdefault(path, []):
                flagged[path].append(finding.code)
    counts = _counts(result)
    model = result.model or {}
    layers = result.layers or []
    return {
        "path": result.path,
        "format": result.format or "",
        "model": model,
        "params": f"{model['params']:,}" if isinstance(model.get("params"), int) else "not read",
        "layer_count": model.get("layers", len(layers)) if model else "–",
        "error": result.error,
        "counts": counts,
        "headline": ", ".join(plural(counts[s], s) for s in SEVERITY_ORDER if counts[s])
        or "no findings",
        "findings": [_finding_view(finding) for finding in findings],
        "notes": list(result.notes or []),
        "probe_status": probe_status({"probe": result.probe}),
        "probe_ran": bool(isinstance(result.probe, dict) and result.probe.get("ran")),
        "layers": _layer_rows(result, flagged),
        "has_measured": any(isinstance(layer.get("measured"), dict) for layer in layers),
    }


def _headline(report) -> str:
    counts = report.counts()
    return ", ".join(plural(counts[s], s) for s in SEVERITY_ORDER if counts.get(s)) \
        or "no findings"


def view(report) -> dict[str, Any]:
    """The full report's context."""
    files = [_file_view(result) for result in report.files]
    return {
        "mode": "full",
        "version": __version__,
        "files": files,
        "findings": [(file, finding) for file in files for finding in file["findings"]],
        "models": plural(len(files), "model"),
        "headline_text": _headline(report),
        "unreadable": report.summary()["files_unreadable"],
        "any_verdict": any(f["verdict"] for file in files for f in file["findings"]),
    }


def _render(**context) -> str:
    return environment(False).get_template(TEMPLATE).render(e=escape, cell=cell, h=html_text,
                                                            **context)


def _tidy(text: str) -> str:
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


def render_full(report, options=None) -> str:
    """The whole report: every model with its findings, their rules' explanations and
    fixes, and its layer table."""
    return _tidy(_render(**view(report)))


# --- the pull-request comment ----------------------------------------------------------------

def length(text: str) -> int:
    """The length GitHub's limit is checked against, at its strictest: UTF-16 code units, so
    a character outside the Basic Multilingual Plane counts twice."""
    return len(text) + sum(1 for char in text if ord(char) > 0xFFFF)


@dataclass
class _Piece:
    """One optional part of the comment: where it goes, its Markdown, and what the note says
    when it is left out."""

    place: str          # "summary", "findings", "details", "rules"
    order: int          # its position in its place
    text: str
    kind: str           # what the note counts when it is left out: a key of LEFT_OUT
    count: int = 1
    # A smaller stand-in tried when the piece does not fit (a model's section with only the
    # flagged layers, or without its layer table), and what the note counts for it.
    fallback: "_Piece | None" = None
    lost: str | None = None


# What the closing note counts, in its order: the phrase for one, and for {n} of them.
LEFT_OUT = {
    "error": ("1 error", "{n} errors"),
    "warning": ("1 warning", "{n} warnings"),
    "info": ("1 info finding", "{n} info findings"),
    "finding": ("1 other finding", "{n} other findings"),
    "flagged-row": ("1 model with findings from the summary table",
                    "{n} models with findings from the summary table"),
    "section": ("the section of 1 model with findings",
                "the sections of {n} models with findings"),
    "table": ("the layer table of 1 model with findings",
              "the layer tables of {n} models with findings"),
    "partial-table": ("the unflagged layers of 1 model's layer table",
                      "the unflagged layers of {n} models' layer tables"),
    "rule": ("1 rule's explanation", "{n} rules' explanations"),
    "clean-row": ("1 model without findings from the summary table",
                  "{n} models without findings from the summary table"),
}


def _comment_pieces(report, macros, limit: int) -> tuple[list[_Piece], dict[str, Any]]:
    ranked = worst_first(report.files)
    views = {id(result): _file_view(result) for result in ranked}
    any_verdict = any(f["verdict"] for view_ in views.values() for f in view_["findings"])
    flagged = [result for result in ranked if any(badness(result))]
    clean = [result for result in ranked if not any(badness(result))]
    position = {id(result): index for index, result in enumerate(ranked)}

    rows: list[tuple[int, int, int, _Piece]] = []   # (severity rank, model, index, piece)
    rules_needed: dict[str, int] = {}               # code -> best severity rank shown
    for result in flagged:
        file = views[id(result)]
        collapsed = collapse_repeats(worst_first_findings(list(result.findings)))
        for index, item in enumerate(collapsed):
            finding = item.finding
            layer = finding.layer or ""
            if item.repeats:
                layer = f"{layer} (+{len(item.repeats)} more)"
            text = str(macros.finding_row(file, _finding_view(finding, item.message, layer,
                                                              with_summary=True),
                                          any_verdict))
            rank = SEVERITY_RANK.get(finding.severity, 0)
            kind = finding.severity if finding.severity in SEVERITY_RANK else "finding"
            rows.append((rank, position[id(result)], index,
                         _Piece("findings", 0, text, kind, count=len(item.findings))))
            rules_needed[finding.code] = max(rules_needed.get(finding.code, 0), rank)
    rows.sort(key=lambda row: (-row[0], row[1], row[2]))
    for order, row in enumerate(rows):
        row[3].order = order

    summary = [_Piece("summary", order, str(macros.summary_row(views[id(result)])),
                      "flagged-row") for order, result in enumerate(flagged)]
    clean_rows = [_Piece("summary", len(flagged) + order,
                         str(macros.summary_row(views[id(result)])), "clean-row")
                  for order, result in enumerate(clean)]

    details = []
    for order, result in enumerate(flagged):
        file = views[id(result)]
        layers = file["layers"]
        flagged_layers = [layer for layer in layers if layer["flags"]]
        piece = _Piece("details", order, str(macros.model_details(file, layers)), "section")
        if layers:
            bare = _Piece("details", order, str(macros.model_details(file, [], 0, True)),
                          "section", lost="table")
            if 0 < len(flagged_layers) < len(layers):
                piece.fallback = _Piece("details", order, str(macros.model_details(
                    file, flagged_layers, len(layers) - len(flagged_layers))), "section",
                    fallback=bare, lost="partial-table")
            else:
                piece.fallback = bare
        details.append(piece)

    rules_high, rules_info = [], []
    for order, (code, rank) in enumerate(sorted(rules_needed.items(),
                                                key=lambda item: (-item[1], item[0]))):
        doc = rule_doc(code)
        if doc is None or not (doc.explanation or doc.fix):
            continue
        piece = _Piece("rules", order, str(macros.rule_details(doc)), "rule")
        (rules_high if rank > SEVERITY_RANK["info"] else rules_info).append(piece)

    high = [row[3] for row in rows if row[0] > SEVERITY_RANK["info"]]
    low = [row[3] for row in rows if row[0] <= SEVERITY_RANK["info"]]
    # Which models were checked and found clean is worth a little room before the flagged
    # models' sections: the first rows, up to a share of the limit; the rest come last.
    share, early = CLEAN_ROWS_SHARE * limit, 0
    while early < len(clean_rows) and share >= length(clean_rows[early].text) + 1:
        share -= length(clean_rows[early].text) + 1
        early += 1
    pieces = (summary + high + rules_high + low + clean_rows[:early] + details + rules_info
              + clean_rows[early:])
    warnings = [str(warning) for warning in getattr(report, "warnings", None) or []]
    context = {
        "mode": "comment", "version": __version__,
        "models": plural(len(ranked), "model"), "headline_text": _headline(report),
        "unreadable": report.summary()["files_unreadable"],
        "any_verdict": any_verdict, "any_findings": bool(report.findings),
        "limit": f"{limit:,}",
        # Never in the comment, whatever the room: the layer tables of models without findings.
        "clean_tables": plural(len(clean), "model") if clean else "",
        "warnings": warnings[:WARNINGS_SHOWN],
        "more_warnings": max(0, len(warnings) - WARNINGS_SHOWN),
    }
    return pieces, context


def _left_out_note(counts: dict[str, int]) -> list[str]:
    """The closing note's parts: what was left out, counted."""
    parts = []
    for kind, (one, many) in LEFT_OUT.items():
        count = counts.get(kind, 0)
        if count:
            parts.append(one if count == 1 else many.format(n=count))
    return parts


def _assemble(context: dict[str, Any], chosen: list[_Piece], note: list[str]) -> str:
    by_place: dict[str, list[_Piece]] = {"summary": [], "findings": [], "details": [],
                                         "rules": []}
    for piece in chosen:
        by_place[piece.place].append(piece)
    for place in by_place.values():
        place.sort(key=lambda piece: piece.order)
    return _tidy(_render(**context,
                         summary_rows=[p.text for p in by_place["summary"]],
                         finding_rows=[p.text for p in by_place["findings"]],
                         details=[p.text for p in by_place["details"]],
                         rules=[p.text for p in by_place["rules"]],
                         left_out=note))


def render(report, options=None, limit: int = COMMENT_LIMIT) -> str:
    """The pull-request comment: never longer than `limit` (see `length`)."""
    macros = environment(False).get_template(TEMPLATE).make_module(
        {"mode": "pieces", "e": escape, "cell": cell, "h": html_text})
    pieces, context = _comment_pieces(report, macros, limit)
    # What is always there, with the longest note it could need, and the heads of the
    # tables and sections: the rest of the budget is for the pieces.
    fixed = length(_assemble(context, [], _left_out_note(dict.fromkeys(LEFT_OUT, 10**6))))
    heads = (length(str(macros.summary_head())) + length(str(macros.findings_head(True)))
             + length("### Findings, worst first\n\n**What the rules mean and what to do:**"
                      "\n\n") + 16)
    budget = limit - fixed - heads
    counts: dict[str, int] = {}
    chosen: list[_Piece] = []
    # The rows of a table stop at the first that does not fit, so that nothing shown is
    # less severe than something left out: all findings, the flagged models' summary rows,
    # the clean models' summary rows.
    blocked: set[str] = set()
    for piece in pieces:
        candidate: _Piece | None = piece
        rows = piece.place in ("summary", "findings")
        block = piece.place if piece.place == "findings" else piece.kind
        if not (rows and block in blocked):
            while candidate is not None and length(candidate.text) + 2 > budget:
                candidate = candidate.fallback
        else:
            candidate = None
        if candidate is None:
            counts[piece.kind] = counts.get(piece.kind, 0) + piece.count
            if rows:
                blocked.add(block)
            continue
        if candidate.lost:
            counts[candidate.lost] = counts.get(candidate.lost, 0) + 1
        chosen.append(candidate)
        budget -= length(candidate.text) + 2
    text = _assemble(context, chosen, _left_out_note(counts))
    # The budget is reckoned from the pieces; the assembled text is what counts.
    while length(text) > limit and chosen:
        dropped = chosen.pop()
        if dropped.lost:
            counts[dropped.lost] -= 1
        counts[dropped.kind] = counts.get(dropped.kind, 0) + dropped.count
        text = _assemble(context, chosen, _left_out_note(counts))
    return text
