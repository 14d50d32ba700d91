"""GL901 measured-vanishing-gradient: a deep sigmoid stack's measured first/last ratio and a
collapsed forward signal are flagged; a shallow sigmoid stack and a ReLU/He stack are not."""

from __future__ import annotations

from pathlib import Path

import pytest

import gradlint

import probe_models as models

PREFIX = Path(__file__).stem
CODE = "GL901"


def findings(path, **options):
    # Only the probe's rule: no static finding to fold it into.
    result = gradlint.lint(str(path), probe=True, select=[CODE], **options).files[0]
    assert result.probe["ran"] is True, result.probe
    return [finding for finding in result.findings if finding.code == CODE]


@pytest.fixture(scope="module")
def saved(save_model):
    return lambda name: save_model(f"{PREFIX}-{name}", getattr(models, name))


def test_deep_sigmoid_stack_is_flagged(saved):
    (finding,) = findings(saved("deep_sigmoid"))
    assert finding.severity == "error"
    assert finding.layer == "hidden_1"
    assert finding.layers == ["hidden_1", "head"]
    assert finding.evidence["first_last_ratio"] < 1e-4
    assert finding.evidence["first_norm"] < 1e-4


def test_collapsed_signal_is_flagged_although_the_ratio_looks_fine(saved):
    (finding,) = findings(saved("tiny_initializer"))
    assert finding.severity == "error"
    assert "collapses" in finding.message
    assert finding.evidence["output_input_scale"] < 1e-6
    # The ratio alone would not have said so: the first layer gets more than the last.
    assert finding.evidence["first_last_ratio"] > 1


@pytest.mark.parametrize("name", ["shallow_sigmoid", "shallow_relu"])
def test_near_misses_are_not_flagged(saved, name):
    assert findings(saved(name)) == []


def test_options_move_the_thresholds(saved):
    from gradlint.config import Settings

    settings = Settings(rules={CODE: {"warning-ratio-below": 0.1}})
    (finding,) = findings(saved("shallow_sigmoid"), settings=settings)
    assert finding.severity == "warning"


def test_a_confirmed_static_finding_takes_its_place(saved):
    result = gradlint.lint(str(saved("deep_sigmoid")), probe=True).files[0]
    codes = [finding.code for finding in result.findings]
    assert "GL101" in codes and CODE not in codes
