"""Renderers: one module per output format, each with `render(report, options) -> str`.
Formats load lazily so that plain text output never imports jinja2.

Every renderer reads the same typed `Report` (its `FileResult`s and `Finding`s), so all
formats show the same report; `report_data` has what several of them share.

Names, messages and paths in a report come from the model file and the file system, so
every renderer returns a `str` that encodes to UTF-8 without error (no lone surrogate) and
that a terminal, a CI log or a browser shows literally: see `safe_text` for the shared
escaping and each format's module for what it does with control characters.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass

FORMATS = {
    "text": "gradlint.renderers.text",
    "json": "gradlint.renderers.json_format",
    "sarif": "gradlint.renderers.sarif",
    "github": "gradlint.renderers.github",
    "junit": "gradlint.renderers.junit",
    "gitlab": "gradlint.renderers.gitlab",
    "markdown": "gradlint.renderers.markdown",
    "markdown-full": "gradlint.renderers.markdown_full",
    "html": "gradlint.renderers.html",
}

# `--report FILE` picks the format from the file's extension.
REPORT_EXTENSIONS = {
    ".html": "html",
    ".htm": "html",
    ".md": "markdown",
    ".markdown": "markdown",
}


@dataclass
class RenderOptions:
    color: bool = False
    quiet: bool = False
    statistics: bool = False
    show_notes: bool = True
    # Findings at or above this severity fail (JUnit marks them as failures).
    fail_on: str = "error"
    # Codes of the rules that ran; None: every static rule, and the probe's rules where the
    # probe ran.
    rules: list[str] | None = None


def render(format: str, report, options: RenderOptions | None = None) -> str:
    module = importlib.import_module(FORMATS[format])
    return module.render(report, options or RenderOptions())


def report_format(path: str) -> str | None:
    """The report format a file name asks for (`report.html`, `report.md`), or None."""
    return REPORT_EXTENSIONS.get(os.path.splitext(path)[1].lower())


def write_report(report, path: str) -> None:
    """Write an HTML or Markdown report, its format picked by the file's extension."""
    format = report_format(path)
    if format is None:
        raise ValueError(f"{path}: a report's name must end in .html or .md")
    output = render(format, report)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(output)
