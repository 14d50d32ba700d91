"""Markdown: parsed with a CommonMark parser with GitHub's table extension, its tables render
as tables, every finding is in them, details are in <details> sections.

Two modes: the full report (`render_full`: every model, finding and layer table) and the
pull-request comment (`render`, what ``--output-format markdown`` writes), which always fits
GitHub's 65,536-character limit on a comment: flagged models first, the worst findings
first, layer tables only for flagged models, and a note of what was left out."""

from __future__ import annotations

import copy
import re
import shutil
from html.parser import HTMLParser

import pytest
from markdown_it import MarkdownIt

import gradlint
import report_models
import conftest
from conftest import keras3, run_gradlint
from gradlint.findings import SEVERITY_RANK, Finding
from gradlint.renderers import render
from gradlint.renderers import markdown as markdown_renderer
from gradlint.renderers.markdown import COMMENT_LIMIT, length, render_full
from gradlint.report import FileResult

PREFIX = "test_renderer_markdown"


class Tables(HTMLParser):
    """The tables of an HTML page as lists of rows of cell texts, and the <details> count."""

    def __init__(self):
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.details = 0
        self.summaries: list[str] = []
        self._cell: list[str] | None = None
        self._summary: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "details":
            self.details += 1
        elif tag == "summary":
            self._summary = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "summary" and self._summary is not None:
            self.summaries.append("".join(self._summary).strip())
            self._summary = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        if self._summary is not None:
            self._summary.append(data)


def to_html(markdown: str) -> str:
    return MarkdownIt("commonmark").enable(["table", "strikethrough"]).render(markdown)


def parse(markdown: str) -> Tables:
    tables = Tables()
    tables.feed(to_html(markdown))
    return tables


def typed_file(data: dict) -> FileResult:
    """A FileResult from one file's JSON-contract dict (as `report_models.probe_fields`
    returns it)."""
    return FileResult(path=data["path"], format=data.get("format"), model=data.get("model"),
                      layers=data.get("layers") or [],
                      findings=[Finding.from_dict(f) for f in data.get("findings") or []],
                      notes=list(data.get("notes") or []), error=data.get("error"),
                      probe=data.get("probe"))


def scale_class():
    """A registered custom layer class, defined once per session: GL002 flags every layer
    of it, as ConvNeXt's LayerScale."""
    return conftest.scale_layer_class(keras3(), PREFIX, "LayerScale")


def custom_blocks(blocks: int = 12):
    """ReLU/He dense layers, each followed by a custom LayerScale layer: `blocks` GL002
    findings for one class in one model, and GL302 (a warning: 13 weighted layers in a row
    without normalization)."""
    keras = keras3()
    layer_scale = scale_class()
    x = inputs = keras.Input((32,))
    for index in range(blocks):
        x = keras.layers.Dense(32, activation="relu", kernel_initializer="he_normal",
                               name=f"dense_{index}")(x)
        x = layer_scale(1.0, name=f"scale_{index}")(x)
    return keras.Model(inputs, keras.layers.Dense(1, name="head")(x), name="custom_blocks")


@pytest.fixture(scope="module")
def paths(save_model):
    return [save_model(f"renderer_markdown_{name}", build) for name, build in
            (("deep", report_models.deep_sigmoid), ("rnn", report_models.simple_rnn),
             ("clean", report_models.relu_he))]


@pytest.fixture(scope="module")
def report(paths):
    return gradlint.lint([str(path) for path in paths])


# --- the full report --------------------------------------------------------------------------

def test_tables_render_as_tables(report, paths):
    markdown = render_full(report)
    html = to_html(markdown)
    assert "<table>" in html
    tables = parse(markdown)
    summary, findings = tables.tables[0], tables.tables[1]
    assert summary[0] == ["Model", "Layers", "Errors", "Warnings", "Info", "Probe"]
    assert [row[0] for row in summary[1:]] == [str(path) for path in paths]
    assert summary[1][2] == "1" and summary[2][2:4] == ["1", "2"]
    assert summary[3][2:5] == ["", "", ""]
    assert findings[0] == ["Severity", "Rule", "Model", "Layer", "Message"]
    assert len(findings) - 1 == len(report.findings) == 4
    for finding in report.findings:
        row = next(row for row in findings[1:] if row[1] == f"{finding.code} {finding.name}")
        assert row[3] == (finding.layer or "")
        # The escaped message reads back exactly: no emphasis from underscores, no links.
        assert row[4] == finding.message
    # One layer table per model, inside its <details> section.
    assert tables.details == 3
    assert len(tables.tables) == 2 + 3
    deep_layers = tables.tables[2]
    assert deep_layers[0][:6] == ["#", "Layer", "Class", "Activation", "Gradient",
                                  "Kernel gradient"]
    assert [row[1] for row in deep_layers[1:]] == [f"hidden_{i}" for i in range(1, 11)] + \
        ["classifier"]
    assert deep_layers[1][-1] == "GL101"


def test_details_hold_explanation_and_fix(report):
    html = to_html(render_full(report))
    assert html.count("<details>") == 3 and html.count("</details>") == 3
    assert "<strong>Why it matters</strong>" in html
    assert "<strong>What to do</strong>" in html
    assert "<code>HeNormal</code>" in html  # GL101's fix, rendered from the rule's docs
    assert "clipnorm=1.0" in html  # GL402's fix is a code block


def test_cells_with_pipes_and_newlines_keep_the_table_intact(report):
    hostile = copy.deepcopy(report)
    hostile.files[0].findings[0].message = "a | b\nc <script> *d* [e](f)"
    for markdown in (render_full(hostile), render("markdown", hostile)):
        tables = parse(markdown)
        findings = tables.tables[1]
        assert all(len(row) == 5 for row in findings)
        row = next(row for row in findings[1:] if row[1].startswith("GL101"))
        assert row[4] == "a | bc <script> *d* [e](f)"  # <br> ends the line in the cell
        assert "<script>" not in to_html(markdown)
    assert parse(render_full(hostile)).tables[1][1][4] == "a | bc <script> *d* [e](f)"


@pytest.fixture(scope="module")
def probed(report):
    measured = copy.deepcopy(report)
    measured.files[0] = typed_file(report_models.probe_fields(report.files[0].to_dict()))
    return measured


def test_probe_columns_when_the_probe_ran(probed):
    tables = parse(render_full(probed))
    assert tables.tables[0][1][5] == "measured"
    assert tables.tables[1][0][-1] == "Probe"
    assert tables.tables[1][1][-1] == "confirmed"
    deep_layers = tables.tables[2]
    assert "Measured kernel gradient" in deep_layers[0]
    assert deep_layers[1][deep_layers[0].index("Saturated / dead")] == "62% saturated"
    html = to_html(render_full(probed))
    assert "probe ran: 3 seeds, batch 8, training mode" in html


def test_no_findings(paths):
    clean = gradlint.lint(str(paths[2]))
    markdown = render_full(clean)
    assert "No gradient-flow risks found." in markdown
    assert len(parse(markdown).tables) == 2  # the summary and the model's layer table
    # The comment has no layer table for a model without findings, and says so.
    comment = render("markdown", clean)
    assert "No gradient-flow risks found." in comment
    assert len(parse(comment).tables) == 1
    assert "the layer tables of 1 model without findings" in comment


def test_report_option_writes_markdown_beside_the_console_output(paths, tmp_path):
    shutil.copy(paths[0], tmp_path / "deep.keras")
    result = run_gradlint("-j", "1", "--report", "report.md", "deep.keras", cwd=tmp_path)
    assert result.returncode == 1
    assert "deep.keras::hidden_1: GL101 [error]" in result.stdout
    markdown = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert markdown.startswith("## gradlint report")
    assert "<table>" in to_html(markdown)


# --- the pull-request comment -----------------------------------------------------------------

def test_comment_on_a_few_models(report, paths):
    markdown = render("markdown", report)
    tables = parse(markdown)
    summary, findings = tables.tables[0], tables.tables[1]
    # Flagged models first, worst first: the RNN has an error and two warnings, the sigmoid
    # stack one error; the clean model last.
    assert [row[0] for row in summary[1:]] == [str(paths[1]), str(paths[0]), str(paths[2])]
    assert findings[0] == ["Severity", "Rule", "Model", "Layer", "Message"]
    assert [row[0] for row in findings[1:]] == ["❌ error", "❌ error", "⚠️ warning",
                                                 "⚠️ warning"]
    for finding in report.findings:
        row = next(row for row in findings[1:] if row[1] == f"{finding.code} {finding.name}")
        assert row[4] == finding.message
    # A <details> section per flagged model, with its layer table; none for the clean one;
    # then each rule's explanation once.
    model_sections = [s for s in tables.summaries if s.startswith(str(paths[0]))
                      or s.startswith(str(paths[1])) or s.startswith(str(paths[2]))]
    assert model_sections == [f"{paths[1]}: 1 error, 2 warnings", f"{paths[0]}: 1 error"]
    assert len(tables.tables) == 2 + 2
    assert [row[1] for row in tables.tables[3][1:]][:2] == ["hidden_1", "hidden_2"]
    rules = [s for s in tables.summaries if s not in model_sections]
    assert [s.split()[0] for s in rules] == ["GL101", "GL401", "GL402", "GL403"]
    html = to_html(markdown)
    assert "<code>HeNormal</code>" in html and "clipnorm=1.0" in html
    assert "Left out of this comment:" in markdown
    assert "the layer tables of 1 model without findings" in markdown
    assert "to fit GitHub" not in markdown  # nothing else had to go


def test_comment_shows_the_probe_verdict_with_its_measurement(probed):
    tables = parse(render("markdown", probed))
    findings = tables.tables[1]
    assert findings[0][-1] == "Probe"
    gl101 = next(row for row in findings[1:] if row[1].startswith("GL101"))
    assert gl101[-1] == ("confirmed: first/last kernel-gradient ratio 3.1e-07 measured over "
                         "3 seeds")
    assert "probe ran: 3 seeds, batch 8, training mode" in to_html(render("markdown", probed))


@pytest.fixture(scope="module")
def directory(save_model, tmp_path_factory):
    """40 real model files: 8 copies each of five saved models, two of them large flagged
    ones (a 60-layer sigmoid stack and 12 custom-layer blocks), so the full report is far
    over GitHub's limit."""
    sources = {
        "deep": save_model("renderer_markdown_dir_deep", report_models.deep_sigmoid),
        "deeper": save_model("renderer_markdown_dir_deep60",
                             lambda: report_models.deep_sigmoid(60)),
        "rnn": save_model("renderer_markdown_dir_rnn", report_models.simple_rnn),
        "custom": save_model("renderer_markdown_dir_custom", custom_blocks),
        "clean": save_model("renderer_markdown_dir_clean", report_models.relu_he),
    }
    root = tmp_path_factory.mktemp("renderer_markdown_dir") / "models"
    root.mkdir()
    names = list(sources)
    for index in range(40):
        name = names[index % len(names)]
        shutil.copy(sources[name], root / f"model_{index:02d}_{name}.keras")
    return root


@pytest.fixture(scope="module")
def many(directory):
    linted = gradlint.lint(str(directory), jobs=1)
    assert len(linted.files) == 40 and not any(result.unreadable for result in linted.files)
    return linted


def _is_flagged(result) -> bool:
    return bool(result.findings) or result.probe_failed


def test_comment_of_40_models_fits_githubs_limit(many):
    full = render_full(many)
    assert len(full) > 2 * COMMENT_LIMIT  # what the comment has to fit
    markdown = render("markdown", many)
    assert len(markdown) <= COMMENT_LIMIT and length(markdown) <= COMMENT_LIMIT
    # Nearly all of the room is used.
    assert len(markdown) > COMMENT_LIMIT - 8_000
    tables = parse(markdown)
    by_path = {result.path: result for result in many.files}
    # The summary: flagged models first, worst first; all 40 are listed here.
    rows = tables.tables[0][1:]
    listed = [by_path[row[0]] for row in rows]
    flags = [_is_flagged(result) for result in listed]
    assert flags == sorted(flags, reverse=True) and any(flags) and not all(flags)
    badness = [(int(row[2] or 0), int(row[3] or 0), int(row[4] or 0)) for row in rows]
    assert badness == sorted(badness, reverse=True)
    # The findings: worst first, errors before warnings before info.
    findings = tables.tables[1][1:]
    ranks = [SEVERITY_RANK[row[0].split()[-1]] for row in findings]
    assert ranks == sorted(ranks, reverse=True) and ranks[0] == SEVERITY_RANK["error"]
    # Layer tables only for flagged models, in <details> sections.
    sections = [summary.split(": ")[0] for summary in tables.summaries
                if summary.split(": ")[0] in by_path]
    assert sections and all(_is_flagged(by_path[path]) for path in sections)
    assert len(sections) < sum(1 for result in many.files if _is_flagged(result))
    assert markdown.count("<details>") == markdown.count("</details>")
    # ... and the note of what was left out, pointing to the full report.
    note = re.search(r"\*\*Left out of this comment:\*\* (.*)", markdown)
    assert note, markdown[-2000:]
    assert "the layer tables of 8 models without findings" in note.group(1)
    assert "to fit GitHub's limit of 65,536 characters" in note.group(1)
    assert "sections of" in note.group(1) or "layer table" in note.group(1)
    assert "--report gradlint-report.html" in note.group(1)


def test_comment_collapses_repeated_custom_layers(many):
    findings = parse(render("markdown", many)).tables[1][1:]
    unknown = [row for row in findings if row[1].startswith("GL002")]
    # One row per model for its 12 LayerScale layers, not 12.
    assert unknown and all(row[3] == "scale_0 (+11 more)" for row in unknown)
    assert len({row[2] for row in unknown}) == len(unknown)
    assert "11 more layers of class LayerScale likewise: 'scale_1', 'scale_2', 'scale_3', " \
           "'scale_4', …, 'scale_11'" in unknown[0][4]


@pytest.mark.parametrize("limit", [40_000, 12_000, 4_000, 1_500])
def test_comment_leaves_out_the_least_important_first(many, limit):
    markdown = markdown_renderer.render(many, limit=limit)
    assert length(markdown) <= limit
    note = re.search(r"\*\*Left out of this comment:\*\* (.*)", markdown).group(1)
    assert f"GitHub's limit of {limit:,} characters" in note
    tables = parse(markdown)
    by_path = {result.path: result for result in many.files}
    summary_rows = [row for table in tables.tables if table[0][0] == "Model"
                    for row in table[1:]]
    finding_rows = [row for table in tables.tables if table[0][0] == "Severity"
                    for row in table[1:]]
    ranks = [SEVERITY_RANK[row[0].split()[-1]] for row in finding_rows]
    # What is shown is the worst: errors before warnings before info ...
    assert ranks == sorted(ranks, reverse=True)
    severe_left_out = re.search(r"\b\d+ (errors?|warnings?)\b", note)
    # ... and nothing of lower priority is shown while an error or warning is left out:
    # not an info finding, not a model's section (the only bold text).
    if severe_left_out:
        assert SEVERITY_RANK["info"] not in ranks
        assert "<b>" not in markdown
    # The flagged models' summary rows come before the clean ones.
    flags = [_is_flagged(by_path[row[0]]) for row in summary_rows]
    assert flags == sorted(flags, reverse=True)
    if limit == 1_500:
        assert severe_left_out, note
    if limit == 40_000:
        assert not severe_left_out and "<b>" in markdown


def test_comment_shows_the_runs_warnings(report):
    warned = copy.deepcopy(report)
    warned.warnings = [f"checkpoints/{index}: no Keras model in this directory"
                       for index in range(7)]
    markdown = render("markdown", warned)
    assert "- warning: checkpoints/0: no Keras model in this directory" in markdown
    assert "checkpoints/5" not in markdown and "- and 2 more warnings" in markdown


def test_comment_keeps_every_piece_whole(many):
    """Rows, sections and <details> are never cut in the middle."""
    for limit in (65_536, 20_000, 3_000):
        markdown = markdown_renderer.render(many, limit=limit)
        assert markdown.count("<details>") == markdown.count("</details>")
        for table in parse(markdown).tables:
            assert all(len(row) == len(table[0]) for row in table)


def test_cli_markdown_is_the_comment(directory, tmp_path):
    result = run_gradlint("--output-format", "markdown", "-j", "2", "-o", "comment.md",
                          str(directory), cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    comment = (tmp_path / "comment.md").read_text(encoding="utf-8")
    assert comment.startswith("## gradlint report")
    assert length(comment) <= COMMENT_LIMIT
    assert "**Left out of this comment:**" in comment


def test_the_full_report_is_a_format_of_its_own(tmp_path):
    """`--output-format markdown-full` prints every model with its layer table; the
    default `markdown` is the comment that fits a pull request."""
    from conftest import REPO, run_gradlint

    full = run_gradlint("--isolated", "--exit-zero", "--output-format", "markdown-full",
                        REPO / "examples")
    comment = run_gradlint("--isolated", "--exit-zero", "--output-format", "markdown",
                           REPO / "examples")
    assert full.returncode == comment.returncode == 0
    assert full.stdout.count("| hidden_0 |") >= comment.stdout.count("| hidden_0 |")
    assert "residual_mlp" in full.stdout
