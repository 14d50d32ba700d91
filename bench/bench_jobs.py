"""Parallel linting and the progress line: is `-j` (the default, one worker per core, as many
as the work pays for) ever slower than `-j 1` on a directory of many small files, and does
the progress line cost anything when standard error is not a terminal?

    python bench/bench_jobs.py [--count 73] [--repeat 7]

The first run builds COUNT small tf-keras models (legacy `.h5`, Dense stacks of 2 to 6
layers, as Keras 2 research code saves them) into bench/models/small/ in a separate process
(git-ignored; about a minute), so the measuring process never imports TensorFlow. Each
command is a fresh process, as a user runs it, with Python's bytecode cache on; runs are
interleaved, and the table gives the median and best wall time and the median CPU time
(user + system of the process and its workers) over `--repeat` runs. The results are printed
as Markdown and written to bench/results/jobs.md.
"""

from __future__ import annotations

import argparse
import os
import pty
import resource
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = os.path.join(HERE, "models", "small")
BUILD = r"""
import os, sys
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import tf_keras as keras
directory, count = sys.argv[1], int(sys.argv[2])
os.makedirs(directory, exist_ok=True)
for index in range(count):
    depth = 2 + index % 5
    layers = [keras.layers.Dense(8 + index % 7, activation=("relu", "tanh", "sigmoid")[index % 3],
                                 input_shape=(10,) if i == 0 else ())
              for i in range(depth)]
    model = keras.Sequential(layers + [keras.layers.Dense(1)], name=f"small_{index}")
    model.compile(keras.optimizers.Adam(1e-3), "mse")
    model.save(os.path.join(directory, f"small_{index:03d}.h5"))
"""


def build(count: int) -> None:
    existing = [name for name in os.listdir(MODELS)] if os.path.isdir(MODELS) else []
    if len([name for name in existing if name.endswith(".h5")]) >= count:
        return
    print(f"bench_jobs: building {count} small tf-keras models in {MODELS}", file=sys.stderr)
    subprocess.run([sys.executable, "-c", BUILD, MODELS, str(count)], check=True)


def gradlint_command() -> list[str]:
    beside = os.path.join(os.path.dirname(sys.executable), "gradlint")
    return [beside] if os.path.exists(beside) else [sys.executable, "-m", "gradlint"]


def run(arguments: list[str], terminal: bool, environment: dict) -> tuple[float, float]:
    """Wall and CPU seconds of one run; standard error on a pseudo-terminal if asked."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    if terminal:
        master, slave = pty.openpty()
        process = subprocess.Popen(arguments, stdout=subprocess.DEVNULL, stderr=slave,
                                   env=environment)
        os.close(slave)
        while True:
            try:
                if not os.read(master, 65536):
                    break
            except OSError:
                break
        process.wait()
        os.close(master)
    else:
        subprocess.run(arguments, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       env=environment, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=73)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--output", default=os.path.join(HERE, "results", "jobs.md"))
    args = parser.parse_args(argv)
    build(args.count)
    environment = dict(os.environ)
    environment.pop("PYTHONDONTWRITEBYTECODE", None)
    environment["PYTHONPYCACHEPREFIX"] = os.path.join(HERE, "models", "pycache")
    base = gradlint_command() + ["--isolated", "--exit-zero", "-q"]
    cases = {
        "-j 1, no weights": (base + ["-j", "1", "--no-weights", MODELS], False),
        "default -j, no weights": (base + ["--no-weights", MODELS], False),
        "-j 1, weights": (base + ["-j", "1", MODELS], False),
        "default -j, weights": (base + [MODELS], False),
        "default -j, weights, stderr a terminal (progress shown)": (base + [MODELS], True),
    }
    for arguments, terminal in cases.values():  # warm the page and bytecode caches
        run(arguments, terminal, environment)
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in cases}
    for _ in range(args.repeat):
        for name, (arguments, terminal) in cases.items():
            times[name].append(run(arguments, terminal, environment))
    load = os.getloadavg()
    lines = [f"# bench_jobs: {args.count} small tf-keras .h5 files, {args.repeat} runs each",
             "", f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores, "
             f"load average {load[0]:.2f} after the run", "",
             "| command | wall s (median / best) | CPU s (median) |", "|---|---:|---:|"]
    for name, values in times.items():
        walls = [wall for wall, _ in values]
        cpus = [cpu for _, cpu in values]
        lines.append(f"| {name} | {statistics.median(walls):.2f} / {min(walls):.2f} | "
                     f"{statistics.median(cpus):.2f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w", encoding="utf-8") as handle:
        handle.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
