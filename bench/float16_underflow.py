#!/usr/bin/env python3
"""The measurement behind GL405 (float16-gradient-underflow): how much of a float16 layer's
gradient survives without loss scaling, against gradlint's estimate times the assumed loss
gradient (1e-2).

Sigmoid MLPs of width 64 (float16 hidden layers under `mixed_float16`, a float32 softmax
head), a batch of 32 random inputs and labels, softmax cross-entropy averaged over the
batch. For each depth: the RMS gradient at the first layer's output with the loss scaled by
2^15 (the reference), the share of its entries that are zero without scaling, the relative
error of the first kernel's unscaled gradient, and gradlint's estimate.

    .venv/bin/python bench/float16_underflow.py
"""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from gradlint.analysis import analyse  # noqa: E402
from gradlint.readers import read_model  # noqa: E402

BATCH = 32
LOSS_GRADIENT = 1e-2


def main() -> None:
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(0, 1, (BATCH, 64)).astype("float32"))
    y = tf.one_hot(rng.integers(0, 10, BATCH), 10)
    p = tf.nn.softmax(tf.zeros((BATCH, 10)))
    print(f"loss gradient at chance, RMS per logit: "
          f"{float(tf.sqrt(tf.reduce_mean(tf.square((p - y) / BATCH)))):.3g}")
    rms = lambda t: float(tf.sqrt(tf.reduce_mean(tf.square(tf.cast(t, tf.float32)))))  # noqa
    with tempfile.TemporaryDirectory() as folder:
        for depth in (2, 4, 6, 8, 10):
            keras.utils.set_random_seed(0)
            hidden = [keras.layers.Dense(64, activation="sigmoid", dtype="mixed_float16",
                                         name=f"hidden_{i}") for i in range(depth)]
            head = keras.layers.Dense(10, activation="softmax", dtype="float32", name="output")
            inputs = keras.Input((64,))
            z = inputs
            for layer in hidden:
                z = layer(z)
            model = keras.Model(inputs, head(z))
            path = os.path.join(folder, f"sigmoid{depth}.keras")
            model.save(path)

            def gradients(scale):
                with tf.GradientTape() as tape:
                    a = hidden[0](x)
                    tape.watch(a)
                    z = a
                    for layer in hidden[1:]:
                        z = layer(z)
                    loss = tf.reduce_mean(keras.losses.categorical_crossentropy(y, head(z)))
                    loss = loss * scale
                ga, gk = tape.gradient(loss, [a, hidden[0].kernel])
                return tf.cast(ga, tf.float32) / scale, tf.cast(gk, tf.float32) / scale

            ga_u, gk_u = gradients(1.0)
            ga_s, gk_s = gradients(2.0 ** 15)
            analysis = analyse(read_model(path))
            first = analysis.node_at("hidden_1").id
            print(f"sigmoid x{depth:2d}: measured RMS dL/d(h0) {rms(ga_s):.3g} "
                  f"(estimate x {LOSS_GRADIENT:g}: "
                  f"{analysis.estimate[first].gradient * LOSS_GRADIENT:.3g}); unscaled: "
                  f"{float(tf.reduce_mean(tf.cast(ga_u == 0, tf.float32))):.0%} zeros, "
                  f"first kernel's gradient off by "
                  f"{float(tf.norm(gk_u - gk_s) / tf.norm(gk_s)):.2g}")


if __name__ == "__main__":
    main()
