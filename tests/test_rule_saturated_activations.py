"""GL903 saturated-activations: tanh units with pre-activations far beyond ±5 are flagged;
moderately wide tanh and Glorot-initialized sigmoid layers are not."""

from __future__ import annotations

from pathlib import Path

import pytest

import gradlint

import probe_models as models

PREFIX = Path(__file__).stem
CODE = "GL903"


def findings(path):
    result = gradlint.lint(str(path), probe=True, select=[CODE]).files[0]
    assert result.probe["ran"] is True, result.probe
    return result, [finding for finding in result.findings if finding.code == CODE]


@pytest.fixture(scope="module")
def saved(save_model):
    return lambda name: save_model(f"{PREFIX}-{name}", getattr(models, name))


def test_saturated_tanh_layers_are_flagged(saved):
    result, (finding,) = findings(saved("saturated_tanh"))
    assert finding.severity == "warning"
    assert finding.evidence["activation"] == "tanh"
    assert 0.5 < finding.evidence["saturated_fraction"] <= 0.9
    assert finding.layers == ["hidden_1", "hidden_2", "hidden_3"]
    measured = {layer["path"]: layer["measured"] for layer in result.layers}
    assert measured["hidden_1"]["saturated_fraction"] > 0.5
    assert measured["hidden_1"]["dead_fraction"] is None


@pytest.mark.parametrize("name", ["moderate_tanh", "deep_sigmoid"])
def test_near_misses_are_not_flagged(saved, name):
    result, found = findings(saved(name))
    assert found == []
    fractions = [layer["measured"]["saturated_fraction"] for layer in result.layers
                 if layer["path"].startswith("hidden_")]
    assert all(fraction is not None and fraction < 0.5 for fraction in fractions)
