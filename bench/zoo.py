"""The calibration zoo: real architectures saved to real files, built once and cached.

    python bench/zoo.py list                       # every model: name, group, file
    python bench/zoo.py build [--group G] [--only PATTERN] [--force]

The models go into ``bench/models/zoo/`` (git-ignored), one file per model, with
``manifest.json`` beside them (per model: group, file, input shape, parameters, layers, build
seconds, or the build's error). A model already built is kept; ``--force`` rebuilds it. Files
are written under a temporary name and renamed, so an interrupted build never leaves a
half-written model behind.

Groups (see ``MODELS`` for every entry):

- ``applications``: every ``keras.applications`` model (``weights=None``, ``include_top=True``,
  1,000 classes) at 96x96x3 inputs (every one of them accepts 96x96 without weights; the
  smallest each allows is 32 to 75), to keep the probe's time down.
- ``transformer``: encoder blocks (post-LN and pre-LN), a decoder with causal self-attention
  and cross-attention, and a GPT-style decoder-only language model, from
  ``MultiHeadAttention`` + ``LayerNormalization`` + a Dense feed-forward network.
- ``recurrent``: LSTM, GRU and SimpleRNN with and without ``return_sequences``, Bidirectional,
  stacked LSTMs.
- ``plain``: MLPs (10-30 Dense layers) and CNNs (12 conv layers) with ReLU, tanh, sigmoid and
  SELU, each with and without BatchNormalization.
- ``gates``: squeeze-and-excitation CNNs (sigmoid and hard-sigmoid gates) and a ConvNeXt-style
  model with Keras's own ``LayerScale`` (gamma 1e-6).
- ``tf_keras``: Keras 2 ``.h5`` files written by tf-keras, among them residual blocks joined by
  ``tf.math.add`` (stored as ``TFOpLambda``) and a Sequential model without an ``InputLayer``.
- ``keras_hub`` (optional): small keras-hub backbones from small configurations; skipped when
  ``keras_hub`` is not importable.

Every model is built with ``keras.utils.set_random_seed(BUILD_SEED)`` first. This script
imports TensorFlow and Keras; ``bench/calibration.py`` runs it in its own process, one process
per group, so that the benchmark itself never imports them.
"""

from __future__ import annotations

import argparse
import fnmatch
import gc
import json
import os
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ZOO_DIR = os.path.join(HERE, "models", "zoo")
MANIFEST = "manifest.json"
BUILD_SEED = 1234
IMAGE_SIZE = 96
GROUPS = ("plain", "gates", "recurrent", "transformer", "tf_keras", "applications",
          "keras_hub")
OPTIONAL_GROUPS = {"keras_hub": "keras_hub"}

APPLICATIONS = (
    "ConvNeXtBase", "ConvNeXtLarge", "ConvNeXtSmall", "ConvNeXtTiny", "ConvNeXtXLarge",
    "DenseNet121", "DenseNet169", "DenseNet201",
    "EfficientNetB0", "EfficientNetB1", "EfficientNetB2", "EfficientNetB3", "EfficientNetB4",
    "EfficientNetB5", "EfficientNetB6", "EfficientNetB7",
    "EfficientNetV2B0", "EfficientNetV2B1", "EfficientNetV2B2", "EfficientNetV2B3",
    "EfficientNetV2L", "EfficientNetV2M", "EfficientNetV2S",
    "InceptionResNetV2", "InceptionV3", "MobileNet", "MobileNetV2", "MobileNetV3Large",
    "MobileNetV3Small", "NASNetLarge", "NASNetMobile", "ResNet101", "ResNet101V2",
    "ResNet152", "ResNet152V2", "ResNet50", "ResNet50V2", "VGG16", "VGG19", "Xception",
)
# The representative subset `calibration.py --quick` runs: one of each kind of thing.
QUICK = (
    "mlp_relu_30", "mlp_tanh_bn_20", "cnn_relu_bn_12", "se_cnn_sigmoid", "convnext_style",
    "lstm_last", "gru_sequences", "bidirectional_lstm", "simple_rnn_last",
    "encoder_post_ln", "decoder_cross", "tfk_residual_tfop", "tfk_mlp_no_input_layer",
    "app_ResNet50", "app_MobileNetV2", "app_EfficientNetB0", "app_ConvNeXtTiny",
    "hub_bert_tiny",
)


def model_entries() -> list[dict]:
    """Every model of the zoo: name, group, file name and how to build it."""
    entries = []

    def add(name, group, builder, ext=".keras", **options):
        entries.append({"name": name, "group": group, "file": name + ext,
                        "builder": builder, "options": options})

    for activation, depth in (("relu", 30), ("tanh", 20), ("sigmoid", 10), ("selu", 20)):
        add(f"mlp_{activation}_{depth}", "plain", "mlp", activation=activation, depth=depth,
            batchnorm=False)
        add(f"mlp_{activation}_bn_{depth}", "plain", "mlp", activation=activation, depth=depth,
            batchnorm=True)
    for activation in ("relu", "tanh", "sigmoid", "selu"):
        add(f"cnn_{activation}_12", "plain", "cnn", activation=activation, depth=12,
            batchnorm=False)
        add(f"cnn_{activation}_bn_12", "plain", "cnn", activation=activation, depth=12,
            batchnorm=True)
    add("se_cnn_sigmoid", "gates", "se_cnn", gate="sigmoid")
    add("se_cnn_hard_sigmoid", "gates", "se_cnn", gate="hard_sigmoid")
    add("convnext_style", "gates", "convnext_style")
    for cell in ("LSTM", "GRU", "SimpleRNN"):
        prefix = {"LSTM": "lstm", "GRU": "gru", "SimpleRNN": "simple_rnn"}[cell]
        add(f"{prefix}_last", "recurrent", "rnn", cell=cell, return_sequences=False)
        add(f"{prefix}_sequences", "recurrent", "rnn", cell=cell, return_sequences=True)
    add("bidirectional_lstm", "recurrent", "bidirectional", return_sequences=False)
    add("bidirectional_gru_sequences", "recurrent", "bidirectional", return_sequences=True,
        cell="GRU")
    add("stacked_lstm", "recurrent", "stacked_lstm")
    add("encoder_post_ln", "transformer", "encoder", pre_norm=False)
    add("encoder_pre_ln", "transformer", "encoder", pre_norm=True)
    add("decoder_cross", "transformer", "decoder")
    add("decoder_only_lm", "transformer", "decoder_only")
    add("tfk_mlp", "tf_keras", "tfk_mlp", ext=".h5", input_layer=True)
    add("tfk_mlp_no_input_layer", "tf_keras", "tfk_mlp", ext=".h5", input_layer=False)
    add("tfk_cnn_bn", "tf_keras", "tfk_cnn", ext=".h5")
    add("tfk_residual_tfop", "tf_keras", "tfk_residual_tfop", ext=".h5")
    add("tfk_tfop_relu_scale", "tf_keras", "tfk_tfop_relu_scale", ext=".h5")
    add("tfk_lstm", "tf_keras", "tfk_lstm", ext=".h5")
    add("tfk_MobileNetV2", "tf_keras", "tfk_application", ext=".h5", application="MobileNetV2")
    for application in APPLICATIONS:
        add(f"app_{application}", "applications", "application", application=application)
    add("hub_bert_tiny", "keras_hub", "hub", backbone="BertBackbone",
        config=dict(vocabulary_size=1000, num_layers=2, num_heads=2, hidden_dim=64,
                    intermediate_dim=128, max_sequence_length=64))
    add("hub_gpt2_tiny", "keras_hub", "hub", backbone="GPT2Backbone",
        config=dict(vocabulary_size=1000, num_layers=2, num_heads=2, hidden_dim=64,
                    intermediate_dim=128, max_sequence_length=64))
    add("hub_roberta_tiny", "keras_hub", "hub", backbone="RobertaBackbone",
        config=dict(vocabulary_size=1000, num_layers=2, num_heads=2, hidden_dim=64,
                    intermediate_dim=128, max_sequence_length=64))
    add("hub_distil_bert_tiny", "keras_hub", "hub", backbone="DistilBertBackbone",
        config=dict(vocabulary_size=1000, num_layers=2, num_heads=2, hidden_dim=64,
                    intermediate_dim=128, max_sequence_length=64))
    add("hub_llama_tiny", "keras_hub", "hub", backbone="LlamaBackbone",
        config=dict(vocabulary_size=1000, num_layers=2, num_query_heads=4,
                    num_key_value_heads=2, hidden_dim=64, intermediate_dim=128))
    return entries


# --- builders (Keras 3) ---------------------------------------------------------------------

def build_mlp(keras, activation, depth, batchnorm):
    init = {"relu": "he_normal", "selu": "lecun_normal"}.get(activation, "glorot_uniform")
    inputs = keras.Input((64,))
    x = inputs
    for index in range(depth - 1):
        if batchnorm:
            x = keras.layers.Dense(128, kernel_initializer=init, name=f"dense_{index}")(x)
            x = keras.layers.BatchNormalization(name=f"bn_{index}")(x)
            x = keras.layers.Activation(activation, name=f"act_{index}")(x)
        else:
            x = keras.layers.Dense(128, activation=activation, kernel_initializer=init,
                                   name=f"dense_{index}")(x)
    outputs = keras.layers.Dense(10, activation="softmax", name="output")(x)
    return keras.Model(inputs, outputs)


def build_cnn(keras, activation, depth, batchnorm):
    init = {"relu": "he_normal", "selu": "lecun_normal"}.get(activation, "glorot_uniform")
    inputs = keras.Input((32, 32, 3))
    x = inputs
    filters = 16
    for index in range(depth):
        if index and index % 4 == 0:
            x = keras.layers.MaxPooling2D(name=f"pool_{index}")(x)
            filters *= 2
        x = keras.layers.Conv2D(filters, 3, padding="same", kernel_initializer=init,
                                activation=None if batchnorm else activation,
                                name=f"conv_{index}")(x)
        if batchnorm:
            x = keras.layers.BatchNormalization(name=f"bn_{index}")(x)
            x = keras.layers.Activation(activation, name=f"act_{index}")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(10, activation="softmax", name="output")(x)
    return keras.Model(inputs, outputs)


def build_se_cnn(keras, gate):
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(32, 3, padding="same", kernel_initializer="he_normal",
                            name="stem")(inputs)
    x = keras.layers.BatchNormalization(name="stem_bn")(x)
    x = keras.layers.Activation("relu")(x)
    for block, filters in enumerate((32, 32, 64, 64, 128)):
        shortcut = x
        if shortcut.shape[-1] != filters:
            shortcut = keras.layers.Conv2D(filters, 1, name=f"b{block}_proj")(x)
        y = keras.layers.Conv2D(filters, 3, padding="same", kernel_initializer="he_normal",
                                name=f"b{block}_conv1")(x)
        y = keras.layers.BatchNormalization(name=f"b{block}_bn1")(y)
        y = keras.layers.Activation("relu")(y)
        y = keras.layers.Conv2D(filters, 3, padding="same", kernel_initializer="he_normal",
                                name=f"b{block}_conv2")(y)
        y = keras.layers.BatchNormalization(name=f"b{block}_bn2")(y)
        s = keras.layers.GlobalAveragePooling2D(keepdims=True, name=f"b{block}_squeeze")(y)
        s = keras.layers.Conv2D(max(filters // 8, 4), 1, activation="relu",
                                name=f"b{block}_se_reduce")(s)
        s = keras.layers.Conv2D(filters, 1, activation=gate, name=f"b{block}_se_expand")(s)
        y = keras.layers.Multiply(name=f"b{block}_excite")([y, s])
        x = keras.layers.Add(name=f"b{block}_add")([shortcut, y])
        x = keras.layers.Activation("relu")(x)
        if block in (1, 3):
            x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(10, activation="softmax", name="output")(x)
    return keras.Model(inputs, outputs)


def build_convnext_style(keras):
    from keras.src.applications.convnext import LayerScale

    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(48, 4, strides=4, name="stem")(inputs)
    x = keras.layers.LayerNormalization(epsilon=1e-6, name="stem_ln")(x)
    for stage, (blocks, width) in enumerate(((2, 48), (2, 96), (2, 192))):
        if stage:
            x = keras.layers.LayerNormalization(epsilon=1e-6, name=f"down{stage}_ln")(x)
            x = keras.layers.Conv2D(width, 2, strides=2, name=f"down{stage}_conv")(x)
        for block in range(blocks):
            name = f"s{stage}b{block}"
            y = keras.layers.DepthwiseConv2D(7, padding="same", name=f"{name}_dw")(x)
            y = keras.layers.LayerNormalization(epsilon=1e-6, name=f"{name}_ln")(y)
            y = keras.layers.Dense(4 * width, activation="gelu", name=f"{name}_pw1")(y)
            y = keras.layers.Dense(width, name=f"{name}_pw2")(y)
            y = LayerScale(1e-6, width, name=f"{name}_scale")(y)
            x = keras.layers.Add(name=f"{name}_add")([x, y])
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.LayerNormalization(epsilon=1e-6, name="head_ln")(x)
    outputs = keras.layers.Dense(10, activation="softmax", name="output")(x)
    return keras.Model(inputs, outputs)


def _cell(keras, cell):
    return {"LSTM": keras.layers.LSTM, "GRU": keras.layers.GRU,
            "SimpleRNN": keras.layers.SimpleRNN}[cell]


def build_rnn(keras, cell, return_sequences):
    inputs = keras.Input((50, 16))
    x = keras.layers.Dense(32, activation="tanh", name="embed")(inputs)
    x = _cell(keras, cell)(64, return_sequences=return_sequences, name="rnn")(x)
    x = keras.layers.Dense(32, activation="relu", name="head")(x)
    outputs = keras.layers.Dense(10, activation="softmax", name="output")(x)
    return keras.Model(inputs, outputs)


def build_bidirectional(keras, return_sequences, cell="LSTM"):
    inputs = keras.Input((50, 16))
    x = keras.layers.Dense(32, activation="tanh", name="embed")(inputs)
    x = keras.layers.Bidirectional(_cell(keras, cell)(64, return_sequences=return_sequences),
                                   name="birnn")(x)
    outputs = keras.layers.Dense(10, activation="softmax", name="output")(x)
    return keras.Model(inputs, outputs)


def build_stacked_lstm(keras):
    inputs = keras.Input((50, 16))
    x = keras.layers.LSTM(64, return_sequences=True, name="lstm_1")(inputs)
    x = keras.layers.LSTM(64, return_sequences=True, name="lstm_2")(x)
    x = keras.layers.LSTM(64, name="lstm_3")(x)
    outputs = keras.layers.Dense(10, activation="softmax", name="output")(x)
    return keras.Model(inputs, outputs)


def _encoder_block(keras, x, name, pre_norm, width=64, heads=4, ffn=256):
    if pre_norm:
        y = keras.layers.LayerNormalization(name=f"{name}_ln1")(x)
        y = keras.layers.MultiHeadAttention(heads, width // heads, name=f"{name}_mha")(y, y)
        x = keras.layers.Add(name=f"{name}_add1")([x, y])
        y = keras.layers.LayerNormalization(name=f"{name}_ln2")(x)
        y = keras.layers.Dense(ffn, activation="gelu", name=f"{name}_ffn1")(y)
        y = keras.layers.Dense(width, name=f"{name}_ffn2")(y)
        return keras.layers.Add(name=f"{name}_add2")([x, y])
    y = keras.layers.MultiHeadAttention(heads, width // heads, name=f"{name}_mha")(x, x)
    x = keras.layers.LayerNormalization(name=f"{name}_ln1")(
        keras.layers.Add(name=f"{name}_add1")([x, y]))
    y = keras.layers.Dense(ffn, activation="relu", name=f"{name}_ffn1")(x)
    y = keras.layers.Dense(width, name=f"{name}_ffn2")(y)
    return keras.layers.LayerNormalization(name=f"{name}_ln2")(
        keras.layers.Add(name=f"{name}_add2")([x, y]))


def build_encoder(keras, pre_norm):
    inputs = keras.Input((32, 64))
    x = keras.layers.Dense(64, name="project")(inputs)
    for block in range(4):
        x = _encoder_block(keras, x, f"enc{block}", pre_norm)
    if pre_norm:
        x = keras.layers.LayerNormalization(name="final_ln")(x)
    x = keras.layers.GlobalAveragePooling1D()(x)
    outputs = keras.layers.Dense(10, activation="softmax", name="output")(x)
    return keras.Model(inputs, outputs)


def build_decoder(keras):
    source = keras.Input((32, 64), name="source")
    target = keras.Input((24, 64), name="target")
    memory = keras.layers.Dense(64, name="source_project")(source)
    for block in range(2):
        memory = _encoder_block(keras, memory, f"enc{block}", pre_norm=False)
    x = keras.layers.Dense(64, name="target_project")(target)
    for block in range(2):
        name = f"dec{block}"
        y = keras.layers.MultiHeadAttention(4, 16, name=f"{name}_self")(
            x, x, use_causal_mask=True)
        x = keras.layers.LayerNormalization(name=f"{name}_ln1")(
            keras.layers.Add(name=f"{name}_add1")([x, y]))
        y = keras.layers.MultiHeadAttention(4, 16, name=f"{name}_cross")(x, memory)
        x = keras.layers.LayerNormalization(name=f"{name}_ln2")(
            keras.layers.Add(name=f"{name}_add2")([x, y]))
        y = keras.layers.Dense(256, activation="relu", name=f"{name}_ffn1")(x)
        y = keras.layers.Dense(64, name=f"{name}_ffn2")(y)
        x = keras.layers.LayerNormalization(name=f"{name}_ln3")(
            keras.layers.Add(name=f"{name}_add3")([x, y]))
    outputs = keras.layers.Dense(100, activation="softmax", name="output")(x)
    return keras.Model([source, target], outputs)


def build_decoder_only(keras):
    # Positions come in as a second integer input (0..31): Keras 3 has no position layer.
    tokens = keras.Input((32,), dtype="int32", name="tokens")
    positions = keras.Input((32,), dtype="int32", name="positions")
    x = keras.layers.Embedding(500, 64, name="token_embedding")(tokens)
    p = keras.layers.Embedding(32, 64, name="position_embedding")(positions)
    x = keras.layers.Add(name="embed_add")([x, p])
    for block in range(3):
        name = f"blk{block}"
        y = keras.layers.LayerNormalization(name=f"{name}_ln1")(x)
        y = keras.layers.MultiHeadAttention(4, 16, name=f"{name}_attn")(
            y, y, use_causal_mask=True)
        x = keras.layers.Add(name=f"{name}_add1")([x, y])
        y = keras.layers.LayerNormalization(name=f"{name}_ln2")(x)
        y = keras.layers.Dense(256, activation="gelu", name=f"{name}_ffn1")(y)
        y = keras.layers.Dense(64, name=f"{name}_ffn2")(y)
        x = keras.layers.Add(name=f"{name}_add2")([x, y])
    x = keras.layers.LayerNormalization(name="final_ln")(x)
    outputs = keras.layers.Dense(500, activation="softmax", name="output")(x)
    return keras.Model([tokens, positions], outputs)


def build_application(keras, application):
    builder = getattr(keras.applications, application)
    return builder(weights=None, input_shape=(IMAGE_SIZE, IMAGE_SIZE, 3))


def build_hub(keras, backbone, config):
    import keras_hub

    return getattr(keras_hub.models, backbone)(**config)


# --- builders (tf-keras, Keras 2 .h5) -------------------------------------------------------

def build_tfk_mlp(tfk, input_layer):
    layers = [tfk.layers.InputLayer(input_shape=(32,))] if input_layer else []
    first = {} if input_layer else {"input_shape": (32,)}
    layers.append(tfk.layers.Dense(64, activation="tanh", **first))
    layers += [tfk.layers.Dense(64, activation="tanh") for _ in range(10)]
    layers.append(tfk.layers.Dense(10, activation="softmax", name="output"))
    return tfk.Sequential(layers)


def build_tfk_cnn(tfk):
    inputs = tfk.Input((32, 32, 3))
    x = inputs
    for index in range(8):
        x = tfk.layers.Conv2D(32, 3, padding="same", use_bias=False,
                              kernel_initializer="he_normal", name=f"conv_{index}")(x)
        x = tfk.layers.BatchNormalization(name=f"bn_{index}")(x)
        x = tfk.layers.ReLU()(x)
    x = tfk.layers.GlobalAveragePooling2D()(x)
    outputs = tfk.layers.Dense(10, activation="softmax", name="output")(x)
    return tfk.Model(inputs, outputs)


def build_tfk_residual_tfop(tfk, tf):
    inputs = tfk.Input((32, 32, 3))
    x = tfk.layers.Conv2D(32, 3, padding="same", kernel_initializer="he_normal",
                          name="stem")(inputs)
    for block in range(6):
        y = tfk.layers.BatchNormalization(name=f"b{block}_bn1")(x)
        y = tfk.layers.ReLU()(y)
        y = tfk.layers.Conv2D(32, 3, padding="same", kernel_initializer="he_normal",
                              name=f"b{block}_conv1")(y)
        y = tfk.layers.BatchNormalization(name=f"b{block}_bn2")(y)
        y = tfk.layers.ReLU()(y)
        y = tfk.layers.Conv2D(32, 3, padding="same", kernel_initializer="he_normal",
                              name=f"b{block}_conv2")(y)
        x = tf.math.add(x, y)
    x = tfk.layers.GlobalAveragePooling2D()(x)
    outputs = tfk.layers.Dense(10, activation="softmax", name="output")(x)
    return tfk.Model(inputs, outputs)


def build_tfk_tfop_relu_scale(tfk, tf):
    inputs = tfk.Input((64,))
    x = inputs
    for index in range(8):
        x = tfk.layers.Dense(128, kernel_initializer="he_normal", name=f"dense_{index}")(x)
        x = tf.nn.relu(x)
    x = tf.math.multiply(x, 0.5)
    outputs = tfk.layers.Dense(10, activation="softmax", name="output")(x)
    return tfk.Model(inputs, outputs)


def build_tfk_lstm(tfk):
    inputs = tfk.Input((40, 8))
    x = tfk.layers.LSTM(32, return_sequences=True, name="lstm_1")(inputs)
    x = tfk.layers.LSTM(32, name="lstm_2")(x)
    outputs = tfk.layers.Dense(5, activation="softmax", name="output")(x)
    return tfk.Model(inputs, outputs)


def build_tfk_application(tfk, application):
    return getattr(tfk.applications, application)(weights=None,
                                                  input_shape=(IMAGE_SIZE, IMAGE_SIZE, 3))


# --- building and the manifest --------------------------------------------------------------

def read_manifest(zoo_dir: str = ZOO_DIR) -> dict:
    try:
        with open(os.path.join(zoo_dir, MANIFEST)) as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return {}


def write_manifest(manifest: dict, zoo_dir: str = ZOO_DIR) -> None:
    path = os.path.join(zoo_dir, MANIFEST)
    with open(path + ".tmp", "w") as handle:
        json.dump(manifest, handle, indent=1, sort_keys=True)
    os.replace(path + ".tmp", path)


def group_available(group: str) -> bool:
    module = OPTIONAL_GROUPS.get(group)
    if module is None:
        return True
    import importlib.util

    return importlib.util.find_spec(module) is not None


def selected(entries, group=None, only=None):
    result = [e for e in entries if group is None or e["group"] == group]
    if only:
        patterns = only.split(",")
        result = [e for e in result if any(fnmatch.fnmatch(e["name"], p) or p in e["name"]
                                           for p in patterns)]
    return result


def _input_shapes(model) -> list:
    try:
        return [list(t.shape) for t in model.inputs]
    except Exception:  # noqa: BLE001 - only for the manifest
        return []


def build_group(group: str, zoo_dir: str, only: str | None, force: bool) -> int:
    """Build the group's missing models in this process; returns how many failed."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    entries = [e for e in selected(model_entries(), group, only)
               if force or not os.path.exists(os.path.join(zoo_dir, e["file"]))]
    if not entries:
        return 0
    os.makedirs(zoo_dir, exist_ok=True)
    if group == "tf_keras":
        import tensorflow as tf
        import tf_keras as kmod
        extra = {"tf": tf}
    else:
        import keras as kmod
        extra = {}
    failures = 0
    for entry in entries:
        path = os.path.join(zoo_dir, entry["file"])
        started = time.monotonic()
        record = {"group": group, "file": entry["file"], "options": entry["options"],
                  "build_seed": BUILD_SEED}
        try:
            kmod.utils.set_random_seed(BUILD_SEED)
            builder = globals()["build_" + entry["builder"]]
            wants = builder.__code__.co_varnames[:builder.__code__.co_argcount]
            kwargs = dict(entry["options"])
            kwargs.update({k: v for k, v in extra.items() if k in wants})
            model = builder(kmod, **kwargs)
            temporary = path + ".partial" + os.path.splitext(path)[1]
            model.save(temporary)
            os.replace(temporary, path)
            record.update(layers=len(model.layers), params=int(model.count_params()),
                          input_shapes=_input_shapes(model), bytes=os.path.getsize(path),
                          build_seconds=round(time.monotonic() - started, 1), error=None)
            print(f"built {entry['name']}: {record['params']:,} parameters, "
                  f"{record['build_seconds']} s", file=sys.stderr, flush=True)
        except Exception as error:  # noqa: BLE001 - one bad model never stops the others
            failures += 1
            record.update(error=f"{type(error).__name__}: {error}"[:2000],
                          traceback=traceback.format_exc()[-4000:])
            print(f"FAILED {entry['name']}: {record['error'][:300]}", file=sys.stderr,
                  flush=True)
        manifest = read_manifest(zoo_dir)
        manifest[entry["name"]] = record
        write_manifest(manifest, zoo_dir)
        model = None
        try:
            kmod.backend.clear_session()
        except Exception:  # noqa: BLE001
            pass
        gc.collect()
    return failures


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("list", "build"))
    parser.add_argument("--group", choices=GROUPS)
    parser.add_argument("--only", help="comma-separated name globs or substrings")
    parser.add_argument("--zoo-dir", default=ZOO_DIR)
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args(argv)
    if args.command == "list":
        for entry in selected(model_entries(), args.group, args.only):
            print(f"{entry['name']:32} {entry['group']:13} {entry['file']}")
        return 0
    groups = [args.group] if args.group else list(GROUPS)
    failures = 0
    for group in groups:
        if not group_available(group):
            print(f"skipping group {group}: {OPTIONAL_GROUPS[group]} is not importable",
                  file=sys.stderr)
            continue
        failures += build_group(group, args.zoo_dir, args.only, args.force)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
