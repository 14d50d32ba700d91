"""`gradlint fix`'s text output: the settings changed (the diff), the kernels re-drawn, what
was not applied and why, and the verification."""

from __future__ import annotations

from gradlint.findings import fix_summary
from gradlint.safe_text import printable


def render_text(result, dry_run: bool = False) -> str:
    lines = []
    path = printable(result.path)
    if not result.applied and not result.calibration:
        lines.append(f"{path}: nothing to fix automatically")
    for finding in result.applied:
        state = ""
        if result.verified:
            state = " (verified: the finding is gone)" if result.verified.get(finding.code) \
                else " (NOT verified: the fixed file still has this finding)"
        lines.append(f"{path}::{printable(finding.layer or '')}: {finding.code} "
                     f"{printable(fix_summary(finding.fix, finding.code))}{state}")
    for finding, reason in result.not_applied:
        lines.append(f"{path}::{printable(finding.layer or '')}: {finding.code} not applied: "
                     f"{printable(reason)}")
    if result.changes:
        lines.append("--- settings" + (" (dry run: nothing written)" if dry_run else ""))
        lines += [f"  {printable(change)}" for change in result.changes]
    if result.redrawn:
        lines.append(f"re-drawn kernels: {len(result.redrawn)} "
                     f"({', '.join(printable(name) for name in result.redrawn[:4])}"
                     f"{' …' if len(result.redrawn) > 4 else ''}); every other weight copied "
                     "unchanged")
    if result.trained:
        lines.append(f"note: a trained checkpoint ({printable(result.trained)}): re-drawn as "
                     "asked (--reinitialize-trained)")
    if result.probe:
        for line in result.probe.get("lines", []):
            lines.append(f"probe: {printable(line)}")
    if result.written:
        lines.append(f"wrote {printable(result.output)}")
    return "".join(line + "\n" for line in lines)
