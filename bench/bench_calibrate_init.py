"""Calibrated initialization (`gradlint.fix.calibrate`), measured: the probe's first/last
kernel-gradient ratio before and after calibration, and the loss after a fixed number of
training steps on scikit-learn's digits (shipped inside the package: nothing is
downloaded), default init against calibrated init.

    python bench/bench_calibrate_init.py [--depth 20] [--width 64] [--steps 300] [--seeds 3]

Models (Keras 3, TensorFlow backend, Keras's default GlorotUniform kernels):

- ``plain-<activation>``: `depth` Dense(`width`) layers with sigmoid, tanh, ReLU or SELU,
  then Dense(10, softmax), on the 64 pixels;
- ``resnet-bn``: Conv2D(16, 3) stem, 4 residual blocks (Conv-BN-ReLU-Conv-BN, added to
  the block's input, ReLU), global average pooling, Dense(10, softmax), on the 8x8 images;
- ``resnet``: the same without BatchNormalization.

Ratio: `gradlint.lint(model, probe=True)`'s first weighted layer's ``measured.kernel_gradient``
(its kernel-gradient norm over the output layer's, medians over the probe's seeds), on the
untrained model, with Keras's default init and after `gradlint.fix.calibrate(model,
target=...)`: ``forward`` holds every pre-activation second moment at 1 (AutoInit's aim),
``critical`` (the default) does too except after sigmoid-like activations, where it holds the
q at which the layer also keeps the gradient. Training: the same seeded model, default or
calibrated, trained for `steps` steps of SGD (learning rate 0.01, momentum
0.9, batch 32) on 1,500 digits; the cross-entropy on the whole training set after those
steps and the accuracy on the 297 held-out digits, as medians over `seeds`.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")


def build(name: str, depth: int, width: int, seed: int):
    import keras

    keras.utils.set_random_seed(seed)
    layers = keras.layers
    if name.startswith("plain-"):
        activation = name.split("-", 1)[1]
        model = keras.Sequential(
            [keras.Input((64,))] +
            [layers.Dense(width, activation=activation, name=f"dense_{i}")
             for i in range(depth)] +
            [layers.Dense(10, activation="softmax", name="out")], name=name)
    else:
        normalized = name == "resnet-bn"
        inputs = keras.Input((8, 8, 1))
        x = layers.Conv2D(16, 3, padding="same", activation="relu", name="stem")(inputs)
        for block in range(4):
            y = layers.Conv2D(16, 3, padding="same", name=f"b{block}_conv1")(x)
            if normalized:
                y = layers.BatchNormalization(name=f"b{block}_bn1")(y)
            y = layers.Activation("relu")(y)
            y = layers.Conv2D(16, 3, padding="same", name=f"b{block}_conv2")(y)
            if normalized:
                y = layers.BatchNormalization(name=f"b{block}_bn2")(y)
            x = layers.Activation("relu")(layers.Add()([x, y]))
        x = layers.GlobalAveragePooling2D()(x)
        model = keras.Model(inputs, layers.Dense(10, activation="softmax", name="out")(x),
                            name=name)
    model.compile(keras.optimizers.SGD(0.01, momentum=0.9), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def digits(name: str):
    from sklearn.datasets import load_digits

    data = load_digits()
    x = (data.data / 16.0).astype("float32")
    x = (x - x.mean(axis=0)) / (x.std(axis=0) + 1e-6)  # unit-variance inputs, as calibrated
    if not name.startswith("plain-"):
        x = x.reshape((-1, 8, 8, 1))
    return (x[:1500], data.target[:1500]), (x[1500:], data.target[1500:])


def first_last_ratio(model) -> float | None:
    import gradlint

    report = gradlint.lint(model, probe=True)
    for layer in report.files[0].layers:
        measured = layer.get("measured")
        if layer.get("weighted") and measured and measured.get("kernel_gradient") is not None:
            return measured["kernel_gradient"]
    return None


def train(model, name: str, steps: int, seed: int) -> tuple[float, float]:
    import numpy as np

    (x, y), (x_test, y_test) = digits(name)
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        batch = rng.choice(len(x), 32, replace=False)
        model.train_on_batch(x[batch], y[batch])
    loss, _ = model.evaluate(x, y, verbose=0)
    _, accuracy = model.evaluate(x_test, y_test, verbose=0)
    return float(loss), float(accuracy)


def fmt(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return str(value)
    return f"{value:.3g}" if 1e-3 <= abs(value) < 1e4 else f"{value:.2e}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--depth", type=int, default=20)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--models",
                        default="plain-sigmoid,plain-tanh,plain-relu,plain-selu,resnet,resnet-bn")
    args = parser.parse_args(argv)
    import gradlint.fix

    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; depth "
          f"{args.depth}, width {args.width}; {args.steps} SGD steps, medians over "
          f"{args.seeds} seeds")
    inits = ("default", "forward", "critical")
    print("| model | first/last ratio: default | forward | critical | loss after "
          f"{args.steps} steps: default | forward | critical | test accuracy: default | "
          "forward | critical |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in args.models.split(","):
        started = time.perf_counter()
        ratios, losses = {}, {}
        for init in inits:
            model = build(name, args.depth, args.width, 0)
            if init != "default":
                gradlint.fix.calibrate(model, target=init)
            ratios[init] = first_last_ratio(model)
            runs = []
            for seed in range(args.seeds):
                model = build(name, args.depth, args.width, seed)
                if init != "default":
                    gradlint.fix.calibrate(model, target=init)
                runs.append(train(model, name, args.steps, seed))
            losses[init] = (statistics.median(r[0] for r in runs),
                            statistics.median(r[1] for r in runs))
        print(f"| {name} | " + " | ".join(fmt(ratios[i]) for i in inits) + " | " +
              " | ".join(f"{losses[i][0]:.3f}" for i in inits) + " | " +
              " | ".join(f"{losses[i][1]:.3f}" for i in inits) + " |")
        print(f"  ({name}: {time.perf_counter() - started:.0f} s)", file=sys.stderr)
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
