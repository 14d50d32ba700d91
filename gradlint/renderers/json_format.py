"""JSON output: the versioned contract of `gradlint.report`, as `Report.to_json` writes it
(strict UTF-8 JSON; a lone surrogate from a non-UTF-8 path is written as the text
``\\udcff``)."""

from __future__ import annotations


def render(report, options) -> str:
    if options.statistics:  # --statistics: how often each rule fired
        import json

        return json.dumps([{"code": code, "name": name, "count": count}
                           for code, name, count in report.statistics()], indent=2) + "\n"
    return report.to_json(indent=2) + "\n"
