"""Probe benchmark: the whole-process cost of `gradlint --probe` with default settings.

    python bench/bench_probe.py [--models-dir bench/models/probe] [--repeat 3]

Builds three models once with Keras 3 (in a child process, cached in the models directory):

- ``resnet50.keras``: ``keras.applications.ResNet50(weights=None)``, 224x224x3, 25.6M
  parameters;
- ``mlp.keras``: 8 Dense(256, ReLU, He) layers and a softmax head;
- ``rnn.keras``: an LSTM(64) and a SimpleRNN(64) over 100 steps of 32 features, a Dense head.

Then, for each model, runs ``gradlint --probe --output-format json FILE`` `--repeat` times as
a fresh process and records its wall time, CPU time (user + system) and peak resident memory
(GNU time), the seeds and batch the probe chose and the seconds it spent itself. For scale,
it also times ``python -c "import tensorflow, keras"``. Prints a Markdown table and checks
the targets: ResNet50 under 10 s and 2 GB, the small models under 4 s (medians of the wall
time). The load average is printed too: on a shared machine, wall times grow with it while
CPU times do not.

The measuring process itself imports neither TensorFlow nor Keras.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_MODELS_DIR = os.path.join(HERE, "models", "probe")
GNU_TIME = "/usr/bin/time"
MODELS = ("resnet50", "mlp", "rnn")
TARGETS = {"resnet50": (10.0, 2048.0), "mlp": (4.0, None), "rnn": (4.0, None)}

BUILD = r"""
import os, sys
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import keras
directory, name = sys.argv[1], sys.argv[2]
L = keras.layers
if name == "resnet50":
    model = keras.applications.ResNet50(weights=None)
elif name == "mlp":
    model = keras.Sequential([keras.Input((256,))] +
                             [L.Dense(256, activation="relu", kernel_initializer="he_normal")
                              for _ in range(8)] + [L.Dense(10, activation="softmax")])
else:
    model = keras.Sequential([keras.Input((100, 32)), L.LSTM(64, return_sequences=True),
                              L.SimpleRNN(64), L.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
temporary = os.path.join(directory, f".{name}.partial.keras")
model.save(temporary)
os.replace(temporary, os.path.join(directory, f"{name}.keras"))
"""


def log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def build_models(directory: str) -> dict[str, str]:
    os.makedirs(directory, exist_ok=True)
    paths = {}
    for name in MODELS:
        path = os.path.join(directory, f"{name}.keras")
        if not os.path.exists(path):
            log(f"building {name}")
            subprocess.run([sys.executable, "-c", BUILD, directory, name], check=True)
        paths[name] = path
    return paths


def measure(command: list[str], env: dict[str, str]) -> dict:
    """Wall seconds, CPU seconds, peak RSS (MB), exit code and standard output of one run."""
    with tempfile.NamedTemporaryFile("w+", suffix=".txt") as report:
        start = time.perf_counter()
        completed = subprocess.run([GNU_TIME, "-v", "-o", report.name, *command], env=env,
                                   capture_output=True, text=True)
        wall = time.perf_counter() - start
        report.seek(0)
        cpu, rss = 0.0, None
        for line in report.read().splitlines():
            line = line.strip()
            if line.startswith(("User time (seconds):", "System time (seconds):")):
                cpu += float(line.rsplit(":", 1)[1])
            elif line.startswith("Maximum resident set size (kbytes):"):
                rss = int(line.rsplit(":", 1)[1]) / 1024
    return {"wall": wall, "cpu": cpu, "rss": rss, "code": completed.returncode,
            "stdout": completed.stdout, "stderr": completed.stderr}


def warm(path: str) -> None:
    with open(path, "rb", buffering=0) as handle:
        while handle.read(16 << 20):
            pass


def gradlint_command() -> list[str]:
    candidate = os.path.join(os.path.dirname(sys.executable), "gradlint")
    return [candidate if os.path.exists(candidate) else (shutil.which("gradlint") or "gradlint")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", default=DEFAULT_MODELS_DIR)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    if not os.path.exists(GNU_TIME):
        log(f"{GNU_TIME} (GNU time) is needed to measure peak memory")
        return 2
    paths = build_models(args.models_dir)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", KERAS_BACKEND="tensorflow")
    rows = []
    import_runs = []
    for repeat in range(args.repeat):
        import_runs.append(measure([sys.executable, "-c", "import tensorflow, keras"], env))
    rows.append(("`import tensorflow, keras` (for scale)", import_runs, None))
    failed = False
    for name in MODELS:
        warm(paths[name])
        runs = []
        for repeat in range(args.repeat):
            log(f"{name}: run {repeat + 1}/{args.repeat}")
            run = measure([*gradlint_command(), "--probe", "--isolated", "--output-format",
                           "json", paths[name]], env)
            if run["code"] not in (0, 1):
                log(f"{name}: gradlint exited {run['code']}: {run['stderr'][-300:]}")
                failed = True
            runs.append(run)
        rows.append((name, runs, paths[name]))
    print(render(rows, args.repeat))
    verdicts = check_targets(rows)
    for line in verdicts:
        print(line)
    return 1 if failed or any(line.startswith("- MISSED") for line in verdicts) else 0


def _probe_info(run: dict) -> dict:
    try:
        return json.loads(run["stdout"])["files"][0]["probe"] or {}
    except (ValueError, KeyError, IndexError, TypeError):
        return {}


def render(rows, repeat: int) -> str:
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    lines = [f"Probe benchmark: {repeat} runs each, {os.cpu_count()} CPUs, load average "
             f"{load} (1, 5, 15 min) at the end.", "",
             "| command | wall s (median, min) | CPU s (median) | peak RSS MB (max) | "
             "seeds x batch | probe's own s (median) |",
             "|---|---|---|---|---|---|"]
    for label, runs, path in rows:
        walls = [r["wall"] for r in runs]
        cpus = [r["cpu"] for r in runs]
        rss = [r["rss"] for r in runs if r["rss"] is not None]
        infos = [_probe_info(r) for r in runs]
        plan = {f"{i.get('seeds')} x {i.get('batch')}" for i in infos if i} or {"-"}
        own = [i["seconds"] for i in infos if i.get("seconds")]
        name = f"`gradlint --probe {os.path.basename(path)}`" if path else label
        lines.append(f"| {name} | {statistics.median(walls):.2f} ({min(walls):.2f}) | "
                     f"{statistics.median(cpus):.2f} | {max(rss) if rss else 0:.0f} | "
                     f"{', '.join(sorted(plan))} | "
                     f"{statistics.median(own) if own else float('nan'):.2f} |")
    return "\n".join(lines)


def check_targets(rows) -> list[str]:
    lines = ["", "Targets (median wall time, largest peak memory):"]
    for label, runs, path in rows:
        if label not in TARGETS:
            continue
        seconds, megabytes = TARGETS[label]
        wall = statistics.median(r["wall"] for r in runs)
        cpu = statistics.median(r["cpu"] for r in runs)
        rss = max((r["rss"] for r in runs if r["rss"] is not None), default=0.0)
        ok = wall < seconds and (megabytes is None or rss < megabytes)
        memory = f", {rss:.0f} MB < {megabytes:.0f} MB" if megabytes else ""
        lines.append(f"- {'met' if ok else 'MISSED'}: {label} {wall:.2f} s < {seconds:.0f} s"
                     f"{memory} (CPU {cpu:.2f} s)")
    return lines


if __name__ == "__main__":
    sys.exit(main())
