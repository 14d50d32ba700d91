"""NaN or Inf values in the stored weights.

## What it flags
Any stored weight tensor (kernel, bias, normalization statistics) with NaN or infinite
values. Needs the weights: skipped with `--no-weights`.

## Why it hurts gradient flow
A single NaN weight turns every activation downstream of it, the loss and every gradient into
NaN on the first batch; an Inf does the same after one multiplication by zero. A model saved
in this state usually comes from a run that already diverged.

## Example
A checkpoint saved after the loss became NaN, or weights edited by hand.

## Use instead
Restore an earlier checkpoint, lower the learning rate and add gradient clipping
(`clipnorm=1.0`) before training again.
"""

from gradlint import verdicts
from gradlint.findings import Problem

CODE = "GL205"
NAME = "non-finite-weights"
SEVERITY = "error"
PRECISION = "very-high"
GROUPS = ("weights", "exploding")
ALIASES = ("nan-weights",)
OPTIONS = {}
CLAIMS = "exploding"


def confirm(finding, measurements, options):
    """The probe confirms it by NaN or Inf in its measurement."""
    return verdicts.nonfinite(finding, measurements)


def check(analysis, options):
    for layer in analysis.graph.layers():
        bad = [stats for stats in layer.weights if not stats.finite]
        if not bad:
            continue
        count = sum(stats.nonfinite_count for stats in bad)
        roles = ", ".join(stats.role for stats in bad)
        yield Problem(
            f"'{layer.path}' stores {count} NaN or Inf value{'s' if count != 1 else ''} "
            f"(in {roles})",
            layer=layer.path, layers=[layer.path],
            evidence={"nonfinite_values": count, "tensors": [s.role for s in bad]})
