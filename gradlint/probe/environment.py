"""Importing TensorFlow and Keras for the probe: only here, only when the probe runs, and
quietly.

TensorFlow writes to the process's standard error from C++ before Python's logging is set up
(the CUDA stub at import, cuInit at the first operation), so `TF_CPP_MIN_LOG_LEVEL` alone
does not silence it: the file descriptor is pointed at the null device for the import and
the first operation. `verbose` leaves everything as TensorFlow prints it.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import sys
import warnings

INSTALL_HINT = ("install the probe's dependencies (TensorFlow and Keras) with "
                "pip install -e \".[probe]\" in a checkout of gradlint, or install gradlint "
                "with its extra: pip install \"gradlint[probe] @ git+<URL of the gradlint "
                "repository>\"")


class ProbeError(Exception):
    """The probe could not run on a model; the message says why and what to do."""


@contextlib.contextmanager
def quiet_stderr(enabled: bool = True):
    """Send file descriptor 2 to the null device while TensorFlow's C++ code talks."""
    if not enabled:
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):
        yield
        return
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def quiet_native_logs(environment=os.environ) -> None:
    """TensorFlow's C++ log level for a quiet run: 3, errors included (it reads the level
    once, when it first logs). Its ERROR lines are notices here ("oneDNN supports DT_BOOL
    only on platforms with AVX-512", printed at a probe's first boolean operation), and
    what does fail reaches Python as an exception. A higher level already set is kept."""
    current = environment.get("TF_CPP_MIN_LOG_LEVEL", "")
    if not (current.isdigit() and int(current) >= 3):
        environment["TF_CPP_MIN_LOG_LEVEL"] = "3"


@contextlib.contextmanager
def quiet_python(enabled: bool = True):
    """Silence Python warnings (Keras's loading and compile warnings) unless verbose."""
    if not enabled:
        yield
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


_loaded: dict[str, object] = {}


BACKENDS = ("tensorflow", "jax")
JAX_INSTALL_HINT = ("install JAX for the CPU with pip install \"jax[cpu]\" (or gradlint's "
                    "probe-jax extra)")


def import_keras(verbose: bool = False, backend: str = "tensorflow"):
    """Import Keras 3 on `backend` and return `(framework, keras)`: `(tf, keras)` for
    TensorFlow, `(jax, keras)` for JAX. Keras fixes its backend when it is first imported,
    so JAX runs in a process of its own (`gradlint.probe.worker`), which never imports
    TensorFlow."""
    if "keras" in _loaded:
        if _loaded["backend"] != backend:
            raise ProbeError(f"the probe measures gradients with {backend}, but this process "
                             f"already runs Keras on {_loaded['backend']}")
        return _loaded["framework"], _loaded["keras"]
    if not verbose:
        quiet_native_logs()
    if "keras" not in sys.modules:
        os.environ["KERAS_BACKEND"] = backend
    try:
        with quiet_stderr(not verbose), quiet_python(not verbose):
            if backend == "jax":
                framework = importlib.import_module("jax")
                keras = importlib.import_module("keras")
                framework.numpy.zeros(1) + 0.0  # the first operation initializes the devices
            else:
                framework = importlib.import_module("tensorflow")
                keras = importlib.import_module("keras")
                framework.constant(0.0) + 0.0  # the first operation initializes the devices
    except ImportError as error:
        if backend == "jax":
            raise ProbeError(f"--probe-backend jax needs JAX and Keras, which could not be "
                             f"imported ({error}); {JAX_INSTALL_HINT}") from None
        raise ProbeError(f"--probe needs TensorFlow and Keras, which could not be imported "
                         f"({error}); {INSTALL_HINT}") from None
    active = getattr(getattr(keras, "backend", None), "backend", lambda: "tensorflow")()
    if active != backend:
        raise ProbeError(f"the probe measures gradients with {backend}, but Keras was "
                         f"already imported with the '{active}' backend; run with "
                         f"KERAS_BACKEND={backend}")
    if not verbose:
        _quiet_loggers()
    _loaded.update(framework=framework, keras=keras, backend=backend)
    if backend == "tensorflow":
        _loaded["tf"] = framework
    return framework, keras


def import_tf_keras(verbose: bool = False):
    """tf-keras (Keras 2), for files that Keras 3 cannot load, or None when not installed."""
    if "tf_keras" in _loaded:
        return _loaded["tf_keras"]
    try:
        with quiet_stderr(not verbose), quiet_python(not verbose):
            module = importlib.import_module("tf_keras")
    except ImportError:
        module = None
    if not verbose:
        _quiet_loggers()
    _loaded["tf_keras"] = module
    return module


def _quiet_loggers() -> None:
    logging.getLogger("jax").setLevel(logging.ERROR)
    try:
        import absl.logging

        absl.logging.set_verbosity(absl.logging.ERROR)
    except ImportError:  # pragma: no cover - absl comes with TensorFlow
        pass
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    logging.getLogger("absl").setLevel(logging.ERROR)
