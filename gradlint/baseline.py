"""Baselines: adopt the gate on a repository whose models already have findings.

``gradlint --create-baseline FILE models/`` records today's findings;
``gradlint --baseline FILE models/`` (or ``baseline = "FILE"`` in ``[tool.gradlint]``, relative
to the configuration file) then sets aside every finding recorded there, so that only new
findings count towards the exit status. A baselined finding moves from
``FileResult.findings`` to ``FileResult.suppressed`` (the same `Finding` object): it is in no
count, no exit status and no output format except SARIF, which keeps it as a suppressed
result so that code scanning does not close its alert as fixed, and the JSON contract's
per-file ``"suppressed"`` list. Baseline entries that no longer match anything (the model was
fixed, the layer renamed or the file deleted) are noted, never failed on:
``--create-baseline`` again refreshes the file.

An entry is keyed by the model's path relative to the baseline file's directory
('/'-separated), the layer path and the rule code, never by a position, so that adding a
model, reordering layers or rewording a message keeps the baseline matching. The message is
stored for people reading the file but not compared. Unreadable files (GL001) are never
recorded: a file that cannot be read always fails.

File format::

    {"version": 1,
     "findings": [{"path": "models/deep.keras", "layer": "dense", "code": "GL101",
                   "count": 1, "message": "..."}]}
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from gradlint.rules.unreadable_model import CODE as UNREADABLE

BASELINE_VERSION = 1

Key = tuple[str, str, str]  # (model path, layer path or "", rule code)


class BaselineError(ValueError):
    """A baseline file that cannot be read or written."""


@dataclass
class BaselineOutcome:
    """What applying a baseline did."""

    path: str
    suppressed: int = 0
    stale: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> str:
        text = (f"baseline {os.path.relpath(self.path)}: "
                f"{self.suppressed} known finding{'' if self.suppressed == 1 else 's'} not shown")
        if self.stale:
            count = len(self.stale)
            text += (f"; {count} entr{'y' if count == 1 else 'ies'} no longer "
                     f"match{'es' if count == 1 else ''} anything (refresh with --create-baseline)")
        return text


def model_key(path: str, base: str) -> str:
    """A model's path as the baseline stores it: relative to `base`, '/'-separated."""
    if path.startswith("<") and path.endswith(">"):  # a live model
        return path
    absolute = os.path.abspath(path)
    try:
        relative = os.path.relpath(absolute, base)
    except ValueError:  # another drive on Windows
        relative = absolute
    return relative.replace(os.sep, "/")


def _key(model: str, finding) -> Key:
    return (model, finding.layer or "", finding.code)


def _base(baseline_path: str) -> str:
    return os.path.dirname(os.path.abspath(baseline_path))


def create(report, baseline_path: str) -> int:
    """Write the report's findings as a baseline; returns how many were recorded."""
    base = _base(baseline_path)
    counts: Counter[Key] = Counter()
    messages: dict[Key, str] = {}
    for result in report.files:
        if result.unreadable:
            continue
        model = model_key(result.path, base)
        for finding in result.findings:
            if finding.code == UNREADABLE:
                continue
            key = _key(model, finding)
            counts[key] += 1
            messages.setdefault(key, finding.message)
    entries = [{"path": path, "layer": layer or None, "code": code, "count": counts[key],
                "message": messages[key]}
               for key in sorted(counts) for path, layer, code in [key]]
    data = {"version": BASELINE_VERSION, "findings": entries}
    try:
        # surrogateescape: a non-UTF-8 file name is written as its own bytes and read back
        # the same, so its key still matches.
        with open(baseline_path, "w", encoding="utf-8", errors="surrogateescape") as handle:
            json.dump(data, handle, indent=2, ensure_ascii=False)
            handle.write("\n")
    except OSError as error:
        raise BaselineError(f"cannot write the baseline {baseline_path}: "
                            f"{error.strerror or error}") from None
    return sum(counts.values())


def load(baseline_path: str) -> Counter[Key]:
    """The entries of a baseline file, with how many findings each one covers."""
    try:
        with open(baseline_path, encoding="utf-8", errors="surrogateescape") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        raise BaselineError(f"baseline file {baseline_path} does not exist (create it with "
                            "--create-baseline)") from None
    except OSError as error:
        raise BaselineError(f"cannot read the baseline {baseline_path}: "
                            f"{error.strerror or error}") from None
    except json.JSONDecodeError as error:
        raise BaselineError(f"baseline {baseline_path} is not valid JSON: {error}") from None
    if not isinstance(data, dict) or not isinstance(data.get("findings"), list):
        raise BaselineError(f"baseline {baseline_path} is not a gradlint baseline "
                            "(expected an object with a 'findings' list)")
    if data.get("version") != BASELINE_VERSION:
        raise BaselineError(f"baseline {baseline_path} has version {data.get('version')!r}; "
                            f"this gradlint reads version {BASELINE_VERSION}")
    entries: Counter[Key] = Counter()
    for index, entry in enumerate(data["findings"]):
        if not (isinstance(entry, dict) and isinstance(entry.get("path"), str)
                and isinstance(entry.get("code"), str)
                and isinstance(entry.get("layer"), (str, type(None)))):
            raise BaselineError(f"baseline {baseline_path}: entry {index + 1} needs 'path', "
                                "'code' (strings) and 'layer' (a string or null)")
        count = entry.get("count", 1)
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise BaselineError(f"baseline {baseline_path}: entry {index + 1} has an invalid "
                                "'count'")
        entries[(entry["path"], entry["layer"] or "", entry["code"])] += count
    return entries


def apply(report, baseline_path: str) -> BaselineOutcome:
    """Move the report's findings that the baseline records from each file's `findings` to
    its `suppressed` (in their order; of several findings with one key, the first ones), and
    note the entries that no longer match anything. Changes `report` in place."""
    base = _base(baseline_path)
    remaining = load(baseline_path)
    outcome = BaselineOutcome(path=baseline_path)
    linted: dict[str, Any] = {}
    for result in report.files:
        model = model_key(result.path, base)
        linted[model] = result
        result.baseline_file = os.path.abspath(baseline_path)
        if result.unreadable:
            continue  # an unreadable file always fails; its entries are not judged
        kept = []
        suppressed = []
        for finding in result.findings:
            key = _key(model, finding)
            if finding.code != UNREADABLE and remaining[key] > 0:
                remaining[key] -= 1
                suppressed.append(finding)
            else:
                kept.append(finding)
        result.findings = kept
        result.suppressed.extend(suppressed)
        outcome.suppressed += len(suppressed)
        result.extra["baseline"] = {"suppressed": len(suppressed)}

    for (model, layer, code), count in sorted(remaining.items()):
        if count <= 0:
            continue
        result = linted.get(model)
        if result is not None and result.unreadable:
            continue
        exists = model.startswith("<") or os.path.exists(os.path.join(base, model))
        if result is None and exists:
            continue  # not linted in this run (pre-commit passes only changed files)
        where = f" at layer '{layer}'" if layer else ""
        entry = {"path": model, "layer": layer or None, "code": code, "count": count}
        outcome.stale.append(entry)
        if result is not None:
            result.notes.append(f"baseline entry {code}{where} no longer matches anything")
            result.extra["baseline"].setdefault("stale", []).append(entry)
        else:
            report.skipped.append(f"baseline entry {code}{where} for {model}: the model no "
                                  "longer exists")
    return outcome


def baseline_path(settings) -> str | None:
    """The baseline file the settings name, made absolute (a configuration file's value is
    relative to that file's directory)."""
    value = getattr(settings, "baseline", None)
    if not value:
        return None
    return os.path.join(settings.root, value) if not os.path.isabs(value) else value


def gate(report, settings, create_path: str | None = None) -> bool:
    """What the command line does with baselines after linting: record the findings
    (`create_path`), or leave out those the configured baseline records. Returns True when
    the run should exit 0 whatever it found (a baseline was just created)."""
    import sys

    if create_path:
        count = create(report, create_path)
        from gradlint.safe_text import printable

        print(f"gradlint: recorded {count} finding{'' if count == 1 else 's'} in "
              f"{printable(create_path)}", file=sys.stderr)
        return True
    path = baseline_path(settings)
    if path is None:
        return False
    outcome = apply(report, path)
    report.skipped.append(outcome.summary())
    return False
