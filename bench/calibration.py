"""Calibration: gradlint's static estimate against the probe's measurement, layer by layer.

    python bench/calibration.py                  # the whole zoo; probes only what is not cached
    python bench/calibration.py --quick          # a representative subset
    python bench/calibration.py --only 'app_Eff*,lstm'   # name globs or substrings
    python bench/calibration.py --reprobe        # measure again, even what is cached

For every model of the zoo (``bench/zoo.py``, built once into ``bench/models/zoo/``) and every
weighted layer, it compares ``estimate.kernel_gradient`` (the static estimate of the layer's
kernel-gradient norm relative to the output layer's) with ``measured.kernel_gradient`` (the
same ratio measured by ``gradlint --probe``), both from gradlint's JSON report, joined by the
layer's path. A layer is *within one decade* when ``|log10(estimate / measured)| <= 1``.

The probe is slow (TensorFlow, a real batch) and the estimate is fast, so the probe runs once
per model and its measurements are cached in ``bench/results/calibration-probe-cache.json``,
keyed by the file's SHA-256, the batch size, the number of seeds and a hash of
``gradlint/probe/*.py``. Each run then recomputes only the estimate, with one
``gradlint --output-format json --no-probe`` over all the files (no TensorFlow), and joins
the two. A cached measurement whose probe-code hash differs is stale: it is measured again,
unless ``--stale-ok`` takes it as it is (the output says how many were taken so).
``--cached-only`` never probes: a model without a measurement is reported as not probed.

The estimate and the probe use the same batch, ``--batch-size`` (default 32): gradlint gets
``--batch-size B`` (BatchNormalization's batch statistics in the estimate) and, for the probe,
``--batch-size B --probe-batch B --probe-seeds S`` as well. Probes run one model at a time, in
a fresh process each, with a time limit; one that fails or times out is recorded with its
error and the others go on.

Skipped layers are counted, never silently dropped: a weighted layer the estimate has no
value for is a failure of the estimate ("no estimate", per model); a layer whose measurement
is missing or zero, or whose estimate is zero, is skipped and counted; the probe's reference
layer (the output layer, 1 on both sides by definition) is left out of the comparison.

Writes ``docs/calibration.md`` (tables), ``bench/results/calibration.json`` (every layer's
pair and the summaries) and a compact summary on standard output; progress goes to standard
error. This script never imports TensorFlow; the zoo is built by ``bench/zoo.py`` in its own
processes.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import fnmatch
import hashlib
import importlib.util
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from collections import defaultdict

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import zoo  # noqa: E402  (bench/zoo.py: the model list; imports no TensorFlow at import)

RESULTS_DIR = os.path.join(HERE, "results")
CACHE_PATH = os.path.join(RESULTS_DIR, "calibration-probe-cache.json")
RESULTS_PATH = os.path.join(RESULTS_DIR, "calibration.json")
SUBSET_RESULTS_PATH = os.path.join(RESULTS_DIR, "calibration-subset.json")
DOC_PATH = os.path.join(ROOT, "docs", "calibration.md")
DEFAULT_BATCH = 32
DEFAULT_SEEDS = 3
DEFAULT_PROBE_TIMEOUT = 1800
DECADE = 1.0
CACHE_VERSION = 1
# Extra gradlint arguments per group: keras-hub backbones are classes that build their
# graph, so the probe (and the opt-in rebuild of the static analysis) needs the module.
GROUP_ARGS = {"keras_hub": ["--custom-objects", "keras_hub"]}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- keys -----------------------------------------------------------------------------------

def probe_code_hash() -> str:
    """A hash of gradlint/probe/*.py of the gradlint that runs."""
    sources = os.path.join(SOURCE["root"], "gradlint", "probe")
    digest = hashlib.sha256()
    for name in sorted(os.listdir(sources)):
        if name.endswith(".py"):
            digest.update(name.encode())
            with open(os.path.join(sources, name), "rb") as handle:
                digest.update(handle.read())
    return digest.hexdigest()[:16]


def file_sha256(path: str, memo: dict) -> str:
    """SHA-256 of the file, remembered by (size, mtime) so big files are hashed once."""
    stat = os.stat(path)
    stamp = f"{stat.st_size}:{stat.st_mtime_ns}"
    known = memo.get(path)
    if known and known.get("stamp") == stamp:
        return known["sha256"]
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    memo[path] = {"stamp": stamp, "sha256": digest.hexdigest()}
    return memo[path]["sha256"]


def cache_key(sha: str, batch: int, seeds: int) -> str:
    return f"{sha}|batch={batch}|seeds={seeds}"


def read_json(path: str, default):
    try:
        with open(path) as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return default


def write_json(path: str, data) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    temporary = f"{path}.{os.getpid()}.tmp"
    with open(temporary, "w") as handle:
        json.dump(data, handle, indent=1, sort_keys=True)
        handle.write("\n")
    os.replace(temporary, path)


def save_cache(cache: dict) -> None:
    """Write the cache, keeping what another run wrote meanwhile (ours wins per key)."""
    on_disk = read_json(CACHE_PATH, {})
    if on_disk.get("version") == CACHE_VERSION:
        for section in ("entries", "sha256"):
            merged = dict(on_disk.get(section) or {})
            merged.update(cache[section])
            cache[section] = merged
    write_json(CACHE_PATH, cache)


def git_state() -> dict:
    if SOURCE["snapshot"]:
        return {"commit": SOURCE["snapshot"], "dirty": False, "snapshot": True}

    def run(*args):
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                                  timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    dirty = run("status", "--porcelain", "--", "gradlint", "rules")
    return {"commit": run("rev-parse", "--short", "HEAD"), "dirty": bool(dirty)}


# --- running gradlint -----------------------------------------------------------------------

# Where gradlint runs from: the checkout (its editable install) or, with --gradlint-rev, a
# snapshot of one commit laid out as the installed package, put first on PYTHONPATH (the
# editable install's finder comes after the path). The working tree is edited while the
# benchmark runs; a snapshot keeps one run's estimate and probe on one version.
SOURCE = {"root": ROOT, "snapshot": None}


def make_snapshot(revision: str) -> dict:
    """The package tree of `revision` under bench/models/snapshots/COMMIT/ (git-ignored),
    from `git archive` (the repository is only read)."""
    commit = subprocess.run(["git", "rev-parse", "--short", revision], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.strip()
    target = os.path.join(HERE, "models", "snapshots", commit)
    if not os.path.exists(os.path.join(target, "gradlint", "__init__.py")):
        import io
        import shutil
        import tarfile

        archive = subprocess.run(["git", "archive", "--format=tar", commit, "gradlint",
                                  "rules", "templates"], cwd=ROOT, capture_output=True,
                                 check=True).stdout
        partial = target + ".partial"
        shutil.rmtree(partial, ignore_errors=True)
        os.makedirs(partial)
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(partial, filter="data")
        # pyproject's package-dir: rules/ is gradlint.rules, templates/ gradlint.templates.
        for name in ("rules", "templates"):
            if os.path.isdir(os.path.join(partial, name)):
                os.replace(os.path.join(partial, name), os.path.join(partial, "gradlint", name))
        shutil.rmtree(target, ignore_errors=True)
        os.replace(partial, target)
    return {"root": target, "snapshot": commit}


def gradlint_command() -> list[str]:
    if SOURCE["snapshot"]:
        # -P (PYTHONSAFEPATH): the working directory, the checkout, must not come first.
        return [sys.executable, "-P", "-m", "gradlint"]
    exe = os.path.join(os.path.dirname(sys.executable), "gradlint")
    return [exe] if os.path.exists(exe) else [sys.executable, "-m", "gradlint"]


def environment() -> dict:
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if SOURCE["snapshot"]:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [SOURCE["root"],
                                                           env.get("PYTHONPATH")]))
        env["PYTHONSAFEPATH"] = "1"
    return env


def parse_report(text: str) -> dict | None:
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) and isinstance(data.get("files"), list) else None


def number(value) -> float | None:
    """A JSON number of the report (finite() writes infinities and NaN as strings)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if value in ("inf", "-inf"):
        return float(value)
    return None  # "nan" or anything else: no usable value


def probe_model(entry: dict, path: str, batch: int, seeds: int, timeout: float) -> dict:
    """One probe run, in its own process: what the cache keeps of it."""
    command = gradlint_command() + [
        "check", "--isolated", "--output-format", "json", "--exit-zero", "--probe",
        "--batch-size", str(batch), "--probe-batch", str(batch), "--probe-seeds", str(seeds),
        "-j", "1", "--timeout", str(int(timeout)),
        *GROUP_ARGS.get(entry["group"], []), os.path.relpath(path, ROOT)]
    started = time.monotonic()
    record = {"command": " ".join(command[1:]), "error": None}
    try:
        done = subprocess.run(command, cwd=ROOT, env=environment(), capture_output=True,
                              text=True, timeout=timeout + 60)
        record["exit_code"] = done.returncode
        stdout, stderr = done.stdout, done.stderr
    except subprocess.TimeoutExpired as expired:
        record["exit_code"] = None
        stdout = expired.stdout.decode() if isinstance(expired.stdout, bytes) else ""
        stderr = expired.stderr.decode() if isinstance(expired.stderr, bytes) else ""
        record["error"] = f"timed out after {timeout + 60:.0f} s"
    record["wall_seconds"] = round(time.monotonic() - started, 1)
    report = parse_report(stdout or "")
    if report is None or not report["files"]:
        # gradlint itself broke (or the run was killed): not a property of the model, so
        # the record is not cached and the next run measures again.
        record["error"] = record["error"] or ("no JSON report; standard error ends: "
                                              + (stderr or "")[-1500:])
        record["transient"] = True
        record["layers"] = []
        record["probe"] = None
        return record
    result = report["files"][0]
    probe = result.get("probe") or {}
    record["probe"] = {key: probe.get(key) for key in (
        "ran", "error", "seeds", "batch", "training_mode", "loss", "seconds", "loader",
        "reference_layer", "input_shapes", "nonfinite")}
    if result.get("error"):
        record["error"] = f"{result['error'].get('code')}: {result['error'].get('message')}"
    elif not probe.get("ran"):
        record["error"] = f"probe did not run: {probe.get('error')}"
    record["layers"] = [{"path": layer.get("path"), "class": layer.get("class"),
                         "kind": layer.get("kind"), "measured": layer.get("measured")}
                        for layer in result.get("layers") or []
                        if layer.get("measured") is not None]
    record["findings"] = [{"code": f.get("code"), "severity": f.get("severity"),
                           "layer": f.get("layer"),
                           "verdict": (f.get("probe") or {}).get("verdict")}
                          for f in result.get("findings") or []]
    return record


def static_reports(entries: list[dict], paths: dict, batch: int, weights: bool) -> dict:
    """name -> the file's entry of one `--no-probe` JSON report per argument group."""
    by_args = defaultdict(list)
    for entry in entries:
        by_args[tuple(GROUP_ARGS.get(entry["group"], []))].append(entry)
    results = {}
    for extra, group in by_args.items():
        command = gradlint_command() + [
            "check", "--isolated", "--output-format", "json", "--exit-zero", "--no-probe",
            "--batch-size", str(batch), *([] if weights else ["--no-weights"]), *extra,
            *[os.path.relpath(paths[e["name"]], ROOT) for e in group]]
        done = subprocess.run(command, cwd=ROOT, env=environment(), capture_output=True,
                              text=True)
        report = parse_report(done.stdout)
        if report is None:
            error = "static run gave no JSON report: " + done.stderr[-1000:]
            for entry in group:
                results[entry["name"]] = {"error": {"code": "bench", "message": error}}
            continue
        by_path = {os.path.normpath(f["path"]): f for f in report["files"]}
        for entry in group:
            key = os.path.normpath(os.path.relpath(paths[entry["name"]], ROOT))
            results[entry["name"]] = by_path.get(key) or {
                "error": {"code": "bench", "message": "file missing from the static report"}}
    return results


# --- the comparison -------------------------------------------------------------------------

def family_of(layer: dict) -> str:
    return f"{layer.get('kind')}/{layer.get('class')}"


def compare_model(static: dict, probed: dict | None, use_stored: bool = False) -> dict:
    """The per-layer pairs and counts of one model."""
    counts = {"weighted": 0, "compared": 0, "no_estimate": 0, "zero_estimate": 0,
              "no_measurement": 0, "zero_measurement": 0, "reference": 0,
              "measured_not_in_estimate": 0}
    pairs = []
    measured = {layer["path"]: layer for layer in (probed or {}).get("layers") or []}
    reference = ((probed or {}).get("probe") or {}).get("reference_layer")
    seen = set()
    for layer in static.get("layers") or []:
        if not layer.get("weighted"):
            continue
        counts["weighted"] += 1
        path = layer.get("path")
        seen.add(path)
        estimate_block = layer.get("estimate") or {}
        if use_stored:
            estimate_block = estimate_block.get("stored_weights") or {}
        estimate = number(estimate_block.get("kernel_gradient"))
        measure = number(((measured.get(path) or {}).get("measured") or {})
                         .get("kernel_gradient"))
        if path == reference and reference is not None:
            counts["reference"] += 1
            continue
        if estimate is None:
            counts["no_estimate"] += 1
            pairs.append({"path": path, "family": family_of(layer), "estimate": None,
                          "measured": measure, "log10": None})
            continue
        if measure is None or not math.isfinite(measure):
            counts["no_measurement"] += 1
            continue
        if measure == 0:
            counts["zero_measurement"] += 1
            continue
        if estimate == 0:
            counts["zero_estimate"] += 1
            continue
        error = math.log10(estimate / measure) if math.isfinite(estimate) else math.inf
        counts["compared"] += 1
        pairs.append({"path": path, "family": family_of(layer), "estimate": estimate,
                      "measured": measure, "log10": error})
    # A kernel the probe measured on a layer the estimate does not treat as weighted (or
    # does not list) is a layer without an estimate too.
    static_layers = {layer.get("path"): layer for layer in static.get("layers") or []}
    for path, layer in measured.items():
        if path in seen or path == reference:
            continue
        value = number((layer.get("measured") or {}).get("kernel_gradient"))
        if value is None or value == 0:
            continue
        counts["weighted"] += 1
        counts["no_estimate"] += 1
        counts["measured_not_in_estimate"] += 1
        pairs.append({"path": path, "family": family_of(static_layers.get(path) or layer),
                      "estimate": None, "measured": value, "log10": None})
    return {"counts": counts, "pairs": pairs}


def summarize(errors: list[float]) -> dict:
    if not errors:
        return {"n": 0, "within": None, "median_abs": None, "worst_abs": None,
                "median_signed": None}
    absolute = [abs(e) for e in errors]
    return {"n": len(errors),
            "within": sum(1 for e in absolute if e <= DECADE) / len(errors),
            "median_abs": statistics.median(absolute), "worst_abs": max(absolute),
            "median_signed": statistics.median(errors)}


def model_summary(comparison: dict) -> dict:
    compared = [p for p in comparison["pairs"] if p["log10"] is not None]
    summary = summarize([p["log10"] for p in compared])
    if compared:
        worst = max(compared, key=lambda p: abs(p["log10"]))
        summary["worst_layer"] = worst["path"]
        by_family = defaultdict(list)
        for pair in compared:
            by_family[pair["family"]].append(pair["log10"])
        family, values = max(by_family.items(), key=lambda item: (
            statistics.median(abs(v) for v in item[1]), len(item[1])))
        summary["worst_family"] = family
        summary["worst_family_median_signed"] = statistics.median(values)
        summary["worst_family_n"] = len(values)
    return summary


# --- formatting -----------------------------------------------------------------------------

def pct(value) -> str:
    return "–" if value is None else f"{100 * value:.0f}%"


def dec(value, signed=False) -> str:
    if value is None:
        return "–"
    if math.isinf(value):
        return "inf"
    return f"{value:+.2f}" if signed else f"{value:.2f}"


def seconds(value) -> str:
    return "–" if value is None else f"{value:.0f}" if value >= 10 else f"{value:.1f}"


def cell(text) -> str:
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(text))  # Keras's bold in its error messages
    return text.replace("|", "\\|").replace("\n", " ")


def write_doc(results: dict, path: str) -> None:
    meta = results["settings"]
    zoo_wide = results["zoo_wide"]
    lines = [
        "# Calibration: the static estimate against the probe",
        "",
        "Generated by `python bench/calibration.py` (do not edit by hand; re-run it). For every",
        "weighted layer of every model in the zoo, gradlint's static estimate of the layer's",
        "kernel-gradient norm relative to the output layer's (`estimate.kernel_gradient` in the",
        "JSON report, from the initializers) is compared with the same ratio measured by the",
        "probe (`measured.kernel_gradient`, `gradlint --probe`). A layer is **within one decade**",
        "when `|log10(estimate / measured)| <= 1`; *signed* errors are `log10(estimate /",
        "measured)`, positive where the estimate is too high.",
        "",
        "## Settings",
        "",
        f"- Run: {meta['date']} UTC, gradlint {meta['gradlint_commit']}"
        + (" with uncommitted changes under `gradlint/` or `rules/`" if meta["dirty"] else "")
        + (" (run from a snapshot of that commit: `--gradlint-rev`)" if meta.get("snapshot")
           else "")
        + f", on {meta['machine']} (load average {meta['load_average'][0]} at the start of "
        f"this run, {meta['load_average'][1]} at its end). Probe times come from the run "
        "that measured each model (cached with it); other work shared the 2 cores then "
        "(load average 3 to 6), so they are upper bounds.",
        f"- Batch size **{meta['batch_size']}** for both: the estimate gets `--batch-size "
        f"{meta['batch_size']}` (training mode, BatchNormalization on batch statistics) and the "
        f"probe `--batch-size {meta['batch_size']} --probe-batch {meta['batch_size']}`.",
        f"- Probe seeds: **{meta['seeds']}** (`--probe-seeds {meta['seeds']}`; each measurement "
        "is the median over the seeds), training mode, the probe's own synthetic batch and loss.",
        f"- Images: keras.applications models at {zoo.IMAGE_SIZE}x{zoo.IMAGE_SIZE}x3 "
        "(`weights=None`, `include_top=True`, 1,000 classes); the other models' input shapes "
        "are in `bench/zoo.py`. Every model is built with the seed "
        f"{zoo.BUILD_SEED}.",
        f"- Probe code hash (`gradlint/probe/*.py`): `{meta['probe_hash']}`"
        + (f"; {meta['stale_models']} model(s) measured with older probe code were taken as "
           "they are (`--stale-ok`)" if meta.get("stale_models") else "") + ".",
        "- Left out of the comparison and counted: the probe's reference layer (1 on both "
        "sides); layers with no estimate (**no est.**, a failure of the estimate); layers whose "
        "measurement is missing or zero, or whose estimate is zero (**skipped**).",
        "",
        "## Zoo-wide",
        "",
        f"**{pct(zoo_wide['within'])} of {zoo_wide['n']:,} weighted layers within one decade** "
        f"over {zoo_wide['models']} models (median |log10| {dec(zoo_wide['median_abs'])}, "
        f"median signed {dec(zoo_wide['median_signed'], True)}); "
        f"{zoo_wide['models_at_75']} of {zoo_wide['models']} models have at least 75% of their "
        f"layers within one decade. {zoo_wide['no_estimate']:,} weighted layers had no "
        f"estimate and {zoo_wide['skipped']:,} were skipped.",
        "",
    ]
    stored = results.get("zoo_wide_stored_weights")
    if stored and stored.get("n"):
        lines += [f"With the estimate from the stored weights (`estimate.stored_weights`) "
                  f"instead of the initializers: {pct(stored['within'])} of {stored['n']:,} "
                  f"within one decade (median |log10| {dec(stored['median_abs'])}).", ""]
    lines += ["| group | models | layers | within one decade | median \\|log10\\| | "
              "median signed | no est. |", "|---|---:|---:|---:|---:|---:|---:|"]
    for group, row in results["groups"].items():
        lines.append(f"| {group} | {row['models']} | {row['n']:,} | {pct(row['within'])} | "
                     f"{dec(row['median_abs'])} | {dec(row['median_signed'], True)} | "
                     f"{row['no_estimate']} |")
    lines += ["", "## Per model", "",
              "*worst family*: the layer family (JSON `kind`/`class`) with the largest median "
              "\\|log10\\| in the model, with its median signed error and layer count. *probe s*: "
              "wall time of the whole probe process (TensorFlow's import and the model's load "
              "included).",
              "",
              "| model | group | compared | within | median \\|log10\\| | median signed | "
              "worst \\|log10\\| (layer) | worst family | no est. | skipped | probe s |",
              "|---|---|---:|---:|---:|---:|---|---|---:|---:|---:|"]
    for model in results["models"]:
        s = model["summary"]
        c = model["counts"]
        skipped = c["zero_estimate"] + c["no_measurement"] + c["zero_measurement"]
        if model.get("problem"):
            lines.append(f"| {model['name']} | {model['group']} | – | – | – | – | "
                         f"{cell(model['problem'][:120])} | – | {c['no_estimate']} | "
                         f"{skipped} | {seconds(model.get('probe_wall_seconds'))} |")
            continue
        worst = f"{dec(s['worst_abs'])} (`{cell(s.get('worst_layer'))}`)" if s["n"] else "–"
        family = (f"{cell(s['worst_family'])} ({dec(s['worst_family_median_signed'], True)}, "
                  f"{s['worst_family_n']})") if s["n"] else "–"
        lines.append(f"| {model['name']} | {model['group']} | {s['n']} | {pct(s['within'])} | "
                     f"{dec(s['median_abs'])} | {dec(s['median_signed'], True)} | {worst} | "
                     f"{family} | {c['no_estimate']} | {skipped} | "
                     f"{seconds(model.get('probe_wall_seconds'))} |")
    lines += ["", "## Per layer family", "",
              "Layers grouped by the JSON layer entry's `kind` and `class`, over the whole zoo. "
              "*no est.* counts the family's weighted layers without an estimate.", "",
              "| kind | class | models | layers | within | median \\|log10\\| | median signed | "
              "worst \\|log10\\| | no est. |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for family in results["families"]:
        lines.append(f"| {cell(family['kind'])} | {cell(family['class'])} | {family['models']} "
                     f"| {family['n']:,} | {pct(family['within'])} | {dec(family['median_abs'])} "
                     f"| {dec(family['median_signed'], True)} | {dec(family['worst_abs'])} | "
                     f"{family['no_estimate']} |")
    flagged = []
    for model in results["models"]:
        if model["group"] != "applications":
            continue
        static_codes = sorted({f["code"] for f in model.get("static_findings") or []
                               if f.get("severity") == "error"})
        probe_codes = sorted({f"{f['code']} ({f.get('verdict') or 'probe rule'})"
                              for f in model.get("probe_findings") or []
                              if f.get("severity") == "error"})
        if static_codes or probe_codes:
            flagged.append((model["name"], static_codes, probe_codes))
    if flagged:
        lines += ["", "## Error-severity findings on keras.applications models", "",
                  "Issue 8 asks for none, statically or with the probe (here at "
                  f"{zoo.IMAGE_SIZE}x{zoo.IMAGE_SIZE} and batch {meta['batch_size']}).", "",
                  "| model | static errors | errors in the probe run (verdict) |",
                  "|---|---|---|"]
        for name, static_codes, probe_codes in flagged:
            lines.append(f"| {name} | {', '.join(static_codes) or '–'} | "
                         f"{', '.join(probe_codes) or '–'} |")
    problems = [m for m in results["models"] if m.get("problem")]
    if problems:
        lines += ["", "## Models not compared", "",
                  "| model | what happened |", "|---|---|"]
        for model in problems:
            lines.append(f"| {model['name']} | {cell(model['problem'][:400])} |")
    if results.get("skipped_groups"):
        lines += ["", "Groups skipped: " + ", ".join(
            f"{g} ({why})" for g, why in results["skipped_groups"].items()) + "."]
    lines += [
        "", "## Reproducing", "",
        "```sh",
        ".venv/bin/pip install -e '.[dev]'   # TensorFlow, Keras, tf-keras, keras-hub",
        "TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python bench/calibration.py"
        + ("".join(" " + a for a in meta.get("argv") or [])),
        "```", "",
        "The first run builds the zoo into `bench/models/zoo/` (git-ignored; "
        f"{results['build_seconds_total']:.0f} s here) and probes every model once, one at a "
        f"time ({results['probe_seconds_total'] / 60:.0f} minutes of probing here, 2 cores); the "
        "measurements are cached in `bench/results/calibration-probe-cache.json`, keyed by "
        "the file's SHA-256, the batch size, the seeds and the probe code's hash. Later runs "
        "recompute only the static estimate "
        f"({results['static_seconds']:.0f} s here) and rewrite this page and "
        "`bench/results/calibration.json`. `--quick` runs a representative subset, "
        "`--only PATTERN` chosen models, `--reprobe` measures again, `--batch-size` and "
        "`--seeds` change the settings (and so the cache key), `--cached-only` never probes. "
        "See `python bench/calibration.py --help` and `bench/README.md`.",
        ""]
    with open(path, "w") as handle:
        handle.write("\n".join(lines))


def print_summary(results: dict) -> None:
    zoo_wide = results["zoo_wide"]
    print(f"calibration: batch {results['settings']['batch_size']}, "
          f"{results['settings']['seeds']} seeds; {pct(zoo_wide['within'])} of "
          f"{zoo_wide['n']:,} layers within one decade over {zoo_wide['models']} models "
          f"(median |log10| {dec(zoo_wide['median_abs'])}, {zoo_wide['models_at_75']} models "
          f">= 75%, {zoo_wide['no_estimate']} without estimate)")
    print(f"{'model':30} {'n':>5} {'within':>7} {'med':>6} {'signed':>7} {'worst':>6} "
          f"{'noest':>5}  worst family")
    for model in results["models"]:
        s = model["summary"]
        if model.get("problem"):
            print(f"{model['name']:30} {'':>5} {'':>7} {'':>6} {'':>7} {'':>6} "
                  f"{model['counts']['no_estimate']:>5}  {model['problem'][:70]}")
            continue
        print(f"{model['name']:30} {s['n']:>5} {pct(s['within']):>7} {dec(s['median_abs']):>6} "
              f"{dec(s['median_signed'], True):>7} {dec(s['worst_abs']):>6} "
              f"{model['counts']['no_estimate']:>5}  {s.get('worst_family', '')}")


# --- main -----------------------------------------------------------------------------------

def choose(entries: list[dict], args) -> list[dict]:
    if args.quick:
        entries = [e for e in entries if e["name"] in zoo.QUICK]
    if args.group:
        entries = [e for e in entries if e["group"] in args.group.split(",")]
    if args.only:
        patterns = args.only.split(",")
        entries = [e for e in entries if any(fnmatch.fnmatch(e["name"], p) or p in e["name"]
                                             for p in patterns)]
    return entries


def reproducible_argv(argv: list[str]) -> list[str]:
    """The run's options without those that only name output files or the cache policy."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in ("--doc", "--json"):
            skip = True
            continue
        if arg.split("=")[0] in ("--doc", "--json", "--cached-only", "--stale-ok",
                                 "--reprobe", "--no-doc"):
            continue
        kept.append(arg)
    return kept


def build_missing(entries: list[dict], zoo_dir: str) -> float:
    started = time.monotonic()
    missing = defaultdict(list)
    for entry in entries:
        if not os.path.exists(os.path.join(zoo_dir, entry["file"])):
            missing[entry["group"]].append(entry["name"])
    for group, names in missing.items():
        log(f"building {len(names)} model(s) of group {group} (bench/zoo.py) ...")
        # One process per group; a crash (out of memory) loses only what was unfinished,
        # and the next run builds the rest.
        subprocess.run([sys.executable, os.path.join(HERE, "zoo.py"), "build", "--group", group,
                        "--zoo-dir", zoo_dir, "--only", ",".join(names)], cwd=ROOT,
                       env=environment())
    return time.monotonic() - started


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description="Compare gradlint's static estimate with the probe, layer by layer.")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH,
                        help=f"batch for the estimate and the probe (default {DEFAULT_BATCH})")
    parser.add_argument("--seeds", type=int, default=DEFAULT_SEEDS,
                        help=f"probe seeds (default {DEFAULT_SEEDS})")
    parser.add_argument("--only", help="comma-separated model name globs or substrings")
    parser.add_argument("--group", help="comma-separated groups: " + ", ".join(zoo.GROUPS))
    parser.add_argument("--quick", action="store_true", help="a representative subset")
    parser.add_argument("--reprobe", action="store_true",
                        help="measure the selected models again, even if cached")
    parser.add_argument("--stale-ok", action="store_true",
                        help="take cached measurements made with other probe code as they are")
    parser.add_argument("--cached-only", action="store_true",
                        help="never probe; models without a cached measurement are reported")
    parser.add_argument("--probe-timeout", type=float, default=DEFAULT_PROBE_TIMEOUT,
                        help=f"seconds per probe (default {DEFAULT_PROBE_TIMEOUT})")
    parser.add_argument("--no-weights", action="store_true",
                        help="static estimate without reading weights (no stored-weights figure)")
    parser.add_argument("--zoo-dir", default=zoo.ZOO_DIR)
    parser.add_argument("--doc", help="Markdown output (default docs/calibration.md for a "
                        "run over the whole zoo; a subset writes none unless named)")
    parser.add_argument("--json", help="JSON output (default bench/results/calibration.json, "
                        "or calibration-subset.json for a subset)")
    parser.add_argument("--no-doc", action="store_true", help="do not write the Markdown page")
    parser.add_argument("--gradlint-rev", metavar="REV",
                        help="run gradlint (estimate and probe) from a snapshot of this commit "
                        "instead of the working tree, which may be mid-edit")
    args = parser.parse_args(argv)
    if args.gradlint_rev:
        SOURCE.update(make_snapshot(args.gradlint_rev))
        log(f"gradlint from a snapshot of {SOURCE['snapshot']} ({SOURCE['root']})")
    subset = bool(args.quick or args.only or args.group)
    if args.doc is None and not subset:
        args.doc = DOC_PATH
    if args.json is None:
        args.json = SUBSET_RESULTS_PATH if subset else RESULTS_PATH

    load_before = os.getloadavg()[0]
    entries = choose(zoo.model_entries(), args)
    skipped_groups = {}
    available = []
    for entry in entries:
        module = zoo.OPTIONAL_GROUPS.get(entry["group"])
        if module and importlib.util.find_spec(module) is None:
            skipped_groups[entry["group"]] = f"{module} is not importable"
            continue
        available.append(entry)
    entries = available
    if not entries:
        log("no model selected")
        return 2

    build_seconds = build_missing(entries, args.zoo_dir)
    manifest = zoo.read_manifest(args.zoo_dir)
    paths = {e["name"]: os.path.join(args.zoo_dir, e["file"]) for e in entries}

    cache = read_json(CACHE_PATH, {})
    if cache.get("version") != CACHE_VERSION:
        cache = {"version": CACHE_VERSION, "entries": {}, "sha256": {}}
    current_probe = probe_code_hash()
    probed = {}
    stale_used = 0
    # Cheapest first (by parameters, a rough cost), so that an interrupted run has measured
    # as many models as it could; the tables keep the zoo's order.
    for entry in sorted(entries, key=lambda e: (manifest.get(e["name"]) or {}).get("params")
                        or 0):
        name, path = entry["name"], paths[entry["name"]]
        if not os.path.exists(path):
            continue
        key = cache_key(file_sha256(path, cache["sha256"]), args.batch_size, args.seeds)
        record = cache["entries"].get(key)
        fresh = record is not None and record.get("probe_hash") == current_probe
        usable = fresh or (record is not None and args.stale_ok)
        if usable and not args.reprobe:
            stale_used += 0 if fresh else 1
            probed[name] = record
            continue
        if args.cached_only:
            continue
        log(f"probing {name} (batch {args.batch_size}, {args.seeds} seeds) ...")
        probe_hash = probe_code_hash()
        record = probe_model(entry, path, args.batch_size, args.seeds, args.probe_timeout)
        record.update(model=name, file=os.path.relpath(path, ROOT), probe_hash=probe_hash,
                      batch=args.batch_size, seeds=args.seeds, gradlint=git_state(),
                      probed_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
        if probe_code_hash() != probe_hash:
            record["probe_hash"] = "changed-during-run"
        log(f"  {record['wall_seconds']} s" + (f"; error: {record['error'][:200]}"
                                               if record["error"] else ""))
        if not record.get("transient"):
            cache["entries"][key] = record
            save_cache(cache)
        probed[name] = record
    save_cache(cache)

    started = time.monotonic()
    present = [e for e in entries if os.path.exists(paths[e["name"]])]
    static = static_reports(present, paths, args.batch_size, not args.no_weights)
    static_seconds = time.monotonic() - started
    log(f"static estimate: {static_seconds:.1f} s for {len(present)} files")

    models = []
    all_pairs, stored_errors = [], []
    for entry in entries:
        name = entry["name"]
        built = manifest.get(name) or {}
        row = {"name": name, "group": entry["group"], "file": entry["file"],
               "params": built.get("params"), "input_shapes": built.get("input_shapes"),
               "build_seconds": built.get("build_seconds")}
        record = probed.get(name)
        if record:
            row["probe_wall_seconds"] = record.get("wall_seconds")
            row["probe_seconds"] = (record.get("probe") or {}).get("seconds")
            row["probe_error"] = record.get("error")
            row["reference_layer"] = (record.get("probe") or {}).get("reference_layer")
            row["probe_loader"] = (record.get("probe") or {}).get("loader")
            row["probe_findings"] = record.get("findings")
        result = static.get(name)
        problem = None
        if not os.path.exists(paths[name]):
            problem = "not built: " + str(built.get("error") or "missing")
        elif result is None or result.get("error"):
            problem = "static analysis failed: " + str((result or {}).get("error"))
        elif record is None:
            problem = "not probed (--cached-only)" if args.cached_only else "not probed"
        elif record.get("error") and not record.get("layers"):
            problem = "probe failed: " + record["error"]
        if problem and result and not result.get("error") and not any(
                layer.get("weighted") for layer in result.get("layers") or []):
            codes = sorted({f.get("code") for f in result.get("findings") or []})
            problem += f" (static: no weighted layer; {', '.join(codes) or 'no finding'})"
        comparison = compare_model(result or {}, record)
        row["counts"] = comparison["counts"]
        row["pairs"] = comparison["pairs"]
        row["static_findings"] = [{"code": f.get("code"), "severity": f.get("severity"),
                                   "layer": f.get("layer")}
                                  for f in (result or {}).get("findings") or []]
        row["summary"] = model_summary(comparison)
        if problem is None and not row["summary"]["n"]:
            problem = "no layer compared"
        row["problem"] = problem
        if problem is None:
            for pair in comparison["pairs"]:
                all_pairs.append((entry["group"], name, pair))
            stored = compare_model(result or {}, record, use_stored=True)
            stored_errors += [p["log10"] for p in stored["pairs"] if p["log10"] is not None]
        models.append(row)

    compared_models = [m for m in models if not m["problem"]]
    errors = [p["log10"] for _, _, p in all_pairs if p["log10"] is not None]
    zoo_wide = summarize(errors)
    zoo_wide.update(
        models=len(compared_models),
        models_at_75=sum(1 for m in compared_models if (m["summary"]["within"] or 0) >= 0.75),
        no_estimate=sum(m["counts"]["no_estimate"] for m in compared_models),
        skipped=sum(m["counts"]["zero_estimate"] + m["counts"]["no_measurement"]
                    + m["counts"]["zero_measurement"] for m in compared_models))
    groups = {}
    for group in zoo.GROUPS:
        members = [m for m in compared_models if m["group"] == group]
        if not members:
            continue
        values = [p["log10"] for g, _, p in all_pairs if g == group and p["log10"] is not None]
        groups[group] = summarize(values)
        groups[group].update(models=len(members),
                             no_estimate=sum(m["counts"]["no_estimate"] for m in members))
    by_family = defaultdict(lambda: {"errors": [], "models": set(), "no_estimate": 0})
    for _, name, pair in all_pairs:
        bucket = by_family[pair["family"]]
        bucket["models"].add(name)
        if pair["log10"] is None:
            bucket["no_estimate"] += 1
        else:
            bucket["errors"].append(pair["log10"])
    families = []
    for family, bucket in by_family.items():
        kind, _, cls = family.partition("/")
        row = summarize(bucket["errors"])
        row.update(kind=kind, **{"class": cls}, models=len(bucket["models"]),
                   no_estimate=bucket["no_estimate"])
        families.append(row)
    families.sort(key=lambda r: (-(r["n"] + r["no_estimate"]), r["kind"], r["class"]))

    results = {
        "settings": {"batch_size": args.batch_size, "seeds": args.seeds,
                     "probe_hash": current_probe, "image_size": zoo.IMAGE_SIZE,
                     "build_seed": zoo.BUILD_SEED, "stale_models": stale_used,
                     "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M"),
                     "gradlint_commit": git_state()["commit"], "dirty": git_state()["dirty"],
                     "snapshot": bool(SOURCE["snapshot"]),
                     "machine": f"{os.cpu_count()} cores, Python {platform.python_version()}",
                     "weights_read": not args.no_weights,
                     "argv": reproducible_argv(sys.argv[1:] if argv is None else argv),
                     "load_average": [round(load_before, 1), round(os.getloadavg()[0], 1)], "within": f"|log10| <= {DECADE}"},
        "zoo_wide": zoo_wide,
        "zoo_wide_stored_weights": summarize(stored_errors),
        "groups": groups, "families": families, "models": models,
        "skipped_groups": skipped_groups,
        "static_seconds": static_seconds, "build_seconds_run": build_seconds,
        "build_seconds_total": sum(m.get("build_seconds") or 0 for m in models),
        "probe_seconds_total": sum(m.get("probe_wall_seconds") or 0 for m in models),
    }
    write_json(args.json, results)
    if args.doc and not args.no_doc:
        write_doc(results, args.doc)
    print_summary(results)
    if stale_used:
        log(f"note: {stale_used} model(s) measured with other probe code (--stale-ok)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
