"""The HTML report as a person sees it: opened in headless Chromium (Debian's chromium and
chromedriver, driven by selenium), it loads without console errors, shows a chart for every
model and every finding, fits the window, switches to dark colours, and prints.

One model carries probe data: from `gradlint.lint(path, probe=True)` when the probe is
available, otherwise the probe's data contract filled into a real lint result's dict (the
renderer reads report data, so either way it renders the same fields).
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

import gradlint
import report_models
from gradlint.renderers import render

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

webdriver = pytest.importorskip("selenium.webdriver")
if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
    pytest.skip("needs /usr/bin/chromium and /usr/bin/chromedriver (Debian packages chromium "
                "and chromium-driver; .ci/run installs them)", allow_module_level=True)

from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tmp_path_factory.mktemp("chromium-profile")
    for argument in ("--headless", "--no-sandbox", "--disable-gpu",
                     "--disable-background-networking", "--disable-component-update",
                     "--no-first-run", f"--user-data-dir={profile}", "--window-size=1280,1000"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield browser
    finally:
        browser.quit()


def _with_probe(path: Path) -> dict:
    try:
        report = gradlint.lint(str(path), probe=True)
    except TypeError:  # this gradlint has no probe: fill in its data contract instead
        report = None
    if report is not None and (report.to_dict()["files"][0].get("probe") or {}).get("ran"):
        return report.to_dict()["files"][0]
    return report_models.probe_fields(gradlint.lint(str(path)).to_dict()["files"][0])


@pytest.fixture(scope="module")
def report_data(save_model):
    paths = [save_model(f"renderer_html_browser_{name}", build) for name, build in
             (("deep", report_models.deep_sigmoid), ("rnn", report_models.simple_rnn),
              ("clean", report_models.relu_he))]
    data = gradlint.lint([str(path) for path in paths]).to_dict()
    data["files"][0] = _with_probe(paths[0])
    return data


def show(driver, path: Path, width: int = 1280) -> None:
    """Open `path` in a window `width` pixels wide, unless it is open already (tests that
    follow links or load other pages leave it elsewhere)."""
    if driver.get_window_size()["width"] != width:
        driver.set_window_size(width, 1000)
    if driver.current_url != path.as_uri():
        driver.get_log("browser")  # start with an empty console
        driver.get(path.as_uri())
    assert driver.execute_script("return document.readyState") == "complete"


@pytest.fixture(scope="module")
def page_path(report_data, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("renderer_html_browser") / "report.html"
    path.write_text(render("html", report_data), encoding="utf-8")
    return path


@pytest.fixture
def page(driver, page_path):
    show(driver, page_path)
    return driver


def test_page_loads_without_console_errors(page):
    entries = page.get_log("browser")
    problems = [entry for entry in entries if entry["level"] in ("SEVERE", "WARNING")]
    assert not problems, problems
    assert page.title.startswith("gradlint report: 3 models")


def test_every_model_has_a_visible_chart(page, report_data):
    charts = page.find_elements(By.CSS_SELECTOR, "svg.chart")
    assert len(charts) == len(report_data["files"])
    for chart in charts:
        assert chart.is_displayed()
        assert chart.size["width"] > 500 and chart.size["height"] > 150
        assert chart.find_elements(By.CSS_SELECTOR, "circle.point.estimate")
        assert chart.find_elements(By.CSS_SELECTOR, "path.line.estimate")
    # The probe's measurements sit beside the estimate on the first model's chart.
    measured = [layer for layer in report_data["files"][0]["layers"]
                if (layer.get("measured") or {}).get("kernel_gradient") is not None]
    assert measured
    assert len(charts[0].find_elements(By.CSS_SELECTOR, "rect.point.measured")) == len(measured)
    assert not charts[1].find_elements(By.CSS_SELECTOR, "rect.point.measured")


def test_every_finding_is_on_the_page(page, report_data):
    sections = page.find_elements(By.CSS_SELECTOR, "section.model")
    assert len(sections) == len(report_data["files"])
    for section, file in zip(sections, report_data["files"]):
        assert file["path"] in section.find_element(By.CSS_SELECTOR, "h2").text
        articles = section.find_elements(By.CSS_SELECTOR, "article.finding")
        assert len(articles) == len(file["findings"])
        for article, finding in zip(articles, sorted(
                file["findings"], key=lambda f: ("error", "warning", "info").index(f["severity"]))):
            assert article.is_displayed()
            assert article.get_attribute("data-code") == finding["code"]
            assert finding["message"] in article.text
            assert "WHAT TO DO" in article.text.upper()
    verdicts = page.find_elements(By.CSS_SELECTOR, "article.finding .badge.confirmed, "
                                                   "article.finding .badge.not-confirmed")
    assert len(verdicts) == sum(1 for f in report_data["files"][0]["findings"] if f.get("probe"))


def test_flagged_layers_are_highlighted(page):
    flagged = page.find_elements(By.CSS_SELECTOR, ".layers tr.flagged")
    assert flagged
    background = flagged[0].find_element(By.CSS_SELECTOR, "td").value_of_css_property(
        "background-color")
    plain = page.find_element(By.CSS_SELECTOR, ".layers tr:not(.flagged) td")
    assert background != plain.value_of_css_property("background-color")


def test_page_fits_the_window(page):
    overflow = page.execute_script(
        "return document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0


def test_dark_mode_and_print(page):
    def background():
        return page.find_element(By.CSS_SELECTOR, ".gl-report").value_of_css_property(
            "background-color")

    light = background()
    page.execute_cdp_cmd("Emulation.setEmulatedMedia", {
        "features": [{"name": "prefers-color-scheme", "value": "dark"}]})
    try:
        dark = background()
    finally:
        page.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})
    assert light in ("rgba(255, 255, 255, 1)", "rgb(255, 255, 255)")
    assert dark in ("rgba(13, 17, 23, 1)", "rgb(13, 17, 23)")
    page.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": "print"})
    try:
        assert page.find_element(By.CSS_SELECTOR, ".layers").value_of_css_property(
            "max-height") == "none"
    finally:
        page.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": ""})
    from selenium.webdriver.common.print_page_options import PrintOptions

    pdf = base64.b64decode(page.print_page(PrintOptions()))
    assert pdf.startswith(b"%PDF") and len(pdf) > 10_000


# --- the features, on real models at 1,400 px: links, series, time steps, axes, scrolling ------

WIDE = 1400


def staged():
    """216 layers in four named stages (108 Dense among them, each flagged by GL301)."""
    keras = report_models.keras3()
    inputs = x = keras.Input((16,))
    for stage in range(1, 5):
        for block in range(1, 28):
            x = keras.layers.Dense(16, activation="tanh",
                                   name=f"stage{stage}_block{block}_dense")(x)
            x = keras.layers.LayerNormalization(name=f"stage{stage}_block{block}_norm")(x)
    return keras.Model(inputs, keras.layers.Dense(1, name="head")(x), name="staged")


def chain():
    """A 230-layer ReLU chain whose names (dense_0 … dense_229) show no stages."""
    keras = report_models.keras3()
    return keras.Sequential([keras.Input((8,))]
                            + [keras.layers.Dense(8, activation="relu", name=f"dense_{i}")
                               for i in range(230)], name="chain")


@pytest.fixture(scope="module")
def features(save_model):
    """A Report (typed, as a notebook holds it): the sigmoid stack and the SimpleRNN measured
    by the probe when it is available, and two models of 200+ layers."""
    probed = [save_model(f"renderer_html_browser_{name}", build) for name, build in
              (("deep", report_models.deep_sigmoid), ("rnn", report_models.simple_rnn))]
    big = [save_model(f"renderer_html_browser_{name}", build) for name, build in
           (("staged", staged), ("chain", chain))]
    try:
        measured = gradlint.lint([str(path) for path in probed], probe=True)
    except TypeError:  # this gradlint has no probe
        measured = None
    if measured is None or not all((f.probe or {}).get("ran") for f in measured.files):
        pytest.skip("the probe cannot run here")
    static = gradlint.lint([str(path) for path in big])
    return gradlint.Report(files=measured.files + static.files)


@pytest.fixture(scope="module")
def features_path(features, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("renderer_html_features") / "report.html"
    path.write_text(render("html", features), encoding="utf-8")
    return path


@pytest.fixture
def wide(driver, features_path):
    show(driver, features_path, WIDE)
    return driver


def target(driver):
    return driver.execute_script("const t = document.querySelector(':target'); "
                                 "return t ? t.id : null")


def inside_viewport(driver, element) -> bool:
    return driver.execute_script(
        "const r = arguments[0].getBoundingClientRect();"
        "return r.top >= 0 && r.bottom <= innerHeight && r.left >= 0 && r.right <= innerWidth;",
        element)


def click(driver, element) -> None:
    """A real click (the pointer moved onto the element), as a person makes one; an SVG link
    has no click() method of its own."""
    from selenium.webdriver.common.action_chains import ActionChains

    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
    ActionChains(driver).move_to_element(element).click().perform()


def test_a_finding_links_to_its_row_and_its_point_and_the_point_to_its_row(wide, features):
    deep = wide.find_elements(By.CSS_SELECTOR, "section.model")[0]
    finding = deep.find_element(By.CSS_SELECTOR, "article.finding[data-code='GL101']")
    layer = features.files[0].findings[0].layer
    click(wide, finding.find_element(By.CSS_SELECTOR, "a.to-point"))
    point_id = target(wide)
    assert point_id and point_id.startswith("gl-m1-chart-")
    point = wide.find_element(By.ID, point_id)
    assert point.tag_name == "a" and inside_viewport(wide, point)
    assert layer in point.find_element(By.TAG_NAME, "title").get_attribute("textContent")
    hit = point.find_element(By.CSS_SELECTOR, "rect.hit").value_of_css_property("fill")
    assert hit not in ("transparent", "rgba(0, 0, 0, 0)")  # the targeted layer stands out

    click(wide, finding.find_element(By.CSS_SELECTOR, "a.to-row"))
    row_id = target(wide)
    row = wide.find_element(By.ID, row_id)
    assert row.tag_name == "tr" and row.find_element(By.CSS_SELECTOR, "td.path").text == layer
    box = deep.find_element(By.CSS_SELECTOR, ".layers")
    header = box.find_element(By.CSS_SELECTOR, "th").rect
    assert row.rect["y"] >= header["y"] + header["height"] - 1  # not under the sticky header
    assert row.rect["y"] + row.rect["height"] <= box.rect["y"] + box.rect["height"] + 1
    assert inside_viewport(wide, row)
    plain = deep.find_element(By.CSS_SELECTOR, ".layers tbody tr:last-child td")
    assert row.find_element(By.CSS_SELECTOR, "td.path").value_of_css_property(
        "background-color") != plain.value_of_css_property("background-color")

    # The point links to the row, and the row's number back to the point.
    click(wide, wide.find_element(By.ID, point_id))
    assert target(wide) == row_id
    click(wide, row.find_element(By.CSS_SELECTOR, "td a"))
    assert target(wide) == point_id


def test_stored_weights_and_the_probe_are_charted_with_a_legend(wide, features):
    deep = wide.find_elements(By.CSS_SELECTOR, "section.model")[0]
    chart = deep.find_element(By.CSS_SELECTOR, "svg.chart")
    weighted = [layer for layer in features.files[0].layers if layer["weighted"]]
    for css in ("circle.point.estimate", "circle.point.stored", "rect.point.measured"):
        points = chart.find_elements(By.CSS_SELECTOR, css)
        assert len(points) == len(weighted), css
        assert all(point.is_displayed() for point in points[:3])
    ring = chart.find_element(By.CSS_SELECTOR, "circle.point.stored")
    assert ring.value_of_css_property("fill") == "none"
    assert ring.value_of_css_property("stroke") not in ("none", "rgb(0, 0, 0)")
    legend = deep.find_element(By.CSS_SELECTOR, ".legend").text
    for label in ("Estimated kernel gradient (initializers)",
                  "Estimated kernel gradient (stored weights)", "Measured kernel gradient (probe)"):
        assert label in legend
    caption = deep.find_element(By.CSS_SELECTOR, "figure.layer-chart figcaption").text
    assert "initializers" in caption and "stored weights" in caption and "probe" in caption
    footer = wide.find_element(By.CSS_SELECTOR, ".report-footer").text
    assert "stored weights" in footer and "gradlint --probe" in footer
    assert "Run gradlint --probe" not in footer  # the probe ran


def test_a_recurrent_finding_charts_its_time_steps(wide, features):
    rnn = wide.find_elements(By.CSS_SELECTOR, "section.model")[1]
    finding = rnn.find_element(By.CSS_SELECTOR, "article.finding[data-code='GL401']")
    verdict = features.files[1].findings[0].probe
    assert verdict and verdict["measured"]["time_steps"] == 60
    chart = finding.find_element(By.CSS_SELECTOR, "svg.step-chart")
    assert chart.is_displayed() and chart.size["width"] > 400
    diamonds = chart.find_elements(By.CSS_SELECTOR, "rect.point.measured")
    assert len(diamonds) == 60  # the report holds every step the probe measured
    caption = finding.find_element(By.CSS_SELECTOR, "figure.steps figcaption").text
    assert "not in the report" not in caption
    assert len(rnn.find_elements(By.CSS_SELECTOR, "svg.step-chart")) == 1


def overlaps(boxes: list[dict]) -> list[tuple[int, int]]:
    def apart(a: dict, b: dict) -> bool:
        return a["right"] - 0.5 <= b["left"] or b["right"] - 0.5 <= a["left"] \
            or a["bottom"] - 0.5 <= b["top"] or b["bottom"] - 0.5 <= a["top"]

    return [(i, j) for i in range(len(boxes)) for j in range(i + 1, len(boxes))
            if not apart(boxes[i], boxes[j])]


def label_boxes(driver, chart, css: str) -> list[dict]:
    return driver.execute_script(
        "return Array.from(arguments[0].querySelectorAll(arguments[1])).map(e => {"
        "const r = e.getBoundingClientRect(); return {left: r.left, right: r.right, top: r.top,"
        " bottom: r.bottom, text: e.textContent}})", chart, css)


def test_axes_name_layers_or_stages_without_a_smear(wide, features):
    charts = wide.find_elements(By.CSS_SELECTOR, "svg.chart")
    assert len(charts) == 4
    deep = label_boxes(wide, charts[0], "text.layer-name")
    assert [box["text"] for box in deep] == [layer["path"] for layer in features.files[0].layers
                                            if layer["weighted"]]
    staged_labels = label_boxes(wide, charts[2], "text.layer-name")
    stages = label_boxes(wide, charts[2], "text.stage-name")
    assert [box["text"] for box in stages] == ["stage1", "stage2", "stage3", "stage4"]
    chain_labels = label_boxes(wide, charts[3], "text.layer-name")
    assert chain_labels[0]["text"] == "dense_0" and chain_labels[-1]["text"] == "dense_229"
    for chart, boxes in ((charts[0], deep), (charts[2], staged_labels + stages),
                         (charts[3], chain_labels)):
        assert 4 <= len(boxes) <= 25
        assert not overlaps(boxes), [boxes[i]["text"] for pair in overlaps(boxes) for i in pair]
        frame = chart.rect
        for box in boxes:  # inside the chart, not over the next element
            assert frame["x"] - 1 <= box["left"] and box["right"] <= frame["x"] + frame["width"] + 1
            assert box["bottom"] <= frame["y"] + frame["height"] + 1
    # Hundreds of layers are lines, not a bead per layer; every layer still has its column.
    assert not charts[3].find_elements(By.CSS_SELECTOR, ".point")
    assert len(charts[3].find_elements(By.CSS_SELECTOR, "a.column")) == 230


def test_the_layer_table_scrolls_in_its_box(driver, features_path):
    for width in (WIDE, 900):
        show(driver, features_path, width)
        assert driver.execute_script("return document.documentElement.scrollWidth - "
                                     "document.documentElement.clientWidth") <= 0
        for section in driver.find_elements(By.CSS_SELECTOR, "section.model"):
            box = section.find_element(By.CSS_SELECTOR, ".layers")
            assert box.rect["x"] + box.rect["width"] <= section.rect["x"] + section.rect["width"]
            wider = driver.execute_script(
                "const b = arguments[0]; b.scrollLeft = 200; return [b.scrollWidth > "
                "b.clientWidth, b.scrollLeft, scrollX]", box)
            assert wider[2] == 0  # the box scrolls, not the page
            assert (wider[1] > 0) == wider[0]
            # The table keeps its columns whole (numbers on one line) rather than squeezing.
            numbers = box.find_elements(By.CSS_SELECTOR, "tbody tr:first-child td.num")
            assert all(cell.size["height"] < 40 for cell in numbers)
        if width == 900:
            probed = driver.find_elements(By.CSS_SELECTOR, "section.model")[0]
            assert driver.execute_script("const b = arguments[0]; return b.scrollWidth > "
                                         "b.clientWidth", probed.find_element(
                                             By.CSS_SELECTOR, ".layers"))


# --- inside a host page (a notebook's) ------------------------------------------------------------

# A host page's stylesheet, hostile on purpose: bare elements, the report's own class names
# and two-class rules, as notebooks and documentation themes write them (no !important, no id).
HOST_CSS = """
body { margin: 0; font: 20px/3 Georgia, serif; color: #555; text-align: right;
       letter-spacing: 1px; }
* { box-sizing: content-box; }
h1, h2, h3, h4 { margin: 2em 0; line-height: 1; font-size: 40px; font-weight: 300;
                 text-align: center; }
.host h1:first-child, .host h2:first-child { margin-top: 3em; }
table { table-layout: fixed; margin: 0 auto 2em; font-size: 10px; color: #444; width: 50%; }
.host td, .host th, .host tr { text-align: right; padding: 1em; border: 2px solid red;
                               white-space: pre; vertical-align: middle; }
.host tbody tr:nth-child(odd) { background: #333; }
.host dl { overflow: hidden; }
.host dt { float: left; width: 20%; font-weight: bold; }
.host dd { float: left; width: 80%; margin: 0; }
ul { padding-left: 3em; list-style: square; margin: 2em; }
li { margin: 1em; }
.host :not(pre) > code { background: black; color: lime; padding: 6px; font-size: 30px; }
.host pre { white-space: pre-wrap; background: black; color: lime; }
p { margin: 0 0 2em; text-align: justify; }
.header { position: fixed; top: 0; left: 0; right: 0; background: yellow; z-index: 1000; }
.badge { font-size: 30px; padding: 20px; }
.model { float: right; width: 50%; padding: 40px; }
.error, .warning { color: green; }
.chart, .legend { display: grid; }
svg { max-width: 50px; }
a { color: magenta; text-decoration: none; }
.layer { text-transform: uppercase; }
section, article { padding: 40px; margin: 50px; }
details > summary { display: block; }
span { letter-spacing: 4px; }
text { font-size: 30px; }
"""

HOST_ELEMENTS = """
<h1 class="header">The host's header</h1>
<table class="model"><tbody><tr><td class="error">host cell</td></tr></tbody></table>
<p class="badge">host text <code>host code</code> <a href="#top">host link</a></p>
<ul class="legend"><li>host item</li></ul>
"""


def host_page(fragments: list[str]) -> str:
    # Without reports, a tall page all the same: the scrollbar takes the same width.
    body = "".join(f'<div class="cell"><div class="host">{fragment}</div></div>'
                   for fragment in fragments) or '<div style="height: 20000px"></div>'
    return (f'<!DOCTYPE html><html><head><meta charset="utf-8"><style>{HOST_CSS}</style></head>'
            f'<body><div class="host">{HOST_ELEMENTS}</div>{body}</body></html>')


# (selector, properties): what the report looks like, compared between its own page and a host.
LOOKS = [
    (".gl-report", "font-size font-family line-height color letter-spacing text-align"),
    (".gl-report h1", "font-size font-weight line-height margin-top margin-bottom text-align"),
    (".gl-report h2", "font-size font-weight margin-top text-align"),
    (".gl-report h3", "font-size margin-top margin-bottom"),
    (".gl-report .header", "position display top"),
    (".gl-report .badge.error", "font-size padding-top color display"),
    (".gl-report .facts dt", "float width font-weight display"),
    (".gl-report .facts dd", "float width margin-left"),
    (".gl-report section.model", "float padding-top margin-top"),
    (".gl-report article.finding", "padding-top margin-top"),
    (".gl-report .finding-head .layer", "text-transform letter-spacing font-family"),
    (".gl-report .doc code", "background-color color font-size padding-top"),
    (".gl-report .doc p", "text-align margin-bottom"),
    (".gl-report summary", "display"),
    (".gl-report .legend", "display padding-left margin-top"),
    (".gl-report .legend li", "margin-top display list-style-type"),
    (".gl-report svg.chart", "display max-width"),
    (".gl-report svg.chart text", "font-size letter-spacing"),
    (".gl-report .layers table", "table-layout font-size color"),
    (".gl-report .layers th", "text-align padding-top border-top-width white-space position"),
    (".gl-report .layers tbody tr:nth-child(2) td", "background-color text-align white-space"),
    (".gl-report a.to-row", "color text-decoration-line"),
    (".gl-report .model-body > dl", "box-sizing"),
]


def looks(driver) -> list:
    return driver.execute_script("""
        const out = [];
        for (const [selector, names] of arguments[0]) {
          const element = document.querySelector(selector);
          if (!element) { out.push([selector, null]); continue; }
          const style = getComputedStyle(element);
          out.push([selector, names.split(' ').map(name => [name, style.getPropertyValue(name)])]);
        }
        return out;""", LOOKS)


def test_a_host_page_and_the_report_leave_each_other_alone(driver, features, tmp_path):
    own = tmp_path / "own.html"
    own.write_text(render("html", features), encoding="utf-8")
    show(driver, own)
    expected = looks(driver)
    assert all(found is not None for _, found in expected)

    fragments = [features._repr_html_(), features._repr_html_()]  # two cells, one report each
    hosted = tmp_path / "hosted.html"
    hosted.write_text(host_page(fragments), encoding="utf-8")
    alone = tmp_path / "alone.html"
    alone.write_text(host_page([]), encoding="utf-8")

    def host_looks():
        return driver.execute_script("""
            return Array.from(document.querySelectorAll('body > .host *')).map(element => {
              const style = getComputedStyle(element), out = {};
              for (const name of style) out[name] = style.getPropertyValue(name);
              return [element.tagName, out];
            });""")

    show(driver, alone)
    host_before = host_looks()
    show(driver, hosted)
    # The host cannot restyle the report ...
    assert looks(driver) == expected
    # ... nor the report the host.
    assert host_looks() == host_before
    # The report's header and facts lie where they should, not over each other.
    report = driver.find_element(By.CSS_SELECTOR, ".gl-report")
    header = report.find_element(By.CSS_SELECTOR, ".header").rect
    first = report.find_element(By.CSS_SELECTOR, ".overview").rect
    assert header["y"] + header["height"] <= first["y"]
    for fact in report.find_elements(By.CSS_SELECTOR, ".facts > div")[:6]:
        label, value = fact.find_element(By.TAG_NAME, "dt").rect, fact.find_element(
            By.TAG_NAME, "dd").rect
        assert label["y"] + label["height"] <= value["y"] + 0.5
    # Two reports on one page: ids unique, and each report's links stay inside it.
    ids = driver.execute_script("return Array.from(document.querySelectorAll('[id]'), e => e.id)")
    assert len(ids) == len(set(ids))
    second = driver.find_elements(By.CSS_SELECTOR, ".gl-report")[1]
    link = second.find_element(By.CSS_SELECTOR, "article.finding a.to-point")
    click(driver, link)
    assert driver.execute_script("return arguments[0].contains(document.querySelector(':target'))",
                                 second)
    problems = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]
    assert not problems, problems
