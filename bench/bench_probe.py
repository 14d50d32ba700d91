"""Probe benchmark: the whole-process cost of `gradlint --probe` per Keras backend, against
what the same backend needs just to load the model.

    python bench/bench_probe.py [--models-dir bench/models/probe] [--repeat 3]
                                [--models resnet50,mlp,rnn] [--backends tensorflow,jax]

Builds three models once with Keras 3 (in a child process, cached in the models directory):

- ``resnet50.keras``: ``keras.applications.ResNet50(weights=None)``, 224x224x3, 25.6M
  parameters, with BatchNormalization: probed at the settings' batch size (32);
- ``mlp.keras``: 8 Dense(256, ReLU, He) layers and a softmax head;
- ``rnn.keras``: an LSTM(64) and a SimpleRNN(64) over 100 steps of 32 features, a Dense head.

Then, for each model and backend, `--repeat` times side by side (each repeat one after the
other, under the same machine load): a fresh ``python -c`` that only imports Keras on that
backend and calls ``keras.saving.load_model(FILE, compile=False)``, and a fresh
``gradlint --probe --probe-backend BACKEND --output-format json FILE``; it records wall time,
CPU time (user + system) and peak resident memory (GNU time), the seeds and batch the probe
chose and the seconds it spent itself. For scale, it also times ``python -c "import keras"``
on each backend. Prints a Markdown table and checks the targets: the probe at most 1.2x the
bare load (medians of the wall time), and on TensorFlow ResNet50 under 10 s and 2 GB, the
small models under 4 s. The load average is printed too: on a shared machine, wall times
grow with it while CPU times do not. Runs use ``TF_CPP_MIN_LOG_LEVEL=2`` and write bytecode
(``PYTHONDONTWRITEBYTECODE`` unset), as a user's would.

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
BACKENDS = ("tensorflow", "jax")
LOAD_RATIO = 1.2  # the probe's whole process against the same backend's bare load_model

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


def build_models(directory: str, names=MODELS) -> dict[str, str]:
    os.makedirs(directory, exist_ok=True)
    paths = {}
    for name in names:
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


LOAD = r"""
import os, sys
os.environ["KERAS_BACKEND"] = sys.argv[1]
import keras
keras.saving.load_model(sys.argv[2], compile=False)
"""


def backend_env(backend: str) -> dict[str, str]:
    """The environment of every measured run: TensorFlow's C++ logging off, bytecode
    written as a user's would be (PYTHONDONTWRITEBYTECODE unset), Keras on `backend`."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", KERAS_BACKEND=backend)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", default=DEFAULT_MODELS_DIR)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--models", default=",".join(MODELS),
                        help=f"comma-separated, of {', '.join(MODELS)}")
    parser.add_argument("--backends", default=",".join(BACKENDS),
                        help="comma-separated Keras backends to probe on")
    args = parser.parse_args(argv)
    if not os.path.exists(GNU_TIME):
        log(f"{GNU_TIME} (GNU time) is needed to measure peak memory")
        return 2
    names = [name for name in args.models.split(",") if name]
    backends = [name for name in args.backends.split(",") if name]
    paths = build_models(args.models_dir, names)
    rows = []
    failed = False
    for backend in backends:
        env = backend_env(backend)
        import_runs = [measure([sys.executable, "-c", "import keras"], env)
                       for _ in range(args.repeat)]
        rows.append({"label": f"`import keras` on {backend} (for scale)", "backend": backend,
                     "runs": import_runs, "loads": None, "name": None})
    for name in names:
        warm(paths[name])
        for backend in backends:
            env = backend_env(backend)
            runs, loads = [], []
            for repeat in range(args.repeat):
                # Side by side: each repeat loads, then probes, under the same load.
                log(f"{name} on {backend}: run {repeat + 1}/{args.repeat}")
                loads.append(measure([sys.executable, "-c", LOAD, backend, paths[name]], env))
                run = measure([*gradlint_command(), "--probe", "--isolated", "--probe-backend",
                               backend, "--output-format", "json", paths[name]], env)
                if run["code"] not in (0, 1) or loads[-1]["code"] != 0:
                    log(f"{name} on {backend}: exit {run['code']}/{loads[-1]['code']}: "
                        f"{run['stderr'][-300:]} {loads[-1]['stderr'][-300:]}")
                    failed = True
                runs.append(run)
            rows.append({"label": name, "backend": backend, "runs": runs, "loads": loads,
                         "name": os.path.basename(paths[name])})
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


def _median(runs, key="wall") -> float:
    return statistics.median(r[key] for r in runs)


def render(rows, repeat: int) -> str:
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    lines = [f"Probe benchmark: {repeat} runs each, {os.cpu_count()} CPUs, load average "
             f"{load} (1, 5, 15 min) at the end.", "",
             "| command | backend | wall s (median, min) | bare `load_model` wall s (median) | "
             "probe / load | CPU s (median) | peak RSS MB (max) | seeds x batch | "
             "probe's own s (median) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        runs, loads = row["runs"], row["loads"]
        walls = [r["wall"] for r in runs]
        rss = [r["rss"] for r in runs if r["rss"] is not None]
        infos = [_probe_info(r) for r in runs]
        plan = {f"{i.get('seeds')} x {i.get('batch')}" for i in infos if i} or {"-"}
        own = [i["seconds"] for i in infos if i.get("seconds")]
        name = f"`gradlint --probe {row['name']}`" if row["name"] else row["label"]
        load_text = ratio = "-"
        if loads:
            load_text = f"{_median(loads):.2f}"
            ratio = f"{_median(runs) / _median(loads):.2f}x"
        lines.append(f"| {name} | {row['backend']} | {statistics.median(walls):.2f} "
                     f"({min(walls):.2f}) | {load_text} | {ratio} | {_median(runs, 'cpu'):.2f} "
                     f"| {max(rss) if rss else 0:.0f} | {', '.join(sorted(plan))} | "
                     f"{statistics.median(own) if own else float('nan'):.2f} |")
    return "\n".join(lines)


def check_targets(rows) -> list[str]:
    lines = ["", f"Targets (median wall time; the probe at most {LOAD_RATIO}x the same "
                 "backend's bare load_model; largest peak memory):"]
    for row in rows:
        if not row["loads"]:
            continue
        runs, label = row["runs"], row["label"]
        wall, load = _median(runs), _median(row["loads"])
        ok = wall <= LOAD_RATIO * load
        lines.append(f"- {'met' if ok else 'MISSED'}: {label} on {row['backend']}: "
                     f"{wall:.2f} s <= {LOAD_RATIO} x {load:.2f} s ({wall / load:.2f}x)")
        if label in TARGETS and row["backend"] == "tensorflow":
            seconds, megabytes = TARGETS[label]
            rss = max((r["rss"] for r in runs if r["rss"] is not None), default=0.0)
            ok = wall < seconds and (megabytes is None or rss < megabytes)
            memory = f", {rss:.0f} MB < {megabytes:.0f} MB" if megabytes else ""
            lines.append(f"- {'met' if ok else 'MISSED'}: {label} {wall:.2f} s < "
                         f"{seconds:.0f} s{memory} (CPU {_median(runs, 'cpu'):.2f} s)")
    return lines


if __name__ == "__main__":
    sys.exit(main())
