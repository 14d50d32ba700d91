"""GitHub Actions workflow commands, so findings show as annotations on the pull request:

    ::error file=models/deep.keras,title=GL101 saturating-activation-chain::dense: 10 saturating …

Errors become ``::error``, warnings ``::warning`` and info ``::notice``. The file is the
model's path relative to the repository's root. Values are escaped as the runner expects:
``%``, ``\\r`` and ``\\n`` everywhere, and also ``:`` and ``,`` in properties.

Names, messages and paths come from the model file and the file system, and the runner's
log viewer acts on ANSI escape sequences, so `annotation` first passes every value through
`printable`: control characters and lone surrogates are shown escaped (``\\x1b``,
``\\udcff``). A line break in a message is kept, as the runner's ``%0A``, so the annotation
shows it and the command stays on one line; in a property (file, title) it is shown as
``\\n``.
"""

from __future__ import annotations

from gradlint.findings import probe_suffix
from gradlint.renderers.report_data import (plural, probe_failure, report_dict,
                                            repository_path)
from gradlint.safe_text import printable

COMMANDS = {"error": "error", "warning": "warning", "info": "notice"}


def escape_data(value: str) -> str:
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(value: str) -> str:
    return escape_data(value).replace(":", "%3A").replace(",", "%2C")


def annotation(severity: str, path: str, title: str, message: str) -> str:
    """One workflow command; the only place that writes text from the report."""
    command = COMMANDS.get(severity, "warning")
    properties = (f"file={escape_property(printable(path))},"
                  f"title={escape_property(printable(title))}")
    return f"::{command} {properties}::{escape_data(printable(message, line_breaks=True))}"


def render(report, options) -> str:
    data = report_dict(report)
    lines = []
    for file in data.get("files", []):
        path = repository_path(file["path"])
        for finding in file.get("findings", []):
            title = f"{finding.get('code', '')} {finding.get('name', '')}".strip()
            message = finding.get("message", "")
            if finding.get("layer"):
                message = f"{finding['layer']}: {message}"
            message += probe_suffix(finding.get("probe"))
            lines.append(annotation(finding.get("severity", "warning"), path, title, message))
        failure = probe_failure(file)
        if failure:
            lines.append(annotation("error", path, "gradlint probe", failure))
    if not options.quiet:
        summary = data.get("summary", {})
        counts = summary.get("by_severity", {})
        parts = [plural(counts.get(s, 0), s) for s in ("error", "warning", "info")
                 if counts.get(s)]
        lines.append(f"gradlint: {plural(summary.get('findings', 0), 'finding')}"
                     f"{' (' + ', '.join(parts) + ')' if parts else ''} in "
                     f"{plural(summary.get('files_linted', 0), 'model')}"
                     + (f"; {plural(summary['files_unreadable'], 'file')} could not be read"
                        if summary.get("files_unreadable") else ""))
    return "\n".join(lines) + ("\n" if lines else "")
