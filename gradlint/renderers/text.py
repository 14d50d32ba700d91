"""Text output: one line per finding, ``path::layer: GL101 [error] message``, then a summary."""

from __future__ import annotations

COLORS = {"error": "\033[31m", "warning": "\033[33m", "info": "\033[36m"}
BOLD = "\033[1m"
DIM = "\033[2m"
RESET = "\033[0m"


def _paint(text: str, style: str, enabled: bool) -> str:
    return f"{style}{text}{RESET}" if enabled else text


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def finding_line(path: str, finding, color: bool = False) -> str:
    location = f"{path}::{finding.layer}" if finding.layer else path
    severity = _paint(f"[{finding.severity}]", COLORS.get(finding.severity, ""), color)
    code = _paint(finding.code, BOLD, color)
    line = f"{_paint(location, BOLD, color)}: {code} {severity} {finding.message}"
    if finding.probe:
        verdict = finding.probe.get("verdict")
        detail = finding.probe.get("summary")
        if verdict:
            line += _paint(f" (probe: {verdict}{'; ' + detail if detail else ''})", DIM, color)
    return line


def summary_line(report) -> str:
    summary = report.summary()
    counts = summary["by_severity"]
    parts = [_plural(counts[s], s) for s in ("error", "warning", "info") if counts[s]]
    files = summary["files_linted"]
    text = (f"Found {_plural(summary['findings'], 'finding')}"
            f"{' (' + ', '.join(parts) + ')' if parts else ''} in {_plural(files, 'model')}")
    if summary["files_unreadable"]:
        text += f"; {_plural(summary['files_unreadable'], 'file')} could not be read"
    if summary.get("files_probe_failed"):
        text += f"; the probe could not run on {_plural(summary['files_probe_failed'], 'model')}"
    return text + "."


def render(report, options) -> str:
    lines = []
    if options.statistics:
        for code, name, count in report.statistics():
            lines.append(f"{count:5d}  {code}  {name}")
    else:
        for result in report.files:
            for finding in result.findings:
                lines.append(finding_line(result.path, finding, options.color))
            if getattr(result, "probe_failed", False):
                # As loud as an unreadable file: printed even with --quiet.
                severity = _paint("[error]", COLORS["error"], options.color)
                lines.append(f"{_paint(result.path, BOLD, options.color)}: probe {severity} "
                             f"the probe could not run: {result.probe.get('error')}")
    if not options.quiet:
        if options.show_notes:
            for result in report.files:
                for note in result.notes:
                    lines.append(_paint(f"{result.path}: note: {note}", DIM, options.color))
            for skipped in report.skipped:
                lines.append(_paint(f"note: {skipped}", DIM, options.color))
        lines.append(summary_line(report))
    return "\n".join(lines) + ("\n" if lines else "")
