"""Where one `gradlint FILE` run spends its time: CPU seconds per stage, in fresh processes.

    python bench/stages.py FILE [--no-weights] [--repeat 5]

Runs the real command line (`gradlint.cli.main`) in a fresh process per repetition, with timers
wrapped around the functions that mark its stages, and prints the minimum over repetitions per
stage. CPU time (`time.process_time`), not wall time, so that other work on the machine barely
moves the figures; gradlint runs in one thread, so on an idle machine its wall time is close to
its CPU time. Python's bytecode cache is on (kept in bench/models/pycache), as for an installed
package.

Stages: the interpreter's start-up (up to this script's first line, including `site` and any
editable-install finder), importing the command line (click and the gradlint modules it
imports at the top), importing the engine, discovering and importing the rule modules,
importing the readers, finding the files, reading the archive (zip, JSON, graph), importing
numpy and h5py, the weight statistics, the analyses and rules, rendering, and the rest
(option parsing, settings, exit).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

STAGE_SCRIPT = r"""
import time
start = time.process_time()
import json, sys
spent = {}

def timed(module, name, label):
    original = getattr(module, name)
    def wrapper(*args, **kwargs):
        begin = time.process_time()
        try:
            return original(*args, **kwargs)
        finally:
            spent[label] = spent.get(label, 0.0) + time.process_time() - begin
    setattr(module, name, wrapper)

begin = time.process_time()
import gradlint.cli
spent["import the command line (click, gradlint.cli)"] = time.process_time() - begin

begin = time.process_time()
import gradlint.engine, gradlint.config, gradlint.baseline
spent["import the engine (engine, analysis, config, report, ...)"] = time.process_time() - begin
begin = time.process_time()
import gradlint.rule_registry
gradlint.rule_registry.all_rules()
spent["discover and import the rule modules"] = time.process_time() - begin
begin = time.process_time()
import gradlint.readers, gradlint.readers.keras_archive as archive
spent["import the readers"] = time.process_time() - begin
import gradlint.renderers
timed(gradlint.engine, "discover", "find the files")
timed(gradlint.readers, "read_model", "read the archive (zip, JSON, graph) [a]")
timed(gradlint.engine, "lint_graph", "analyses and rules")
timed(gradlint.renderers, "render", "render the text report")

def import_then_attach(original=archive._attach_weights):
    def wrapper(*args, **kwargs):
        begin = time.process_time()
        import numpy
        middle = time.process_time()
        import h5py
        end = time.process_time()
        spent["import numpy"] = middle - begin
        spent["import h5py"] = end - middle
        original(*args, **kwargs)
        spent["weight statistics"] = time.process_time() - end
        spent["[a] of which numpy, h5py and weights"] = time.process_time() - begin
    return wrapper

archive._attach_weights = import_then_attach()
try:
    gradlint.cli.main(sys.argv[1:], standalone_mode=False)
except SystemExit:
    pass
sys.stdout.flush()
total = time.process_time()
spent["python start-up (before the first line)"] = start
spent["total"] = total
sys.stderr.write("\nSTAGES " + json.dumps(spent) + "\n")
"""

ORDER = [
    "python start-up (before the first line)",
    "import the command line (click, gradlint.cli)",
    "import the engine (engine, analysis, config, report, ...)",
    "discover and import the rule modules",
    "import the readers",
    "find the files",
    "read the archive (zip, JSON, graph) [a]",
    "import numpy",
    "import h5py",
    "weight statistics",
    "analyses and rules",
    "render the text report",
]


def run_once(file: str, no_weights: bool, env: dict) -> dict:
    arguments = (["--no-weights"] if no_weights else []) + [file]
    done = subprocess.run([sys.executable, "-c", STAGE_SCRIPT, *arguments],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    for line in reversed(done.stderr.splitlines()):
        if line.startswith("STAGES "):
            return json.loads(line[len("STAGES "):])
    raise RuntimeError(done.stderr[-2000:])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("file")
    parser.add_argument("--no-weights", action="store_true")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.setdefault("PYTHONPYCACHEPREFIX", os.path.join(HERE, "models", "pycache"))
    run_once(args.file, args.no_weights, env)  # fills the bytecode cache
    runs = [run_once(args.file, args.no_weights, env) for _ in range(args.repeat)]
    best = {key: min(run.get(key, 0.0) for run in runs) for key in runs[0]}
    # The stage that nests the others is shown without them.
    reading = "read the archive (zip, JSON, graph) [a]"
    if reading in best:
        nested = min(run.get(reading, 0.0) - run.get("[a] of which numpy, h5py and weights", 0.0)
                     for run in runs)
        best[reading] = nested
    accounted = sum(best.get(key, 0.0) for key in ORDER)
    print(f"CPU seconds per stage, minimum of {args.repeat} fresh processes: "
          f"gradlint {'--no-weights ' if args.no_weights else ''}{os.path.basename(args.file)}")
    for key in ORDER:
        if key in best:
            print(f"  {best[key]:7.3f}  {key.replace(' [a]', '')}")
    print(f"  {best['total'] - accounted:7.3f}  the rest (options, settings, exit)")
    print(f"  {best['total']:7.3f}  total CPU of the process (minimum)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
