"""Fuzz campaign: gradlint against many hostile model files, with figures per input class.

    python bench/fuzz.py [--count 10000] [--seed 1] [--jobs 1] [--batch 50]
                         [--sample-every 20] [--classes polyglot,size-bomb] [--out FILE]
                         [--base bench/models/fuzz-base] [--keep-failures]

The inputs come from tests/fuzz_inputs.py (the generator tests/test_fuzz.py uses): real small
models saved by Keras 3 and tf-keras (built once into ``--base``, git-ignored, by a
subprocess that imports TensorFlow; this process never does), each copied with one mutation
or turned into a structural attack: polyglots, extension/bytes disagreement, HDF5 external
links / external storage / virtual datasets, special files and escaping symlinks, size
bombs, corrupted HDF5 internals, one-field configuration mutations, hostile file names.

Each batch of ``--batch`` inputs plus two known-good models runs through the real command
line, ``python -m gradlint --output-format json --timeout 10 -j 2 --isolated -- FILE...``,
and is checked as the test checks it (tests/fuzz_inputs.py, `check_run`): no escaped
exception (exit status 0, 1 or 2, no "Traceback" on standard error, the JSON report names
every input), exit status 2 when a file is unreadable, the good files linted, each input's
expected outcome, no hang (a GL001 "time limit" message, a run killed at
``--batch-timeout``, or a process left running) and no open or read of a canary file
(inotify). A failed batch is bisected to the inputs that fail alone. ``--jobs`` batches run at once, each
in its own worker process with its own directories and inotify watch (each gradlint run
uses ``-j 2`` itself).

The first round of each class's variants, and one round in ``--sample-every`` after it,
also run alone, each input in its own process (``-j 1``, no other file), to measure its wall time and peak
resident memory (``os.wait4``: the process and the children it waited for; started by a
small launcher, since Linux would otherwise count this big process's memory in the child's
peak).

The Markdown summary (inputs, escaped exceptions, hangs over 10 s, reads outside the input,
other contract failures, peak RSS max and p99, wall time max and p99, per class; then the
failures grouped by signature) goes to standard output and to ``--out`` (default
bench/results/fuzz-latest.md, git-ignored). Progress goes to standard error.

Reproducing one input
---------------------

Every failure names its class, seed and index. One command regenerates that input and runs
it as the campaign did (in a batch with the good files, with the canary watch, then alone)::

    python bench/fuzz.py --seed SEED --index INDEX [--base DIR] [--keep DIR]

It prints the input's description, the failures, and the gradlint command line to rerun by
hand; the input stays in ``--keep`` (default: a new temporary directory, printed). ``--base``
must name the same base models to get the same bytes (the test's failure messages give the
session's directory); with another build of the base models the same mutation is applied to
an equivalent model. From Python: ``fuzz_inputs.make(seed, index, directory, base_dir,
canary_dir)``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import multiprocessing
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests"))

import fuzz_inputs as fi  # noqa: E402  (imports neither TensorFlow nor h5py at module level)

DEFAULT_BASE = os.path.join(HERE, "models", "fuzz-base")
DEFAULT_OUT = os.path.join(HERE, "results", "fuzz-latest.md")
KINDS = ("exception", "hang", "canary", "contract")


def ensure_base(directory: str) -> None:
    try:
        fi.base_model_paths(directory)
        return
    except FileNotFoundError:
        pass
    print(f"building the base models into {directory} (TensorFlow, once)...", file=sys.stderr)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run([sys.executable, os.path.join(REPO, "tests", "fuzz_inputs.py"),
                             "build-base", directory], capture_output=True, text=True, env=env)
    if result.returncode != 0:
        sys.stderr.write(result.stderr[-4000:])
        raise SystemExit("building the base models failed")
    fi.base_model_paths(directory)


def class_indices(count: int, classes: set[str] | None) -> list[int]:
    """The first `count` campaign indices whose class is in `classes` (all by default)."""
    if not classes:
        return list(range(count))
    indices = []
    index = 0
    while len(indices) < count:
        if fi.schedule(index)[0] in classes:
            indices.append(index)
        index += 1
    return indices


def sampled(index: int, every: int) -> bool:
    """Whether input `index` also runs alone: every `every`th round of its class's variants,
    so that each variant is measured."""
    cls, ordinal = fi.schedule(index)
    return every > 0 and (ordinal // len(fi.GENERATORS[cls][1])) % every == 0


def _failure_dict(failure: fi.Failure) -> dict:
    item = failure.item
    return {"kind": failure.kind, "message": failure.message, "signature": failure.signature,
            "index": item.index if item else None, "class": item.cls if item else None,
            "variant": item.variant if item else None, "input": item.shown() if item else "",
            "detail": item.detail if item else ""}


# Set in each worker process by _init_worker.
_STATE: dict = {}


def _init_worker(options: dict) -> None:
    def stop(signum, frame):  # Pool.terminate: end this worker's gradlint run too
        fi.kill_live_runs()
        os._exit(1)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C
    root = tempfile.mkdtemp(prefix=f"worker-{os.getpid()}-", dir=options["workroot"])
    _STATE.update(options, root=root)


def run_batch(seed: int, indices: list[int], state: dict, keep: str | None = None) -> dict:
    """Make, run and check one batch; then run its sampled inputs alone."""
    started = time.perf_counter()
    batch_dir = keep or tempfile.mkdtemp(prefix=f"batch-{indices[0]}-", dir=state["root"])
    canaries = os.path.join(batch_dir, "canaries")
    os.makedirs(canaries, exist_ok=True)
    fuzzer = fi.Fuzzer(state["base"], canaries, scratch_dir=os.path.join(state["root"], "shared"))
    items = []
    generation_errors = []
    for index in indices:
        try:
            items.append(fuzzer.make(seed, index, os.path.join(batch_dir, "inputs")))
        except Exception as error:  # a generator bug: reported, not fatal to the campaign
            cls = fi.schedule(index)[0]
            generation_errors.append({"index": index, "class": cls,
                                      "error": f"{type(error).__name__}: {error}"})
    generated = time.perf_counter()
    watch = fi.CanaryWatch(canaries)
    try:
        if not watch.self_check():
            raise RuntimeError("the canary watch does not see reads")
        goods = [os.path.join(state["base"], fi.base_file_name(*key)) for key in fi.GOOD_MODELS]
        runner = fi.Runner(goods, watch, timeout_option=state["timeout_option"],
                           batch_timeout=state["batch_timeout"],
                           isolate_timeout=state["isolate_timeout"],
                           isolate_budget=state["isolate_budget"], cwd=batch_dir)
        failures = runner.check(items) if items else []
        batch_runs = [{"wall": r.wall, "rss_kb": r.maxrss_kb} for r in runner.runs]
        samples = []
        for item in items:
            if not (keep or sampled(item.index, state["sample_every"])):
                continue
            watch.drain()
            args = fi.command(item.args, jobs=1, timeout_option=state["timeout_option"])
            result = fi.run(args, timeout=state["batch_timeout"], cwd=batch_dir)
            alone, _ = fi.check_run([item], [], result, watch.drain(), canaries,
                                    state["timeout_option"])
            if result.wall > fi.PER_FILE_TIMEOUT and not any(f.kind == "hang" for f in alone):
                alone.append(fi.Failure("hang", f"alone it took {result.wall:.1f} s", item))
            for failure in alone:
                if failure.item is None:
                    failure.item = item
                failure.message += " (run alone)"
            failures = fi._unique(failures + alone)
            samples.append({"index": item.index, "class": item.cls, "variant": item.variant,
                            "wall": result.wall, "rss_kb": result.maxrss_kb,
                            "returncode": result.returncode})
    finally:
        watch.close()
    result = {
        "indices": indices,
        "items": [(item.index, item.cls, item.variant) for item in items],
        "inputs": [dict(item.to_dict(), command=fi.shell_command(fi.command(item.args)))
                   for item in items] if keep else [],
        "failures": [_failure_dict(f) for f in failures],
        "generation_errors": generation_errors,
        "samples": samples,
        "batch_runs": batch_runs,
        "generate_seconds": generated - started,
        "seconds": time.perf_counter() - started,
        "directory": batch_dir,
    }
    if keep is None:
        if failures and state.get("keep_failures"):
            result["kept"] = batch_dir
        else:
            shutil.rmtree(batch_dir, ignore_errors=True)
    return result


def _worker(task: tuple[int, list[int]]) -> dict:
    seed, indices = task
    return run_batch(seed, indices, _STATE)


# --- the summary -----------------------------------------------------------------------------

def percentile(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(fraction * (len(ordered) - 1)))))]


def normalized(message: str) -> str:
    """A failure message without its paths and numbers, to group failures."""
    text = re.sub(r"(/[^\s'\":,)]+)+", "<path>", message)
    text = re.sub(r"\b0x[0-9a-f]+\b|\b\d+(\.\d+)?\b", "N", text)
    return text[:160]


def _fmt(value, scale: float = 1.0, digits: int = 1) -> str:
    return "–" if value is None else f"{value / scale:.{digits}f}"


def summarize(results: list[dict], options: dict, seconds: float) -> str:
    per_class: dict[str, dict] = {cls: {"inputs": 0, **{k: set() for k in KINDS},
                                        "rss": [], "wall": []} for cls in fi.CLASSES}
    batch_level: Counter = Counter()
    groups: dict[tuple, list[dict]] = defaultdict(list)
    generation_errors = []
    batch_rss = []
    for result in results:
        for _, cls, _ in result["items"]:
            per_class[cls]["inputs"] += 1
        generation_errors += result["generation_errors"]
        batch_rss += [run["rss_kb"] for run in result["batch_runs"]]
        for failure in result["failures"]:
            if failure["class"] is None:
                batch_level[failure["kind"]] += 1
            else:
                per_class[failure["class"]][failure["kind"]].add(failure["index"])
            key = (failure["kind"], failure["class"] or "(batch)",
                   failure["signature"] or normalized(failure["message"].replace(
                       " (run alone)", "")))
            groups[key].append(failure)
        for sample in result["samples"]:
            per_class[sample["class"]]["rss"].append(sample["rss_kb"])
            per_class[sample["class"]]["wall"].append(sample["wall"])
    total_inputs = sum(row["inputs"] for row in per_class.values())
    lines = [
        "# gradlint fuzz campaign",
        "",
        f"{datetime.datetime.now().isoformat(timespec='seconds')}, {platform.node()}, "
        f"Python {platform.python_version()}, {os.cpu_count()} cores; gradlint tree "
        f"{options['revision']}.",
        "",
        f"Seed {options['seed']}, {total_inputs} inputs in batches of {options['batch']} "
        f"(plus 2 good models each), {options['jobs']} batch(es) at a time, "
        f"`--timeout {fi.PER_FILE_TIMEOUT}` "
        f"{'on' if options['timeout_option'] else 'NOT SUPPORTED by this gradlint: off'}, "
        f"batch timeout {options['batch_timeout']:.0f} s; one input in "
        f"{options['sample_every']} (every variant) also run alone. {seconds / 60:.1f} minutes.",
        "",
        "Inputs with failures, by kind (an input counts once per kind). RSS and wall time are "
        "of the inputs run alone (`-j 1`, the whole process: start-up included).",
        "",
        "| class | inputs | escaped exceptions | hangs > 10 s | reads outside the input | "
        "other contract failures | run alone | peak RSS max MB | peak RSS p99 MB | "
        "wall max s | wall p99 s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    totals = {k: 0 for k in KINDS}
    all_rss, all_wall = [], []
    for cls, row in per_class.items():
        if not row["inputs"]:
            continue
        for kind in KINDS:
            totals[kind] += len(row[kind])
        all_rss += row["rss"]
        all_wall += row["wall"]
        lines.append(
            f"| {cls} | {row['inputs']} | {len(row['exception'])} | {len(row['hang'])} | "
            f"{len(row['canary'])} | {len(row['contract'])} | {len(row['rss'])} | "
            f"{_fmt(max(row['rss'], default=None), 1024)} | "
            f"{_fmt(percentile(row['rss'], 0.99), 1024)} | "
            f"{_fmt(max(row['wall'], default=None), 1, 2)} | "
            f"{_fmt(percentile(row['wall'], 0.99), 1, 2)} |")
    lines.append(
        f"| **all** | {total_inputs} | {totals['exception']} | {totals['hang']} | "
        f"{totals['canary']} | {totals['contract']} | {len(all_rss)} | "
        f"{_fmt(max(all_rss, default=None), 1024)} | {_fmt(percentile(all_rss, 0.99), 1024)} | "
        f"{_fmt(max(all_wall, default=None), 1, 2)} | "
        f"{_fmt(percentile(all_wall, 0.99), 1, 2)} |")
    lines += ["", f"Batch runs: {len(batch_rss)}, peak RSS max "
              f"{_fmt(max(batch_rss, default=None), 1024)} MB (the main process or a worker)."]
    if batch_level:
        lines += ["", "Failures of whole batches not attributed to an input: " +
                  ", ".join(f"{kind} {count}" for kind, count in sorted(batch_level.items()))]
    if generation_errors:
        lines += ["", f"**Generator errors: {len(generation_errors)}** (inputs not made): " +
                  "; ".join(f"{e['class']} index {e['index']}: {e['error']}"
                            for e in generation_errors[:10])]
    lines += ["", "## Failures by signature", ""]
    if not groups:
        lines.append("None.")
    else:
        lines += ["| kind | class | inputs | variants | signature | example (reproduce) |",
                  "|---|---|---:|---|---|---|"]
        for (kind, cls, signature), failures in sorted(
                groups.items(), key=lambda item: (item[0][1], -len(item[1]), item[0][0])):
            example = failures[0]
            variants = ", ".join(sorted({f["variant"] for f in failures if f["variant"]}))[:120]
            reproduce = (f"`python bench/fuzz.py --seed {options['seed']} --index "
                         f"{example['index']}`" if example["index"] is not None else "")
            cell = signature.replace("|", "\\|").replace("\n", " ")
            lines.append(f"| {kind} | {cls} | {len({f['index'] for f in failures})} | "
                         f"{variants} | {cell} | {reproduce} |")
    if groups:
        lines += ["", "## Examples", "", "One input per signature above, with its mutation.", ""]
        for (kind, cls, signature), failures in sorted(
                groups.items(), key=lambda item: (item[0][1], -len(item[1]), item[0][0])):
            example = failures[0]
            if example["index"] is None:
                lines.append(f"- **{kind}**, a whole batch: {example['message'][:400]}")
                continue
            lines.append(f"- **{kind}**, {example['class']}/{example['variant']} (index "
                         f"{example['index']}): {example['message'][:300]}  \n"
                         f"  input {example['input'][:200]}; {example['detail'][:300]}")
    return "\n".join(lines) + "\n"


def git_revision() -> str:
    try:
        head = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", REPO, "status", "--porcelain", "--", "gradlint",
                                "rules"], capture_output=True, text=True).stdout.strip()
        return f"{head}{' + uncommitted changes in gradlint/ or rules/' if dirty else ''}"
    except OSError:
        return "unknown"


# --- main ----------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=10000, help="inputs (default: 10000)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=1, help="batches run at once (default: 1)")
    parser.add_argument("--batch", type=int, default=50, help="inputs per gradlint run")
    parser.add_argument("--sample-every", type=int, default=20,
                        help="run every Nth input of each class alone, for wall time and "
                             "peak RSS (0: none; default: 20)")
    parser.add_argument("--classes", help=f"comma-separated subset of: {', '.join(fi.CLASSES)}")
    parser.add_argument("--out", default=DEFAULT_OUT, help="Markdown summary file")
    parser.add_argument("--json-out", help="also write every failure and sample as JSON")
    parser.add_argument("--base", default=DEFAULT_BASE, help="base-model directory")
    parser.add_argument("--workdir", default=None, help="where batches are made (default: a "
                                                        "temporary directory)")
    parser.add_argument("--keep-failures", action="store_true",
                        help="keep the directories of batches with failures")
    parser.add_argument("--batch-timeout", type=float, default=120,
                        help="seconds before a gradlint run is killed (default: 120)")
    parser.add_argument("--isolate-timeout", type=float, default=40,
                        help="the same, for the runs that bisect a failed batch")
    parser.add_argument("--isolate-budget", type=float, default=300,
                        help="seconds of bisection per failed batch (default: 300)")
    parser.add_argument("--index", type=int, help="reproduce this one input of --seed")
    parser.add_argument("--keep", help="with --index: where to write the input")
    options = parser.parse_args(argv)

    base = os.path.abspath(options.base)
    ensure_base(base)
    timeout_option = fi.timeout_supported()
    if not timeout_option:
        print("note: this gradlint has no --timeout option; running without it (a hang is "
              "then a run killed at its timeout)", file=sys.stderr)
    state = {"base": base, "timeout_option": timeout_option,
             "batch_timeout": options.batch_timeout, "isolate_timeout": options.isolate_timeout,
             "isolate_budget": options.isolate_budget, "sample_every": options.sample_every,
             "keep_failures": options.keep_failures}

    if options.index is not None:
        keep = os.path.abspath(options.keep or tempfile.mkdtemp(prefix="gradlint-fuzz-input-"))
        os.makedirs(keep, exist_ok=True)
        state["root"] = keep
        result = run_batch(options.seed, [options.index], state, keep=keep)
        for item in result["inputs"]:
            command = item.pop("command")
            print(json.dumps(item, indent=2))
            print(f"\nrun it by hand (in {keep}):\n  {command}\n")
        for sample in result["samples"]:
            print(f"alone: exit {sample['returncode']}, {sample['wall']:.2f} s, "
                  f"peak RSS {sample['rss_kb'] / 1024:.0f} MB")
        for failure in result["failures"]:
            print(f"[{failure['kind']}] {failure['message']}"
                  + (f" [{failure['signature']}]" if failure["signature"] else ""))
        for error in result["generation_errors"]:
            print(f"[generator error] {error['error']}")
        print("FAILED" if result["failures"] or result["generation_errors"] else "passed",
              f"(input kept in {keep})")
        return 1 if result["failures"] or result["generation_errors"] else 0

    classes = set(options.classes.split(",")) if options.classes else None
    unknown = (classes or set()) - set(fi.CLASSES)
    if unknown:
        parser.error(f"unknown classes: {', '.join(sorted(unknown))}")
    indices = class_indices(options.count, classes)
    tasks = [(options.seed, indices[start:start + options.batch])
             for start in range(0, len(indices), options.batch)]
    workroot = tempfile.mkdtemp(prefix="gradlint-fuzz-", dir=options.workdir)
    state["workroot"] = workroot
    summary_options = {"seed": options.seed, "batch": options.batch, "jobs": options.jobs,
                       "timeout_option": timeout_option, "batch_timeout": options.batch_timeout,
                       "sample_every": options.sample_every, "revision": git_revision()}
    started = time.perf_counter()
    results: list[dict] = []
    failed_inputs = 0
    context = multiprocessing.get_context("fork")
    pool = context.Pool(options.jobs, initializer=_init_worker, initargs=(state,))

    def interrupt(signum, frame):  # SIGTERM as Ctrl-C: stop the workers and their runs
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    try:
        for result in pool.imap_unordered(_worker, tasks):
            results.append(result)
            failed_inputs += len({f["index"] for f in result["failures"]})
            done = sum(len(r["indices"]) for r in results)
            elapsed = time.perf_counter() - started
            print(f"[{done}/{len(indices)}] {elapsed:.0f} s, inputs with failures so far: "
                  f"{failed_inputs}" + (f" (kept {result['kept']})" if "kept" in result else ""),
                  file=sys.stderr)
        pool.close()
    except KeyboardInterrupt:
        pool.terminate()
        print("interrupted: summarizing the batches done", file=sys.stderr)
    finally:
        pool.join()
        if not options.keep_failures:
            shutil.rmtree(workroot, ignore_errors=True)
    text = summarize(results, summary_options, time.perf_counter() - started)
    if options.out:
        os.makedirs(os.path.dirname(os.path.abspath(options.out)), exist_ok=True)
        with open(options.out, "w", encoding="utf-8") as handle:
            handle.write(text)
    if options.json_out:
        with open(options.json_out, "w", encoding="utf-8") as handle:
            json.dump(results, handle, indent=1)
    sys.stdout.write(text)
    return 1 if any(r["failures"] or r["generation_errors"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
