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


@pytest.fixture(scope="module")
def page(driver, report_data, tmp_path_factory):
    path = tmp_path_factory.mktemp("renderer_html_browser") / "report.html"
    path.write_text(render("html", report_data), encoding="utf-8")
    driver.get_log("browser")  # start with an empty console
    driver.get(path.as_uri())
    assert driver.execute_script("return document.readyState") == "complete"
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
