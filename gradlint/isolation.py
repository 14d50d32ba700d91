"""One file's work in a forked child process, with a time limit and a memory limit.

Reading a hostile file can spin inside h5py's C code, where no Python signal handler or
exception reaches it; only ending the process stops it. So each file is read and analysed in
a child forked from this process (about a millisecond: the child shares the parent's
imported modules), which sends its result back through a pipe. The parent waits for each
child until its deadline, then kills it.

- No orphans: a child asks the kernel to kill it when its parent dies (Linux's
  `PR_SET_PDEATHSIG`), exits at once if the parent is already gone, and carries a CPU-time
  limit a little above the wall-time limit; the parent kills every child it still has when
  it stops for any reason, Ctrl-C included.
- Memory: the child's address space is capped (`RLIMIT_AS`), so an allocation past the cap
  fails as `MemoryError` instead of taking the machine down.
- Forking a process that already runs other threads can deadlock the child on a lock one of
  them held, so a process with more than one thread (a notebook, a training script that
  imported TensorFlow) and one without `fork` (Windows) run the work in-process: the reader's
  size checks still hold there, the time and memory limits do not. The command line forks
  before anything starts a thread.
"""

from __future__ import annotations

import os
import pickle
import selectors
import signal
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable

CPU_GRACE_SECONDS = 5
PR_SET_PDEATHSIG = 1


@dataclass
class Outcome:
    """What one child's work came to: its `value`, or why there is none (`failure` is
    "timeout", "memory", "exception" or "crash", with `detail`)."""

    value: Any = None
    failure: str | None = None
    detail: str = ""
    max_rss_kb: int = 0


def thread_count() -> int:
    """Threads of this process, those that Python did not start included."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        import threading

        return threading.active_count()


def can_isolate() -> bool:
    """Whether work can run in forked children here: `fork` exists and nothing but this
    thread runs."""
    return hasattr(os, "fork") and thread_count() == 1


def _prctl():
    """Linux's prctl, looked up in the parent: importing ctypes in every child would cost
    milliseconds each."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


def _die_with_parent(parent: int, prctl) -> None:
    if prctl is not None:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)


def _limit_resources(timeout: float, memory_bytes: int | None) -> None:
    import resource  # POSIX only, like fork; imported by now in any process that forks

    if memory_bytes:
        try:
            resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
        except (ValueError, OSError):
            pass
    if timeout and timeout != float("inf"):
        seconds = int(timeout) + CPU_GRACE_SECONDS
        try:
            soft, hard = resource.getrlimit(resource.RLIMIT_CPU)
            used = int(time.process_time())
            if hard == resource.RLIM_INFINITY or used + seconds <= hard:
                resource.setrlimit(resource.RLIMIT_CPU, (used + seconds, hard))
        except (ValueError, OSError):
            pass


def _child(work: Callable[[], Any], write_end: int, parent: int, prctl, timeout: float,
           memory_bytes: int | None) -> None:
    """Runs in the child: never returns."""
    status = 0
    try:
        _die_with_parent(parent, prctl)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        _limit_resources(timeout, memory_bytes)
        try:
            message = ("value", work())
        except MemoryError:
            message = ("memory", "")
        except BaseException as error:  # everything goes back to the parent as text
            import traceback

            message = ("exception", f"{type(error).__name__}: {error}\n"
                                    f"{traceback.format_exc()}")
        try:
            payload = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        except MemoryError:
            payload = pickle.dumps(("memory", ""))
        except Exception as error:
            payload = pickle.dumps(("exception", f"the result could not be sent back "
                                                 f"({type(error).__name__}: {error})"))
        view = memoryview(payload)
        while view:
            view = view[os.write(write_end, view):]
    except BaseException:
        status = 1
    finally:
        os._exit(status)


@dataclass
class _Running:
    index: int
    pid: int
    read_end: int
    deadline: float
    chunks: list


def _finish(running: _Running, killed: str | None) -> Outcome:
    try:
        _, status, usage = os.wait4(running.pid, 0)
    except ChildProcessError:
        status, usage = 0, None
    os.close(running.read_end)
    rss = usage.ru_maxrss if usage is not None else 0
    if killed:
        return Outcome(failure=killed, max_rss_kb=rss)
    data = b"".join(running.chunks)
    if not data:
        if os.WIFSIGNALED(status):
            number = os.WTERMSIG(status)
            if number == getattr(signal, "SIGXCPU", None):
                return Outcome(failure="timeout", max_rss_kb=rss)
            name = signal.Signals(number).name if number in signal.Signals._value2member_map_ \
                else str(number)
            return Outcome(failure="crash", detail=f"killed by {name}", max_rss_kb=rss)
        return Outcome(failure="crash", detail=f"exited with status {os.WEXITSTATUS(status)} "
                                               "and no result", max_rss_kb=rss)
    try:
        kind, value = pickle.loads(data)
    except Exception as error:
        return Outcome(failure="crash", detail=f"sent an unreadable result ({error})",
                       max_rss_kb=rss)
    if kind == "value":
        return Outcome(value=value, max_rss_kb=rss)
    return Outcome(failure=kind, detail=value, max_rss_kb=rss)


def run_isolated(works: Iterable[Callable[[], Any]], *, jobs: int, timeout: float,
                 memory_bytes: int | None,
                 on_done: Callable[[int, Outcome], None] | None = None) -> list[Outcome]:
    """Run each zero-argument callable in its own child, at most `jobs` at a time, and
    return their outcomes in the order given. `on_done(index, outcome)` is called as each
    one finishes."""
    pending = list(enumerate(works))
    pending.reverse()
    outcomes: dict[int, Outcome] = {}
    running: dict[int, _Running] = {}
    import resource  # noqa: F401  (for the children: imported once, here)

    selector = selectors.DefaultSelector()
    parent = os.getpid()
    prctl = _prctl()
    try:
        while pending or running:
            while pending and len(running) < max(1, jobs):
                index, work = pending.pop()
                read_end, write_end = os.pipe()
                for stream in (sys.stdout, sys.stderr):  # or the child repeats their buffers
                    try:
                        stream.flush()
                    except (OSError, ValueError, AttributeError):
                        pass
                pid = os.fork()
                if pid == 0:
                    os.close(read_end)
                    _child(work, write_end, parent, prctl, timeout, memory_bytes)
                os.close(write_end)
                entry = _Running(index, pid, read_end, time.monotonic() + timeout, [])
                running[read_end] = entry
                selector.register(read_end, selectors.EVENT_READ, entry)
            wait = min(entry.deadline for entry in running.values()) - time.monotonic()
            for key, _ in selector.select(max(0.0, wait)):
                entry = key.data
                chunk = os.read(entry.read_end, 1 << 20)
                if chunk:
                    entry.chunks.append(chunk)
                    continue
                selector.unregister(entry.read_end)
                del running[entry.read_end]
                outcomes[entry.index] = _finish(entry, None)
                if on_done:
                    on_done(entry.index, outcomes[entry.index])
            now = time.monotonic()
            for entry in [e for e in running.values() if e.deadline <= now]:
                _kill(entry.pid)
                selector.unregister(entry.read_end)
                del running[entry.read_end]
                outcomes[entry.index] = _finish(entry, "timeout")
                if on_done:
                    on_done(entry.index, outcomes[entry.index])
    finally:
        for entry in running.values():
            _kill(entry.pid)
            try:
                os.waitpid(entry.pid, 0)
            except ChildProcessError:
                pass
            os.close(entry.read_end)
        selector.close()
    return [outcomes[index] for index in range(len(outcomes))]


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
