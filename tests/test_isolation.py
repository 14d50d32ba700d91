"""Each file's work runs in a forked child with a time and a memory limit: a child that spins
in C code is killed at its deadline, one that allocates past the limit fails cleanly, one
that crashes is reported, and no child outlives the process that started it.

The scripts run in fresh interpreters: the pytest process has TensorFlow's threads, and
gradlint forks only a single-threaded process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

from conftest import run_gradlint

SPIN = "import re; re.match(r'(a*)*b', 'a' * 64)"  # backtracks in C, never checks signals


def _run(script: str, timeout: float = 60) -> dict:
    completed = subprocess.run([sys.executable, "-c", textwrap.dedent(script)],
                               capture_output=True, text=True, timeout=timeout)
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout.splitlines()[-1])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead; only its parent has not reaped it yet
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def test_outcomes_come_back_in_order_with_each_failure_named():
    outcomes = _run(f"""
        import json, os, signal, time
        from gradlint.isolation import run_isolated

        def spin():
            {SPIN}

        def hog():
            return len(bytearray(3 << 30))

        works = [lambda: 41 + 1, spin, hog, lambda: os.kill(os.getpid(), signal.SIGSEGV),
                 lambda: 1 / 0, lambda: "last"]
        started = time.monotonic()
        found = run_isolated(works, jobs=2, timeout=1.0, memory_bytes=512 << 20)
        print(json.dumps({{"seconds": time.monotonic() - started,
                          "outcomes": [[o.value, o.failure, o.detail] for o in found]}}))
    """)
    values = outcomes["outcomes"]
    assert values[0] == [42, None, ""]
    assert values[1][1] == "timeout"
    assert values[2][1] == "memory"
    assert values[3][1] == "crash" and "SIGSEGV" in values[3][2]
    assert values[4][1] == "exception" and values[4][2].startswith("ZeroDivisionError")
    assert values[5] == ["last", None, ""]
    assert outcomes["seconds"] < 10


def test_a_child_never_outlives_its_parent(tmp_path):
    pid_file = tmp_path / "child.pid"
    script = textwrap.dedent(f"""
        import os
        from gradlint.isolation import run_isolated

        def spin():
            open({str(pid_file)!r}, "w").write(str(os.getpid()))
            {SPIN}

        run_isolated([spin], jobs=1, timeout=600, memory_bytes=None)
    """)
    parent = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.monotonic() + 30
        while not (pid_file.exists() and pid_file.read_text()) and time.monotonic() < deadline:
            time.sleep(0.05)
        child = int(pid_file.read_text())
        assert _alive(child)
        parent.send_signal(signal.SIGKILL)  # no cleanup code of the parent's runs
        parent.wait(timeout=10)
        deadline = time.monotonic() + 10
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(child), "the child outlived its killed parent"
    finally:
        parent.kill()


def test_the_command_line_reports_a_file_over_the_time_limit(tmp_path):
    """Every file over a deliberately tiny limit is GL001, and the run still ends at once."""
    import shutil

    from conftest import REPO

    for name in ("a", "b"):
        shutil.copy(REPO / "examples" / "residual_mlp.keras", tmp_path / f"{name}.keras")
    started = time.monotonic()
    completed = run_gradlint("--isolated", "--timeout", "0.001", "--output-format", "json",
                             tmp_path / "a.keras", tmp_path / "b.keras")
    assert time.monotonic() - started < 30
    assert completed.returncode == 2, completed.stderr
    files = json.loads(completed.stdout)["files"]
    assert [entry["error"]["code"] for entry in files] == ["GL001", "GL001"]
    assert all("time limit of 0.001 s" in entry["error"]["message"] for entry in files)


def test_workers_are_reused_and_replaced_after_a_failure():
    """Files share a worker (forked once, imports kept), but a file that failed leaves
    nothing behind: the next one gets a fresh worker."""
    outcomes = _run("""
        import json, os
        from gradlint.isolation import run_isolated

        works = [os.getpid, os.getpid, lambda: 1 / 0, os.getpid, os.getpid]
        found = run_isolated(works, jobs=1, timeout=10, memory_bytes=None)
        print(json.dumps([[o.value, o.failure] for o in found]))
    """)
    first, second, failed, third, fourth = outcomes
    assert first[0] == second[0] != os.getpid()
    assert failed[1] == "exception"
    assert third[0] == fourth[0] and third[0] != first[0]


def test_a_call_that_never_returns_is_stopped_at_its_own_deadline():
    """`uninterruptible` gives one C call its own deadline in a worker (far shorter than the
    file's), and does nothing outside one."""
    outcomes = _run(f"""
        import json, time
        from gradlint.isolation import run_isolated, uninterruptible

        def stuck():
            with uninterruptible(0.5):
                {SPIN}

        def quick():
            with uninterruptible(0.5):
                return "returned"

        started = time.monotonic()
        found = run_isolated([stuck, quick], jobs=1, timeout=60, memory_bytes=None)
        with uninterruptible(0.01):
            time.sleep(0.05)  # not in a worker: no alarm
        print(json.dumps({{"seconds": time.monotonic() - started,
                          "outcomes": [[o.value, o.failure] for o in found]}}))
    """)
    assert outcomes["outcomes"] == [[None, "stuck"], ["returned", None]]
    assert outcomes["seconds"] < 10
