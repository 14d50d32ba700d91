"""GradientCheck's overhead: `model.fit` with and without the callback, on scikit-learn's
digits (shipped inside the package: nothing is downloaded).

    python bench/bench_callback.py [--epochs 30] [--repeat 3] [--every 100] [--first-steps 30]

Two small models, batch 32, 56 steps an epoch:

- ``cnn``: Conv2D(16, 3, ReLU) -> MaxPooling2D -> Conv2D(32, 3, ReLU) -> Flatten ->
  Dense(64, ReLU) -> Dense(10, softmax) on the 8x8 images;
- ``lstm``: LSTM(64) over the 8 image rows (8 steps of 8 pixels) -> Dense(10, softmax).

For each model and repeat, the same seeded fit runs without the callback and with
``GradientCheck(first_steps, every)`` (static analysis at train begin included), in
alternation, in one process after a warm-up fit of each (so that TensorFlow's one-off start-up
counts for neither). Overhead is the median with-callback fit time over the median plain one,
minus one; the CPU time (user + system) of each fit is printed beside the wall time, since on
a shared machine wall times grow with the load while CPU times do not. The target (issue 11)
is at most 5%. The trained weights of the two fits are compared too: they must be identical.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def build(name: str):
    import keras

    keras.utils.set_random_seed(0)
    if name == "cnn":
        model = keras.Sequential([
            keras.Input((8, 8, 1)), keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
            keras.layers.MaxPooling2D(), keras.layers.Conv2D(32, 3, padding="same",
                                                             activation="relu"),
            keras.layers.Flatten(), keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(10, activation="softmax")], name="cnn")
    else:
        model = keras.Sequential([keras.Input((8, 8)), keras.layers.LSTM(64),
                                  keras.layers.Dense(10, activation="softmax")], name="lstm")
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    return model


def data(name: str):
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.data / 16.0).astype("float32")
    count = len(x) // 32 * 32
    x = x[:count].reshape((-1, 8, 8, 1) if name == "cnn" else (-1, 8, 8))
    return x, digits.target[:count]


def fit(name: str, epochs: int, check) -> tuple[float, float, list]:
    import numpy as np

    model = build(name)
    x, y = data(name)
    started, cpu = time.perf_counter(), _cpu()
    model.fit(x, y, batch_size=32, epochs=epochs, verbose=0, shuffle=True,
              callbacks=[check] if check is not None else [])
    wall, cpu = time.perf_counter() - started, _cpu() - cpu
    return wall, cpu, [np.array(w.numpy()) for w in model.weights]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--every", type=int, default=100)
    parser.add_argument("--first-steps", type=int, default=30)
    parser.add_argument("--models", default="cnn,lstm")
    args = parser.parse_args(argv)
    from gradlint.keras import GradientCheck

    def check():
        return GradientCheck(first_steps=args.first_steps, every=args.every, verbose=False)

    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; "
          f"{args.epochs} epochs of 56 steps; checks: the first {args.first_steps} steps, then "
          f"every {args.every}")
    print("| model | steps | checked | plain fit (s) | with GradientCheck (s) | overhead (wall) "
          "| overhead (CPU) | weights identical |")
    print("|---|---|---|---|---|---|---|---|")
    worst = 0.0
    for name in args.models.split(","):
        fit(name, 1, None)
        fit(name, 1, check())  # warm-up: TensorFlow's first-use costs count for neither
        plain, checked, plain_cpu, checked_cpu = [], [], [], []
        identical = True
        checks = 0
        for _ in range(args.repeat):
            wall, cpu, reference = fit(name, args.epochs, None)
            plain.append(wall)
            plain_cpu.append(cpu)
            callback = check()
            wall, cpu, trained = fit(name, args.epochs, callback)
            checked.append(wall)
            checked_cpu.append(cpu)
            checks = len(callback.history.records)
            identical &= all(a.tobytes() == b.tobytes() for a, b in zip(reference, trained))
        overhead = statistics.median(checked) / statistics.median(plain) - 1
        overhead_cpu = statistics.median(checked_cpu) / statistics.median(plain_cpu) - 1
        worst = max(worst, overhead)
        print(f"| {name} | {args.epochs * 56} | {checks} | {statistics.median(plain):.2f} | "
              f"{statistics.median(checked):.2f} | {overhead:+.1%} | {overhead_cpu:+.1%} | "
              f"{'yes' if identical else 'NO'} |")
        sys.stdout.flush()
    print(f"target: at most +5.0% - {'met' if worst <= 0.05 else 'NOT met'} "
          f"(worst {worst:+.1%})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
