"""Layer families: the registry, and each family's physics on real saved models.

Each test builds a small Keras model, saves it, reads gradlint's estimate from the file, and
checks the number the family's module documents, computed here from the model's own
configuration. `test_the_probe_measures_what_the_families_predict` then checks the estimate
against the probe on the families whose physics is new (batch statistics, gates, gated
recurrent cells, learnable scales).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest

import gradlint
from gradlint.config import Settings
from gradlint.families import all_families, family_of

from conftest import keras2, keras3

PREFIX = Path(__file__).stem


def layers_of(path, **settings) -> dict[str, dict]:
    result = gradlint.lint(str(path), settings=Settings(**settings)).to_dict()["files"][0]
    assert result.get("error") is None, result
    return {layer["path"]: layer for layer in result["layers"]}


def kernel_gradient(layers, name) -> float:
    return layers[name]["estimate"]["kernel_gradient"]


def forward_second(layers, name) -> float:
    return layers[name]["estimate"]["forward_scale"] ** 2


# --- the registry --------------------------------------------------------------------------

def test_every_class_has_one_family_and_unknown_ones_are_opaque():
    names = [family.name for family in all_families()]
    assert len(names) == len(set(names))
    assert names[-1] == "opaque"  # the fallback is asked last
    assert family_of("Dense", {}).name == "dense"
    assert family_of("keras.layers>BatchNormalization", {}).name == "normalization"
    assert family_of("TFOpLambda", {"function": "math.add"}).name == "tf_op"
    assert family_of("MyOwnLayer", {}).name == "opaque"
    assert family_of("MyOwnLayer", {}).unknown_class("MyOwnLayer", {})
    assert not family_of("Lambda", {}).unknown_class("Lambda", {})


# --- batch statistics ----------------------------------------------------------------------

def dense_bn_relu(depth=8, width=64):
    def build():
        keras = keras3()
        keras.utils.set_random_seed(0)
        layers = [keras.Input((width,))]
        for i in range(depth):
            layers += [keras.layers.Dense(width, use_bias=False, name=f"dense_{i}"),
                       keras.layers.BatchNormalization(name=f"bn_{i}"),
                       keras.layers.ReLU(name=f"relu_{i}")]
        layers.append(keras.layers.Dense(10, activation="softmax", name="output"))
        return keras.Sequential(layers)

    return build


def test_batch_statistics_make_the_gradient_grow_by_pi_over_pi_minus_one(save_model):
    # Yang et al. 2019: a dense-BN-ReLU chain's gradient second moment grows by
    # E[relu'^2] / Var(relu(z)) = (1/2) / (1/2 - 1/(2 pi)) = pi / (pi - 1) per layer in
    # training mode, times what the batch's own projection keeps, (N - 2) / N.
    path = save_model(f"{PREFIX}-dense-bn-relu", dense_bn_relu())
    layers = layers_of(path)
    expected = math.sqrt(math.pi / (math.pi - 1) * (32 - 2) / 32)
    for i in range(1, 6):
        ratio = kernel_gradient(layers, f"dense_{i}") / kernel_gradient(layers, f"dense_{i + 1}")
        assert ratio == pytest.approx(expected, rel=0.02)
    # In inference mode at initialization (moving mean 0, variance 1) BatchNormalization is
    # the identity: the Glorot/ReLU layers shrink the signal forward as much as the gradient
    # backward, and the kernel gradients stay level.
    inference = layers_of(path, estimate_mode="inference")
    ratio = kernel_gradient(inference, "dense_1") / kernel_gradient(inference, "dense_2")
    assert ratio == pytest.approx(1.0, rel=0.02)


# --- scales, gates, pooling, means ---------------------------------------------------------

def layer_scale_block(init_values):
    def build():
        keras = keras3()
        from keras.src.applications.convnext import LayerScale

        keras.utils.set_random_seed(0)
        inputs = keras.Input((32,))
        stream = keras.layers.Dense(32, name="stem")(inputs)
        branch = keras.layers.Dense(32, activation="relu", name="branch")(stream)
        branch = LayerScale(init_values, 32, name="scale")(branch)
        stream = keras.layers.Add(name="add")([stream, branch])
        outputs = keras.layers.Dense(10, activation="softmax", name="output")(stream)
        return keras.Model(inputs, outputs)

    return build


def test_layer_scale_scales_its_branch(save_model):
    small = layers_of(save_model(f"{PREFIX}-layer-scale-small", layer_scale_block(1e-3)),
                      read_weights=False)
    one = layers_of(save_model(f"{PREFIX}-layer-scale-one", layer_scale_block(1.0)),
                    read_weights=False)
    # The branch's kernel gradient is init_values times the same model's at 1, up to the
    # output layer's own kernel gradient (the reference), which grows with the signal it
    # reads: sqrt of the stream's second moments.
    reference = math.sqrt(forward_second(one, "add") / forward_second(small, "add"))
    assert kernel_gradient(small, "branch") / kernel_gradient(one, "branch") == \
        pytest.approx(1e-3 * reference, rel=0.02)
    # The branch adds init_values^2 of its second moment to the stream.
    stem = forward_second(small, "stem")
    assert forward_second(small, "add") == pytest.approx(
        stem + 1e-6 * forward_second(small, "branch"), rel=1e-3)


def test_custom_scale_layer_adds_its_scaled_branch(save_model):
    def build():
        keras = keras3()
        from keras.src.applications.inception_resnet_v2 import CustomScaleLayer

        inputs = keras.Input((16,))
        stream = keras.layers.Dense(16, name="stem")(inputs)
        branch = keras.layers.Dense(16, name="branch")(stream)
        mixed = CustomScaleLayer(0.2, name="mixed")([stream, branch])
        return keras.Model(inputs, keras.layers.Dense(4, name="output")(mixed))

    layers = layers_of(save_model(f"{PREFIX}-custom-scale", build))
    assert forward_second(layers, "mixed") == pytest.approx(
        forward_second(layers, "stem") + 0.04 * forward_second(layers, "branch"), rel=1e-3)


def test_a_negative_bias_mean_silences_the_relus(save_model):
    def build(bias):
        def model():
            keras = keras3()
            return keras.Sequential([
                keras.Input((32,)),
                keras.layers.Dense(32, activation="relu", name="dead",
                                   bias_initializer=keras.initializers.Constant(bias)),
                keras.layers.Dense(4, name="output")])
        return model

    dead = layers_of(save_model(f"{PREFIX}-bias-minus-10", build(-10.0)))
    alive = layers_of(save_model(f"{PREFIX}-bias-zero", build(0.0)))
    assert dead["dead"]["estimate"]["forward_scale"] < 1e-3
    assert alive["dead"]["estimate"]["forward_scale"] == pytest.approx(math.sqrt(0.5), rel=0.1)


def test_global_average_pooling_keeps_the_constant_part(save_model):
    def build():
        keras = keras3()
        return keras.Sequential([
            keras.Input((8, 8, 3)),
            # "valid": every output's window lies inside the input, so no border share
            keras.layers.Conv2D(16, 3, padding="valid", activation="relu",
                                kernel_initializer="he_normal", name="conv"),
            keras.layers.GlobalAveragePooling2D(name="pool"),
            keras.layers.Dense(4, name="output")])

    layers = layers_of(save_model(f"{PREFIX}-gap-valid", build))
    q = 2.0  # He: fan_in * E[w^2] = 2 on unit inputs
    constant = q / (2 * math.pi)  # E[relu(z)]^2
    varying = q / 2 - constant
    assert forward_second(layers, "pool") == pytest.approx(constant + varying / 36, rel=0.02)


def test_dropout_scales_the_signal_in_training_only(save_model):
    def build():
        keras = keras3()
        return keras.Sequential([keras.Input((16,)), keras.layers.Dense(16, name="dense"),
                                 keras.layers.Dropout(0.5, name="drop"),
                                 keras.layers.Dense(4, name="output")])

    path = save_model(f"{PREFIX}-dropout", build)
    training, inference = layers_of(path), layers_of(path, estimate_mode="inference")
    assert forward_second(training, "drop") == pytest.approx(
        2 * forward_second(training, "dense"), rel=1e-3)
    assert forward_second(inference, "drop") == pytest.approx(
        forward_second(inference, "dense"), rel=1e-3)


# --- recurrent -----------------------------------------------------------------------------

def lstm_model(return_sequences, steps=40):
    def build():
        keras = keras3()
        keras.utils.set_random_seed(0)
        inputs = keras.Input((steps, 8))
        hidden = keras.layers.LSTM(16, return_sequences=return_sequences, name="lstm")(inputs)
        return keras.Model(inputs, keras.layers.Dense(4, name="output")(hidden))

    return build


def seq2seq_model(return_sequences, steps=20):
    def build():
        keras = keras3()
        keras.utils.set_random_seed(0)
        encoder_inputs, decoder_inputs = keras.Input((steps, 8)), keras.Input((steps, 8))
        _, h, c = keras.layers.LSTM(16, return_state=True, name="encoder")(encoder_inputs)
        decoded = keras.layers.LSTM(16, return_sequences=return_sequences, name="decoder")(
            decoder_inputs, initial_state=[h, c])
        return keras.Model([encoder_inputs, decoder_inputs],
                           keras.layers.Dense(4, name="output")(decoded))

    return build


@pytest.mark.parametrize("return_sequences", [True, False])
def test_an_encoder_gets_the_gradient_its_final_states_receive(save_model, return_sequences):
    # The encoder's only route to the loss is the decoder's initial state: without it the
    # estimate gave the encoder no gradient at all (0.0) where the probe measures one.
    path = save_model(f"{PREFIX}-seq2seq-{return_sequences}", seq2seq_model(return_sequences))
    layers = {layer["path"]: layer for layer in probed(path)["layers"]}
    estimate = layers["encoder"]["estimate"]["kernel_gradient"]
    measured = layers["encoder"]["measured"]["kernel_gradient"]
    assert estimate > 0 and measured > 0
    assert abs(math.log10(estimate / measured)) <= 1.0, (estimate, measured)


# --- TensorFlow operations in tf-keras files -----------------------------------------------

def test_a_tf_math_add_residual_acts_as_an_add(save_model):
    def build():
        keras = keras2()
        import tensorflow as tf

        inputs = keras.Input((16,))
        stream = keras.layers.Dense(16, name="stem")(inputs)
        branch = keras.layers.Dense(16, name="branch")(stream)
        joined = tf.math.add(stream, branch)
        return keras.Model(inputs, keras.layers.Dense(4, name="output")(joined))

    layers = layers_of(save_model(f"{PREFIX}-tfop-add", build, "h5"))
    add = next(layer for layer in layers.values() if layer["class"] == "TFOpLambda")
    assert add["kind"] == "add" and add["family"] == "tf_op"
    assert add["estimate"]["forward_scale"] ** 2 == pytest.approx(
        forward_second(layers, "stem") + forward_second(layers, "branch"), rel=1e-3)
    assert kernel_gradient(layers, "stem") is not None  # sized: the graph goes on


# --- against the probe ---------------------------------------------------------------------

def se_cnn():
    def build():
        keras = keras3()
        keras.utils.set_random_seed(0)
        inputs = keras.Input((16, 16, 3))
        x = keras.layers.Conv2D(16, 3, padding="same", name="conv_0")(inputs)
        x = keras.layers.BatchNormalization()(x)
        x = keras.layers.ReLU()(x)
        for i in range(1, 4):
            y = keras.layers.Conv2D(16, 3, padding="same", name=f"conv_{i}")(x)
            y = keras.layers.BatchNormalization()(y)
            y = keras.layers.ReLU()(y)
            s = keras.layers.GlobalAveragePooling2D(keepdims=True)(y)
            s = keras.layers.Conv2D(4, 1, activation="relu", name=f"squeeze_{i}")(s)
            s = keras.layers.Conv2D(16, 1, activation="sigmoid", name=f"excite_{i}")(s)
            x = keras.layers.Multiply()([y, s])
        x = keras.layers.GlobalAveragePooling2D()(x)
        return keras.Model(inputs, keras.layers.Dense(10, activation="softmax",
                                                      name="output")(x))

    return build


def relu_cnn_gap_head():
    def build():
        keras = keras3()
        keras.utils.set_random_seed(0)
        layers = [keras.Input((16, 16, 3))]
        layers += [keras.layers.Conv2D(16, 3, padding="same", activation="relu",
                                       kernel_initializer="he_normal", name=f"conv_{i}")
                   for i in range(4)]
        layers += [keras.layers.GlobalAveragePooling2D(),
                   keras.layers.Dense(10, activation="softmax", name="output")]
        return keras.Sequential(layers)

    return build


def separable_stack():
    def build():
        keras = keras3()
        keras.utils.set_random_seed(0)
        inputs = keras.Input((12, 12, 32))
        x = inputs
        for i in range(4):
            x = keras.layers.SeparableConv2D(64, 3, padding="same", name=f"sep_{i}")(x)
            x = keras.layers.BatchNormalization()(x)
            x = keras.layers.ReLU()(x)
        x = keras.layers.GlobalAveragePooling2D()(x)
        return keras.Model(inputs, keras.layers.Dense(10, activation="softmax",
                                                      name="output")(x))

    return build


def rescaled_conv_bn():
    """MobileNetV3's stem: inputs rescaled to [-1, 1] (an offset of -1) before conv + BN."""
    def build():
        keras = keras3()
        keras.utils.set_random_seed(0)
        inputs = keras.Input((16, 16, 3))
        x = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0)(inputs)
        for i in range(3):
            x = keras.layers.Conv2D(16, 3, padding="same", use_bias=False, name=f"conv_{i}")(x)
            x = keras.layers.BatchNormalization()(x)
            x = keras.layers.ReLU()(x)
        x = keras.layers.GlobalAveragePooling2D()(x)
        return keras.Model(inputs, keras.layers.Dense(10, activation="softmax",
                                                      name="output")(x))

    return build


def operation_gate_se():
    """A squeeze-and-excitation gate written with Keras operations, as MobileNetV3 writes
    hard_sigmoid: relu6(x + 3) * (1 / 6) (stored as an Add and a Multiply of one tensor
    and a number)."""
    def build():
        keras = keras3()
        keras.utils.set_random_seed(0)
        inputs = keras.Input((8, 8, 16))
        x = inputs
        for i in range(3):
            y = keras.layers.Conv2D(16, 3, padding="same", name=f"conv_{i}")(x)
            y = keras.layers.BatchNormalization()(y)
            y = keras.layers.ReLU()(y)
            s = keras.layers.GlobalAveragePooling2D(keepdims=True)(y)
            s = keras.layers.Conv2D(4, 1, activation="relu", name=f"squeeze_{i}")(s)
            s = keras.layers.Conv2D(16, 1, name=f"excite_{i}")(s)
            s = keras.layers.ReLU(6.0)(s + 3.0) * (1.0 / 6.0)
            x = keras.layers.Multiply()([y, s])
        x = keras.layers.GlobalAveragePooling2D()(x)
        return keras.Model(inputs, keras.layers.Dense(10, activation="softmax",
                                                      name="output")(x))

    return build


def post_activation_residual():
    """ResNet v1's identity block, 16 times: conv -> BN -> ReLU -> conv -> BN, added to the
    block's input (a ReLU output) and passed through a ReLU."""
    def build():
        keras = keras3()
        keras.utils.set_random_seed(0)
        inputs = keras.Input((8, 8, 16))
        x = keras.layers.Conv2D(32, 3, padding="same", name="stem")(inputs)
        x = keras.layers.BatchNormalization()(x)
        x = keras.layers.Activation("relu")(x)
        for i in range(16):
            y = keras.layers.Conv2D(32, 3, padding="same", name=f"block_{i}_a")(x)
            y = keras.layers.BatchNormalization()(y)
            y = keras.layers.Activation("relu")(y)
            y = keras.layers.Conv2D(32, 3, padding="same", name=f"block_{i}_b")(y)
            y = keras.layers.BatchNormalization()(y)
            x = keras.layers.Activation("relu")(keras.layers.Add()([x, y]))
        x = keras.layers.GlobalAveragePooling2D()(x)
        return keras.Model(inputs, keras.layers.Dense(10, activation="softmax",
                                                      name="output")(x))

    return build


# The convolutions before a global average pool get the same gradient at every position,
# which sums coherently with the ReLUs' positive mean (the coherent gradient of the
# families' `kernel_square`): without it their estimate was 0.77 to 1.05 decades low, with
# it 0.1 to 0.4.
# Each of the next four was off by a decade or more before its physics: the border share
# of a "same" window (convolution.border_coverage), a separable convolution's two kernels
# (depthwise.kernel_square), a constant input offset against a gradient that batch
# statistics centre (signal._centred) and a Keras operation's scalar arguments
# (merge._terms, merge._constant_factor).
TIGHTER = {"relu-cnn-gap": 0.5, "separable-stack": 0.4, "rescaled-conv-bn": 0.4,
           "operation-gate-se": 0.5}
PROBED = {"dense-bn-relu": dense_bn_relu(), "se-cnn": se_cnn(),
          "relu-cnn-gap": relu_cnn_gap_head(), "separable-stack": separable_stack(), "rescaled-conv-bn": rescaled_conv_bn(),
          "operation-gate-se": operation_gate_se(),
          "lstm-last": lstm_model(False), "lstm-sequences": lstm_model(True),
          "layer-scale": layer_scale_block(1e-3)}


def probed(path) -> dict:
    """The JSON report of one file, probed at batch 32 (the estimate's) with 2 seeds."""
    return gradlint.lint(str(path), probe=True, settings=dataclasses.replace(
        Settings(), probe=True, probe_seeds=2, batch_size=32)).to_dict()["files"][0]


@pytest.mark.parametrize("name", PROBED)
def test_the_probe_measures_what_the_families_predict(save_model, name):
    path = save_model(f"{PREFIX}-probed-{name}", PROBED[name])
    result = probed(path)
    assert result["probe"]["ran"], result["probe"]
    errors = {}
    for layer in result["layers"]:
        measured = (layer.get("measured") or {}).get("kernel_gradient")
        estimate = (layer.get("estimate") or {}).get("kernel_gradient")
        if measured and estimate and layer["path"] != "output":
            errors[layer["path"]] = math.log10(estimate / measured)
    assert errors
    # The calibration's bar for every model: three in four layers within one decade. The
    # squeeze-and-excitation convolutions of the last block are the known gap: their
    # gradient sums positions coherently, which the estimate does not model yet.
    within = [path for path, error in errors.items() if abs(error) <= 1.0]
    assert len(within) >= 0.75 * len(errors), errors
    assert all(abs(error) <= TIGHTER.get(name, 1.5) for error in errors.values()), errors


def test_a_same_window_on_a_small_map_loses_its_border_share(save_model):
    # On a 4x4 map a 3x3 "same" window meets (10/12)^2 = 0.69 real inputs on average, so a
    # He-initialized linear convolution's output has a second moment of 2 x 0.69, not 2.
    def build():
        keras = keras3()
        keras.utils.set_random_seed(0)
        return keras.Sequential([
            keras.Input((4, 4, 8)),
            keras.layers.Conv2D(64, 3, padding="same", kernel_initializer="he_normal",
                                name="conv"),
            keras.layers.Flatten(),
            keras.layers.Dense(10, activation="softmax", name="output")])

    path = save_model(f"{PREFIX}-small-map-conv", build)
    result = probed(path)
    layer = next(layer for layer in result["layers"] if layer["path"] == "conv")
    estimate = layer["estimate"]["forward_scale"]
    assert estimate == pytest.approx(math.sqrt(2 * (10 / 12) ** 2), rel=0.01)
    assert estimate == pytest.approx(layer["measured"]["forward_scale"], rel=0.06)


def test_a_post_activation_residual_stack_does_not_drift(save_model):
    # Taking the ReLU's input in a ResNet v1 block (a ReLU output plus a BatchNorm output)
    # for a Gaussian made the estimate drift upwards block by block: 0.37 decades between
    # the first and the last layer of these 16 blocks (0.015 a block on ResNet152). With the
    # sum integrated exactly (activations.relu_of_rectified_sum) the errors stay together;
    # their common offset, about +0.5 here, comes from the pooled head, not the blocks.
    path = save_model(f"{PREFIX}-post-activation-residual", post_activation_residual())
    result = probed(path)
    errors = [math.log10(layer["estimate"]["kernel_gradient"]
                         / layer["measured"]["kernel_gradient"])
              for layer in result["layers"] if layer["path"].startswith("block_")
              and (layer.get("measured") or {}).get("kernel_gradient")]
    assert len(errors) == 32
    assert max(errors) - min(errors) <= 0.25, errors
    assert all(abs(error) <= 1.0 for error in errors), errors
