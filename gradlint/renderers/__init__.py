"""Renderers: one module per output format, each with `render(report, options) -> str`.
Formats load lazily so that plain text output never imports jinja2."""

from __future__ import annotations

import importlib
from dataclasses import dataclass

FORMATS = {
    "text": "gradlint.renderers.text",
    "json": "gradlint.renderers.json_format",
}


@dataclass
class RenderOptions:
    color: bool = False
    quiet: bool = False
    statistics: bool = False
    show_notes: bool = True


def render(format: str, report, options: RenderOptions | None = None) -> str:
    module = importlib.import_module(FORMATS[format])
    return module.render(report, options or RenderOptions())
