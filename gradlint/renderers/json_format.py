"""JSON output: the versioned contract of `gradlint.report`, as `Report.to_json` writes it
(strict UTF-8 JSON; a lone surrogate from a non-UTF-8 path is written as the text
``\\udcff``)."""

from __future__ import annotations


def render(report, options) -> str:
    return report.to_json(indent=2) + "\n"
