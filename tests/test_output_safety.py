"""Every output format is safe to show and always encodable, whatever the model file holds.

A real Keras 3 model is saved, then a copy of its config.json (inside the .keras zip) is
rewritten so that layer, model and class names and an activation carry ANSI and OSC escape
sequences, newlines, NUL, C1 controls, a bidirectional override, a lone surrogate, `|`,
HTML and Markdown links, and GitHub workflow-command syntax. Copies are saved under a
non-UTF-8 file name and under a name with control characters, and one unreadable file gets a
hostile name too. Each format's output of `gradlint.lint` on them must encode to UTF-8 and
parse as its format, with no raw control character where a person or a terminal reads it.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import sys
import xml.etree.ElementTree as ElementTree
import zipfile
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote_to_bytes

import jsonschema
import pytest
from markdown_it import MarkdownIt

import gradlint
import report_models
from conftest import run_gradlint
from gradlint.renderers import FORMATS, RenderOptions, render
from gradlint.safe_text import map_strings, path_bytes, printable, valid_unicode
from gradlint.renderers.text import BOLD, COLORS, DIM, RESET

SCHEMA = Path(__file__).resolve().parent / "data" / "sarif-schema-2.1.0.json"

# Layer of `report_models.deeper_sigmoid` -> the hostile name it gets.
HOSTILE_LAYERS = {
    "hidden_1": "\u001b[31mred\u001b[0m",
    "hidden_2": "\u001b]0;pwned\u0007",
    "hidden_3": "line\nbreak\ttab\rcr",
    "hidden_4": "nul\u0000byte",
    "hidden_5": "lone\udcffsurrogate",
    "hidden_6": "pipe|cell",
    "hidden_7": "<script>alert(1)</script>",
    "hidden_8": "emoji_\U0001f600_\u00fc_\u5c42",  # a normal name: shown as it is
    "hidden_9": "c1\u009b31m\u0085nel\u202etxt.exe",
    "hidden_10": "[link](http://evil.example) <http://evil.example>",
}
HOSTILE_MODEL = "model\u001b[2J<b>&amp;"
# The output layer: a custom class (so GL002 quotes its name and class) and a name that tries
# to start a second GitHub workflow command.
HOSTILE_OUTPUT = "out%0A::error file=x,line=1::injected\r\n::warning::second"
HOSTILE_CLASS = "Evil\u001b[31mClass\u0007"
HOSTILE_ACTIVATION = "act\u001b]0;x\u0007<b>|"  # hidden_11's activation
HOSTILE_KERAS_VERSION = "3\u001b[2J\udcff"
HOSTILE_NOTE = "note \u001b[5mblink\u001b[0m\nsecond line \udcfe"
HOSTILE_PROBE_ERROR = "custom layer \u001b]0;x\u0007Evil: pass --custom-objects\r\n%0A"

# Raw characters nobody may see in text, GitHub and Markdown output (nor in JUnit and HTML):
# C0 controls but tab and newline, DEL, C1.
RAW_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# What XML 1.0 forbids.
NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
OWN_STYLES = re.compile("|".join(re.escape(code) for code in
                                 (*COLORS.values(), BOLD, DIM, RESET)))
# RFC 3986 URI reference: only these characters, and '%' only before two hex digits.
URI_REFERENCE = re.compile(r"^(?:[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=]|%[0-9A-Fa-f]{2})*$")


def rewrite(source: Path, target: str) -> None:
    """A copy of a .keras archive with the hostile names in its config and metadata."""
    with zipfile.ZipFile(source) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(members["config.json"])
    config["config"]["name"] = HOSTILE_MODEL
    for layer in config["config"]["layers"]:
        name = layer["config"].get("name")
        if name in HOSTILE_LAYERS:
            layer["config"]["name"] = HOSTILE_LAYERS[name]
        elif name == "hidden_11":
            layer["config"]["activation"] = HOSTILE_ACTIVATION
        elif name == "classifier":
            layer["config"]["name"] = HOSTILE_OUTPUT
            layer["class_name"] = HOSTILE_CLASS
    # json.dumps escapes the lone surrogate as the JSON text \udcff, as a hostile file would.
    members["config.json"] = json.dumps(config).encode("ascii")
    assert b'"lone\\udcffsurrogate"' in members["config.json"]
    metadata = json.loads(members["metadata.json"])
    metadata["keras_version"] = HOSTILE_KERAS_VERSION
    members["metadata.json"] = json.dumps(metadata).encode("ascii")
    with zipfile.ZipFile(target, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)


@pytest.fixture(scope="module")
def files(save_model, tmp_path_factory) -> dict[str, str]:
    """The hostile model under a plain name, a non-UTF-8 name and a name with control
    characters, and an unreadable file with a hostile name."""
    source = save_model("output_safety_deeper_sigmoid", report_models.deeper_sigmoid)
    directory = tmp_path_factory.mktemp("output_safety")
    hostile = str(directory / "hostile.keras")
    rewrite(source, hostile)
    paths = {"hostile": hostile}
    non_utf8 = os.path.join(str(directory), os.fsdecode(b"model-\xff.keras"))
    controls = str(directory / "evil\u001b]0;title\u0007\nname.keras")
    broken = str(directory / "broken\u001b[31m|<i>.keras")
    for key, path in (("non_utf8", non_utf8), ("controls", controls)):
        try:
            shutil.copy(hostile, path)
        except (OSError, UnicodeError):  # a file system that refuses the name
            continue
        paths[key] = path
    try:
        Path(broken).write_bytes(b"PK\x03\x04 not really a zip")
        paths["broken"] = broken
    except (OSError, UnicodeError):
        pass
    return paths


@pytest.fixture(scope="module")
def report(files):
    """The report of the hostile files, with a hostile note, a probe that could not run with
    a hostile reason, and a hostile skipped-path note."""
    linted = gradlint.lint(list(files.values()), jobs=1)
    assert linted.files[0].error is None, linted.files[0].error
    report = copy.deepcopy(linted)
    first = report.files[0]
    first.notes.append(HOSTILE_NOTE)
    first.probe = {"ran": False, "error": HOSTILE_PROBE_ERROR, "seeds": None, "batch": None,
                   "training_mode": None, "loss": None, "seconds": None}
    report.skipped.append("skipped \u001b[31m\udcff.keras: not a model")
    return report


@pytest.fixture(scope="module")
def outputs(report) -> dict[str, str]:
    rendered = {format: render(format, report, RenderOptions()) for format in FORMATS}
    rendered["text-color"] = render("text", report, RenderOptions(color=True))
    rendered["text-statistics"] = render("text", report, RenderOptions(statistics=True))
    return rendered


def test_the_hostile_names_reach_the_report(report, files):
    """The file really carries them: the reader keeps the names as the config has them."""
    data = report.files[0]
    assert data.model["name"] == HOSTILE_MODEL
    assert [layer["path"] for layer in data.layers][:10] == list(HOSTILE_LAYERS.values())
    codes = {finding.code for finding in data.findings}
    assert {"GL101", "GL002"} <= codes
    assert data.layers[-1]["path"] == HOSTILE_OUTPUT
    assert any(HOSTILE_CLASS in finding.message and HOSTILE_OUTPUT in finding.message
               for finding in data.findings)
    assert any(HOSTILE_LAYERS["hidden_1"] in finding.message for finding in data.findings)
    if "non_utf8" in files:
        assert "\udcff" in files["non_utf8"]
        assert path_bytes(files["non_utf8"]).endswith(b"model-\xff.keras")


@pytest.mark.parametrize("format", [*FORMATS, "text-color", "text-statistics"])
def test_every_format_encodes_as_utf8(outputs, format):
    output = outputs[format]
    assert isinstance(output, str)
    output.encode("utf-8")  # strict: raises on a lone surrogate


@pytest.mark.parametrize("format", ["text", "text-statistics", "github", "markdown", "junit",
                                    "html"])
def test_no_raw_control_characters(outputs, format):
    output = outputs[format]
    found = RAW_CONTROL.findall(output)
    assert not found, f"{format}: {sorted(set(found))!r}"
    assert "\u202e" not in output and "\u2028" not in output


def test_text_escapes_what_comes_from_the_file(outputs, files, report):
    output = outputs["text"]
    assert "::\\x1b[31mred\\x1b[0m: GL101 [error]" in output  # the layer GL101 names
    assert "Evil\\x1b[31mClass\\x07" in output  # the class name GL002 quotes
    assert "note: note \\x1b[5mblink\\x1b[0m\\nsecond line \\udcfe" in output
    assert "custom layer \\x1b]0;x\\x07Evil: pass --custom-objects\\r\\n%0A" in output
    assert "note: skipped \\x1b[31m\\udcff.keras: not a model" in output
    if "non_utf8" in files:
        assert "model-\\udcff.keras" in output
    if "controls" in files:
        assert "evil\\x1b]0;title\\x07\\nname.keras" in output
    # One line per finding (and one under each finding with a fix), probe failure, note and
    # skipped path, and the summary: no name or path breaks a line.
    lines = output.splitlines()
    assert len(lines) == len(report.findings) + \
        sum(1 for finding in report.findings if finding.fix is not None) + \
        sum(1 for result in report.files if result.probe_failed) + \
        sum(len(result.notes) for result in report.files) + len(report.skipped) + 1
    prefixes = tuple(printable(path) for path in files.values())
    for line in lines:
        assert line.startswith(prefixes + ("note: ", "Found ", "    fix: ")), line


def test_text_keeps_its_own_colours_only(outputs, report):
    colored = outputs["text-color"]
    assert "\x1b[31m[error]\x1b[0m" in colored
    assert "\x1b[1mGL101\x1b[0m" in colored
    assert "\x1b" not in OWN_STYLES.sub("", colored)
    assert OWN_STYLES.sub("", colored) == outputs["text"]


def test_json_is_strict_utf8_json_with_the_names_kept(outputs, files):
    output = outputs["json"]
    data = json.loads(output)
    # Every string encodes strictly: no lone surrogate survives, even as a \udcff escape.
    json.dumps(data, ensure_ascii=False).encode("utf-8")
    output.encode("ascii")
    layers = [layer["path"] for layer in data["files"][0]["layers"]][:10]
    # Names are data: kept exactly, control characters included; a lone surrogate becomes
    # the text \udcff.
    assert layers == [name.replace("\udcff", "\\udcff") for name in HOSTILE_LAYERS.values()]
    assert data["files"][0]["model"]["name"] == HOSTILE_MODEL
    assert data["files"][0]["model"]["keras_version"] == "3\u001b[2J\\udcff"
    if "non_utf8" in files:
        assert data["files"][1]["path"] == valid_unicode(files["non_utf8"])
        assert data["files"][1]["path"].endswith("model-\\udcff.keras")


def test_json_of_normal_names_is_the_report_contract(save_model):
    report = gradlint.lint(str(save_model("output_safety_deep", report_models.deep_sigmoid)))
    assert render("json", report, RenderOptions()) == report.to_json(indent=2) + "\n"


def test_sarif_validates_and_its_uris_are_valid(outputs, files):
    log = json.loads(outputs["sarif"])
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = sorted(validator.iter_errors(log), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors[:10])
    json.dumps(log, ensure_ascii=False).encode("utf-8")
    run = log["runs"][0]
    uris = [artifact["location"]["uri"] for artifact in run["artifacts"]]
    uris += [location["physicalLocation"]["artifactLocation"]["uri"]
             for result in run["results"] for location in result["locations"]]
    for uri in uris:
        assert URI_REFERENCE.match(uri), uri
    original = {unquote_to_bytes(uri) for uri in uris}
    for key, path in files.items():
        # The URI percent-encodes the path's own bytes, so it names the very file.
        assert any(raw.endswith(os.path.basename(path_bytes(path))) for raw in original), key
    if "non_utf8" in files:
        assert any(uri.endswith("model-%FF.keras") for uri in uris)
    for result in run["results"]:
        assert not RAW_CONTROL.search(result["message"]["text"])
    notes = run["invocations"][0].get("toolExecutionNotifications", [])
    assert notes and all(not RAW_CONTROL.search(note["message"]["text"]) for note in notes)
    assert len({result["partialFingerprints"]["gradlintFinding/v1"]
                for result in run["results"]}) == len(run["results"])


COMMAND = re.compile(r"^::(error|warning|notice) file=([^:,\r\n]*),title=([^:,\r\n]*)::(.*)$")


def test_github_commands_stay_one_line_each(outputs, report):
    output = outputs["github"]
    lines = output.split("\n")
    assert lines[-1] == ""
    lines = lines[:-1]
    commands = [line for line in lines if line.startswith("::")]
    probe_failures = sum(1 for result in report.files if result.probe_failed)
    assert probe_failures == 1
    # One command per finding and per probe failure: no name starts another.
    assert len(commands) == len(report.findings) + probe_failures
    for line in lines:
        assert line.splitlines() == [line], repr(line)  # no \r, \v, NEL, U+2028 inside
        assert line.startswith("::") or line.startswith("gradlint: "), line
    for line in commands:
        match = COMMAND.match(line)
        assert match, line
        assert "\r" not in match.group(4) and "\n" not in match.group(4)
    # '%' escaped, so the hostile "%0A" does not become a line break in the annotation.
    assert "out%250A::error file=x,line=1::injected%0D%0A::warning::second" in output
    assert "custom layer \\x1b]0;x\\x07Evil: pass --custom-objects%0D%0A%250A" in output


def test_junit_is_well_formed_xml(outputs, files):
    output = outputs["junit"]
    assert not NOT_XML.search(output)
    root = ElementTree.fromstring(output.encode("utf-8"))  # expat: strict XML 1.0
    texts = [element.text or "" for element in root.iter()] + \
        [value for element in root.iter() for value in element.attrib.values()]
    joined = "\n".join(texts)
    assert not RAW_CONTROL.search(joined)
    assert "\\x1b[31mred\\x1b[0m: GL101 [error]" in joined
    assert "custom layer \\x1b]0;x\\x07Evil: pass --custom-objects\\r\\n%0A" in joined
    names = [suite.get("name") for suite in root.iter("testsuite")]
    if "non_utf8" in files:
        assert any(name.endswith("model-\\udcff.keras") for name in names), names
    if "broken" in files:
        assert any(name.endswith("broken\\x1b[31m|<i>.keras") for name in names), names


class Structure(HTMLParser):
    """Tables (rows of cell texts), tags and text of an HTML page."""

    def __init__(self):
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)


def structure(html: str) -> Structure:
    parsed = Structure()
    parsed.feed(html)
    parsed.close()
    return parsed


def test_markdown_tables_stay_intact_without_html_or_links(outputs, report):
    markdown = outputs["markdown"]
    html = MarkdownIt("commonmark").enable(["table", "strikethrough"]).render(markdown)
    parsed = structure(html)
    for table in parsed.tables:
        assert all(len(row) == len(table[0]) for row in table), table
    tags = {tag for tag, _ in parsed.tags}
    # No element that only a name could have made: no script, link, image, ordered list,
    # rule, quote or heading beyond the report's own h2/h3/h4.
    assert not tags & {"script", "a", "img", "i", "ol", "hr", "h1", "h5", "h6",
                       "blockquote"}, tags
    # <b> only where the template puts it: once per model, in the <details> summary.
    assert sum(1 for tag, _ in parsed.tags if tag == "b") == len(report.files)
    layer_table = next(table for table in parsed.tables if table[0][1] == "Layer")
    cells = [row[1] for row in layer_table[1:]]
    for name in HOSTILE_LAYERS.values():
        if "\n" in name:
            continue
        assert printable(name) in cells, (name, cells)
    assert "linebreak\\ttab\\rcr" in cells  # the newline became <br>, the rest escapes
    text = "".join(parsed.text)
    assert "<script>alert(1)</script>" in text  # shown, as text
    assert "[link](http://evil.example) <http://evil.example>" in text


def test_markdown_escaping_of_block_and_link_syntax():
    from gradlint.renderers.markdown import cell, escape, html_text

    render_md = MarkdownIt("commonmark").enable(["table"]).render
    for hostile in ("# heading", "- item", "1. item", "===", "---", "> quote",
                    "line\n\n# heading", "a\rb", "www.evil.example", "see http://evil.example",
                    "mail me@evil.example", "<b>bold</b>", "[x](y)", "![i](y)", "`code`",
                    "&amp;", "\u001b[31m"):
        html = render_md(escape(hostile) + "\n")
        assert re.fullmatch(r"<p>.*</p>\n", html, re.S), (hostile, html)
        assert "<a" not in html and "<b>" not in html and "<img" not in html
        assert "\n" not in escape(hostile) and "\n" not in cell(hostile)
    assert escape("a\rb") == "a\\\\rb"
    assert html_text("<b>\n\u001b") == "&lt;b&gt;<br>\\x1b"


def test_html_escapes_every_variable_and_the_chart(outputs):
    output = outputs["html"]
    parsed = structure(output)
    tags = {tag for tag, _ in parsed.tags}
    assert "script" not in tags and "a" not in {tag for tag, attrs in parsed.tags
                                                if not attrs.get("href", "#").startswith("#")}
    assert not [tag for tag in tags if tag in ("i", "img", "iframe", "object")]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in output
    assert "model\\x1b[2J&lt;b&gt;&amp;amp;" in output
    assert "lone\\udcffsurrogate" in output
    assert "3\\x1b[2J\\udcff" in output  # the Keras version, from metadata.json
    assert "Evil\\x1b[31mClass\\x07" in output
    # The SVG chart's titles and labels are text, escaped too.
    chart = output[output.index("<svg class=\"chart\""):output.index("</svg>")]
    assert "\\x1b[31mred\\x1b[0m" in chart and "&lt;script&gt;" in chart
    for tag, attrs in parsed.tags:
        for value in attrs.values():
            assert value is None or not RAW_CONTROL.search(value)


def test_cli_text_output_is_safe(files):
    readable = [path for key, path in files.items() if key != "broken"]
    plain = run_gradlint("-j", "1", "--isolated", *readable)
    assert plain.returncode == 1, plain.stderr
    assert "\x1b" not in plain.stdout and not RAW_CONTROL.search(plain.stdout)
    assert "\\x1b[31mred\\x1b[0m" in plain.stdout
    assert "Traceback" not in plain.stderr
    colored = run_gradlint("-j", "1", "--isolated", *readable,
                           env={"NO_COLOR": "", "FORCE_COLOR": "1"})
    assert colored.returncode == 1, colored.stderr
    assert "\x1b[31m[error]\x1b[0m" in colored.stdout
    assert "\x1b" not in OWN_STYLES.sub("", colored.stdout)
    assert OWN_STYLES.sub("", colored.stdout) == plain.stdout
    every = run_gradlint("-j", "1", "--isolated", *files.values())
    assert every.returncode == (2 if "broken" in files else 1), every.stderr
    assert "\x1b" not in every.stdout and "Traceback" not in every.stderr


@pytest.mark.parametrize("format", ["json", "sarif", "github", "junit", "markdown", "html"])
def test_cli_other_formats_do_not_crash(files, format):
    result = run_gradlint("-j", "1", "--isolated", "--output-format", format, *files.values())
    assert result.returncode == (2 if "broken" in files else 1), result.stderr
    assert "Traceback" not in result.stderr
    result.stdout.encode("utf-8")


# --- the shared helper ------------------------------------------------------------------------

@pytest.mark.parametrize("text, shown", [
    ("\u001b[31mred\u001b[0m", "\\x1b[31mred\\x1b[0m"),
    ("\u001b]0;title\u0007", "\\x1b]0;title\\x07"),
    ("a\nb\tc\rd", "a\\nb\\tc\\rd"),
    ("\u0000\u007f", "\\x00\\x7f"),
    ("\u009b\u0085", "\\u009b\\u0085"),
    ("\udcff\ud800", "\\udcff\\ud800"),
    ("\u202e\u2066\u2028\u2029", "\\u202e\\u2066\\u2028\\u2029"),
    ("\ufffe\uffff", "\\ufffe\\uffff"),
])
def test_printable_escapes(text, shown):
    assert printable(text) == shown


@pytest.mark.parametrize("text", ["hidden_1", "dense/kernel", "C:\\models\\deep.keras",
                                  "Schicht_ü_层_😀", "a | b <c> & 50%", "", "…–−∞"])
def test_printable_leaves_normal_text_alone(text):
    assert printable(text) == text
    assert valid_unicode(text) == text


def test_printable_keeps_line_breaks_when_asked():
    assert printable("a\r\nb\u001b", line_breaks=True) == "a\r\nb\\x1b"


def test_valid_unicode_only_touches_lone_surrogates():
    assert valid_unicode("a\u001b\udcff\n") == "a\u001b\\udcff\n"
    assert map_strings({"k\udcff": ["v\udcff", 1, None, ("t\ud800",)]}, valid_unicode) == \
        {"k\\udcff": ["v\\udcff", 1, None, ["t\\ud800"]]}


def test_path_bytes():
    assert path_bytes(os.fsdecode(b"model-\xff.keras")) == b"model-\xff.keras"
    assert path_bytes("<live \ud800>") == b"<live \xed\xa0\x80>"


@pytest.mark.skipif(not sys.platform.startswith("linux"),
                    reason="other file systems refuse names that are not UTF-8")
def test_non_utf8_name_was_saved(files):
    assert "non_utf8" in files
