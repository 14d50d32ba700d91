"""HTML report: one self-contained page (inline CSS and SVG, no scripts, nothing fetched)
for one or several models, from `templates/report.html.j2`.

Per model: a summary, the findings grouped by severity with each rule's explanation and fix
(from its documentation), a chart of the kernel gradient per layer on a log scale (the
estimate from the initializers, the same estimate from the stored weights when they were
read, and the probe's measurement when it ran), a chart per time step for a recurrent
finding the probe measured, and the layer stack with flagged layers highlighted. A finding
links to its layer's row and to its point on the chart, and a point on the chart to its row.
Light and dark colour schemes follow the reader's system setting, and the page prints
cleanly. `render_fragment` gives the same report without the surrounding document, for
`Report._repr_html_` in Jupyter.

The renderer reads the typed report (`Report.files`, `FileResult`, `Finding`); the JSON
contract's dict is accepted too and turned into one first.

Names, messages and paths come from the model file and the file system. Jinja autoescapes
every template variable (text, attributes, the SVG charts' titles and labels); before that,
`_printable` passes every string of the report through `printable`, so control characters
and lone surrogates (which no UTF-8 page can hold) are shown as visible escapes (``\\x1b``,
``\\udcff``) rather than dropped, turned into U+FFFD or left to reorder the text around
them. No name ever reaches an ``id`` or a link: those are built from positions
(``gl-m1-layer-3``), so they are unique and safe whatever the file calls its layers.
"""

from __future__ import annotations

import dataclasses
import html
import math
import os
import re
import secrets
from typing import Any, Callable

from gradlint import __version__
from gradlint.findings import Finding, fix_summary, related_suffix
from gradlint.renderers.report_data import (SEVERITY_ORDER, as_float, format_fraction,
                                            format_number, plural, rule_doc)
from gradlint.renderers.templating import read_template, render_template
from gradlint.report import FileResult, Report
from gradlint.safe_text import map_strings, printable

SEVERITY_LABELS = {"error": "Errors", "warning": "Warnings", "info": "Info"}

# Chart geometry, in SVG user units (the SVG scales to the page's width).
CHART_WIDTH = 760
PLOT_HEIGHT = 222
MARGIN = {"left": 58, "right": 14, "top": 14}
CHAR_WIDTH = 5.9  # an 11-unit sans-serif character, on average
NAMED_LAYERS = 40  # up to this many charted layers, every one is named on the axis
MAX_TICKS = 20  # beyond, ticks at a round interval, at most this many
LABEL_CHARS = 15  # a rotated name this long still fits left of the first layer
MARKED_LAYERS = 150  # beyond, the chart draws lines without a marker per layer
DRAW_ORDER = ("gradient", "stored", "estimate", "measured")  # later lines on top


@dataclasses.dataclass(frozen=True)
class Series:
    key: str  # the CSS class
    label: str
    source: str  # what the caption says it is
    value: Callable[[dict[str, Any]], Any]


def _estimate(layer: dict[str, Any]) -> dict[str, Any]:
    return layer.get("estimate") if isinstance(layer.get("estimate"), dict) else {}


def _stored(layer: dict[str, Any]) -> dict[str, Any]:
    stored = _estimate(layer).get("stored_weights")
    return stored if isinstance(stored, dict) else {}


def _measured(layer: dict[str, Any]) -> dict[str, Any]:
    return layer.get("measured") if isinstance(layer.get("measured"), dict) else {}


SERIES = (
    Series("estimate", "Estimated kernel gradient (initializers)",
           "the kernel gradient estimated from the initializers by mean-field signal "
           "propagation (how training starts)",
           lambda layer: _estimate(layer).get("kernel_gradient")),
    Series("stored", "Estimated kernel gradient (stored weights)",
           "the same estimate from the stored weights (where the saved model stands)",
           lambda layer: _stored(layer).get("kernel_gradient")),
    Series("gradient", "Estimated gradient at pre-activations (initializers)",
           "the gradient at each layer's pre-activations, from the initializers",
           lambda layer: _estimate(layer).get("gradient")),
    Series("measured", "Measured kernel gradient (probe)",
           "the kernel gradient the probe measured on a synthetic batch",
           lambda layer: _measured(layer).get("kernel_gradient")),
)

# The per-step input gradient of a recurrent layer, if the probe's contract carries it:
# the loss gradient's norm at each input time step, in processing order. Read from the
# layer's "measured" object (see the module's notes on what the report holds today).
STEPS_FIELD = "input_gradient_by_step"


# --- the typed report ---------------------------------------------------------------------

def _typed(report: Any) -> Report:
    """The report as `Report`; the JSON contract's dict becomes one."""
    if isinstance(report, Report):
        return report
    if not isinstance(report, dict):
        raise TypeError(f"expected a Report or its dict, not {type(report).__name__}")
    names = {field.name for field in dataclasses.fields(FileResult)}
    files = []
    for data in report.get("files") or []:
        known: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for key, value in data.items():
            if key in ("findings", "suppressed") and key in names:
                known[key] = [Finding.from_dict(item) for item in value or []]
            elif key in names and key != "extra":
                known[key] = value
            else:
                extra[key] = value
        files.append(FileResult(**known, extra=extra))
    lists = {field.name: list(report.get(field.name) or [])
             for field in dataclasses.fields(Report) if field.name != "files"
             and isinstance(report.get(field.name), list)}
    return Report(files=files, **lists)


def _printable(value: Any) -> Any:
    """A copy with `printable` applied to every string: of a dataclass (each field), dicts
    (keys too), lists and strings."""
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, dict):
        return {_printable(key): _printable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_printable(item) for item in value]
    if value is None or isinstance(value, (int, float)):
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {field.name: _printable(getattr(value, field.name))
                   for field in dataclasses.fields(value) if field.init}
        return dataclasses.replace(value, **changes)
    return map_strings(value, printable)


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


# --- log axes -------------------------------------------------------------------------------

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


def _decades(exponents: list[float], minimum_span: int = 3) -> tuple[int, int]:
    finite = [e for e in exponents if math.isfinite(e)]
    low = math.floor(min(finite + [0.0]))
    high = math.ceil(max(finite + [0.0]))
    if high - low < minimum_span:
        low = min(low, high - minimum_span)
    return max(low, -60), min(high, 60)


def _log_axis(low: int, high: int, top: float, height: float):
    def y_of(exponent: float) -> float:
        clamped = min(max(exponent, low), high)
        return round(top + height * (high - clamped) / (high - low), 2)

    decade_step = max(1, math.ceil((high - low) / 8))
    # Every decade_step-th decade counted from 1, so that 1 is always labelled.
    ticks = [{"y": y_of(e), "label": _decade_label(e)}
             for e in range(high, low - 1, -1) if e % decade_step == 0]
    return y_of, ticks


def _vanishing_band(low: int, high: int, y_of) -> dict[str, Any] | None:
    """The zone below 1e-3, labelled in its lower right corner, away from the lines (which
    reach 1 at the output end)."""
    if -3 > low:
        y_top, y_bottom = y_of(min(-3, high)), y_of(low)
        return {"y": y_top, "height": round(y_bottom - y_top, 2),
                "label_y": round(y_bottom - 12, 2), "label": "vanishing (below 1e-3)"}
    return None


def _round_step(count: int, most: int) -> int:
    """The smallest of 1, 2, 5, 10, 20, 25, 50, 100, ... that cuts `count` into at most
    `most` pieces."""
    magnitude = 1
    while True:
        for factor in (1, 2, 5) if magnitude < 10 else (1, 2, 2.5, 5):
            step = int(factor * magnitude)
            if math.ceil(count / step) <= most:
                return step
        magnitude *= 10


# --- the per-layer chart --------------------------------------------------------------------

def _short(path: str, limit: int = LABEL_CHARS) -> str:
    leaf = path.rsplit("/", 1)[-1]
    return leaf if len(leaf) <= limit else leaf[:limit - 1] + "…"


def _distinct(names: list[str]) -> tuple[list[str], str]:
    """Long names that share a start or an end (``encoder_block_7_attention_output``) shown
    by what tells them apart (``…7…``), and the shared pattern (``encoder_block_…_attention_
    output``); short or unrelated names as they are, with ""."""
    if len(names) < 2 or max(len(name) for name in names) <= LABEL_CHARS:
        return names, ""
    prefix = os.path.commonprefix(names)
    suffix = os.path.commonprefix([name[::-1] for name in names])[::-1]
    # Cut at a separator, so that "dense_1" and "dense_10" keep their whole numbers.
    prefix = prefix[:max(prefix.rfind(c) for c in "_-./:") + 1] if prefix else ""
    suffix = suffix[min((i for i in (suffix.find(c) for c in "_-./:") if i >= 0),
                        default=len(suffix)):] if suffix else ""
    shortest = min(len(name) for name in names)
    if len(prefix) + len(suffix) >= shortest or len(prefix) + len(suffix) < 4:
        return names, ""
    middles = [name[len(prefix):len(name) - len(suffix)] for name in names]
    if len(set(middles)) < len(set(names)):
        return names, ""
    shown = [("…" if prefix else "") + middle + ("…" if suffix else "") for middle in middles]
    return shown, f"{prefix}…{suffix}"


STAGE = re.compile(r"[A-Za-z]+_?\d+")


def _stage_key(path: str) -> str | None:
    """The stage a layer's path names: a nested model (``encoder/…``) or a leading
    ``conv3``/``block_4``/``stage2`` followed by more of the name (``conv3_block1_out``);
    None when the name says none (``dense_7``)."""
    if "/" in path:
        return path.split("/", 1)[0]
    leaf = re.sub(r"@\d+$", "", path)
    match = STAGE.match(leaf)
    if match and match.end() < len(leaf):
        return match.group()
    return None


def _stages(paths: list[str]) -> list[dict[str, Any]] | None:
    """Runs of consecutive layers in one stage, when the names group a big model into a
    readable number of stages; None otherwise."""
    runs: list[dict[str, Any]] = []
    for index, path in enumerate(paths):
        key = _stage_key(path)
        if runs and (key is None and runs[-1]["name"] is not None or key == runs[-1]["name"]):
            runs[-1]["end"] = index
        else:
            runs.append({"name": key, "start": index, "end": index})
    named = [run for run in runs if run["name"] is not None]
    if not 2 <= len(runs) <= 40 or len(named) < 2 or len(paths) / len(runs) < 3:
        return None
    return runs


def chart(layers: list[dict[str, Any]], flagged: dict[str, str],
          ids: Callable[[int], dict[str, str]] | None = None) -> dict[str, Any] | None:
    """Geometry of the per-layer gradient chart, or None when no layer has a number.
    `ids(k)` gives the chart column's and the layer row's ids for the k-th layer (1-based,
    in `layers`)."""
    indexed = list(enumerate(layers, 1))
    weighted = [(k, layer) for k, layer in indexed if layer.get("weighted")]
    rows = weighted or indexed
    rows = [(k, layer) for k, layer in rows
            if any(_log(series.value(layer)) is not None for series in SERIES)]
    if not rows:
        return None
    exponents = [value for _, layer in rows for series in SERIES
                 if (value := _log(series.value(layer))) is not None]
    low, high = _decades(exponents)
    left, top = MARGIN["left"], MARGIN["top"]
    width = CHART_WIDTH - MARGIN["left"] - MARGIN["right"]
    count = len(rows)
    step = width / count
    paths = [str(layer.get("path", "")) for _, layer in rows]

    def x_of(position: int) -> float:
        return round(left + step * (position + 0.5), 2)

    def rows_position(x: float) -> int:
        return min(count - 1, max(0, int((x - left) / step)))

    y_of, ticks = _log_axis(low, high, top, PLOT_HEIGHT)
    bottom = top + PLOT_HEIGHT
    bands = []
    band = _vanishing_band(low, high, y_of)
    if band:
        bands.append(band)
    if high > 3:
        y_top, y_bottom = y_of(high), y_of(max(3, low))
        bands.append({"y": y_top, "height": round(y_bottom - y_top, 2),
                      "label_y": round(y_top + 13, 2), "label": "exploding (above 1e3)"})

    # Markers while they stay apart; beyond MARKED_LAYERS the lines alone (a point with no
    # neighbour on its line keeps its marker), and hovering a layer's column gives its values.
    radius = 3.2 if count <= 60 else 2.2
    series_out = []
    markers: list[list[dict[str, Any]]] = [[] for _ in rows]
    for series in SERIES:
        points, path, pen_down = [], [], False
        for position, (_, layer) in enumerate(rows):
            exponent = _log(series.value(layer))
            if exponent is None:
                pen_down = False
                continue
            x, y = x_of(position), y_of(exponent)
            clipped = "low" if exponent < low else "high" if exponent > high else None
            path.append(f"{'L' if pen_down else 'M'}{x} {y}")
            pen_down = True
            r = {"estimate": radius, "stored": radius + 1.6, "gradient": radius * 0.6,
                 "measured": radius}[series.key]
            point = {"x": x, "y": y, "clipped": clipped, "r": round(r, 2),
                     "corner_x": round(x - r, 2), "corner_y": round(y - r, 2),
                     "side": round(2 * r, 2), "css": series.key,
                     "title": f"{paths[position]}: {series.label.lower()} "
                              f"{format_number(series.value(layer))}"}
            points.append(point)
            if count <= MARKED_LAYERS:
                markers[position].append(point)
        if count > MARKED_LAYERS:
            for index, point in enumerate(path):
                alone = point.startswith("M") and (index + 1 == len(path)
                                                   or path[index + 1].startswith("M"))
                if alone:
                    marker = points[index]
                    markers[rows_position(marker["x"])].append(marker)
        if points:
            series_out.append({"label": series.label, "css": series.key, "source": series.source,
                               "path": " ".join(path), "points": points,
                               "draw": DRAW_ORDER.index(series.key)})
    drawn = {s["css"] for s in series_out}
    lines = sorted(series_out, key=lambda s: s["draw"])

    columns = []
    for position, (k, layer) in enumerate(rows):
        values = [f"{series.label.lower()} {format_number(series.value(layer))}"
                  for series in SERIES if series.key in drawn
                  and _log(series.value(layer)) is not None]
        severity = flagged.get(paths[position])
        title = f"#{k} {paths[position]}" + (f" (flagged: {severity})" if severity else "")
        columns.append({"index": k, "x": round(left + step * position, 2),
                        "width": round(step, 2), "severity": severity,
                        "title": title + "\n" + "\n".join(values),
                        "markers": markers[position], **(ids(k) if ids else {})})

    highlights = []
    for position, (_, layer) in enumerate(rows):
        severity = flagged.get(paths[position])
        if severity:
            highlights.append({"x": round(x_of(position) - step / 2, 2),
                               "width": round(max(step, 2.0), 2), "severity": severity,
                               "title": f"{paths[position]}: flagged ({severity})"})

    axis = _x_axis(rows, paths, x_of, step, bottom)
    height = round(bottom + axis["margin"], 2)
    return {"width": CHART_WIDTH, "height": height, "left": left, "top": top,
            "right": left + width, "bottom": bottom, "ticks": ticks, "bands": bands,
            "series": series_out, "lines": lines, "columns": columns, "highlights": highlights,
            "axis": axis, "count": count, "radius": radius, "weighted": bool(weighted),
            "named_labels": axis["mode"] == "names"}


def _x_axis(rows, paths: list[str], x_of, step: float, bottom: float) -> dict[str, Any]:
    """The x axis: every layer's name (rotated when they do not fit side by side) for up to
    `NAMED_LAYERS` layers; beyond, the model's stages when its names show them, else the
    names of layers at a round interval."""
    count = len(rows)
    stages: list[dict[str, Any]] = []
    interval = 1 if count <= NAMED_LAYERS else _round_step(count, MAX_TICKS)
    chosen = list(range(0, count, interval))
    if chosen[-1] != count - 1:  # always the output end, in place of a label it would crowd
        if count - 1 - chosen[-1] < interval / 2 and len(chosen) > 1:
            chosen.pop()
        chosen.append(count - 1)
    runs = _stages(paths) if count > NAMED_LAYERS else None
    mode = "names" if count <= NAMED_LAYERS else "stages" if runs else "sampled"
    if runs:
        left_edge = x_of(0) - step / 2
        for number, run in enumerate(runs):
            x0 = round(left_edge + step * run["start"], 2)
            x1 = round(left_edge + step * (run["end"] + 1), 2)
            name = run["name"] or ""
            fits = len(name) * CHAR_WIDTH <= (x1 - x0) - 4
            stages.append({"x": x0, "width": round(x1 - x0, 2),
                           "middle": round((x0 + x1) / 2, 2), "name": name,
                           "label": name if fits else "",
                           "title": f"{name or 'no stage'}: layers #{rows[run['start']][0]}"
                                    f" to #{rows[run['end']][0]} "
                                    f"({plural(run['end'] - run['start'] + 1, 'weighted layer')})",
                           "shade": number % 2 == 1, "first": number == 0})
    if mode == "stages":
        texts = {p: f"#{rows[p][0]}" for p in chosen}
        shared = ""
    else:
        names, shared = _distinct([paths[p].rsplit("/", 1)[-1] for p in chosen])
        texts = {p: _short(name) for p, name in zip(chosen, names)}
    longest = max(len(text) for text in texts.values())
    rotate = mode != "stages" and longest * CHAR_WIDTH > step * interval - 2
    labels = []
    for p in chosen:
        x, anchor = x_of(p), "middle"
        half = len(texts[p]) * CHAR_WIDTH / 2
        if not rotate and x + half > CHART_WIDTH - 2:  # keep the end labels inside the chart
            x, anchor = CHART_WIDTH - 2, "end"
        elif not rotate and x - half < 2:
            x, anchor = 2, "start"
        labels.append({"x": round(x, 2), "y": round(bottom + (12 if rotate else 14), 2),
                       "tick_x": x_of(p), "anchor": anchor, "text": texts[p],
                       "index": rows[p][0], "tick": mode != "names"})
    if mode == "stages":
        margin = 70
        title = "weighted layers by stage, input → output (#: the row in the layer stack)"
    else:
        label_height = longest * CHAR_WIDTH * 0.71 + 8 if rotate else 14
        margin = round(label_height + 30, 2)
        notes = [f"named every {interval} layers"] if mode == "sampled" else []
        if shared:
            notes.append(f"names: {shared}")
        title = "weighted layers, input → output" + (f" ({'; '.join(notes)})" if notes else "")
    return {"mode": mode, "labels": labels, "rotate": rotate, "stages": stages,
            "margin": margin, "title": title, "title_y": round(bottom + margin - 8, 2),
            "stage_y": round(bottom + 31, 2)}


# --- the per-step chart of a recurrent finding ---------------------------------------------

STEP_CHART_WIDTH = 560
STEP_MARGIN = {"left": 58, "right": 14, "top": 12, "bottom": 40}
STEP_PLOT_HEIGHT = 140


def _number(value: Any) -> float | None:
    number = as_float(value)
    return None if number is None or math.isnan(number) else number


def step_chart(finding: Finding, layer: dict[str, Any] | None) -> dict[str, Any] | None:
    """The loss gradient at a recurrent layer's input per time step, relative to the last
    step, for a finding whose evidence or probe verdict holds what the probe measured through
    time (GL905, GL401's verdict): every step when the report holds them (`STEPS_FIELD` in
    the layer's measurements), otherwise the two ends it holds (the first and the last step)
    joined by the geometric fade they imply. None for any other finding."""
    layer = layer or {}
    measured = finding.probe.get("measured") if isinstance(finding.probe, dict) else None
    sources = [source for source in (finding.evidence, measured)
               if isinstance(source, dict) and "first_last_ratio" in source]
    steps_data = _measured(layer).get(STEPS_FIELD)
    bidirectional = layer.get("class") == "Bidirectional"
    values: list[float] | None = None
    if isinstance(steps_data, list) and len(steps_data) >= 2:
        numbers = [_number(v) for v in steps_data]
        if bidirectional:
            reference = max((v for v in numbers if v is not None and math.isfinite(v)),
                            default=None)
        else:
            reference = numbers[-1]
        if reference and reference > 0 and math.isfinite(reference):
            values = [v / reference if v is not None else None for v in numbers]
    if not sources or (values is None and bidirectional):
        return None  # only a finding about the gradient through time, as measured
    source = sources[0] if sources else {}
    if values is not None:
        length = len(values)
    else:
        length = int(_number(source.get("time_steps")) or 0)
        ratio = _number(source.get("first_last_ratio"))
        if length < 2 or ratio is None:
            return None
    decay = _number(source.get("decay_per_step"))

    left, top = STEP_MARGIN["left"], STEP_MARGIN["top"]
    width = STEP_CHART_WIDTH - left - STEP_MARGIN["right"]
    bottom = top + STEP_PLOT_HEIGHT

    def x_of(step_number: int) -> float:  # 1 … length
        return round(left + width * (step_number - 1) / (length - 1), 2)

    if values is not None:
        known = [(n, _log(v)) for n, v in enumerate(values, 1) if _log(v) is not None]
    else:
        known = [(1, _log(ratio)), (length, 0.0)]
    exponents = [e for _, e in known]
    low, high = _decades(exponents, minimum_span=4)
    if any(e == -math.inf for e in exponents):
        low -= 1  # room under the lowest finite value for the zeros, drawn at the bottom
    y_of, ticks = _log_axis(low, high, top, STEP_PLOT_HEIGHT)
    points = []
    for n, exponent in known:
        value = 10 ** exponent if math.isfinite(exponent) else (0.0 if exponent < 0 else math.inf)
        points.append({"x": x_of(n), "y": y_of(exponent),
                       "clipped": "low" if exponent < low else "high" if exponent > high else None,
                       "title": f"step {n} of {length}: {format_number(value)} of the last "
                                "step's" if not bidirectional else
                                f"step {n} of {length}: {format_number(value)} of the strongest"})
    line = ""
    if values is not None:
        segments, pen_down = [], False
        for n, value in enumerate(values, 1):
            exponent = _log(value)
            if exponent is None:
                pen_down = False
                continue
            segments.append(f"{'L' if pen_down else 'M'}{x_of(n)} {y_of(exponent)}")
            pen_down = True
        line = " ".join(segments)
        implied = ""
    else:
        # A straight line on a log axis is a geometric fade: what the two ends imply.
        implied = f"M{points[0]['x']} {points[0]['y']} L{points[1]['x']} {points[1]['y']}" \
            if ratio and ratio > 0 and math.isfinite(ratio) else ""
    interval = _round_step(length, 10)
    x_ticks = sorted({1, length, *range(interval, length, interval)})
    if len(x_ticks) > 2 and x_ticks[-1] - x_ticks[-2] < interval / 2:
        x_ticks.pop(-2)
    band = _vanishing_band(low, high, y_of)
    return {
        "width": STEP_CHART_WIDTH, "height": bottom + STEP_MARGIN["bottom"],
        "left": left, "right": left + width, "top": top, "bottom": bottom,
        "ticks": ticks, "x_ticks": [{"x": x_of(n), "label": str(n)} for n in x_ticks],
        "band": band, "points": points, "line": line, "implied": implied,
        "every_step": values is not None, "markers": values is None or length <= 120,
        "length": length, "decay": format_number(decay) if decay is not None else None,
        "ratio": format_number(ratio) if values is None else None,
        "layer": finding.layer or "", "bidirectional": bidirectional,
    }


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
        items.append((str(key).replace("_", " "), text))
    return items


def _log_position(value: Any, low: float = -6.0, high: float = 1.0) -> float | None:
    """Where a value sits on a log axis from 10^low to 10^high, as a percentage."""
    exponent = _log(value)
    if exponent is None:
        return None
    clamped = min(max(exponent, low), high)
    return round(100 * (clamped - low) / (high - low), 1)


class _Ids:
    """Every id and link target of one model, from positions only."""

    def __init__(self, prefix: str, number: int):
        self.model = f"{prefix}m{number}"

    def row(self, k: int) -> str:
        return f"{self.model}-layer-{k}"

    def point(self, k: int) -> str:
        return f"{self.model}-chart-{k}"

    def finding(self, j: int) -> str:
        return f"{self.model}-finding-{j}"


def _file_view(result: FileResult, number: int, prefix: str) -> dict[str, Any]:
    ids = _Ids(prefix, number)
    rank = {severity: index for index, severity in enumerate(SEVERITY_ORDER)}
    findings = sorted(result.findings, key=lambda f: rank.get(f.severity, len(rank)))
    flagged: dict[str, str] = {}
    codes: dict[str, list[str]] = {}
    for finding in findings:
        for path in [finding.layer, *finding.layers]:
            if not path:
                continue
            flagged.setdefault(path, finding.severity)
            if finding.code not in codes.setdefault(path, []):
                codes[path].append(finding.code)
    layers = [layer for layer in result.layers if isinstance(layer, dict)]
    row_of: dict[str, int] = {}
    for k, layer in enumerate(layers, 1):
        row_of.setdefault(str(layer.get("path", "")), k)
    geometry = chart(layers, flagged, lambda k: {"id": ids.point(k), "row": ids.row(k)})
    charted = {column["index"] for column in geometry["columns"]} if geometry else set()

    def link(path: str | None) -> dict[str, Any] | None:
        k = row_of.get(path) if path else None
        if k is None:
            return None
        return {"path": path, "row": ids.row(k), "point": ids.point(k) if k in charted else None}

    has_measured = any(_measured(layer) for layer in layers)
    has_stored = any(_stored(layer) for layer in layers)
    layer_rows = []
    for k, layer in enumerate(layers, 1):
        estimate, stored, measured = _estimate(layer), _stored(layer), _measured(layer)
        path = str(layer.get("path", ""))
        fraction = measured.get("saturated_fraction")
        if fraction is None:
            fraction = measured.get("dead_fraction")
        weighted = bool(layer.get("weighted"))
        layer_rows.append({
            "index": k,
            "id": ids.row(k),
            "point": ids.point(k) if k in charted else None,
            "path": path,
            "depth": path.count("/"),
            "class": layer.get("class") or "",
            "activation": layer.get("activation") or "",
            "weighted": weighted,
            "severity": flagged.get(path),
            "codes": codes.get(path, []),
            "forward_scale": format_number(estimate.get("forward_scale")),
            "gradient": format_number(estimate.get("gradient")),
            "kernel_gradient": format_number(estimate.get("kernel_gradient")),
            "stored_kernel_gradient": format_number(stored.get("kernel_gradient")),
            "bar": _log_position(estimate.get("kernel_gradient") if weighted
                                 else estimate.get("gradient")),
            "measured_kernel_gradient": format_number(measured.get("kernel_gradient")),
            "measured_bar": _log_position(measured.get("kernel_gradient")),
            "measured_forward_scale": format_number(measured.get("forward_scale")),
            "measured_fraction": format_fraction(fraction),
            "measured_fraction_kind": "saturated" if measured.get("saturated_fraction") is not None
            else "dead" if measured.get("dead_fraction") is not None else "",
        })
    layer_by_path = {str(layer.get("path", "")): layer for layer in reversed(layers)}
    views = []
    for j, finding in enumerate(findings, 1):
        views.append(_finding_view(finding, ids.finding(j), link,
                                   layer_by_path.get(finding.layer or "")))
    groups = []
    for severity in SEVERITY_ORDER:
        members = [view for view in views if view["severity"] == severity]
        if members:
            groups.append({"severity": severity, "label": SEVERITY_LABELS[severity],
                           "findings": members})
    others = [view for view in views if view["severity"] not in SEVERITY_ORDER]
    if others:
        groups.append({"severity": "info", "label": "Other", "findings": others})
    model = result.model if isinstance(result.model, dict) else {}
    probe = result.probe if isinstance(result.probe, dict) else None
    facts = [("Format", result.format or "–")]
    if model:
        facts += [("Model", f"{model.get('name') or '–'} ({model.get('class') or '–'})"),
                  ("Layers", str(model.get("layers", "–"))),
                  ("Parameters", f"{model['params']:,}" if isinstance(model.get("params"), int)
                   else "not read"),
                  ]
        if model.get("keras_version"):
            facts.append(("Saved by Keras", str(model["keras_version"])))
    counts = {severity: sum(1 for f in findings if f.severity == severity)
              for severity in SEVERITY_ORDER}
    probe_ran = bool(probe and probe.get("ran"))
    return {
        "id": ids.model,
        "number": number,
        "path": result.path,
        "error": result.error if isinstance(result.error, dict) else None,
        "facts": facts,
        "counts": counts,
        "worst": next((s for s in SEVERITY_ORDER if counts[s]), None),
        "total": sum(counts.values()),
        "groups": groups,
        "notes": list(result.notes),
        "probe": probe,
        "probe_status": _probe_status(probe),
        "probe_ran": probe_ran,
        "layers": layer_rows,
        "has_measured": has_measured,
        "has_stored": has_stored,
        "chart": geometry,
        "caption": _caption(geometry, probe if probe_ran else None),
        "flagged_count": sum(1 for row in layer_rows if row["severity"]),
    }


def _finding_view(finding: Finding, finding_id: str, link, layer: dict[str, Any] | None):
    doc = rule_doc(finding.code)
    probe = finding.probe if isinstance(finding.probe, dict) else None
    spans = [path for path in finding.layers if path]
    return {
        "id": finding_id,
        "code": finding.code,
        "name": finding.name,
        "severity": finding.severity if finding.severity in SEVERITY_ORDER else "info",
        "layer": finding.layer,
        "link": link(finding.layer),
        "layers": [{"path": path, "link": link(path)} for path in spans[:8]],
        "more_layers": len(spans) if len(spans) > 8 else 0,
        "message": finding.message + related_suffix(finding),
        "evidence": _evidence_items(finding.evidence),
        "probe": None if probe is None else {
            "verdict": probe.get("verdict") or "",
            "summary": re.sub(r"^measured:\s*", "", str(probe.get("summary") or "")),
            "measured": _evidence_items(probe.get("measured")),
        },
        "steps": step_chart(finding, layer),
        "summary": doc.summary if doc else "",
        "explanation": doc_html(doc.explanation) if doc and doc.explanation else None,
        "fix": doc_html(doc.fix) if doc and doc.fix else None,
        "automatic_fix": fix_summary(getattr(finding, "fix", None), finding.code),
    }


def _probe_status(probe: dict[str, Any] | None) -> str | None:
    from gradlint.renderers.report_data import probe_status

    return probe_status({"probe": probe}) if probe is not None else None


def _caption(geometry: dict[str, Any] | None, probe: dict[str, Any] | None) -> str:
    """What the chart shows, series by series, as it was drawn."""
    if geometry is None:
        return ""
    drawn = {s["css"]: s for s in geometry["series"]}
    parts = []
    if "estimate" in drawn:
        parts.append(f"Dots: {drawn['estimate']['source']}.")
    if "stored" in drawn:
        parts.append(f"Rings: {drawn['stored']['source']}.")
    if "gradient" in drawn:
        parts.append(f"Dashed: {drawn['gradient']['source']}.")
    if "measured" in drawn:
        how = []
        if probe and probe.get("seeds") is not None:
            how.append(f"median over {plural(int(probe['seeds']), 'seed')}")
        if probe and probe.get("batch") is not None:
            how.append(f"batch {probe['batch']}")
        parts.append(f"Diamonds: {drawn['measured']['source']}"
                     + (f" ({', '.join(how)})" if how else "") + ".")
    return (f"{'Weighted layers' if geometry['weighted'] else 'Layers'} from input to output, "
            "on a log scale relative to the output layer (1 at the loss end). "
            + " ".join(parts)
            + " Hover a layer for its values; click it for its row in the layer stack.")


def _footer(files: list[dict[str, Any]]) -> dict[str, Any]:
    """The footer's account of where the numbers came from, as they did."""
    readable = [file for file in files if not file["error"]]
    stored = sum(1 for file in readable if file["has_stored"])
    asked = [file for file in readable if file["probe"] is not None]
    ran = [file for file in asked if file["probe_ran"]]
    if not readable:
        estimates = ""
    elif stored == len(readable):
        estimates = ("The estimates come from each model's saved configuration (its "
                     "initializers) and from its stored weights, before any training.")
    elif stored:
        estimates = ("The estimates come from each model's saved configuration (its "
                     "initializers), and from the stored weights for "
                     f"{stored} of the {len(readable)} models, before any training.")
    else:
        estimates = ("The estimates come from each model's saved configuration (its "
                     "initializers) only: the stored weights were not read.")
    if ran:
        probe = ("Measured values come from the probe (gradlint --probe): forward and "
                 "backward passes on a synthetic batch"
                 + (f"; it could not run on {len(asked) - len(ran)} of the models, each of "
                    "which says why." if len(ran) < len(asked) else "."))
        suggest = False
    elif asked:
        probe = "The probe was asked for but could not run: each model says why."
        suggest = False
    else:
        probe = ""
        suggest = bool(readable)
    return {"estimates": estimates, "probe": probe, "suggest_probe": suggest}


def view(report, prefix: str = "gl-") -> dict[str, Any]:
    typed = _printable(_typed(report))
    files = [_file_view(result, number, prefix)
             for number, result in enumerate(typed.files, 1)]
    counts = {severity: sum(file["counts"][severity] for file in files)
              for severity in SEVERITY_ORDER}
    models = plural(len(files), "model")
    headline = ", ".join(plural(counts[s], s) for s in SEVERITY_ORDER if counts[s])
    return {
        "version": __version__,
        "files": files,
        "counts": counts,
        "title": f"gradlint report: {models}" + (f", {headline}" if headline else ", no findings"),
        "models": models,
        "headline": headline or "no findings",
        "worst": next((s for s in SEVERITY_ORDER if counts[s]), None),
        "severities": SEVERITY_ORDER,
        "footer": _footer(files),
    }


def _render(report, document: bool) -> str:
    from markupsafe import Markup

    # A page holds one report; a notebook may show several, so each fragment gets its own
    # prefix and their ids never collide.
    prefix = "gl-" if document else f"gl-{secrets.token_hex(4)}-"
    return render_template("report.html.j2", autoescape=True, document=document,
                           css=Markup(read_template("report.css")), **view(report, prefix))


def render(report, options=None) -> str:
    return _render(report, document=True)


def render_fragment(report) -> str:
    """The report without ``<html>``/``<head>``, with its styles scoped to the report, for
    notebooks."""
    return _render(report, document=False)
