"""Output shapes that the configuration alone gives: padding, cropping, resizing, ConvLSTM,
a Lambda's declared shape and a nested model's declared input. Keras 2 `.h5` files record no tensor
shapes, so without the stored weights (`--no-weights`, `to_json` architectures) every layer
after one of these was left unsized. Each model is saved by tf-keras and read back; every
layer's shape must be the one Keras gives it."""

from __future__ import annotations

import pytest

from conftest import keras2
from gradlint.readers import read_model

PREFIX = "test_reader_shapes"


def _sequential(*layers):
    def build():
        keras = keras2()
        model = keras.Sequential([layer(keras) for layer in layers])
        model.compile(optimizer="sgd", loss="mse")
        return model

    return build


def _conv(rank: int, data_format: str = "channels_last"):
    return lambda keras: getattr(keras.layers, f"Conv{rank}D")(
        4, 3, padding="same", activation="relu", data_format=data_format)


MODELS = {
    "zero_padding_1d_int": _sequential(
        lambda k: k.layers.InputLayer(input_shape=(10, 3)),
        lambda k: k.layers.ZeroPadding1D(2), _conv(1)),
    "zero_padding_1d_pair": _sequential(
        lambda k: k.layers.InputLayer(input_shape=(10, 3)),
        lambda k: k.layers.ZeroPadding1D((1, 3)), _conv(1)),
    "zero_padding_2d_pairs": _sequential(
        lambda k: k.layers.InputLayer(input_shape=(8, 9, 3)),
        lambda k: k.layers.ZeroPadding2D(((1, 2), (0, 3))), _conv(2)),
    "zero_padding_2d_channels_first": _sequential(
        lambda k: k.layers.InputLayer(input_shape=(3, 8, 9)),
        lambda k: k.layers.ZeroPadding2D((1, 2), data_format="channels_first"),
        lambda k: k.layers.Flatten(), lambda k: k.layers.Dense(5)),
    "zero_padding_3d": _sequential(
        lambda k: k.layers.InputLayer(input_shape=(4, 5, 6, 2)),
        lambda k: k.layers.ZeroPadding3D(1), _conv(3)),
    "cropping_1d": _sequential(
        lambda k: k.layers.InputLayer(input_shape=(10, 3)),
        lambda k: k.layers.Cropping1D((2, 1)), _conv(1)),
    "cropping_2d": _sequential(
        lambda k: k.layers.InputLayer(input_shape=(16, 20, 3)),
        lambda k: k.layers.Cropping2D(((3, 1), (2, 5))), _conv(2)),
    "cropping_3d": _sequential(
        lambda k: k.layers.InputLayer(input_shape=(6, 7, 8, 2)),
        lambda k: k.layers.Cropping3D(((1, 1), (2, 0), (0, 3))), _conv(3)),
    "resizing": _sequential(
        lambda k: k.layers.InputLayer(input_shape=(16, 20, 3)),
        lambda k: k.layers.Resizing(8, 12), _conv(2)),
    "center_crop": _sequential(
        lambda k: k.layers.InputLayer(input_shape=(16, 20, 3)),
        lambda k: k.layers.CenterCrop(10, 6), _conv(2)),
    "conv_lstm_2d_sequences": _sequential(
        lambda k: k.layers.InputLayer(input_shape=(5, 12, 10, 3)),
        lambda k: k.layers.ConvLSTM2D(4, 3, strides=2, padding="same", return_sequences=True),
        lambda k: k.layers.ConvLSTM2D(6, 3, padding="valid"), _conv(2)),
    "conv_lstm_1d": _sequential(
        lambda k: k.layers.InputLayer(input_shape=(5, 16, 3)),
        lambda k: k.layers.ConvLSTM1D(4, 3, dilation_rate=2), _conv(1)),
    "lambda_with_output_shape": _sequential(
        lambda k: k.layers.InputLayer(input_shape=(6,)),
        lambda k: k.layers.Lambda(lambda x: x[:, :4] * 2.0, output_shape=(4,)),
        lambda k: k.layers.Dense(3, activation="relu")),
}


def _nested_after_lambda():
    keras = keras2()
    inner = keras.Sequential([keras.layers.InputLayer(input_shape=(6,)),
                              keras.layers.Dense(3, activation="relu")], name="inner")
    inputs = keras.Input((6,))
    scaled = keras.layers.Lambda(lambda x: x / 255.0)(inputs)  # no output_shape
    model = keras.Model(inputs, inner(scaled))
    model.compile(optimizer="sgd", loss="mse")
    return model


MODELS["nested_model_after_lambda"] = _nested_after_lambda


def _keras_shapes(model, prefix: str = "") -> dict[str, tuple]:
    shapes = {}
    for layer in model.layers:
        if hasattr(layer, "layers"):
            shapes.update(_keras_shapes(layer, f"{prefix}{layer.name}/"))
        elif type(layer).__name__ != "InputLayer":
            shapes[prefix + layer.name] = tuple(layer.output_shape)
    return shapes


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_layer_is_sized_without_the_weights(save_model, name):
    path = save_model(f"{PREFIX}-{name}", MODELS[name], format="h5")
    graph = read_model(str(path), read_weights=False)
    read = {node.layer.path: node.output_shape for node in graph.nodes
            if node.layer.family.name != "input"}
    # Our own file, whose Lambda's bytecode tf-keras loads.
    assert read == _keras_shapes(keras2().models.load_model(str(path), compile=False))


def test_a_conv_lstm_kernel_is_sized_without_the_weights(save_model):
    path = save_model(f"{PREFIX}-conv_lstm_2d_sequences", MODELS["conv_lstm_2d_sequences"],
                      format="h5")
    kernels = {layer.path: layer.family.kernel_shape(layer, node.input_shapes[0])
               for node in read_model(str(path), read_weights=False).nodes
               for layer in [node.layer] if layer.family.is_weighted(layer)}
    stored = {layer.name: tuple(layer.weights[0].shape) for layer in
              keras2().models.load_model(str(path), compile=False).layers if layer.weights}
    assert kernels == stored
