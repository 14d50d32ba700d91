"""Real training runs on scikit-learn's digits (1,797 8x8 images, shipped inside the package,
so nothing is downloaded) for the GradientCheck tests and the training rules' tests. Each run
is made once per test process and shared: a fit with every step checked takes 1-3 s.
"""

from __future__ import annotations

import functools

import numpy as np

from conftest import keras3

BATCH = 32
STEPS_PER_EPOCH = 56  # 1797 // 32: whole batches only


@functools.lru_cache(maxsize=1)
def digits():
    """(raw pixels 0-16, standardized pixels, labels)."""
    from sklearn.datasets import load_digits

    data = load_digits()
    raw = data.data.astype("float32")
    standardized = ((raw - raw.mean(0)) / (raw.std(0) + 1e-6)).astype("float32")
    return raw, standardized, data.target.astype("int32")


def mlp(depth: int, activation: str, initializer: str, width: int = 32, seed: int = 0):
    keras = keras3()
    keras.utils.set_random_seed(seed)
    layers = [keras.Input((64,))]
    layers += [keras.layers.Dense(width, activation=activation, kernel_initializer=initializer,
                                  name=f"hidden_{i}") for i in range(depth)]
    layers.append(keras.layers.Dense(10, activation="softmax", name="output"))
    return keras.Sequential(layers, name=f"{activation}_{depth}")


OPTIMIZERS = {"sgd": lambda rate: keras3().optimizers.SGD(rate),
              "adam": lambda rate: keras3().optimizers.Adam(rate)}


def fit(model, optimizer: str, rate: float, *, pixels: str = "standardized", epochs: int = 1,
        samples: int | None = None, **check_options):
    """Train `model` with a GradientCheck (no static analysis, nothing printed unless asked)
    and return the callback."""
    from gradlint.keras import GradientCheck

    raw, standardized, labels = digits()
    model.compile(OPTIMIZERS[optimizer](rate), "sparse_categorical_crossentropy")
    check_options = {"static": False, "verbose": False, **check_options}
    check = GradientCheck(**check_options)
    inputs = raw if pixels == "raw" else standardized
    # A whole number of batches: a last, smaller batch would trace both train functions again.
    samples = samples or len(labels) // BATCH * BATCH
    model.fit(inputs[:samples], labels[:samples], batch_size=BATCH, epochs=epochs, verbose=0,
              callbacks=[check], shuffle=True)
    return check


@functools.lru_cache(maxsize=None)
def relu_run(optimizer: str, rate: float, epochs: int = 3, seed: int = 0):
    """A 3-layer ReLU/He MLP with every step checked: the training rules' cases."""
    return fit(mlp(3, "relu", "he_normal", seed=seed), optimizer, rate, epochs=epochs,
               first_steps=0, every=1)


def codes(check) -> set[str]:
    return {finding.code for finding in check.findings}


def weights(model) -> list[np.ndarray]:
    return [np.array(v.numpy()) for v in model.weights]
