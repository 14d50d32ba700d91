"""Text output: one line per finding, ``path::layer: GL101 [error] message``, then a summary.
A finding with a fix is followed by an indented ``    fix: ...`` line (not with --quiet).

Names, messages and paths come from the model file and the file system, so every line is
assembled by `_line`, which passes each piece through `printable` (control characters, ANSI
and OSC escape sequences, lone surrogates are shown escaped, as ``\\x1b[31m``) before adding
gradlint's own colours: nothing else writes to the terminal.
"""

from __future__ import annotations

from gradlint.findings import fix_summary, probe_suffix, related_suffix
from gradlint.safe_text import printable

COLORS = {"error": "\033[31m", "warning": "\033[33m", "info": "\033[36m"}
BOLD = "\033[1m"
DIM = "\033[2m"
RESET = "\033[0m"


class _Painted(tuple):
    """A piece of a line and the style to show it in: (text, style)."""


def _paint(text: str, style: str, enabled: bool):
    return _Painted((text, style)) if enabled else text


def _line(*pieces) -> str:
    """One line of output: every piece escaped with `printable`, painted pieces wrapped in
    their style. The only place that puts escape sequences into the output."""
    parts = []
    for piece in pieces:
        if isinstance(piece, _Painted):
            text, style = piece
            parts.append(f"{style}{printable(text)}{RESET}")
        else:
            parts.append(printable(piece))
    return "".join(parts)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def finding_line(path: str, finding, color: bool = False) -> str:
    location = f"{path}::{finding.layer}" if finding.layer else path
    pieces = [_paint(location, BOLD, color), ": ", _paint(finding.code, BOLD, color), " ",
              _paint(f"[{finding.severity}]", COLORS.get(finding.severity, ""), color), " ",
              finding.message + related_suffix(finding)]
    suffix = probe_suffix(finding.probe)
    if suffix:
        pieces.append(_paint(suffix, DIM, color))
    return _line(*pieces)


def fix_line(fix, color: bool = False, code: str | None = None) -> str:
    """The line under a finding that has a fix: ``    fix: kernel_initializer glorot_uniform
    → he_normal at 'dense_1' (fixes it: 8.00e-06 → 0.4 at 'dense_1')`` (not with --quiet)."""
    return _line("    ", _paint("fix:", BOLD, color), " ", fix_summary(fix, code))


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
    return _line(text + ".")


def file_lines(result, options) -> str:
    """One file's findings (and a probe that could not run), as they print while a run is
    still going."""
    color = options.color
    lines = []
    for finding in result.findings:
        lines.append(finding_line(result.path, finding, color))
        if finding.fix is not None and not options.quiet:
            lines.append(fix_line(finding.fix, color, finding.code))
    if getattr(result, "probe_failed", False):
        # As loud as an unreadable file: printed even with --quiet.
        lines.append(_line(_paint(result.path, BOLD, color), ": probe ",
                           _paint("[error]", COLORS["error"], color),
                           f" the probe could not run: {result.probe.get('error')}"))
    return "".join(line + "\n" for line in lines)


def closing_lines(report, options) -> str:
    """What follows the findings: notes and the summary (nothing with `quiet`)."""
    color = options.color
    lines = []
    if not options.quiet:
        if options.show_notes:
            for result in report.files:
                for note in result.notes:
                    lines.append(_line(_paint(f"{result.path}: note: {note}", DIM, color)))
            for skipped in report.skipped:
                lines.append(_line(_paint(f"note: {skipped}", DIM, color)))
        lines.append(summary_line(report))
    return "".join(line + "\n" for line in lines)


def render(report, options) -> str:
    if options.statistics:
        findings = "".join(_line(f"{count:5d}  {code}  {name}") + "\n"
                           for code, name, count in report.statistics())
    else:
        findings = "".join(file_lines(result, options) for result in report.files)
    return findings + closing_lines(report, options)
