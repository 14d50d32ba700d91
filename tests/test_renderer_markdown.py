"""Markdown report: parsed with a CommonMark parser with GitHub's table extension, its
tables render as tables, every finding is in them, details are in <details> sections."""

from __future__ import annotations

import shutil
from html.parser import HTMLParser

import pytest
from markdown_it import MarkdownIt

import gradlint
import report_models
from conftest import run_gradlint
from gradlint.renderers import render


class Tables(HTMLParser):
    """The tables of an HTML page as lists of rows of cell texts, and the <details> count."""

    def __init__(self):
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.details = 0
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "details":
            self.details += 1

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def to_html(markdown: str) -> str:
    return MarkdownIt("commonmark").enable(["table", "strikethrough"]).render(markdown)


def parse(markdown: str) -> Tables:
    tables = Tables()
    tables.feed(to_html(markdown))
    return tables


@pytest.fixture(scope="module")
def paths(save_model):
    return [save_model(f"renderer_markdown_{name}", build) for name, build in
            (("deep", report_models.deep_sigmoid), ("rnn", report_models.simple_rnn),
             ("clean", report_models.relu_he))]


@pytest.fixture(scope="module")
def report(paths):
    return gradlint.lint([str(path) for path in paths])


def test_tables_render_as_tables(report, paths):
    markdown = render("markdown", report)
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
    html = to_html(render("markdown", report))
    assert html.count("<details>") == 3 and html.count("</details>") == 3
    assert "<strong>Why it matters</strong>" in html
    assert "<strong>What to do</strong>" in html
    assert "<code>HeNormal</code>" in html  # GL101's fix, rendered from the rule's docs
    assert "clipnorm=1.0" in html  # GL402's fix is a code block


def test_cells_with_pipes_and_newlines_keep_the_table_intact(report):
    data = report.to_dict()
    data["files"][0]["findings"][0]["message"] = "a | b\nc <script> *d* [e](f)"
    tables = parse(render("markdown", data))
    findings = tables.tables[1]
    assert all(len(row) == 5 for row in findings)
    assert findings[1][4] == "a | bc <script> *d* [e](f)"  # <br> ends the line in the cell
    assert "<script>" not in to_html(render("markdown", data))


def test_probe_columns_when_the_probe_ran(report):
    data = report.to_dict()
    data["files"][0] = report_models.probe_fields(data["files"][0])
    tables = parse(render("markdown", data))
    assert tables.tables[0][1][5] == "measured"
    assert tables.tables[1][0][-1] == "Probe"
    assert tables.tables[1][1][-1] == "confirmed"
    deep_layers = tables.tables[2]
    assert "Measured kernel gradient" in deep_layers[0]
    assert deep_layers[1][deep_layers[0].index("Saturated / dead")] == "62% saturated"
    html = to_html(render("markdown", data))
    assert "probe ran: 3 seeds, batch 8, training mode" in html


def test_no_findings(paths):
    markdown = render("markdown", gradlint.lint(str(paths[2])))
    assert "No gradient-flow risks found." in markdown
    assert len(parse(markdown).tables) == 2  # the summary and the model's layer table


def test_report_option_writes_markdown_beside_the_console_output(paths, tmp_path):
    shutil.copy(paths[0], tmp_path / "deep.keras")
    result = run_gradlint("-j", "1", "--report", "report.md", "deep.keras", cwd=tmp_path)
    assert result.returncode == 1
    assert "deep.keras::hidden_1: GL101 [error]" in result.stdout
    markdown = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert markdown.startswith("## gradlint report")
    assert "<table>" in to_html(markdown)
