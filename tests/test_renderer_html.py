"""HTML report: self-contained, several models, findings grouped by severity with the rules'
explanations, the layer stack with flagged layers, a log-scale SVG chart with the probe's
measurements beside the estimate. (tests/test_renderer_html_browser.py opens it in Chromium.)"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser

import pytest

import gradlint
import report_models
from conftest import run_gradlint
from gradlint.renderers import render
from gradlint.renderers.html import chart, doc_html


class Page(HTMLParser):
    """Tags with their attributes, text, and whether the tags nest properly."""

    VOID = {"meta", "br", "img", "input", "link", "hr", "circle", "rect", "line", "path"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.stack: list[str] = []
        self.mismatched: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag):
        if tag in self.VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.mismatched.append(tag)
        else:
            self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)

    def all(self, tag, **attrs):
        return [a for t, a in self.tags if t == tag
                and all(set(v.split()) <= set((a.get(k) or "").split())
                        for k, v in attrs.items())]


def page_of(html: str) -> Page:
    page = Page()
    page.feed(html)
    page.close()
    return page


@pytest.fixture(scope="module")
def paths(save_model):
    return [save_model(f"renderer_html_{name}", build) for name, build in
            (("deep", report_models.deep_sigmoid), ("rnn", report_models.simple_rnn),
             ("clean", report_models.relu_he))]


@pytest.fixture(scope="module")
def report(paths):
    return gradlint.lint([str(path) for path in paths])


@pytest.fixture(scope="module")
def html(report):
    return render("html", report)


def test_page_is_self_contained(html):
    page = page_of(html)
    assert html.startswith("<!DOCTYPE html>")
    assert not page.mismatched and not page.stack
    assert not page.all("script") and not page.all("link") and not page.all("img")
    assert not page.all("iframe") and "@import" not in html and "url(" not in html
    for _, attrs in page.tags:
        for name in ("src", "href"):
            value = attrs.get(name)
            assert value is None or value.startswith("#"), f"{name}={value}"
        assert not any(name.startswith("on") for name in attrs)
    assert "@media (prefers-color-scheme: dark)" in html and "@media print" in html


def test_every_model_and_finding_is_on_the_page(report, html, paths):
    page = page_of(html)
    text = " ".join(page.text)
    assert len(page.all("section", **{"class": "model"})) == 3
    for path in paths:
        assert str(path) in text
    articles = page.all("article", **{"class": "finding"})
    assert sorted(a["data-code"] for a in articles) == sorted(f.code for f in report.findings)
    for finding in report.findings:
        assert finding.message in text
    assert "No gradient-flow risks found." in text


def test_findings_are_grouped_by_severity_with_explanation_and_fix(html):
    rnn = html[html.index("rnn-keras.keras</h2>"):]
    rnn = rnn[:rnn.find('<section class="model"')]
    assert rnn.index('severity-group error') < rnn.index('severity-group warning')
    assert rnn.index('data-code="GL401"') < rnn.index('data-code="GL402"')
    deep = html[html.index("deep-keras.keras</h2>"):]
    deep = deep[:deep.find('<section class="model"')]
    assert "<h4>Why it matters</h4>" in deep and "<h4>What to do</h4>" in deep
    assert "<code>HeNormal</code>" in deep  # GL101's "Use instead", from the rule's docstring
    assert "derivative is at most 0.25" in deep  # its "Why it hurts gradient flow"


def test_layer_stack_highlights_flagged_layers(html):
    page = page_of(html)
    flagged = page.all("tr", **{"class": "flagged"})
    # hidden_1..hidden_10 of the sigmoid stack, and the SimpleRNN layer.
    assert len(flagged) == 11
    assert all("error" in row["class"].split() for row in flagged)


def test_chart_has_one_point_per_weighted_layer_per_series(report, html):
    page = page_of(html)
    charts = page.all("svg", **{"class": "chart"})
    assert len(charts) == 3
    assert all(c["viewbox"].startswith("0 0 ") for c in charts)  # names come lower-cased
    weighted = sum(1 for f in report.files for layer in f.layers if layer["weighted"])
    estimates = page.all("circle", **{"class": "point estimate"})
    assert len(estimates) == weighted
    assert not page.all("rect", **{"class": "point measured"})  # no probe data, no measured series
    assert "Estimated kernel gradient" in html and "Measured kernel gradient" not in html
    assert re.search(r'class="band"', html)  # the vanishing zone on the deep sigmoid stack


def test_probe_data_is_charted_beside_the_estimate(report):
    data = report.to_dict()
    data["files"][0] = report_models.probe_fields(data["files"][0])
    data["files"][1]["probe"] = {"ran": False, "error": "the probe extra is not installed",
                                 "seeds": None, "batch": None, "training_mode": None,
                                 "loss": None, "seconds": None}
    html = render("html", data)
    page = page_of(html)
    weighted = sum(1 for layer in data["files"][0]["layers"] if layer["weighted"])
    assert len(page.all("rect", **{"class": "point measured"})) == weighted
    assert "Measured kernel gradient (probe)" in html
    assert len(page.all("span", **{"class": "confirmed"})) == 1
    text = " ".join(page.text)
    assert "probe ran: 3 seeds, batch 8, training mode, loss categorical_crossentropy, 2.4 s" \
        in text
    assert "probe did not run: the probe extra is not installed" in text
    assert "62%" in text  # saturated fraction in the layer stack
    assert "first/last kernel-gradient ratio 3.1e-07 measured over 3 seeds" in text


def test_unreadable_file_and_escaping(report, tmp_path):
    broken = tmp_path / "broken.keras"
    broken.write_bytes(b"PK\x03\x04 not really")
    data = gradlint.lint(str(broken)).to_dict()
    html = render("html", data)
    assert "this file could not be read" in html
    data = report.to_dict()
    data["files"][0]["findings"][0]["message"] = "<script>alert(1)</script> & more"
    html = render("html", data)
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in html


def test_chart_tolerates_zero_infinite_and_missing_values():
    layers = [{"path": f"l{i}", "weighted": True, "estimate": {"kernel_gradient": value,
                                                               "gradient": 1.0}}
              for i, value in enumerate([0.0, "inf", None, "nan", 1e-300, 1.0])]
    geometry = chart(layers, {"l1": "error"})
    [estimate, gradient] = geometry["series"]
    assert len(estimate["points"]) == 4  # 0, inf, 1e-300 and 1; None and NaN are gaps
    assert [p["clipped"] for p in estimate["points"]] == ["low", "high", "low", None]
    assert estimate["path"].count("M") == 2  # the line breaks at the gap
    assert len(gradient["points"]) == 6
    assert geometry["highlights"][0]["severity"] == "error"
    assert chart([{"path": "x", "weighted": True, "estimate": {}}], {}) is None


def test_rule_docs_render_as_html():
    html = str(doc_html("A `code` and *emphasis*.\n\n- one\n  more\n- two\n\n    x = 1 < 2\n"))
    assert html == ("<p>A <code>code</code> and <em>emphasis</em>.</p>\n"
                    "<ul><li>one more</li><li>two</li></ul>\n"
                    "<pre><code>x = 1 &lt; 2</code></pre>")


def test_repr_html_is_a_scoped_fragment(report):
    fragment = report._repr_html_()
    assert "<html" not in fragment and "<body" not in fragment
    assert fragment.lstrip().startswith('<div class="gl-report">')
    styles = re.findall(r"<style>(.*?)</style>", fragment, re.S)
    assert len(styles) == 1
    # Every selector is scoped to the report, so the notebook's own page keeps its styles.
    rules = re.sub(r"/\*.*?\*/", "", styles[0], flags=re.S)
    rules = re.sub(r"@media[^{]*\{", "", rules)
    for selector_list in re.findall(r"([^{}]+)\{[^{}]*\}", rules):
        for selector in selector_list.split(","):
            assert selector.strip().startswith(".gl-report"), selector
    for finding in report.findings:
        assert finding.code in fragment


def test_report_option_writes_html_beside_the_console_output(paths, tmp_path):
    shutil.copy(paths[1], tmp_path / "rnn.keras")
    result = run_gradlint("-j", "1", "--report", "out/report.html", "rnn.keras", cwd=tmp_path)
    assert result.returncode == 2 and "cannot write out/report.html" in result.stderr
    (tmp_path / "out").mkdir()
    result = run_gradlint("-j", "1", "--report", "out/report.html", "rnn.keras", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert "rnn.keras::rnn: GL401 [error]" in result.stdout
    html = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and "GL401" in html
    result = run_gradlint("-j", "1", "--report", "report.pdf", "rnn.keras", cwd=tmp_path)
    assert result.returncode == 2 and "must end in .html or .md" in result.stderr


@pytest.mark.parametrize("output_format", ["text", "json", "sarif", "github", "junit"])
def test_machine_formats_never_import_jinja2(paths, output_format):
    script = (
        "import sys\n"
        "from gradlint.cli import main\n"
        "try:\n"
        f"    main(['--output-format', '{output_format}', '-j', '1', sys.argv[1]])\n"
        "except SystemExit:\n"
        "    pass\n"
        "sys.stderr.write('JINJA2=' + str('jinja2' in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", script, str(paths[0])],
                            capture_output=True, text=True, timeout=120)
    assert "JINJA2=False" in result.stderr, result.stderr
    assert "GL101" in result.stdout
