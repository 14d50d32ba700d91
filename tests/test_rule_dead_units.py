"""GL904 dead-units: ReLU layers whose biases start far negative are dead and flagged; a
shallow ReLU/He stack is not."""

from __future__ import annotations

from pathlib import Path

import gradlint

import probe_models as models

PREFIX = Path(__file__).stem
CODE = "GL904"


def findings(path):
    result = gradlint.lint(str(path), probe=True, select=[CODE]).files[0]
    assert result.probe["ran"] is True, result.probe
    return result, [finding for finding in result.findings if finding.code == CODE]


def test_dead_relu_layers_are_flagged(save_model):
    result, (finding,) = findings(save_model(f"{PREFIX}-dead", models.dead_relu))
    assert finding.severity == "error"
    assert finding.evidence["dead_fraction"] == 1.0
    assert finding.layer == "hidden_1"
    measured = {layer["path"]: layer["measured"] for layer in result.layers}
    assert measured["hidden_1"]["dead_fraction"] == 1.0


def test_shallow_relu_he_stack_is_not_flagged(save_model):
    result, found = findings(save_model(f"{PREFIX}-shallow", models.shallow_relu))
    assert found == []
    fractions = [layer["measured"]["dead_fraction"] for layer in result.layers
                 if layer["path"].startswith("hidden_")]
    assert all(fraction is not None and fraction < 0.7 for fraction in fractions)
