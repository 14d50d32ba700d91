"""Shared fixtures: real Keras models saved to real files once per test session.

`save_model(name, build, format)` calls `build()` to make a model, saves it, and returns the
path; the same name and format return the cached file for the rest of the session.
Formats: "keras" (Keras 3 `.keras`), "keras2" (tf-keras `.keras`), "h5" (tf-keras legacy
HDF5). `build` must use `keras3()` for "keras" and `keras2()` for the others.
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("NO_COLOR", "1")

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SUFFIXES = {"keras": ".keras", "keras2": ".keras", "h5": ".h5"}


def keras3():
    """Keras 3, imported on first use (importing TensorFlow costs seconds)."""
    import keras

    return keras


def keras2():
    """tf-keras (Keras 2), for files in the formats Keras 2 writes."""
    import absl.logging

    absl.logging.set_verbosity(absl.logging.ERROR)
    import tf_keras

    return tf_keras


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def save_model(model_dir):
    cache: dict[tuple[str, str], Path] = {}

    def save(name: str, build, format: str = "keras") -> Path:
        key = (name, format)
        if key not in cache:
            path = model_dir / f"{name}-{format}{SUFFIXES[format]}"
            model = build()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model.save(str(path))
            cache[key] = path
        return cache[key]

    return save


def rule_findings(path, code: str) -> list:
    """The findings of one rule on a readable model file, linted in this process, also
    where they are folded into another rule's finding of the same cause."""
    import gradlint

    result = gradlint.lint(str(path)).files[0]
    assert result.error is None, result.error
    every = result.findings + [related for finding in result.findings
                               for related in finding.related]
    return [finding for finding in every if finding.code == code]


def run_gradlint(*args: str, cwd: str | os.PathLike | None = None, env: dict | None = None,
                 timeout: float = 120) -> subprocess.CompletedProcess:
    """Run the gradlint command line in a fresh interpreter, as a user would."""
    environment = dict(os.environ)
    environment.update(env or {})
    return subprocess.run([sys.executable, "-m", "gradlint", *map(str, args)], cwd=cwd,
                          env=environment, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def gradlint_cli():
    return run_gradlint


def scale_layer_class(keras, package: str, name: str = "Scale"):
    """A registered custom layer that multiplies by a fixed factor (ConvNeXt's LayerScale in
    miniature), defined once per Keras flavour, package and session: gradlint cannot see
    inside it, so it is GL002's (and the reports') custom layer."""
    registered = keras.saving.get_custom_objects()
    key = f"{package}>{name}"
    if key in registered:
        return registered[key]

    class Scale(keras.layers.Layer):
        def __init__(self, factor=1.0, **kwargs):
            super().__init__(**kwargs)
            self.factor = factor

        def call(self, inputs):
            return inputs * self.factor

        def get_config(self):
            return {**super().get_config(), "factor": self.factor}

    Scale.__name__ = Scale.__qualname__ = name
    return keras.saving.register_keras_serializable(package=package, name=name)(Scale)
