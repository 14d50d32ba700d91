"""Real architectures that are known to train get no error-severity finding: keras.applications
ResNet50, MobileNetV2, DenseNet121 and EfficientNetB0, untrained (weights=None)."""

from __future__ import annotations

from pathlib import Path

import pytest

import gradlint

from conftest import keras3

PREFIX = Path(__file__).stem
# Small inputs keep building and saving quick; the layer graph is the same at any size.
INPUT_SHAPE = (96, 96, 3)
APPLICATIONS = ["ResNet50", "MobileNetV2", "DenseNet121", "EfficientNetB0"]


def build(name):
    def make():
        keras = keras3()
        return getattr(keras.applications, name)(weights=None, input_shape=INPUT_SHAPE,
                                                 classes=10)

    return make


@pytest.mark.slow
@pytest.mark.parametrize("name", APPLICATIONS)
def test_no_error_findings(save_model, name):
    path = save_model(f"{PREFIX}-{name}", build(name))
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
