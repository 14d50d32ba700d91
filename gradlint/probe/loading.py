"""Loading a model file for the probe, safely.

- A `Lambda` layer stores Python code that runs when the model is deserialized. gradlint
  refuses such a model unless the person passes `--unsafe-load`; the check reads the graph
  gradlint already built from the file, so it holds for every loader and format (Keras's own
  `safe_mode` does not cover tf-keras's HDF5 loader).
- Custom layers and model classes load only when the person names the module that registers
  them (`--custom-objects package.module`); the module is imported, its registrations take
  effect, and the classes it defines are also passed to the loader by name.
- Keras 3 loads the file first; a `.keras` file written by tf-keras or a legacy `.h5` file
  that Keras 3 cannot load is tried with tf-keras. When neither loads it, the reasons of both
  are reported.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

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
        if layer.custom and layer.kind != "opaque":
            names.append(layer.class_name)
    if not graph.graph_stored:
        names.append(graph.model_class)
    return sorted(set(names))


def import_custom_objects(modules: list[str]) -> dict[str, Any]:
    """Import each named module (so that its registrations happen) and collect the classes it
    defines, by name, for the loader."""
    objects: dict[str, Any] = {}
    if not modules:
        return objects
    here = os.getcwd()
    if here not in sys.path:
        sys.path.insert(0, here)
    for name in modules:
        try:
            module = importlib.import_module(name)
        except Exception as error:
            raise ProbeError(f"--custom-objects {name}: the module could not be imported "
                             f"({type(error).__name__}: {error}); name an importable module "
                             "(package.module) that defines or registers the custom classes") \
                from None
        for attribute, value in vars(module).items():
            if isinstance(value, type) and getattr(value, "__module__", None) == module.__name__:
                objects[attribute] = value
    return objects


def load(path: str, graph, *, unsafe_load: bool = False, custom_objects: list[str] = (),
         verbose: bool = False) -> tuple[Any, str]:
    """Load the model at `path` and return it with the name of the loader that succeeded
    ("keras" or "tf_keras")."""
    if graph is not None and not unsafe_load:
        unsafe = unsafe_layers(graph)
        if unsafe:
            raise ProbeError(
                f"the model has a Lambda layer ({', '.join(unsafe[:3])}"
                f"{', …' if len(unsafe) > 3 else ''}) whose stored Python code would run when "
                "the model loads, so the probe did not load it; if you trust the file, pass "
                "--unsafe-load")
    tf, keras = import_keras(verbose)
    if _pending_free:
        free_previous()
    objects = import_custom_objects(list(custom_objects))
    errors = []
    try:
        with quiet_stderr(not verbose), quiet_python(not verbose):
            model = keras.saving.load_model(path, custom_objects=objects or None, compile=False,
                                            safe_mode=not unsafe_load)
        _pending_free.add("keras")
        return model, "keras"
    except Exception as error:  # any failure: explain it, or try tf-keras
        message = _one_line(error)
        if "safe_mode" in message or "safe mode" in message.lower():
            raise ProbeError(f"Keras refused to deserialize part of the model in safe mode "
                             f"({message}); if you trust the file, pass --unsafe-load") from None
        errors.append(f"Keras 3: {message}")
    custom = custom_layers(graph) if graph is not None else []
    # tf-keras imports whatever module a file names for a custom class; with custom classes
    # in the file, only a module the person named may be imported, so tf-keras is tried
    # only once they have named one.
    may_fall_back = not custom or bool(custom_objects)
    tf_keras = import_tf_keras(verbose) if may_fall_back else None
    if tf_keras is not None:
        try:
            with quiet_stderr(not verbose), quiet_python(not verbose):
                kwargs = {"custom_objects": objects or None, "compile": False}
                if path.endswith(".keras"):
                    kwargs["safe_mode"] = not unsafe_load
                model = tf_keras.models.load_model(path, **kwargs)
            _pending_free.update(("keras", "tf_keras"))
            return model, "tf_keras"
        except Exception as error:
            errors.append(f"tf-keras: {_one_line(error)}")
    elif may_fall_back:
        errors.append("tf-keras is not installed (pip install tf-keras to load Keras 2 files)")
    reason = "; ".join(errors)
    hint = ""
    if any(word in reason.lower() for word in CUSTOM_HINTS) or custom:
        classes = f" ({', '.join(custom[:4])})" if custom else ""
        hint = (f"; the model uses custom classes{classes}: pass --custom-objects "
                "package.module naming the module that defines or registers them")
    raise ProbeError(f"the model could not be loaded for the probe: {reason}{hint}")


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
