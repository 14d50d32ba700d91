"""HTML report: self-contained, several models, findings grouped by severity with the rules'
explanations, the layer stack with flagged layers, a log-scale SVG chart with the probe's
measurements beside the estimate. (tests/test_renderer_html_browser.py opens it in Chromium.)"""

from __future__ import annotations

import copy
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

    def ids(self) -> list[str]:
        return [attrs["id"] for _, attrs in self.tags if attrs.get("id")]

    def by_id(self, name: str) -> tuple[str, dict]:
        [found] = [(tag, attrs) for tag, attrs in self.tags if attrs.get("id") == name]
        return found

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
    assert not re.search(r"@(?!media\b)", rules)  # no @import, @font-face, @keyframes ...
    rules = re.sub(r"@media[^{]*\{", "", rules)
    selector_lists = re.findall(r"([^{}]+)\{[^{}]*\}", rules)
    assert len(selector_lists) > 100
    for selector_list in selector_lists:
        for selector in top_level_split(selector_list):
            # ... and outweighs a host page's two-class rules (.jp-RenderedHTMLCommon td).
            assert selector.strip().startswith(".gl-report.gl-report"), selector
    for finding in report.findings:
        assert finding.code in fragment
    # Two reports in one notebook: their ids never collide, and each links within itself.
    other = report._repr_html_()
    ids = page_of(fragment + other).ids()
    assert len(ids) == len(set(ids)) > 50
    assert not set(page_of(fragment).ids()) & set(page_of(other).ids())
    for piece in (fragment, other):
        parsed = page_of(piece)
        assert {a["href"][1:] for _, a in parsed.tags if a.get("href")} <= set(parsed.ids())


def top_level_split(selector_list: str) -> list[str]:
    """A selector list split at its commas, except those inside :is(...)."""
    parts, depth, current = [], 0, ""
    for char in selector_list:
        depth += char == "("
        depth -= char == ")"
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    return parts + [current]


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


# --- anchors ----------------------------------------------------------------------------------

def row_path(html_text: str, row_id: str) -> str:
    """The layer path shown in the layer-stack row with this id."""
    match = re.search(rf'<tr id="{re.escape(row_id)}"[^>]*>\s*<td[^>]*>.*?</td>\s*'
                      r'<td class="path"[^>]*>(.*?)</td>', html_text, re.S)
    assert match, row_id
    import html as html_module

    return html_module.unescape(match.group(1))


def chart_column(html_text: str, point_id: str) -> tuple[str, str]:
    """(the row it links to, its tooltip) of the chart column with this id."""
    match = re.search(rf'<a id="{re.escape(point_id)}" href="#([^"]+)" class="column[^"]*">\s*'
                      r'<title>(.*?)</title>', html_text, re.S)
    assert match, point_id
    import html as html_module

    return match.group(1), html_module.unescape(match.group(2))


def check_links(html_text: str, report) -> None:
    """Ids are unique and made of positions; every link has a target; each finding links to
    its layer's row and chart column, and each column to that same row."""
    page = page_of(html_text)
    ids = page.ids()
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"gl-[0-9a-f]*-?m\d+(-(layer|chart|finding)-\d+(-steps-title)?"
                            r"|-chart-title)?", name) for name in ids), ids
    targets = {a["href"][1:] for _, a in page.tags if a.get("href")}
    assert targets <= set(ids)
    articles = [attrs for tag, attrs in page.tags if tag == "article"]
    findings = sorted((f for result in report.files for f in result.findings),
                      key=lambda f: ("error", "warning", "info").index(f.severity))
    linked = 0
    for section, result in zip(page.all("section", **{"class": "model"}), report.files):
        weighted = {layer["path"] for layer in result.layers if layer["weighted"]}
        for finding in result.findings:
            if finding.layer not in {layer["path"] for layer in result.layers}:
                continue
            block = html_text[html_text.index(f'id="{section["id"]}"'):]
            article = re.search(rf'<article class="finding [a-z]+" '
                                rf'id="({section["id"]}-finding-\d+)" '
                                rf'data-code="{finding.code}">(.*?)</article>', block, re.S)
            assert article, finding.code
            row = re.search(r'class="to-row" href="#([^"]+)"', article.group(2)).group(1)
            assert row_path(html_text, row) == finding.layer
            point = re.search(r'class="to-point" href="#([^"]+)"', article.group(2))
            assert (point is not None) == (finding.layer in weighted)
            if point:
                assert chart_column(html_text, point.group(1))[0] == row
                assert chart_column(html_text, point.group(1))[1].startswith(
                    f"#{row.rsplit('-', 1)[1]} {finding.layer}")
            linked += 1
    assert linked and len(articles) == len(findings)
    for _, attrs in page.tags:
        if "column" in (attrs.get("class") or "").split():
            assert attrs["href"][1:] in ids


def test_findings_link_to_their_layer_row_and_chart_point(report, html):
    check_links(html, report)
    # The row's number links back to its point on the chart.
    page = page_of(html)
    for _, attrs in page.tags:
        if attrs.get("title") == "its point on the chart":
            row, _ = chart_column(html, attrs["href"][1:])
            assert row == attrs["href"][1:].replace("-chart-", "-layer-")


HOSTILE = ['a"b', "it's <b>#1<b>", "sp ace&amp;", "gl-m1-layer-1", "ünï 层 😀", "#top"]


def hostile_names():
    """Real layer names a person can give in Keras: quotes, markup, '#', an id's look."""
    keras = report_models.keras3()
    return keras.Sequential([keras.Input((8,))]
                            + [keras.layers.Dense(8, activation="sigmoid", name=name)
                               for name in HOSTILE]
                            + [keras.layers.Dense(2, name="out")], name="hostile_names")


def test_ids_are_unique_and_safe_for_hostile_layer_names(save_model, report):
    path = save_model("renderer_html_hostile_names", hostile_names)
    hostile = gradlint.lint(str(path))
    assert [layer["path"] for layer in hostile.files[0].layers][:6] == HOSTILE
    several = gradlint.lint([str(path), *[result.path for result in report.files]])
    combined = render("html", several)
    check_links(combined, several)
    assert "it&#39;s &lt;b&gt;#1&lt;b&gt;" in combined and "<b>#1" not in combined
    assert 'id="gl-m1-layer-1"' in combined  # the first row's, not the layer of that name
    # A file can hold what Keras refuses: a repeated name, control characters, a '/'.
    data = hostile.to_dict()
    layers = data["files"][0]["layers"]
    layers[1]["path"] = layers[0]["path"]
    layers[2]["path"] = "x\u001b[2J\"/><script>alert(1)</script>"
    data["files"][0]["findings"][0]["layer"] = layers[2]["path"]
    html_text = render("html", data)
    assert "<script>" not in html_text and "\u001b" not in html_text
    assert "x\\x1b[2J&#34;/&gt;&lt;script&gt;" in html_text
    ids = page_of(html_text).ids()
    assert len(ids) == len(set(ids))
    row = re.search(r'class="to-row" href="#([^"]+)"', html_text).group(1)
    assert row == "gl-m1-layer-3"


# --- the chart's series, caption and footer ---------------------------------------------------

def text_of(html_text: str) -> str:
    return re.sub(r"\s+", " ", " ".join(page_of(html_text).text))


def test_stored_weights_are_charted_beside_the_initializers(report, html):
    page = page_of(html)
    weighted = sum(1 for f in report.files for layer in f.layers if layer["weighted"])
    assert all(layer["estimate"]["stored_weights"] for f in report.files for layer in f.layers
               if layer["weighted"])
    assert len(page.all("circle", **{"class": "point stored"})) == weighted
    assert len(page.all("path", **{"class": "line stored"})) == 3
    text = text_of(html)
    assert "Estimated kernel gradient (initializers)" in text
    assert "Estimated kernel gradient (stored weights)" in text  # the legend
    assert "Rings: the same estimate from the stored weights" in text  # the caption
    assert "Dots: the kernel gradient estimated from the initializers" in text
    assert "Diamonds" not in text
    assert "Kernel gradient stored weights" in text  # the layer stack's column
    footer = text[text.index("Generated by gradlint"):]
    assert "from its stored weights" in footer
    assert "Run gradlint --probe to measure them" in footer


def test_without_stored_weights_nothing_claims_them(paths):
    report = gradlint.lint([str(paths[0])], weights=False)
    assert all(layer["estimate"]["stored_weights"] is None for layer in report.files[0].layers)
    html_text = render("html", report)
    page = page_of(html_text)
    assert not page.all("circle", **{"class": "point stored"})
    text = text_of(html_text)
    assert "stored weights" not in text[:text.index("Generated by gradlint")]
    assert "Dots: the kernel gradient estimated from the initializers" in text
    assert "initializers) only: the stored weights were not read" in text


def test_after_the_probe_the_footer_does_not_ask_for_it(report):
    data = report.to_dict()
    data["files"] = [report_models.probe_fields(file) for file in data["files"]]
    text = text_of(render("html", data))
    footer = text[text.index("Generated by gradlint"):]
    assert "Run gradlint --probe" not in footer
    assert "Measured values come from the probe" in footer
    caption = text[text.index("Weighted layers from input to output"):]
    assert "Diamonds: the kernel gradient the probe measured on a synthetic batch " \
           "(median over 3 seeds, batch 8)" in caption
    # Asked for but failed everywhere: it says so, and does not ask for it either.
    data = report.to_dict()
    for file in data["files"]:
        file["probe"] = {"ran": False, "error": "the probe extra is not installed"}
    text = text_of(render("html", data))
    footer = text[text.index("Generated by gradlint"):]
    assert "Run gradlint --probe" not in footer and "could not run" in footer


# --- the per-time-step chart -------------------------------------------------------------------

def rnn_file(report, **measured):
    """The SimpleRNN model's dict with its GL401 verdict as the probe gives it."""
    data = report.to_dict()
    data["files"] = [report_models.probe_fields(data["files"][1])]
    [gl401] = [f for f in data["files"][0]["findings"] if f["code"] == "GL401"]
    gl401["probe"] = {"verdict": "confirmed",
                      "summary": "measured: the input gradient at the first of 60 steps is "
                                 "5.24e-11 of the last step's (x0.669 per step)",
                      "measured": {"time_steps": 60, "first_last_ratio": 5.24e-11,
                                   "decay_per_step": 0.669, "cell": "SimpleRNNCell",
                                   **measured}}
    return data


def step_charts(html_text: str) -> list[str]:
    return re.findall(r'<svg class="step-chart".*?</svg>', html_text, re.S)


def test_recurrent_finding_charts_what_the_report_holds_per_time_step(report):
    data = rnn_file(report)
    html_text = render("html", data)
    [svg] = step_charts(html_text)
    article = html_text[html_text.index('data-code="GL401"'):]
    assert article.index("step-chart") < article.index("</article>")
    points = page_of(svg).all("rect", **{"class": "point measured"})
    assert len(points) == 2  # the first and the last step: all the report holds
    assert len(page_of(svg).all("path", **{"class": "line implied"})) == 1
    text = text_of(html_text)
    assert "the 58 steps between them are not in the report" in text
    assert "×0.669 per step" in text
    assert "step 1 of 60: 5.24e-11 of the last step's" in text
    # GL402 and GL403 say nothing measured per step: no chart.
    assert html_text.count('class="step-chart"') == 1
    # An input gradient of exactly 0 (float32 underflow): drawn at the floor, no fade line.
    [gl401] = [f for f in data["files"][0]["findings"] if f["code"] == "GL401"]
    gl401["probe"]["measured"]["first_last_ratio"] = 0.0
    [svg] = step_charts(render("html", data))
    assert page_of(svg).all("rect", **{"class": "point measured clipped"})
    assert not page_of(svg).all("path", **{"class": "line implied"})


def test_every_time_step_is_charted_when_the_report_holds_them(report):
    data = rnn_file(report)
    steps = [0.669 ** (59 - i) for i in range(60)]
    [rnn] = [layer for layer in data["files"][0]["layers"] if layer["path"] == "rnn"]
    rnn["measured"]["input_gradient_by_step"] = [s * 3.0 for s in steps]  # norms, not ratios
    html_text = render("html", data)
    [svg] = step_charts(html_text)
    assert len(page_of(svg).all("rect", **{"class": "point measured"})) == 60
    assert len(page_of(svg).all("path", **{"class": "line measured"})) == 1
    assert not page_of(svg).all("path", **{"class": "line implied"})
    text = text_of(html_text)
    assert "at each of its 60 time steps" in text and "not in the report" not in text
    assert "step 1 of 60: 5.01e-11 of the last step's" in text  # relative to the last step


def test_a_bidirectional_layer_without_its_steps_gets_no_time_axis(report):
    data = rnn_file(report)
    [rnn] = [layer for layer in data["files"][0]["layers"] if layer["path"] == "rnn"]
    rnn["class"] = "Bidirectional"  # its ratio is weakest over strongest: no positions
    assert not step_charts(render("html", data))


# --- the x axis ---------------------------------------------------------------------------------

def chain(names, value=lambda i: 10.0 ** (-i / 20)):
    return [{"path": name, "weighted": True,
             "estimate": {"kernel_gradient": value(i), "gradient": value(i),
                          "stored_weights": {"kernel_gradient": value(i) * 1.1}}}
            for i, name in enumerate(names)]


def test_small_models_name_every_layer_on_the_axis():
    geometry = chart(chain([f"hidden_{i}" for i in range(1, 11)] + ["classifier"]), {})
    assert geometry["axis"]["mode"] == "names"
    assert [label["text"] for label in geometry["axis"]["labels"]] == \
        [f"hidden_{i}" for i in range(1, 11)] + ["classifier"]
    long_names = chart(chain([f"encoder_block_{i}_attention_output" for i in range(30)]), {})
    axis = long_names["axis"]
    assert axis["rotate"] and len(axis["labels"]) == 30
    assert all(len(label["text"]) <= 16 for label in axis["labels"])
    assert long_names["height"] > geometry["height"]  # room for the rotated names


def test_big_models_get_stage_markers_or_spaced_names():
    names = [f"stage{s}_block{b}_dense" for s in range(1, 5) for b in range(1, 56)] + ["head"]
    geometry = chart(chain(names), {})
    axis = geometry["axis"]
    assert geometry["count"] == 221 and axis["mode"] == "stages"
    assert [s["name"] for s in axis["stages"]] == ["stage1", "stage2", "stage3", "stage4"]
    assert all(s["label"] == s["name"] for s in axis["stages"])  # wide enough to be named
    assert 5 <= len(axis["labels"]) <= 21
    plain = chart(chain([f"dense_{i}" for i in range(230)]), {})["axis"]
    assert plain["mode"] == "sampled" and not plain["stages"]
    assert 5 <= len(plain["labels"]) <= 21
    assert plain["labels"][0]["text"] == "dense_0" and plain["labels"][-1]["text"] == "dense_229"
    # Hundreds of layers: lines without a marker per layer (a column per layer still links).
    big = chart(chain([f"dense_{i}" for i in range(230)]), {})
    assert len(big["columns"]) == 230 and not any(c["markers"] for c in big["columns"])
    assert all(len(s["points"]) == 230 for s in big["series"])


def test_stage_names_come_from_nested_models_and_prefixes():
    nested = [f"encoder/dense_{i}" for i in range(30)] + [f"decoder/dense_{i}" for i in range(30)]
    assert [s["name"] for s in chart(chain(nested), {})["axis"]["stages"]] == \
        ["encoder", "decoder"]
    resnet = ([f"conv2_block{b}_{i}_conv" for b in range(1, 4) for i in range(1, 4)]
              + [f"conv3_block{b}_{i}_conv" for b in range(1, 5) for i in range(1, 4)]
              + [f"conv4_block{b}_{i}_conv" for b in range(1, 7) for i in range(1, 4)]
              + [f"conv5_block{b}_{i}_conv" for b in range(1, 4) for i in range(1, 4)]
              + ["predictions"])
    assert [s["name"] for s in chart(chain(resnet), {})["axis"]["stages"]] == \
        ["conv2", "conv3", "conv4", "conv5"]


# --- the notebook's text and Markdown -------------------------------------------------------

def test_report_repr_is_one_short_line(report, paths, tmp_path):
    assert repr(report) == "<Report: 3 files, 4 findings (2 errors, 2 warnings)>"
    clean = gradlint.lint(str(paths[2]))
    assert repr(clean) == "<Report: 1 file, no findings>"
    broken = tmp_path / "broken.keras"
    broken.write_bytes(b"PK\x03\x04 not really")
    unreadable = gradlint.lint([str(broken), str(paths[2])])
    assert repr(unreadable) == "<Report: 2 files (1 unreadable), 1 finding (1 error)>"
    assert "| GL001 unreadable-model | error |" in unreadable._repr_markdown_()
    assert len(repr(report)) < 100 and "\n" not in repr(report)


def test_report_markdown_is_a_short_escaped_summary(report, save_model, tmp_path):
    markdown = report._repr_markdown_()
    lines = markdown.splitlines()
    assert lines[0] == f"**gradlint**: {repr(report)[len('<Report: '):-1]}"
    assert lines[2] == "| model | layer | rule | severity | message |"
    rows = lines[4:]
    assert len(rows) == len(report.findings)
    assert all(row.startswith("| ") and row.endswith(" |") for row in rows)
    assert "GL401 ungated-recurrent-layer" in markdown and "error" in rows[0]
    # Hostile names stay text: no emphasis, link or table break from a name.
    path = save_model("renderer_html_hostile_names", hostile_names)
    hostile = gradlint.lint(str(path))
    hostile.files[0].findings[0].layer = "a|b *c* [x](http://e.example) <b>\n#"
    text = hostile._repr_markdown_()
    row = text.splitlines()[4]
    assert row.count(" | ") == 4 and "\\|" in row and "\\*c\\*" in row and "\\<b\\>" in row
    assert "<br>" in row and "\n#" not in text
    from markdown_it import MarkdownIt

    rendered = MarkdownIt("commonmark").enable("table").render(text)
    assert "<em>" not in rendered and "<a " not in rendered and "<b>" not in rendered
    assert rendered.count("<tr>") == 2  # the header and the one finding
    # Many findings: the first 20, then how many more.
    many = copy.deepcopy(hostile)
    many.files[0].findings = many.files[0].findings * 25
    lines = many._repr_markdown_().splitlines()
    assert len([line for line in lines if line.startswith("| ") and "GL101" in line]) == 20
    assert lines[-1].startswith("… and 5 more")
