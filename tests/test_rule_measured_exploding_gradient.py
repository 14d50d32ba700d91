"""GL902 measured-exploding-gradient: an exploding initializer's forward signal and NaN in the
stored weights are flagged; a ReLU/He stack is not."""

from __future__ import annotations

from pathlib import Path

import pytest

import gradlint

import probe_models as models

PREFIX = Path(__file__).stem
CODE = "GL902"


def findings(path):
    result = gradlint.lint(str(path), probe=True, select=[CODE]).files[0]
    assert result.probe["ran"] is True, result.probe
    return [finding for finding in result.findings if finding.code == CODE]


@pytest.fixture(scope="module")
def saved(save_model):
    return lambda name: save_model(f"{PREFIX}-{name}", getattr(models, name))


def test_exploding_initializer_is_flagged(saved):
    (finding,) = findings(saved("exploding_initializer"))
    assert finding.severity == "error"
    assert finding.evidence["largest_input_scale"] > 1e3
    assert finding.layer == "head"


def test_nan_weights_are_flagged(saved):
    (finding,) = findings(saved("nan_weights"))
    assert finding.severity == "error"
    assert "NaN or Inf" in finding.message
    assert "loss" in finding.evidence["nonfinite"]


@pytest.mark.parametrize("name", ["relu_he", "shallow_relu"])
def test_near_misses_are_not_flagged(saved, name):
    assert findings(saved(name)) == []


def test_a_confirmed_static_finding_takes_its_place(saved):
    result = gradlint.lint(str(saved("exploding_initializer")), probe=True).files[0]
    codes = [finding.code for finding in result.findings]
    assert "GL203" in codes and CODE not in codes
