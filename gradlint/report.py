"""The report: every linted file with its findings, and the versioned JSON contract.

JSON contract, version 2 (``version`` changes only when a field is removed or changes
meaning; new fields may appear at any time)::

    {"version": 2,
     "files": [{"path", "format",
                "model": {"name", "class", "layers", "params"} | null,
                "estimate": {"mode", "batch_size"} | null,
                "layers": [{"path", "class", "kind", "family", "activation",
                            "estimate": {"forward_scale", "gradient", "kernel_gradient",
                                         "stored_weights": {...} | null},
                            "measured": null | {"kernel_gradient", "kernel_gradient_norm",
                                                "gradient_to_weight", "forward_scale",
                                                "saturated_fraction", "dead_fraction"}}],
                "findings": [{"code", "name", "severity", "layer", "layers", "message",
                              "evidence",
                              "probe": {"verdict", "summary", "measured"} (with --probe),
                              "fix": {"scope", "automatic", "safe", "description", "reason",
                                      "layer", "setting", "old", "new",
                                      "edits": [{"layer", "setting", "old", "new"}],
                                      "estimate_after": null | {"quantity", "at", "before",
                                                                "after", "resolved"}}
                                     (only on findings with a fix),
                              "related": [finding, ...]}],
                "suppressed": [finding, ...],
                "notes": [str],
                "error": null | {"code", "message"},
                "probe": null | {"ran", "error", "seeds", "batch", "training_mode", "loss",
                                 "seconds", ...}}],
     "summary": {"findings", "by_severity": {"error", "warning", "info"},
                 "files_linted", "files_unreadable", "files_probe_failed", "suppressed"}}

``estimate`` says what the per-layer estimates are for: ``"training"`` (batch statistics in
BatchNormalization at ``batch_size`` samples, dropout active; the default) or
``"inference"`` (moving statistics). ``family`` is the layer family
(`gradlint.families`) and ``kind`` its finer name within it.

``measured`` is null when the probe did not run or the layer has no kernel; its
``kernel_gradient`` is relative to the output layer's, as the estimate's is, and its
``forward_scale`` is the RMS of the layer's output, sqrt(E[x^2]), as the estimate's is.

Version 2 (from version 1): ``measured.forward_scale`` was a standard deviation and is now
an RMS; estimates are for training mode by default (BatchNormalization used its moving
statistics before); ``estimate`` and ``layers[].family`` are new; a tf-keras TFOpLambda's
``kind`` names the operation it stands for (``add``, ``multiply``, ``activation``) instead
of ``opaque``. A recurrent
layer's ``measured`` also has ``input_gradient_by_step``: the loss gradient's norm at each
input time step, in processing order (medians over the probe's seeds).

Added in version 2 (optional, so the version stays): a finding whose rule knows what
removes it carries ``fix`` (`gradlint.findings.Fix`). ``scope`` is ``"layer"`` (layer
settings: ``kernel_initializer``, ``activation``; `gradlint fix` re-draws the re-initialized
kernels), ``"optimizer"`` (``clipnorm``, ``learning_rate`` of the saved optimizer; ``layer``
null) or ``"structural"`` (add normalization or a shortcut: ``automatic`` false, no
``edits``). ``safe`` false marks a fix `gradlint fix` applies only when its rule is selected
(an activation swap changes the function the model computes). ``layer``, ``setting``,
``old`` and ``new`` repeat the first of ``edits``. ``estimate_after`` is the static estimate
once the fix is applied: ``quantity`` (``gradient``, ``kernel_gradient``, ``input_scale`` or
``forward_scale``, as in ``layers[].estimate``) at layer ``at``, ``before`` and ``after``
it, and ``resolved``, whether the finding's rule still fires on the fixed model; null when
the fix is not automatic.

Also added in version 2: ``related`` lists, in the form of ``findings`` (each with an empty
``related``), the findings of the same cause folded into this one (`gradlint.folding`): a
condition such as GL301's deep plain route or GL302's missing normalization, reported
inside the cause (GL202's ReLU paired with Glorot) whose layers it shares. They count in
no ``summary`` figure; ignoring the cause's rule brings them back as findings of their own.

``suppressed`` lists, in the form of ``findings``, the findings a baseline (``--baseline``)
records: they are in no count of ``summary`` but its own ``suppressed``, and never fail the
run; without a baseline the list is empty.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from gradlint.findings import SEVERITIES, SEVERITY_RANK, Finding

JSON_VERSION = 2


@dataclass
class FileResult:
    """One linted file."""

    path: str
    format: str | None = None
    model: dict[str, Any] | None = None
    layers: list[dict[str, Any]] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    # Findings a baseline records, moved here out of `findings` by `gradlint.baseline.apply`:
    # in no count and no exit status; only SARIF (as suppressed results) and the JSON
    # contract ("suppressed") show them.
    suppressed: list[Finding] = field(default_factory=list)
    # The baseline file applied to this file's findings (absolute), or None. (Not
    # "baseline": that is the JSON contract's per-file summary of what the baseline did.)
    baseline_file: str | None = None
    notes: list[str] = field(default_factory=list)
    error: dict[str, str] | None = None
    # What the estimates are for: {"mode": "training" | "inference", "batch_size"}.
    estimate: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # The gradient probe's run ({"ran", "error", "seeds", "batch", "training_mode", "loss",
    # "seconds", ...}); None when the probe was not asked for.
    probe: dict[str, Any] | None = None
    # Where gradlint itself failed on this file: the traceback, shown only with --debug.
    traceback: str | None = field(default=None, repr=False, compare=False)
    # Wall time spent on this file (reading, analysis, rules, the probe), for JUnit; kept out
    # of the JSON contract so that its output stays the same from run to run.
    seconds: float | None = field(default=None, repr=False, compare=False)

    @property
    def unreadable(self) -> bool:
        return self.error is not None

    @property
    def probe_failed(self) -> bool:
        """The probe was asked for but could not run on this file."""
        return self.probe is not None and not self.probe.get("ran")

    def to_dict(self) -> dict[str, Any]:
        result = {
            "path": self.path,
            "format": self.format,
            "model": self.model,
            "estimate": self.estimate,
            "layers": self.layers,
            "findings": [finding.to_dict() for finding in self.findings],
            "notes": list(self.notes),
            "error": self.error,
            "probe": self.probe,
        }
        result.update(self.extra)
        return finite(result)


@dataclass
class Report:
    """What `gradlint.lint` returns; `to_dict` is the JSON contract."""

    files: list[FileResult] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    # What the run could not do but that fails nothing (a searched directory without models).
    warnings: list[str] = field(default_factory=list)
    # When the run started (seconds since the epoch), for JUnit's timestamp.
    started: float | None = field(default=None, repr=False, compare=False)

    @property
    def findings(self) -> list[Finding]:
        return [finding for result in self.files for finding in result.findings]

    def counts(self) -> dict[str, int]:
        counter = Counter(finding.severity for finding in self.findings)
        return {severity: counter.get(severity, 0) for severity in SEVERITIES}

    def summary(self) -> dict[str, Any]:
        unreadable = sum(1 for result in self.files if result.unreadable)
        return {
            "findings": len(self.findings),
            "by_severity": self.counts(),
            "files_linted": len(self.files) - unreadable,
            "files_unreadable": unreadable,
            "files_probe_failed": sum(1 for result in self.files if result.probe_failed),
            "suppressed": sum(len(result.suppressed) for result in self.files),
        }

    def statistics(self) -> list[tuple[str, str, int]]:
        """(code, name, count) per rule, most frequent first."""
        counter = Counter((finding.code, finding.name) for finding in self.findings)
        return [(code, name, count) for (code, name), count in
                sorted(counter.items(), key=lambda item: (-item[1], item[0][0]))]

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": JSON_VERSION,
            "files": [_with_suppressed(result) for result in self.files],
            "warnings": list(self.warnings),
            "summary": self.summary(),
        }

    def to_json(self, indent: int | None = 2) -> str:
        """The contract as JSON text that strict parsers accept: every string as the file
        holds it (control characters as JSON escapes), except that a lone surrogate (a
        non-UTF-8 byte of a path, decoded with surrogateescape, or a ``\\udcff`` escape in
        the file's own JSON), which no UTF-8 text can hold, is written as the six characters
        ``\\udcff``: it names the original byte, as in every other format."""
        text = json.dumps(self.to_dict(), indent=indent, allow_nan=False, default=_jsonable)
        # Everything non-ASCII is escaped, so a surrogate can only appear as such an escape;
        # without one, the usual case, the text is already valid.
        if "\\ud" in text:
            from gradlint.safe_text import map_strings, valid_unicode

            data = map_strings(json.loads(text), valid_unicode)
            text = json.dumps(data, indent=indent, allow_nan=False)
        return text

    def _repr_html_(self) -> str:
        """The HTML report, shown inline when a notebook displays a Report."""
        from gradlint.renderers.html import render_fragment

        return render_fragment(self)

    def __repr__(self) -> str:
        """One line, as a notebook's text/plain shows a Report, with counts only (no name from
        a file): ``<Report: 3 files (1 unreadable), 4 findings (3 errors, 1 warning)>``."""
        def plural(count: int, word: str) -> str:
            return f"{count} {word}{'' if count == 1 else 's'}"

        unreadable = sum(1 for result in self.files if result.unreadable)
        counts = self.counts()
        total = sum(counts.values())
        text = plural(len(self.files), "file") + (f" ({unreadable} unreadable)" if unreadable
                                                   else "")
        if total:
            parts = ", ".join(plural(counts[s], s) for s in SEVERITIES if counts[s])
            text += f", {plural(total, 'finding')} ({parts})"
        else:
            text += ", no findings"
        return f"<Report: {text}>"

    def _repr_markdown_(self) -> str:
        """A short Markdown summary for notebooks (and frontends that show no HTML): the
        counts, then a table row per finding (an unreadable file's GL001 among them), most
        severe first, up to 20. Names, paths and messages are escaped as in the Markdown
        report."""
        from gradlint.renderers.markdown import cell

        most = 20
        lines = [f"**gradlint**: {repr(self)[len('<Report: '):-1]}"]
        rows = []
        for result in self.files:
            for finding in result.findings:
                rank = SEVERITIES.index(finding.severity) \
                    if finding.severity in SEVERITIES else len(SEVERITIES)
                verdict = (finding.probe or {}).get("verdict")
                rows.append((rank, result.path, finding.layer or "",
                             f"{finding.code} {finding.name}",
                             finding.severity + (f" (probe: {verdict})" if verdict else ""),
                             finding.message))
        if rows:
            rows.sort(key=lambda row: row[0])  # stable: files and rules keep their order
            lines += ["", "| model | layer | rule | severity | message |",
                      "|---|---|---|---|---|"]
            for _, path, layer, rule, severity, message in rows[:most]:
                if len(message) > 240:
                    message = message[:239] + "…"
                lines.append(f"| {cell(path)} | {cell(layer)} | {cell(rule)} | {cell(severity)} "
                             f"| {cell(message)} |")
            if len(rows) > most:
                lines += ["", f"… and {len(rows) - most} more: the HTML report (how a notebook "
                              "shows a Report, or `gradlint --report report.html`) has them all."]
        return "\n".join(lines) + "\n"

    def exit_code(self, fail_on: str = "error", exit_zero: bool = False) -> int:
        """0: nothing at or above `fail_on`; 1: findings at or above it; 2: a file could not
        be read, or the probe was asked for and could not run on it (2 wins; `exit_zero`
        turns 1 into 0 but never hides 2). Baselined findings (`FileResult.suppressed`) never
        count."""
        if any(result.unreadable or result.probe_failed for result in self.files):
            return 2
        if fail_on == "never" or exit_zero:
            return 0
        threshold = SEVERITY_RANK[fail_on]
        if any(SEVERITY_RANK[finding.severity] >= threshold for finding in self.findings):
            return 1
        return 0


def _with_suppressed(result: FileResult) -> dict[str, Any]:
    """A file's part of the contract: `FileResult.to_dict` with its baselined findings as
    "suppressed", right after "findings"."""
    data: dict[str, Any] = {}
    for key, value in result.to_dict().items():
        data[key] = value
        if key == "findings":
            data["suppressed"] = finite([finding.to_dict() for finding in result.suppressed])
    return data


def finite(value: Any) -> Any:
    """The same data with NaN and infinities as the strings "nan", "inf" and "-inf", which
    strict JSON parsers accept."""
    if isinstance(value, float):
        if value != value:
            return "nan"
        if value in (float("inf"), float("-inf")):
            return "inf" if value > 0 else "-inf"
        return value
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(item) for item in value]
    return value


def _jsonable(value: Any) -> Any:
    if isinstance(value, (set, tuple)):
        return list(value)
    if hasattr(value, "item"):
        return value.item()
    return str(value)
