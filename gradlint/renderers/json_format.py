"""JSON output: the versioned contract of `gradlint.report`."""

from __future__ import annotations


def render(report, options) -> str:
    return report.to_json(indent=2) + "\n"
