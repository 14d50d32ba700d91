"""Real architectures that are known to train get no error-severity finding: keras.applications
models, untrained (weights=None). bench/calibration.py checks all 40."""

from __future__ import annotations

import pytest

import gradlint

from applications import STATIC_APPLICATIONS, saved_application


@pytest.mark.slow
@pytest.mark.parametrize("name", STATIC_APPLICATIONS)
def test_no_error_findings(save_model, name):
    path = saved_application(save_model, name)
    report = gradlint.lint(path)
    result = report.files[0]
    assert result.error is None, result.error
    # The whole graph was read, weighted layers and all.
    weighted = [layer for layer in result.layers if layer["weighted"]]
    assert len(weighted) > 15
    assert all(layer["estimate"]["forward_scale"] is not None for layer in result.layers)
    errors = [f"{f.code} {f.layer}: {f.message}" for f in result.findings
              if f.severity == "error"]
    assert errors == []
    assert report.exit_code() == 0
