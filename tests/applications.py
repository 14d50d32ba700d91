"""The keras.applications models that the static and probe tests both check, built and saved
once per test session under one name."""

from __future__ import annotations

from conftest import keras3

APPLICATIONS = ["ResNet50", "MobileNetV2", "DenseNet121", "EfficientNetB0"]
# Checked statically only: the ones earlier estimates got wrong (LayerScale, CustomScaleLayer,
# batch-statistics growth over 152 layers, a Glorot first convolution, hard-sigmoid gates).
STATIC_APPLICATIONS = APPLICATIONS + ["ConvNeXtTiny", "InceptionResNetV2", "ResNet152",
                                      "VGG16", "MobileNetV3Small", "EfficientNetV2S"]
# Small inputs keep building, saving and probing quick; the layer graph is the same at any size.
INPUT_SHAPE = (96, 96, 3)


def saved_application(save_model, name: str):
    def make():
        return getattr(keras3().applications, name)(weights=None, input_shape=INPUT_SHAPE,
                                                    classes=10)

    return save_model(f"applications-{name}", make)
