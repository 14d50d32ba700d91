"""Each file's work in a forked worker process, with a time limit and a memory limit.

Reading a hostile file can spin inside h5py's C code, where no Python signal handler or
exception reaches it; only ending the process stops it. So files are read and analysed in
worker processes forked from this one, which send each result back through a pipe; the
parent gives each file a deadline and kills the worker that passes it (and starts another
for the files still waiting).

- Workers are forked before the heavy imports (numpy, h5py, the rules): each imports what it
  needs once and keeps it for every file it is given, so a run of many small files pays for
  forking once per worker, not per file, and the pages a child writes are its own rather
  than copies of the parent's.
- No orphans: a worker asks the kernel to kill it when its parent dies (Linux's
  `PR_SET_PDEATHSIG`), exits at once if the parent is already gone, and carries a CPU-time
  limit a little above the wall-time limit for each file; the parent kills every worker it
  still has when it stops for any reason, Ctrl-C included.
- Memory: a worker's address space is capped (`RLIMIT_AS`), so an allocation past the cap
  fails as `MemoryError` instead of taking the machine down. A worker whose file failed in
  any way is replaced, so no file inherits another's state.
- Forking a process that already runs other threads can deadlock the child on a lock one of
  them held, so a process with more than one thread (a notebook, a training script that
  imported TensorFlow) and one without `fork` (Windows) run the work in-process: the reader's
  size checks still hold there, the time and memory limits do not. The command line forks
  before anything starts a thread.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import selectors
import signal
import struct
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

CPU_GRACE_SECONDS = 5
PR_SET_PDEATHSIG = 1
HEADER = struct.Struct("<Q")  # each message: its length, then the pickled payload
STOP = -1


@dataclass
class Outcome:
    """What one file's work came to: its `value`, or why there is none (`failure` is
    "timeout", "stuck" (an `uninterruptible` call did not return), "memory", "exception" or
    "crash", with `detail`). `max_rss_kb` is the
    worker's peak resident size when the work ended (an upper bound for this work)."""

    value: Any = None
    failure: str | None = None
    detail: str = ""
    max_rss_kb: int = 0


_in_worker = False


@contextlib.contextmanager
def uninterruptible(seconds: float, memory_bytes: int | None = None):
    """Around a call into C that a corrupted file can make spin without end or allocate
    without bound (h5py reading a variable-length attribute whose stored size or heap
    reference was corrupted): in a worker, the kernel ends the worker if the call has not
    returned after `seconds` (SIGALRM, whose default action no Python handler can delay),
    and with `memory_bytes` the call may map at most that much more memory (a lowered
    `RLIMIT_AS`, so HDF5's allocation fails at once). Elsewhere it does nothing."""
    if not _in_worker:
        yield
        return
    import resource

    previous = None
    if memory_bytes:
        try:
            previous = resource.getrlimit(resource.RLIMIT_AS)
            with open("/proc/self/statm") as handle:
                mapped = int(handle.read().split()[0]) * resource.getpagesize()
            soft = mapped + memory_bytes
            if previous[0] == resource.RLIM_INFINITY or soft < previous[0]:
                resource.setrlimit(resource.RLIMIT_AS, (soft, previous[1]))
            else:
                previous = None
        except (OSError, ValueError, IndexError):
            previous = None
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        if previous is not None:
            resource.setrlimit(resource.RLIMIT_AS, previous)


def thread_count() -> int:
    """Threads of this process, those that Python did not start included."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        import threading

        return threading.active_count()


def can_isolate() -> bool:
    """Whether work can run in forked workers here: `fork` exists and nothing but this
    thread runs."""
    return hasattr(os, "fork") and thread_count() == 1


def _prctl():
    """Linux's prctl, looked up in the parent once rather than in every worker."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


def _write_all(descriptor: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(descriptor, view):]


def _read_exactly(descriptor: int, size: int) -> bytes | None:
    chunks, remaining = [], size
    while remaining:
        chunk = os.read(descriptor, remaining)
        if not chunk:
            return None
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _limit_cpu(timeout: float) -> None:
    """This task's CPU time may not pass `timeout` plus a grace (a backstop for a worker
    whose parent is gone: the wall-clock deadline is the parent's)."""
    import resource

    if not timeout or timeout == float("inf"):
        return
    used = time.process_time()
    soft = int(used + timeout) + CPU_GRACE_SECONDS
    try:
        _, hard = resource.getrlimit(resource.RLIMIT_CPU)
        if hard == resource.RLIM_INFINITY or soft <= hard:
            resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))
    except (ValueError, OSError):
        pass


def _worker(works: Sequence[Callable[[], Any]], tasks: int, results: int, parent: int,
            prctl, timeout: float, memory_bytes: int | None) -> None:
    """Runs in the worker: takes task indices until told to stop; never returns."""
    import resource

    global _in_worker
    _in_worker = True
    status = 0
    try:
        if prctl is not None:
            prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the request took effect
            os._exit(1)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        if memory_bytes:
            try:
                resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
            except (ValueError, OSError):
                pass
        while True:
            raw = _read_exactly(tasks, 8)
            if raw is None:
                break
            index = struct.unpack("<q", raw)[0]
            if index == STOP:
                break
            _limit_cpu(timeout)
            try:
                message = ("value", works[index]())
            except MemoryError:
                message = ("memory", "")
            except BaseException as error:  # everything goes back to the parent as text
                import traceback

                message = ("exception", f"{type(error).__name__}: {error}\n"
                                        f"{traceback.format_exc()}")
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            try:
                payload = pickle.dumps((*message, rss), protocol=pickle.HIGHEST_PROTOCOL)
            except MemoryError:
                payload = pickle.dumps(("memory", "", rss))
            except Exception as error:
                payload = pickle.dumps(("exception", f"the result could not be sent back "
                                                     f"({type(error).__name__}: {error})", rss))
            _write_all(results, HEADER.pack(len(payload)) + payload)
    except BaseException:
        status = 1
    finally:
        os._exit(status)


@dataclass
class _Worker:
    pid: int
    tasks: int  # the parent writes task indices here
    results: int  # and reads results here
    index: int | None = None
    deadline: float = 0.0
    buffer: bytearray = field(default_factory=bytearray)


class _Pool:
    def __init__(self, works, timeout, memory_bytes):
        self.works = works
        self.timeout = timeout
        self.memory_bytes = memory_bytes
        self.parent = os.getpid()
        self.prctl = _prctl()
        self.selector = selectors.DefaultSelector()
        self.workers: dict[int, _Worker] = {}  # by result descriptor

    def start(self) -> _Worker:
        import resource  # noqa: F401  (for the workers: imported once, here)

        task_read, task_write = os.pipe()
        result_read, result_write = os.pipe()
        for stream in (sys.stdout, sys.stderr):  # or the worker repeats their buffers
            try:
                stream.flush()
            except (OSError, ValueError, AttributeError):
                pass
        pid = os.fork()
        if pid == 0:
            os.close(task_write)
            os.close(result_read)
            for other in self.workers.values():
                os.close(other.tasks)
                os.close(other.results)
            _worker(self.works, task_read, result_write, self.parent, self.prctl,
                    self.timeout, self.memory_bytes)
        os.close(task_read)
        os.close(result_write)
        worker = _Worker(pid, task_write, result_read)
        self.workers[result_read] = worker
        self.selector.register(result_read, selectors.EVENT_READ, worker)
        return worker

    def give(self, worker: _Worker, index: int) -> None:
        worker.index = index
        worker.deadline = time.monotonic() + self.timeout
        os.write(worker.tasks, struct.pack("<q", index))

    def retire(self, worker: _Worker, kill: bool) -> int:
        """End a worker; returns its peak resident size in KB."""
        if kill:
            try:
                os.kill(worker.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        else:
            try:
                os.write(worker.tasks, struct.pack("<q", STOP))
            except OSError:
                pass
        self.selector.unregister(worker.results)
        del self.workers[worker.results]
        os.close(worker.tasks)
        os.close(worker.results)
        try:
            _, status, usage = os.wait4(worker.pid, 0)
        except ChildProcessError:
            return 0
        worker.status = status
        return usage.ru_maxrss

    def close(self) -> None:
        for worker in list(self.workers.values()):
            self.retire(worker, kill=True)
        self.selector.close()


def _message(worker: _Worker) -> tuple | None:
    """A complete message from the worker's buffer, if one has arrived."""
    if len(worker.buffer) < HEADER.size:
        return None
    (size,) = HEADER.unpack_from(worker.buffer)
    if len(worker.buffer) < HEADER.size + size:
        return None
    payload = bytes(worker.buffer[HEADER.size:HEADER.size + size])
    del worker.buffer[:HEADER.size + size]
    return pickle.loads(payload)


def _crash(status: int | None) -> Outcome:
    if status is not None and os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        if number == getattr(signal, "SIGXCPU", None):
            return Outcome(failure="timeout")
        if number == signal.SIGALRM:  # an `uninterruptible` call passed its deadline
            return Outcome(failure="stuck")
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = str(number)
        return Outcome(failure="crash", detail=f"killed by {name}")
    code = os.WEXITSTATUS(status) if status is not None else "?"
    return Outcome(failure="crash", detail=f"exited with status {code} and no result")


def run_isolated(works: Sequence[Callable[[], Any]], *, jobs: int, timeout: float,
                 memory_bytes: int | None,
                 on_done: Callable[[int, Outcome], None] | None = None) -> list[Outcome]:
    """Run each zero-argument callable in a worker process, at most `jobs` workers at a
    time, each callable with its own deadline of `timeout` seconds, and return their
    outcomes in the order given. `on_done(index, outcome)` is called as each one finishes."""
    works = list(works)
    pending = list(range(len(works)))
    pending.reverse()
    outcomes: dict[int, Outcome] = {}
    pool = _Pool(works, timeout, memory_bytes)

    def finish(index: int, outcome: Outcome) -> None:
        outcomes[index] = outcome
        if on_done:
            on_done(index, outcome)

    try:
        while pending or any(w.index is not None for w in pool.workers.values()):
            idle = [w for w in pool.workers.values() if w.index is None]
            while pending and (idle or len(pool.workers) < max(1, jobs)):
                worker = idle.pop() if idle else pool.start()
                pool.give(worker, pending.pop())
            busy = [w for w in pool.workers.values() if w.index is not None]
            wait = min(w.deadline for w in busy) - time.monotonic()
            for key, _ in pool.selector.select(max(0.0, wait)):
                worker = key.data
                if worker.index is None:
                    continue
                chunk = os.read(worker.results, 1 << 20)
                if not chunk:  # the worker died mid-task
                    index = worker.index
                    pool.retire(worker, kill=True)
                    finish(index, _crash(getattr(worker, "status", None)))
                    continue
                worker.buffer.extend(chunk)
                message = _message(worker)
                if message is None:
                    continue
                kind, value, rss = message
                index, worker.index = worker.index, None
                if kind == "value":
                    finish(index, Outcome(value=value, max_rss_kb=rss))
                else:  # a failed file leaves nothing behind for the next one
                    pool.retire(worker, kill=True)
                    finish(index, Outcome(failure=kind, detail=value, max_rss_kb=rss))
            now = time.monotonic()
            for worker in [w for w in pool.workers.values()
                           if w.index is not None and w.deadline <= now]:
                index = worker.index
                rss = pool.retire(worker, kill=True)
                finish(index, Outcome(failure="timeout", max_rss_kb=rss))
        for worker in list(pool.workers.values()):
            pool.retire(worker, kill=False)
    finally:
        pool.close()
    return [outcomes[index] for index in range(len(works))]
