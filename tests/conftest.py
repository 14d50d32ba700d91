"""Shared fixtures: real Keras models saved to real files once per test session.

`save_model(name, build, format)` calls `build()` to make a model, saves it, and returns the
path; the same name and format return the cached file for the rest of the session.
Formats: "keras" (Keras 3 `.keras`), "keras2" (tf-keras `.keras`), "h5" (tf-keras legacy
HDF5). `build` must use `keras3()` for "keras" and `keras2()` for the others.

Tests that need TensorFlow, Keras or tf-keras carry the marker `keras`, set here
(`pytest_collection_modifyitems`): every test that uses the `save_model` or `model_dir`
fixture, and every test of a module that imports one of those packages, or `keras2`,
`keras3` or `scale_layer_class` from here, or a helper module of tests/ that does, or runs a
script that imports one. `pytest -m "not keras"` runs the rest (rule and renderer tests on
the configs in tests/data/configs/, see tests/config_models.py) without TensorFlow, and
fails a test that imports it anyway.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("NO_COLOR", "1")

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
TESTS = Path(__file__).resolve().parent
SUFFIXES = {"keras": ".keras", "keras2": ".keras", "h5": ".h5"}

# -- the `keras` marker ----------------------------------------------------------------------

HEAVY = frozenset({"tensorflow", "keras", "tf_keras"})
# What imports one of them on import (a module's import or its `pytest.importorskip`).
IMPORTS_HEAVY = HEAVY | {"keras_hub", "keras_nlp", "keras_cv"}
KERAS_FIXTURES = frozenset({"save_model", "model_dir"})
# What conftest offers that imports Keras when called.
KERAS_HELPERS = frozenset({"keras2", "keras3", "scale_layer_class"})
# A script run in a subprocess (a string in the test module) that imports Keras.
HEAVY_SCRIPT = re.compile(r"^\s*(?:import|from)\s+(?:tensorflow|keras|tf_keras)\b", re.M)


_KERAS_MODULES: dict[str, bool] = {}  # module name -> imports Keras, for the session


def _local_module_imports_keras(name: str, seen: dict[str, bool] = _KERAS_MODULES) -> bool:
    """Whether tests/<name>.py imports TensorFlow, Keras or tf-keras, directly, through
    conftest's helpers or through another module of tests/, or runs a script that does."""
    if name in seen:
        return seen[name]
    seen[name] = False  # a cycle adds nothing
    path = TESTS / f"{name}.py"
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found = False
    for node in ast.walk(tree):
        modules: list[str] = []
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            modules = [node.module]
            if node.module == "conftest" and \
                    {alias.name for alias in node.names} & KERAS_HELPERS:
                found = True
        elif isinstance(node, ast.Attribute) and node.attr in KERAS_HELPERS and \
                isinstance(node.value, ast.Name) and node.value.id == "conftest":
            found = True
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and \
                HEAVY_SCRIPT.search(node.value):
            found = True
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "importorskip" \
                and node.args and isinstance(node.args[0], ast.Constant):
            modules = [str(node.args[0].value)]
        for module in modules:
            top = module.split(".")[0]
            if top in IMPORTS_HEAVY or (top != "conftest" and (TESTS / f"{top}.py").is_file()
                                and _local_module_imports_keras(top, seen)):
                found = True
    seen[name] = found
    return found


def _deselects_keras(config) -> bool:
    """Whether `-m` deselects every test marked `keras` (as `-m "not keras"` does)."""
    markexpr = config.getoption("markexpr", "")
    if "keras" not in markexpr:
        return False
    try:
        from _pytest.mark.expression import Expression

        expression = Expression.compile(markexpr)
        # Whatever other markers a test has: all of them, or none but `keras`.
        return not any(expression.evaluate(lambda name, *_, others=others, **__:
                                           name == "keras" or others)
                       for others in (True, False))
    except Exception:  # another pytest: collect everything, the marker still deselects
        return False


def pytest_ignore_collect(collection_path, config):
    # A run without `keras` tests does not even import the modules whose every test is one:
    # importing them may import Keras (keras_hub at module level) or packages a TF-free
    # environment lacks.
    path = Path(collection_path)
    if path.parent == TESTS and path.name.startswith("test_") and path.suffix == ".py" and \
            _deselects_keras(config) and _local_module_imports_keras(path.stem):
        return True
    return None


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by the marker
def pytest_collection_modifyitems(config, items):
    for item in items:
        path = Path(str(item.fspath))
        module_needs_keras = path.parent == TESTS and path.suffix == ".py" and \
            _local_module_imports_keras(path.stem)
        if module_needs_keras or KERAS_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.keras)


TF_FREE_RUN = pytest.StashKey[bool]()


def pytest_collection_finish(session):
    # A run with no `keras` test in it (`-m "not keras"`) must not import TensorFlow at all:
    # then each test is checked for it (`_no_tensorflow_in_a_tf_free_run`).
    session.config.stash[TF_FREE_RUN] = bool(session.items) and not any(
        item.get_closest_marker("keras") for item in session.items)
    if session.config.stash[TF_FREE_RUN] and heavy_modules():
        raise pytest.UsageError(
            f"collecting the tests imported {', '.join(heavy_modules())} in a run without "
            "`keras` tests: a module imports it at its top level without being recognised as "
            "a `keras` module (tests/conftest.py, `_local_module_imports_keras`)")


def heavy_modules() -> list[str]:
    return sorted({name.split(".")[0] for name in sys.modules} & HEAVY)


@pytest.fixture(autouse=True)
def _no_tensorflow_in_a_tf_free_run(request):
    if not request.config.stash.get(TF_FREE_RUN, False):
        yield
        return
    before = heavy_modules()
    if before:  # an earlier test imported it, and failed for it
        yield
        return
    yield
    after = heavy_modules()
    assert not after, (f"this test imported {', '.join(after)}: mark it `keras` "
                       "(tests/conftest.py says how tests are marked)")


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
