"""The real Keras models behind tests/data/configs/: each case is a builder from a rule's (or a
renderer's) own Keras test module, with the arguments that test passes, and the format it is
saved in. `tests/extract_configs.py` builds, saves and extracts them; the config-based tests
(tests/test_*_config.py) read what it wrote without TensorFlow.

Importing this module imports the test modules (for their builders) but not Keras: the
builders call `keras3()` / `keras2()` only when a case is built.
"""

from __future__ import annotations

import report_models
import test_rule_constant_initializer as gl204
import test_rule_deep_plain_network as gl301
import test_rule_exploding_initialization as gl203
import test_rule_float16_gradient_underflow as gl405
import test_rule_frozen_model as gl404
import test_rule_initializer_activation_mismatch as gl202
import test_rule_large_learning_rate as gl403
import test_rule_missing_normalization as gl302
import test_rule_output_loss_mismatch as gl102
import test_rule_recurrent_without_clipping as gl402
import test_rule_saturating_activation_chain as gl101
import test_rule_small_initializer as gl201
import test_rule_ungated_recurrent_layer as gl401
from conftest import keras2, keras3

# The library each format is written by (as conftest's `save_model` expects).
LIBRARY = {"keras": keras3, "keras2": keras2, "h5": keras2}


def _each(format_list, build_with):
    """One case per format: `build_with(keras)` builds the model with that format's Keras."""
    return {format: (lambda format=format: build_with(LIBRARY[format]())) for format in format_list}


def _cases():
    """{name: (format, build)}: the name is `<what>-<case>-<format>`."""
    cases: dict[str, tuple[str, object]] = {}

    def add(name, formats, build_with):
        for format, build in _each(formats, build_with).items():
            cases[f"{name}-{format}"] = (format, build)

    all_formats = ("keras", "keras2", "h5")
    # GL101 saturating-activation-chain
    add("gl101-sigmoid20", all_formats, lambda k: gl101.saturating_mlp(k, 20))
    add("gl101-sigmoid3", ("keras",), lambda k: gl101.saturating_mlp(k, 3))
    add("gl101-tanh20", ("keras",), lambda k: gl101.saturating_mlp(k, 20, "tanh"))
    cases["gl101-lstm-keras"] = ("keras", gl101.lstm_model)
    # GL102 output-loss-mismatch: every case of its table, in both of its formats
    for case, (build, _) in gl102.CASES.items():
        add(f"gl102-{case}", ("keras", "h5"), build)
    # GL201 small-initializer
    add("gl201-narrow10", all_formats, lambda k: gl201.narrow_mlp(k, 10))
    add("gl201-narrow1", ("keras",), lambda k: gl201.narrow_mlp(k, 1))
    add("gl201-narrow10-bn", ("keras",), lambda k: gl201.narrow_mlp(k, 10, normalize=True))
    # GL202 initializer-activation-mismatch
    add("gl202-relu30-glorot", ("keras", "h5"), lambda k: gl202.mlp(k, 30))
    add("gl202-relu30-he", ("keras",), lambda k: gl202.mlp(k, 30, initializer="he_normal"))
    add("gl202-relu3-glorot", ("keras",), lambda k: gl202.mlp(k, 3))
    # GL203 exploding-initialization
    add("gl203-wide10", ("keras", "h5"), lambda k: gl203.wide_mlp(k, 10))
    add("gl203-wide2", ("keras",), lambda k: gl203.wide_mlp(k, 2))
    # GL204 constant-initializer
    add("gl204-zeros-hidden", all_formats, lambda k: gl204.mlp(k, "zeros"))
    add("gl204-random", ("keras",), lambda k: gl204.mlp(k))
    add("gl204-zeros-output", ("keras",), lambda k: gl204.mlp(k, output_initializer="zeros"))
    # GL301 deep-plain-network
    add("gl301-plain24", ("keras", "h5"), lambda k: gl301.plain(k, 24))
    add("gl301-plain24-he", ("keras",), lambda k: gl301.plain(k, 24, init="he_normal"))
    add("gl301-plain18", ("keras",), lambda k: gl301.plain(k, 18))
    add("gl301-plain19", ("keras",), lambda k: gl301.plain(k, 19))
    # GL302 missing-normalization
    add("gl302-run16", ("keras", "keras2"), lambda k: gl302.stack(k, 15))
    add("gl302-run11", ("keras",), lambda k: gl302.stack(k, 10))
    add("gl302-run12", ("keras",), lambda k: gl302.stack(k, 11))
    add("gl302-run24-bn6", ("keras",), lambda k: gl302.stack(k, 24, normalize_every=6))
    # GL401 ungated-recurrent-layer
    add("gl401-simple-100", all_formats, lambda k: gl401.recurrent(k, 100))
    add("gl401-simple-20", ("keras",), lambda k: gl401.recurrent(k, 20))
    add("gl401-lstm-100", ("keras",), lambda k: gl401.recurrent(k, 100, "LSTM"))
    # GL402 recurrent-without-clipping
    add("gl402-lstm-adam", all_formats,
        lambda k: gl402.recurrent(k, lambda keras: keras.optimizers.Adam()))
    add("gl402-lstm-clipnorm", ("keras", "h5"),
        lambda k: gl402.recurrent(k, lambda keras: keras.optimizers.Adam(clipnorm=1.0)))
    add("gl402-lstm-uncompiled", ("keras",), lambda k: gl402.recurrent(k))
    # GL403 large-learning-rate
    for name in ("adam-0.1", "sgd-0.5", "sgd-schedule-0.5", "sgd-0.1"):
        add(f"gl403-{name}", all_formats,
            lambda k, name=name: gl403.compiled(k, gl403.OPTIMIZERS[name]))
    add("gl403-adam-1e-3", ("keras",), lambda k: gl403.compiled(k, gl403.OPTIMIZERS["adam-1e-3"]))
    add("gl403-uncompiled", ("keras",), lambda k: gl403.compiled(k, None))
    # GL404 frozen-model
    add("gl404-all", ("keras", "h5"), lambda k: gl404.frozen(k))
    add("gl404-uncompiled", ("keras",), lambda k: gl404.frozen(k, compiled=False))
    add("gl404-trainable-head", ("keras",), lambda k: gl404.frozen(k, head_trainable=True))
    # GL405 float16-gradient-underflow (Keras 3 builders only)
    cases["gl405-k3-deep-keras"] = ("keras", gl405.keras3_mixed())
    cases["gl405-k3-loss-scale-optimizer-keras"] = ("keras", gl405.keras3_mixed(
        compile_with=lambda k: k.optimizers.LossScaleOptimizer(k.optimizers.Adam())))
    # The renderers' models (tests/report_models.py)
    for name in ("deep_sigmoid", "relu_he", "simple_rnn"):
        cases[f"report-{name.replace('_', '-')}-keras"] = ("keras", getattr(report_models, name))
    return cases


CASES = _cases()
