"""The probe on a backend other than TensorFlow, in a process of its own.

Keras fixes its backend when it is first imported, so `--probe-backend jax` cannot share a
process with TensorFlow: the probe starts one fresh interpreter with ``KERAS_BACKEND=jax``
for the run (lazily, at the first file it measures, and reused for the next ones) and hands
it each file as data. The forked static workers (`gradlint.isolation`) are not the unit
here: a fork inherits whatever this process imported, and Keras must be imported for the
first time with the backend chosen.

What crosses: the path of the private copy the parent made and checked (SHA-256, in a
directory only this user can read: `loading.snapshot`), the model's analysis and the
settings, pickled; back comes the `Measurements`, or the `ProbeError` text. The child never
imports TensorFlow (tf-keras files are refused before they get here: `hook.refuse_keras2`),
and loads with the same code as the TensorFlow probe (`loading.load`: gradlint's Lambda
check, Keras's safe mode, custom objects only from the modules the person named).

The child's `sys.path` is the parent's as it stands (which never has the working directory
first: `gradlint.__main__`) without the empty entry, set before anything is imported: it
starts as ``python -c`` with a program that imports only `sys` (built in) before replacing
the path, so a planted ``json.py`` or ``keras.py`` in the working directory is never found.
"""

from __future__ import annotations

import atexit
import os
import pickle
import struct
import subprocess
import sys
import tempfile
from typing import Any

from gradlint.probe.environment import ProbeError, quiet_native_logs

HEADER = struct.Struct("<Q")
BOOT = ("import sys; backend = sys.argv[1]; sys.path[:] = sys.argv[2:]; "
        "from gradlint.probe.worker import serve; serve(backend)")
STDERR_TAIL = 600


def _send(stream, payload: Any) -> None:
    data = pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(HEADER.pack(len(data)) + data)
    stream.flush()


def _receive(stream) -> Any | None:
    head = stream.read(HEADER.size)
    if len(head) < HEADER.size:
        return None
    (size,) = HEADER.unpack(head)
    data = stream.read(size)
    if len(data) < size:
        return None
    return pickle.loads(data)


class _Process:
    """One child interpreter measuring on `backend`."""

    def __init__(self, backend: str, verbose: bool):
        self.backend = backend
        self.errors = None if verbose else tempfile.TemporaryFile()
        environment = dict(os.environ, KERAS_BACKEND=backend)
        if not verbose:
            quiet_native_logs(environment)
        path = [entry for entry in sys.path if entry]
        self.process = subprocess.Popen(
            [sys.executable, "-c", BOOT, backend, *path], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=self.errors, env=environment)

    def alive(self) -> bool:
        return self.process.poll() is None

    def ask(self, request: Any) -> Any:
        try:
            _send(self.process.stdin, request)
            reply = _receive(self.process.stdout)
        except (BrokenPipeError, OSError):
            reply = None
        if reply is None:
            self.process.wait()
            raise ProbeError(f"the {self.backend} probe process ended without a result "
                             f"(exit status {self.process.returncode}){self._stderr_tail()}")
        return reply

    def _stderr_tail(self) -> str:
        if self.errors is None:
            return ""
        try:
            self.errors.seek(0)
            text = self.errors.read().decode("utf-8", "replace")
        except OSError:
            return ""
        text = " ".join(text.split())
        return f": {text[-STDERR_TAIL:]}" if text else ""

    def close(self) -> None:
        try:
            self.process.stdin.close()
            self.process.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            self.process.kill()
            self.process.wait()
        if self.errors is not None:
            self.errors.close()


_processes: dict[str, _Process] = {}


def _process(backend: str, verbose: bool) -> _Process:
    process = _processes.get(backend)
    if process is None or not process.alive():
        if process is not None:
            process.close()
        process = _processes[backend] = _Process(backend, verbose)
    return process


def measure_in_worker(copy: str, analysis, settings, backend: str):
    """Measure the private copy `copy` on `backend` in the child process."""
    process = _process(backend, bool(getattr(settings, "verbose", False)))
    kind, value = process.ask(("measure", copy, analysis, settings))
    if kind == "measured":
        return value
    if kind == "probe-error":
        raise ProbeError(value)
    raise RuntimeError(f"the {backend} probe process failed: {value}")


def imported_modules(backend: str) -> list[str]:
    """The top-level modules the child has imported (for tests: TensorFlow is never one)."""
    kind, value = _process(backend, False).ask(("modules",))
    return value


def close_all() -> None:
    for process in list(_processes.values()):
        process.close()
    _processes.clear()


atexit.register(close_all)


def serve(backend: str) -> None:
    """The child's loop: requests on standard input, replies on the original standard
    output; whatever the libraries print goes to standard error instead."""
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    requests = sys.stdin.buffer
    from gradlint.probe.hook import measure_target

    while True:
        request = _receive(requests)
        if request is None:
            return
        if request[0] == "modules":
            _send(replies, ("modules", sorted({name.split(".")[0] for name in sys.modules})))
            continue
        _, copy, analysis, settings = request
        try:
            reply = ("measured", measure_target(copy, analysis, settings, backend))
        except ProbeError as error:
            reply = ("probe-error", str(error))
        except BaseException as error:  # a bug: back to the parent as text
            import traceback

            reply = ("error", f"{type(error).__name__}: {error}\n{traceback.format_exc()}")
        _send(replies, reply)
