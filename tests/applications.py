"""The keras.applications models that the static and probe tests both check, built and saved
once per test session under one name."""

from __future__ import annotations

from conftest import keras3

APPLICATIONS = ["ResNet50", "MobileNetV2", "DenseNet121", "EfficientNetB0"]
# Small inputs keep building, saving and probing quick; the layer graph is the same at any size.
INPUT_SHAPE = (96, 96, 3)


def saved_application(save_model, name: str):
    def make():
        return getattr(keras3().applications, name)(weights=None, input_shape=INPUT_SHAPE,
                                                    classes=10)

    return save_model(f"applications-{name}", make)
