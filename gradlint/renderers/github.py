"""GitHub Actions workflow commands, so findings show as annotations on the pull request:

    ::error file=models/deep.keras,title=GL101 saturating-activation-chain::dense: 10 saturating …

Errors become ``::error``, warnings ``::warning`` and info ``::notice``. The file is the
model's path relative to the repository's root. Values are escaped as the runner expects:
``%``, ``\\r`` and ``\\n`` everywhere, and also ``:`` and ``,`` in properties.

GitHub shows at most 10 annotations of each kind (error, warning, notice) per step and drops
the rest without a word, so the annotations are chosen, not just printed: models worst first
(most errors, then warnings, then info), each model's findings together and worst first, at
most `ANNOTATIONS_PER_KIND` of each kind. When a kind has more, the last of its 10 is a
run-level annotation (no file) that says how many more there are and where they are: every
one left out is printed in the step's log below the annotations, as a plain line that starts
with ``gradlint: `` (so no path or name can start a workflow command). Repeated GL002
findings for one custom layer class in one model (ConvNeXt has 18 ``LayerScale`` layers)
are one annotation that names the other layers (`collapse_repeats`).

Names, messages and paths come from the model file and the file system, and the runner's
log viewer acts on ANSI escape sequences, so `annotation` first passes every value through
`printable`: control characters and lone surrogates are shown escaped (``\\x1b``,
``\\udcff``). A line break in a message is kept, as the runner's ``%0A``, so the annotation
shows it and the command stays on one line; in a property (file, title) it is shown as
``\\n``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gradlint.findings import SEVERITY_RANK, Finding, probe_suffix, related_suffix
from gradlint.renderers.report_data import plural, probe_failure, repository_path
from gradlint.renderers.text import finding_line
from gradlint.rules.unknown_layer import CODE as UNKNOWN_LAYER
from gradlint.safe_text import printable

COMMANDS = {"error": "error", "warning": "warning", "info": "notice"}
KINDS = ("error", "warning", "notice")
# What GitHub shows of each kind per step; the rest are dropped.
ANNOTATIONS_PER_KIND = 10
# How the overflow counts a kind: "3 more errors", "12 more info findings".
KIND_WORDS = {"error": "error", "warning": "warning", "notice": "info finding"}
# Layers named in a collapsed annotation before the list is shortened with "…".
NAMED_REPEATS = 5


def escape_data(value: str) -> str:
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(value: str) -> str:
    return escape_data(value).replace(":", "%3A").replace(",", "%2C")


def annotation(severity: str, path: str | None, title: str, message: str) -> str:
    """One workflow command; the only place that writes text from the report into one. Without
    a path the annotation belongs to the run, not to a file."""
    command = COMMANDS.get(severity, "warning")
    properties = f"title={escape_property(printable(title))}"
    if path is not None:
        properties = f"file={escape_property(printable(path))},{properties}"
    return f"::{command} {properties}::{escape_data(printable(message, line_breaks=True))}"


@dataclass
class Collapsed:
    """A finding and the repeats folded into it: the same GL002 finding about the same custom
    layer class on other layers of the same model."""

    finding: Finding
    repeats: list[Finding] = field(default_factory=list)

    @property
    def findings(self) -> list[Finding]:
        return [self.finding, *self.repeats]

    @property
    def layers(self) -> list[str]:
        return [finding.layer for finding in self.findings if finding.layer]

    @property
    def message(self) -> str:
        """The first finding's message, and the other layers by name when there are any."""
        message = self.finding.message
        if not self.repeats:
            return message
        names = [f"'{finding.layer}'" for finding in self.repeats]
        if len(names) > NAMED_REPEATS:
            names = names[:NAMED_REPEATS - 1] + ["…", names[-1]]
        count = len(self.repeats)
        return (f"{message}; {plural(count, 'more layer')} of class "
                f"{self.finding.evidence.get('class')} likewise: {', '.join(names)}")


def _repeat_key(finding: Finding):
    if finding.code != UNKNOWN_LAYER or not finding.layer:
        return None
    layer_class = (finding.evidence or {}).get("class")
    if not isinstance(layer_class, str):
        return None
    return finding.severity, layer_class


def collapse_repeats(findings: list[Finding]) -> list[Collapsed]:
    """One model's findings, in their order, with repeated GL002 findings for one custom
    layer class folded into the first of them."""
    collapsed: list[Collapsed] = []
    by_key: dict[tuple[str, str], Collapsed] = {}
    for finding in findings:
        key = _repeat_key(finding)
        if key is not None and key in by_key:
            by_key[key].repeats.append(finding)
            continue
        item = Collapsed(finding)
        collapsed.append(item)
        if key is not None:
            by_key[key] = item
    return collapsed


def worst_first_findings(findings: list[Finding]) -> list[Finding]:
    """Most severe first, otherwise in the order the rules reported them."""
    return sorted(findings, key=lambda finding: -SEVERITY_RANK.get(finding.severity, 0))


def badness(result) -> tuple[int, int, int]:
    """How bad a linted file is, for sorting worst first: its errors (a probe that could not
    run counts as one), then its warnings, then its info findings."""
    counts = {severity: 0 for severity in SEVERITY_RANK}
    for finding in result.findings:
        if finding.severity in counts:
            counts[finding.severity] += 1
    return counts["error"] + int(result.probe_failed), counts["warning"], counts["info"]


def worst_first(files: list) -> list:
    """Files with the most errors first, then warnings, then info; otherwise in order."""
    return sorted(files, key=lambda result: tuple(-count for count in badness(result)))


@dataclass
class _Entry:
    kind: str
    path: str
    line: str                                   # the workflow command
    log_lines: list[str]                        # how the log shows it when it is left out
    count: int                                  # findings (or probe failures) it stands for


def _entries(report) -> list[_Entry]:
    entries = []
    for result in worst_first(report.files):
        path = repository_path(result.path)
        for item in collapse_repeats(worst_first_findings(result.findings)):
            finding = item.finding
            title = f"{finding.code} {finding.name}".strip()
            message = item.message
            if finding.layer:
                message = f"{finding.layer}: {message}"
            message += related_suffix(finding) + probe_suffix(finding.probe)
            entries.append(_Entry(
                kind=COMMANDS.get(finding.severity, "warning"), path=path,
                line=annotation(finding.severity, path, title, message),
                log_lines=[finding_line(path, each) for each in item.findings],
                count=len(item.findings)))
        if result.probe_failed:
            failure = probe_failure({"probe": result.probe}) or "the probe could not run"
            entries.append(_Entry(kind="error", path=path,
                                  line=annotation("error", path, "gradlint probe", failure),
                                  log_lines=[printable(f"{path}: probe [error] {failure}")],
                                  count=1))
    return entries


def _overflow(kind: str, left_out: list[_Entry]) -> str:
    count = sum(entry.count for entry in left_out)
    models = len({entry.path for entry in left_out})
    what = plural(count, f"more {KIND_WORDS[kind]}")
    severity = {"notice": "info"}.get(kind, kind)
    return annotation(
        severity, None, f"gradlint: {what}",
        f"{what} in {plural(models, 'model')} are not annotated: GitHub shows at most "
        f"{ANNOTATIONS_PER_KIND} {kind} annotations per step. Every one is listed in this "
        "step's log, below the annotations, and in the job summary or the full report "
        "(--report) where the workflow writes one.")


def render(report, options) -> str:
    entries = _entries(report)
    overflows: list[str] = []
    left_out: list[_Entry] = []
    for kind in KINDS:
        of_kind = [entry for entry in entries if entry.kind == kind]
        if len(of_kind) > ANNOTATIONS_PER_KIND:
            # The first 9 in order, and the overflow as the tenth: GitHub shows no eleventh.
            beyond = of_kind[ANNOTATIONS_PER_KIND - 1:]
            overflows.append(_overflow(kind, beyond))
            left_out += beyond
    hidden = {id(entry) for entry in left_out}
    lines = [entry.line for entry in entries if id(entry) not in hidden] + overflows
    if left_out:
        counts = [plural(sum(e.count for e in left_out if e.kind == kind),
                         f"more {KIND_WORDS[kind]}")
                  for kind in KINDS if any(e.kind == kind for e in left_out)]
        lines.append(f"gradlint: {_join(counts)} not annotated (GitHub shows at most "
                     f"{ANNOTATIONS_PER_KIND} annotations of each kind per step):")
        for entry in entries:
            if id(entry) in hidden:
                lines += [f"gradlint: {line}" for line in entry.log_lines]
    if not options.quiet:
        summary = report.summary()
        counts = summary["by_severity"]
        parts = [plural(counts[s], s) for s in ("error", "warning", "info") if counts.get(s)]
        lines.append(f"gradlint: {plural(summary['findings'], 'finding')}"
                     f"{' (' + ', '.join(parts) + ')' if parts else ''} in "
                     f"{plural(summary['files_linted'], 'model')}"
                     + (f"; {plural(summary['files_unreadable'], 'file')} could not be read"
                        if summary["files_unreadable"] else ""))
    return "\n".join(lines) + ("\n" if lines else "")


def _join(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else f"{', '.join(parts[:-1])} and {parts[-1]}"
