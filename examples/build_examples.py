"""Rebuild the example models in this directory (needs the `dev` extra: Keras 3).

    python examples/build_examples.py

Each model is small (a few KB to a few hundred KB) and untrained; the comment beside each
says what gradlint reports on it.
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
from keras import layers  # noqa: E402

HERE = Path(__file__).resolve().parent


def deep_sigmoid() -> keras.Model:
    """GL101 error: ten sigmoid layers starve the first ones of gradient."""
    keras.utils.set_random_seed(1)
    stack = [layers.Dense(32, activation="sigmoid", name=f"hidden_{i}") for i in range(10)]
    return keras.Sequential([keras.Input((32,)), *stack,
                             layers.Dense(10, activation="softmax", name="output")],
                            name="deep_sigmoid")


def tiny_initializer() -> keras.Model:
    """GL201 error: RandomNormal(stddev=0.01) shrinks the signal layer after layer."""
    keras.utils.set_random_seed(2)
    init = keras.initializers.RandomNormal(stddev=0.01)
    stack = [layers.Dense(64, activation="relu", kernel_initializer=init, name=f"hidden_{i}")
             for i in range(6)]
    return keras.Sequential([keras.Input((64,)), *stack, layers.Dense(1, name="output")],
                            name="tiny_initializer")


def long_simple_rnn() -> keras.Model:
    """GL401 error and GL402 warning: an ungated RNN over 200 steps, no gradient clipping."""
    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input((200, 8)), layers.SimpleRNN(16, name="rnn"),
                              layers.Dense(1, name="output")], name="long_simple_rnn")
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    return model


def residual_mlp() -> keras.Model:
    """Clean: pre-norm residual blocks with He init, and clipped Adam."""
    keras.utils.set_random_seed(4)
    inputs = keras.Input((32,), name="features")
    x = layers.Dense(64, kernel_initializer="he_normal", name="stem")(inputs)
    for block in range(8):
        h = layers.LayerNormalization(name=f"block{block}_norm")(x)
        h = layers.Dense(64, activation="relu", kernel_initializer="he_normal",
                         name=f"block{block}_dense")(h)
        x = layers.Add(name=f"block{block}_add")([x, h])
    outputs = layers.Dense(10, activation="softmax", name="output")(x)
    model = keras.Model(inputs, outputs, name="residual_mlp")
    model.compile(optimizer=keras.optimizers.Adam(1e-3, clipnorm=1.0),
                  loss="categorical_crossentropy")
    return model


def main() -> None:
    for build in (deep_sigmoid, tiny_initializer, long_simple_rnn, residual_mlp):
        path = HERE / f"{build.__name__}.keras"
        build().save(path)
        print(f"wrote {path.relative_to(HERE.parent)} ({path.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
