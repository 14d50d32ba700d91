"""Loading a model file for the probe, safely.

- A `Lambda` layer stores Python code that runs when the model is deserialized. gradlint
  refuses such a model unless the person passes `--unsafe-load`; the check reads the graph
  gradlint already built from the file, so it holds for every loader and format (Keras's own
  `safe_mode` does not cover tf-keras's HDF5 loader).
- Keras picks its loader by the file's name, so the probe never loads the file by its own
  name: it copies the file into a private directory, checks that the copy's bytes are the
  ones the static stage read (SHA-256), and names the copy after the format those bytes
  were read as (`model.keras` or `model.h5`). A file that is both a zip and an HDF5 file never
  gets here: the reader refuses it.
- Custom layers and model classes load only when the person names the module that registers
  them: `--custom-objects package.module` imports it from `sys.path` as it is (the working
  directory is not added), and `--custom-objects ./layers.py` loads that one file. Its
  registrations take effect, and the classes it defines are also passed to the loader by
  name.
- The same checks hold in the JAX process (`worker`), which loads only with Keras 3: a file
  that needs tf-keras is measured on TensorFlow only.
- Keras 3 loads the file first; a `.keras` file written by tf-keras or a legacy `.h5` file
  that Keras 3 cannot load is tried with tf-keras, always inside tf-keras's safe-mode scope
  (its HDF5 loader never sets one itself, and without it a stored `lambda` runs). When
  neither loads it, the reasons of both are reported.
- A model that loads with inputs of another shape than the file declares is not the file's
  model: Keras 3 rebuilds a Keras 2 `Sequential` saved without an `InputLayer` (its first
  layer carries `batch_input_shape`) on an invented time axis, `(None, None, 4)` for a
  `(None, 4)` model. Such a model is dropped and tf-keras, which reads these files as they
  were written, is tried; when no loader gives the declared shapes, the probe does not run.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import os
import shutil
import sys
import tempfile
from typing import Any, Iterator

from gradlint.probe.environment import (ProbeError, import_keras, import_tf_keras,
                                        quiet_python, quiet_stderr)

UNSAFE_CLASSES = frozenset({"Lambda"})
_pending_free: set[str] = set()  # loaders whose last model is still to be released
CUSTOM_HINTS = ("could not locate", "unknown layer", "unknown object", "custom_objects",
                "register_keras_serializable", "was never registered", "could not be deserialized"
                " properly", "not found in custom objects")


def unsafe_layers(graph) -> list[str]:
    """Paths of the layers whose deserialization runs code stored in the file."""
    found = []
    for layer in graph.layers():
        current = layer
        while current is not None:
            if current.class_name.rsplit(">", 1)[-1] in UNSAFE_CLASSES:
                found.append(layer.path)
                break
            current = current.inner
    return found


def custom_layers(graph) -> list[str]:
    names = []
    for layer in graph.layers():
        if layer.custom and not layer.family.is_keras_lambda(layer):
            names.append(layer.class_name)
    if not graph.graph_stored:
        names.append(graph.model_class)
    return sorted(set(names))


@contextlib.contextmanager
def snapshot(path: str, digest: str | None, format: str | None) -> Iterator[str]:
    """A private copy of the file at `path`, named for its format, whose bytes hash to
    `digest`; removed afterwards."""
    extension = ".h5" if format == "keras-legacy-h5" else ".keras"
    directory = tempfile.mkdtemp(prefix="gradlint-probe-")
    copy = os.path.join(directory, "model" + extension)
    try:
        hashed = hashlib.sha256()
        try:
            with open(path, "rb") as source, open(copy, "wb") as target:
                for block in iter(lambda: source.read(1 << 20), b""):
                    hashed.update(block)
                    target.write(block)
        except OSError as error:
            raise ProbeError(f"the file could not be copied for the probe "
                             f"({error.strerror or error})") from None
        if digest is None or hashed.hexdigest() != digest:
            raise ProbeError("the file changed after gradlint checked it, so the probe did not "
                             "load it; run gradlint again")
        yield copy
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _import_named(name: str):
    """A module by its dotted name from `sys.path` as it is, or one Python file by its path
    (a name with a path separator or ending in .py), without touching `sys.path`."""
    if name.endswith(".py") or os.sep in name or (os.altsep and os.altsep in name):
        path = os.path.abspath(name)
        module_name = os.path.splitext(os.path.basename(path))[0]
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None or not os.path.isfile(path):
            raise ImportError(f"no Python file at {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(module_name, None)
            raise
        return module
    return importlib.import_module(name)


def import_custom_objects(modules: list[str]) -> dict[str, Any]:
    """Import each named module (so that its registrations happen) and collect the classes it
    defines, by name, for the loader."""
    objects: dict[str, Any] = {}
    for name in modules:
        try:
            module = _import_named(name)
        except Exception as error:
            raise ProbeError(f"--custom-objects {name}: the module could not be imported "
                             f"({type(error).__name__}: {error}); name an importable module "
                             "(package.module) or a Python file (./layers.py) that defines or "
                             "registers the custom classes") from None
        for attribute, value in vars(module).items():
            if isinstance(value, type) and getattr(value, "__module__", None) == module.__name__:
                objects[attribute] = value
    return objects


def refuse_unsafe(graph, unsafe_load: bool) -> None:
    """Refuse a model whose graph has a Lambda layer, unless `unsafe_load`."""
    if graph is not None and not unsafe_load:
        unsafe = unsafe_layers(graph)
        if unsafe:
            raise ProbeError(
                f"the model has a Lambda layer ({', '.join(unsafe[:3])}"
                f"{', …' if len(unsafe) > 3 else ''}) whose stored Python code would run when "
                "the model loads, so the probe did not load it; if you trust the file, pass "
                "--unsafe-load")


def load(path: str, graph, *, unsafe_load: bool = False, custom_objects: list[str] = (),
         verbose: bool = False, backend: str = "tensorflow") -> tuple[Any, str]:
    """Load the model at `path` and return it with the name of the loader that succeeded
    ("keras" or "tf_keras"). On the JAX backend only Keras 3 loads: tf-keras is TensorFlow's,
    and the JAX process never imports TensorFlow."""
    refuse_unsafe(graph, unsafe_load)
    _, keras = import_keras(verbose, backend)
    if _pending_free:
        free_previous()
    objects = import_custom_objects(list(custom_objects))
    errors = []
    try:
        with quiet_stderr(not verbose), quiet_python(not verbose):
            model = keras.saving.load_model(path, custom_objects=objects or None, compile=False,
                                            safe_mode=not unsafe_load)
        _pending_free.add("keras")
        mismatch = _undeclared_shape(model, graph)
        if mismatch is None:
            return model, "keras"
        model = None
        errors.append(f"Keras 3 built a model that takes {mismatch}")
    except Exception as error:  # any failure: explain it, or try tf-keras
        message = _one_line(error)
        if "safe_mode" in message or "safe mode" in message.lower():
            raise ProbeError(f"Keras refused to deserialize part of the model in safe mode "
                             f"({message}); if you trust the file, pass --unsafe-load") from None
        errors.append(f"Keras 3: {message}")
    custom = custom_layers(graph) if graph is not None else []
    if backend != "tensorflow":
        raise ProbeError(f"the model could not be loaded for the probe on {backend}: "
                         f"{'; '.join(errors)}; tf-keras (Keras 2) files load only on "
                         "TensorFlow: use --probe-backend tensorflow")
    # tf-keras imports whatever module a file names for a custom class; with custom classes
    # in the file, only a module the person named may be imported, so tf-keras is tried
    # only once they have named one.
    may_fall_back = not custom or bool(custom_objects)
    tf_keras = import_tf_keras(verbose) if may_fall_back else None
    if tf_keras is not None:
        try:
            from tf_keras.src.saving.serialization_lib import SafeModeScope

            with quiet_stderr(not verbose), quiet_python(not verbose), \
                    SafeModeScope(not unsafe_load):
                kwargs = {"custom_objects": objects or None, "compile": False}
                if path.endswith(".keras"):
                    kwargs["safe_mode"] = not unsafe_load
                model = tf_keras.models.load_model(path, **kwargs)
            _pending_free.update(("keras", "tf_keras"))
            mismatch = _undeclared_shape(model, graph)
            if mismatch is None:
                return model, "tf_keras"
            model = None
            errors.append(f"tf-keras built a model that takes {mismatch}")
        except Exception as error:
            message = _one_line(error)
            if "safe_mode" in message or "safe mode" in message.lower():
                raise ProbeError(f"tf-keras refused to deserialize part of the model in safe "
                                 f"mode ({message}); if you trust the file, pass "
                                 "--unsafe-load") from None
            errors.append(f"tf-keras: {message}")
    elif may_fall_back:
        errors.append("tf-keras is not installed (pip install tf-keras to load Keras 2 files)")
    reason = "; ".join(errors)
    hint = ""
    # With the graph read, only its custom classes call for --custom-objects: Keras words
    # other failures ("could not be deserialized properly") alike.
    if custom or (graph is None and any(word in reason.lower() for word in CUSTOM_HINTS)):
        classes = f" ({', '.join(custom[:4])})" if custom else ""
        hint = (f"; the model uses custom classes{classes}: pass --custom-objects "
                "package.module naming the module that defines or registers them")
    raise ProbeError(f"the model could not be loaded for the probe: {reason}{hint}")


def _undeclared_shape(model: Any, graph) -> str | None:
    """How the loaded model's inputs differ from the shapes the file declares, or None."""
    from gradlint.probe.measure import input_specs, undeclared_input_shape

    try:
        specs = input_specs(model, graph)
    except ProbeError:  # no input shape known at all: the measurement says so
        return None
    return undeclared_input_shape(specs, graph)


def _one_line(error: Exception) -> str:
    text = " ".join(str(error).split())
    if len(text) > 300:
        text = text[:297] + "..."
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def free_previous() -> None:
    """Release Keras's global state, and with it the previous model, before the next one.

    Clearing the session and collecting the model's reference cycles costs about a second, so
    it happens when the next model loads rather than after the last one.
    """
    import gc

    from gradlint.probe import environment

    for name in sorted(_pending_free):
        module = environment._loaded.get(name)
        if module is not None:
            module.backend.clear_session()
    _pending_free.clear()
    gc.collect()
