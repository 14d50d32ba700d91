"""Under the probe, architectures known to train still get no error-severity finding:
keras.applications ResNet50, MobileNetV2, DenseNet121 and EfficientNetB0, untrained
(weights=None), measured with BatchNormalization in training mode."""

from __future__ import annotations

import pytest

import gradlint

from applications import APPLICATIONS, saved_application


@pytest.mark.slow
@pytest.mark.parametrize("name", APPLICATIONS)
def test_no_error_findings_under_the_probe(save_model, name):
    path = saved_application(save_model, name)
    report = gradlint.lint(str(path), probe=True)
    (result,) = report.files
    assert result.error is None, result.error
    assert result.probe["ran"] is True, result.probe
    assert result.probe["training_mode"] is True
    errors = [f"{f.code} {f.layer}: {f.message}" for f in result.findings
              if f.severity == "error"]
    assert errors == []
    assert report.exit_code() == 0
    weighted = [layer for layer in result.layers if layer["weighted"]]
    measured = [layer for layer in weighted if layer["measured"] is not None]
    assert len(measured) == len(weighted) > 50
    assert all(layer["measured"]["kernel_gradient_norm"] > 0 for layer in measured)
