"""Real architectures that are known to train get no error-severity finding: keras.applications
ResNet50, MobileNetV2, DenseNet121 and EfficientNetB0, untrained (weights=None)."""

from __future__ import annotations

import pytest

import gradlint

from applications import APPLICATIONS, saved_application


@pytest.mark.slow
@pytest.mark.parametrize("name", APPLICATIONS)
def test_no_error_findings(save_model, name):
    path = saved_application(save_model, name)
    report = gradlint.lint(path)
    result = report.files[0]
    assert result.error is None, result.error
    # The whole graph was read, weighted layers and all.
    weighted = [layer for layer in result.layers if layer["weighted"]]
    assert len(weighted) > 50
    assert all(layer["estimate"]["forward_scale"] is not None for layer in result.layers)
    errors = [f"{f.code} {f.layer}: {f.message}" for f in result.findings
              if f.severity == "error"]
    assert errors == []
    assert report.exit_code() == 0
