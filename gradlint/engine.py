"""The lint run: read each file, analyse its graph, run the selected rules, collect findings.

One file's failure never stops the others: a file that cannot be read becomes a GL001
finding with its reason, and the run goes on.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from typing import Any, Callable, Iterable

from gradlint.analysis import Analysis, analyse, is_weighted
from gradlint.config import Settings
from gradlint.discovery import discover, glob_matches
from gradlint.errors import ModelReadError, UnsupportedFormat
from gradlint.findings import Finding, Problem
from gradlint.folding import fold
from gradlint.graph import ModelGraph
from gradlint.isolation import Outcome, can_isolate, run_isolated
from gradlint.limits import worker_memory_mb
from gradlint.report import FileResult, Report
from gradlint.rule_registry import Rule, codes_for, find_rule, select
from gradlint.rules.unreadable_model import CODE as UNREADABLE


def selected_rules(settings: Settings) -> list[Rule]:
    return select(settings.select, settings.ignore, settings.extend_select)


def rule_options(rule: Rule, settings: Settings) -> dict[str, Any]:
    options = dict(rule.options)
    configured = settings.rules.get(rule.code, {})
    options.update({key: value for key, value in configured.items() if key != "severity"})
    return options


def _unreadable(path: str, message: str, settings: Settings, format: str | None = None) -> FileResult:
    rule = find_rule(UNREADABLE)
    severity = settings.rules.get(UNREADABLE, {}).get("severity", rule.severity)
    finding = Finding(code=rule.code, name=rule.name, severity=severity, message=message)
    return FileResult(path=path, format=format, findings=[finding],
                      error={"code": rule.code, "message": message})


def _ignored_codes_for_file(path: str, settings: Settings) -> set[str]:
    codes: set[str] = set()
    for pattern, selectors in settings.per_file_ignores.items():
        if glob_matches(pattern, path, settings.root):
            codes |= codes_for(selectors)
    return codes


def _ignored_for_layer(finding: Finding, settings: Settings) -> bool:
    if finding.layer is None:
        return False
    for pattern, selectors in settings.per_layer_ignores.items():
        if glob_matches(pattern, finding.layer) and finding.code in codes_for(selectors):
            return True
    return False


def run_rules(analysis: Analysis, rules: Iterable[Rule], settings: Settings,
              ignored: set[str] = frozenset(),
              probe: bool = False) -> tuple[list[Finding], list[str]]:
    """Findings of the static rules (or, with `probe`, of the probe's rules, which read
    `analysis.measurements`) on one analysed graph, and notes on rules that failed."""
    findings: list[Finding] = []
    notes: list[str] = []
    for rule in rules:
        if rule.check is None or rule.probe != probe or rule.code in ignored:
            continue
        options = rule_options(rule, settings)
        override = settings.rules.get(rule.code, {}).get("severity")
        try:
            problems: list[Problem] = list(rule.check(analysis, options))
        except Exception as error:  # a rule's bug must not stop the other rules
            notes.append(f"rule {rule.code} ({rule.name}) failed: {type(error).__name__}: {error}")
            continue
        for problem in problems:
            finding = Finding(code=rule.code, name=rule.name,
                              severity=override or problem.severity or rule.severity,
                              message=problem.message, layer=problem.layer,
                              layers=list(problem.layers), evidence=dict(problem.evidence),
                              fix=problem.fix)
            if not _ignored_for_layer(finding, settings):
                findings.append(finding)
    return findings, notes


def layer_entries(analysis: Analysis) -> list[dict[str, Any]]:
    """The JSON contract's per-layer list: every layer call with its estimate, and what the
    probe measured where it ran (`analysis.measurements`)."""
    measurements = analysis.measurements
    if measurements is not None:
        from gradlint.probe.measurements import measured_entry
    entries = []
    weights_estimate = analysis.weights_estimate
    for node in analysis.graph.nodes:
        if node.layer.family.is_input:
            continue
        record = analysis.estimate[node.id]
        estimate = record.to_dict()
        estimate["stored_weights"] = weights_estimate[node.id].to_dict() \
            if weights_estimate is not None else None
        activation = analysis.effective_activation(node) if is_weighted(node.layer) \
            else node.layer.activation
        entries.append({
            "path": node.path,
            "class": node.layer.class_name,
            "kind": node.layer.kind,
            "family": node.layer.family.name,
            "activation": str(activation) if activation is not None else None,
            "weighted": is_weighted(node.layer),
            "estimate": estimate,
            "measured": measured_entry(measurements, node.path) if measurements else None,
        })
    if measurements is not None and not analysis.graph.graph_stored:
        # The graph is not in the file: the layers only the loaded model showed.
        known = {entry["path"] for entry in entries}
        for path in measurements.order:
            if path not in known:
                entries.append({"path": path, "class": measurements.kernels[path].class_name,
                                "kind": None, "family": None, "activation": None,
                                "weighted": True,
                                "estimate": None, "measured": measured_entry(measurements, path)})
    return entries


def model_summary(graph: ModelGraph) -> dict[str, Any]:
    layers = [layer for layer in graph.layers() if not layer.family.is_input]
    return {"name": graph.name, "class": graph.model_class, "layers": len(layers),
            "params": graph.params, "keras_version": graph.keras_version}


def lint_graph(graph: ModelGraph, path: str, settings: Settings,
               rules: list[Rule] | None = None, model: Any = None,
               probe: bool = True) -> tuple[FileResult, Analysis]:
    """Lint an already-read graph (from a file or a live model). With `settings.probe` and
    `probe`, the probe then measures the live `model`."""
    rules = selected_rules(settings) if rules is None else rules
    analysis = analyse(graph, settings.estimate_mode, settings.batch_size)
    ignored = _ignored_codes_for_file(path, settings)
    findings, notes = run_rules(analysis, rules, settings, ignored)
    findings = fold(findings, rules)
    if any(finding.fix is not None for finding in findings):
        from gradlint.fix.estimate import estimate_fixes  # what each fix would leave

        notes += estimate_fixes(analysis, findings, rules,
                                lambda rule: rule_options(rule, settings))
    passed = [analysis.node(n).path for n in analysis.estimate.passed_through
              if analysis.node(n).layer.family.understood(analysis.node(n).layer)]
    if passed:
        notes.append("the estimate passes the signal unchanged through layers it cannot "
                     f"size: {', '.join(passed[:5])}{' …' if len(passed) > 5 else ''}")
    result = FileResult(path=path, format=graph.format, model=model_summary(graph),
                        layers=layer_entries(analysis), findings=findings,
                        notes=list(graph.notes) + notes,
                        estimate={"mode": settings.estimate_mode,
                                  "batch_size": settings.batch_size})
    if settings.probe and probe and model is not None:
        measure_and_judge(result, analysis, model, settings)
    return result, analysis


def measure_and_judge(result: FileResult, analysis: Analysis, target: Any, settings: Settings,
                      digest: str | None = None) -> None:
    """The probe's stage for one model that read cleanly: measure it (a path is loaded from a
    private copy of exactly the bytes that were checked, `digest`), then
    `apply_measurements`. A probe that cannot run leaves the static findings and says why."""
    import time

    from gradlint.probe.environment import ProbeError
    from gradlint.probe.hook import measure_file, probe_info

    started = time.perf_counter()
    try:
        measurements = measure_file(target, analysis, settings, digest)
    except ProbeError as error:
        result.probe = probe_info(error=str(error), seconds=time.perf_counter() - started)
        return
    apply_measurements(result, analysis, measurements, settings)
    result.probe = probe_info(True, None, measurements, time.perf_counter() - started)


def apply_measurements(result: FileResult, analysis: Analysis, measurements: Any,
                       settings: Settings) -> None:
    """Measurements in, findings and verdicts out: the probe's rules (GL9xx) run on the
    measurements beside the graph, each finding gets its own rule's verdict, probe findings
    that only repeat a confirmed one are folded into it, and the layer list is rebuilt with
    the measured values beside the estimates."""
    from gradlint.rule_registry import all_rules
    from gradlint.verdicts import fold_duplicates, give_verdicts

    analysis.measurements = measurements
    ignored = _ignored_codes_for_file(result.path, settings)
    findings, notes = run_rules(analysis, selected_rules(settings), settings, ignored,
                                probe=True)
    rules = {rule.code: rule for rule in all_rules()}
    combined = result.findings + findings
    give_verdicts(combined + [related for finding in combined for related in finding.related],
                  measurements, rules, lambda code: rule_options(rules[code], settings))
    result.findings = fold_duplicates(combined, rules)
    measured_notes = [note for note in getattr(measurements, "notes", None) or []
                      if note not in result.notes]
    result.notes = result.notes + notes + measured_notes
    result.layers = layer_entries(analysis)


def internal_error_result(path: str, stage: str, settings: Settings,
                          format: str | None = None, details: str | None = None) -> FileResult:
    """A failure of gradlint's own code on one file: GL001 with a request to report it, and
    the traceback kept for --debug."""
    error = sys.exc_info()[1]
    text = " ".join(str(error).split())[:300] if error is not None else ""
    result = _unreadable(path, f"internal error while {stage} ({type(error).__name__}"
                               f"{': ' + text if text else ''}); this is a bug in gradlint: "
                               "please report it with the file", settings, format)
    import traceback  # only here: a run without internal errors never pays for it

    result.traceback = details or traceback.format_exc()
    return result


def lint_file(path: str, settings: Settings, searched: bool = False,
              keep_analysis: bool = False) -> tuple[FileResult | None, Analysis | None]:
    """Lint one file in this process: read it, analyse it, run the static rules. Every
    stage is guarded: whatever goes wrong becomes a GL001 result, never an exception.
    Returns (None, None) for a searched-for file that turned out not to be a model (the
    caller skips it with a note), and the analysis only when `keep_analysis`."""
    from gradlint.readers import read_model

    try:
        graph = read_model(path, read_weights=settings.read_weights, limits=settings.limits,
                           allow_ambiguous=settings.allow_ambiguous_format)
    except UnsupportedFormat as error:
        # A searched-for HDF5 file may hold data or weights only; a `.keras` file that is
        # not a model archive is broken, and says so.
        if searched and not path.lower().endswith(".keras"):
            return None, None
        return _unreadable(path, str(error), settings), None
    except ModelReadError as error:
        return _unreadable(path, str(error), settings), None
    except RecursionError:
        return _unreadable(path, "the model is too deeply nested to read", settings), None
    except MemoryError:
        return _unreadable(path, _memory_message(settings), settings), None
    except Exception:  # a file we did not foresee must not stop the run
        return internal_error_result(path, "reading the file", settings), None
    if not graph.graph_stored and settings.custom_objects:  # opt-in: imports Keras
        from gradlint.readers.rebuilt import rebuild_or_note
        try:
            graph = rebuild_or_note(path, graph, settings)
        except ModelReadError as error:
            return _unreadable(path, str(error), settings, graph.format), None
        except Exception:
            return internal_error_result(path, "rebuilding the model", settings,
                                         graph.format), None
    try:
        result, analysis = lint_graph(graph, path, settings, probe=False)
        result.to_dict()  # what every renderer reads: fail here, not while rendering
    except MemoryError:
        return _unreadable(path, _memory_message(settings), settings, graph.format), None
    except RecursionError:
        return _unreadable(path, "the model graph is too deeply nested to analyse", settings,
                           graph.format), None
    except Exception:
        return internal_error_result(path, "analysing the model", settings, graph.format), None
    return result, analysis if keep_analysis else None


def _memory_message(settings: Settings) -> str:
    return (f"reading the file needs more than the memory limit of "
            f"{settings.limits.max_memory_mb} MB (limits.max-memory-mb)")


def _file_digest(path: str) -> str | None:
    """The SHA-256 of the file's bytes, so the probe loads exactly the bytes checked."""
    import hashlib

    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return None
    return digest.hexdigest()


def _static_work(path: str, settings: Settings, searched: bool):
    """One file's static stage as the isolated child runs it."""
    def work():
        import time

        started = time.perf_counter()
        result, analysis = lint_file(path, settings, searched, keep_analysis=settings.probe)
        digest = _file_digest(path) if settings.probe and analysis is not None else None
        if result is not None:
            result.seconds = time.perf_counter() - started
        return result, analysis, digest

    return work


def _failed_outcome(path: str, outcome: Outcome, settings: Settings) -> FileResult:
    limits = settings.limits
    if outcome.failure == "timeout":
        return _unreadable(path, f"reading and analysing the file passed the time limit of "
                                 f"{limits.timeout:g} s per file (--timeout, limits.timeout); "
                                 "it was stopped", settings)
    if outcome.failure == "memory":
        return _unreadable(path, _memory_message(settings), settings)
    if outcome.failure == "stuck":
        return _unreadable(path, "a call into HDF5 on this file did not return (a corrupted "
                                 "attribute or heap): the file is corrupted; it was stopped",
                           settings)
    result = _unreadable(path, f"internal error: the process reading the file "
                               f"{outcome.detail.splitlines()[0] if outcome.detail else 'failed'}"
                               "; this is a bug in gradlint: please report it with the file",
                         settings)
    result.traceback = outcome.detail
    return result


# What a worker costs and what a file costs, measured on the 2-core benchmark machine
# (bench/bench_jobs.py): starting a worker (forking, importing numpy, h5py and the rules)
# about 0.25 s of CPU; a small file about 0.01 s without weights and 0.016 s with them;
# weight statistics about 250 MB/s (ResNet50's 100 MB in 0.4 s).
WORKER_START_SECONDS = 0.25
FILE_SECONDS = 0.012
WEIGHT_BYTES_PER_SECOND = 250e6


def pool_size(work: list[tuple[str, bool]], settings: Settings, jobs: int) -> int:
    """How many workers pay for themselves: one more only for each two starts' worth of
    estimated work, so that a run of many small files is never slower in parallel."""
    if jobs <= 1 or len(work) <= 1:
        return 1
    seconds = FILE_SECONDS * len(work)
    if settings.read_weights:
        for path, _ in work:
            try:
                seconds += os.path.getsize(path) / WEIGHT_BYTES_PER_SECOND
            except OSError:
                pass
    return max(1, min(jobs, len(work), int(seconds / (2 * WORKER_START_SECONDS))))


def _run_static(work: list[tuple[str, bool]], own: list[Settings], settings: Settings,
                jobs: int, on_done: Callable[[int, tuple], None]) -> list[tuple]:
    """(result, analysis, digest) per file, in the order of `work`, each file linted with
    its own settings (`own`): in a worker process with the run's time and memory limits
    where the platform can fork, else here. `on_done(index, triple)` is called as each
    finishes, in any order."""
    works = [_static_work(path, file_settings, searched)
             for (path, searched), file_settings in zip(work, own)]
    if not can_isolate():
        triples = []
        for index, work_of_file in enumerate(works):
            triples.append(work_of_file())
            on_done(index, triples[-1])
        return triples
    triples: dict[int, tuple] = {}

    def finished(index: int, outcome: Outcome) -> None:
        path = work[index][0]
        triples[index] = outcome.value if outcome.failure is None \
            else (_failed_outcome(path, outcome, settings), None, None)
        on_done(index, triples[index])

    limits = settings.limits
    memory = worker_memory_mb(limits, imports_keras=bool(settings.custom_objects))
    run_isolated(works, jobs=pool_size(work, settings, jobs), timeout=limits.timeout,
                 memory_bytes=memory * (1 << 20), on_done=finished)
    return [triples[index] for index in range(len(work))]


def lint_paths(paths: list[str], settings: Settings, jobs: int = 1,
               on_file: Callable[[int, int, str], None] | None = None,
               on_result: Callable[[FileResult], None] | None = None,
               settings_for: Callable[[str], Settings] | None = None) -> Report:
    """Lint files and directories: each file read and analysed in a worker process (`jobs`
    at a time), then, with the probe, measured here one at a time.

    `settings` steer the run; `settings_for(path)` gives a file's own (its nearest
    configuration's rule selection and options: `config.Resolver.for_file`), by default the
    run's. `on_file(done, total, path)` follows progress; `on_result(result)` receives each
    file's result as soon as it and every file before it are done, in the report's order."""
    exclude = list(settings.exclude) + list(settings.extend_exclude)
    found = discover(paths, exclude=exclude, root=settings.root,
                     respect_gitignore=settings.respect_gitignore)
    import time

    report = Report(skipped=list(found.skipped), started=time.time())
    work = [(path, False) for path in found.explicit] + [(path, True) for path in found.found]
    own = [settings_for(path) if settings_for else settings for path, _ in work]
    results: dict[int, FileResult | None] = {}
    emitted = [0]
    done = [0]

    def settle(index: int, result: FileResult | None) -> None:
        results[index] = result
        done[0] += 1
        if on_file:
            on_file(done[0], len(work), work[index][0])
        while emitted[0] in results:
            ready = results[emitted[0]]
            emitted[0] += 1
            if ready is not None:
                report.files.append(ready)
                if on_result:
                    on_result(ready)
            else:
                report.skipped.append(f"{work[emitted[0] - 1][0]}: not a Keras model file, "
                                      "skipped")

    if not settings.probe:
        _run_static(work, own, settings, jobs, lambda index, triple: settle(index, triple[0]))
    else:
        # The probe then loads one model at a time, here, and frees it before the next:
        # TensorFlow in several processes at once would multiply its memory and start-up.
        static = _run_static(work, own, settings, jobs, lambda index, triple: None)
        for index, ((path, _), (result, analysis, digest)) in enumerate(zip(work, static)):
            if result is not None and analysis is not None:
                started = time.perf_counter()
                _probe_file(result, analysis, path, digest, own[index])
                result.seconds = (result.seconds or 0.0) + time.perf_counter() - started
            settle(index, result)
    late = [_unreadable(path, reason, settings) for path, reason in found.missing]
    directories_with_models = {found.searched_in[path] for index, (path, searched)
                               in enumerate(work) if searched and results[index] is not None}
    empty = [(directory, "no model files (*.keras, *.h5, *.hdf5) found in this directory")
             for directory in found.without_models]
    empty += [(directory, "no Keras model in this directory: the HDF5 files found hold no "
                          "model configuration")
              for directory in dict.fromkeys(found.searched_in.values())
              if directory not in directories_with_models]
    for directory, reason in empty:
        # As ruff does: a repository without models yet is not a failure, unless asked.
        if settings.fail_on_no_models:
            late.append(_unreadable(directory, reason, settings))
        else:
            report.warnings.append(f"{directory}: {reason}")
    for result in late:
        report.files.append(result)
        if on_result:
            on_result(result)
    return report


def _probe_file(result: FileResult, analysis: Analysis, path: str, digest: str | None,
                settings: Settings) -> None:
    try:
        measure_and_judge(result, analysis, path, settings, digest)
    except Exception:
        failed = internal_error_result(path, "probing the model", settings, result.format)
        result.findings.extend(failed.findings)
        result.error, result.traceback = failed.error, failed.traceback


def lint(target: Any, *, settings: Settings | None = None, select: list[str] | None = None,
         ignore: list[str] | None = None, weights: bool = True, jobs: int = 1,
         probe: bool | None = None) -> Report:
    """Lint model files, directories, or a live `keras.Model`, and return a `Report`.

    `target` is a path, a list of paths, or a model object; `select` / `ignore` take rule
    codes, prefixes, names or groups, as on the command line. `probe=True` also measures the
    gradients (needs TensorFlow and Keras; a live model is measured as it is and left as it
    was).
    """
    settings = settings or Settings()
    changes: dict[str, Any] = {"read_weights": weights and settings.read_weights}
    if probe is not None:
        changes["probe"] = bool(probe)
    if select is not None:
        changes["select"] = list(select)
    if ignore is not None:
        changes["ignore"] = list(ignore)
    settings = dataclasses.replace(settings, **changes)  # the caller's settings stay as they were
    if isinstance(target, (str, os.PathLike)):
        return lint_paths([os.fspath(target)], settings, jobs=jobs)
    if isinstance(target, (list, tuple)) and all(isinstance(t, (str, os.PathLike)) for t in target):
        return lint_paths([os.fspath(t) for t in target], settings, jobs=jobs)
    from gradlint.readers.live_model import read_live_model

    try:
        graph = read_live_model(target, read_weights=settings.read_weights)
    except ModelReadError as error:
        return Report(files=[_unreadable(f"<{type(target).__name__}>", str(error), settings)])
    name = f"<{graph.name}>"
    try:
        result, _ = lint_graph(graph, name, settings, model=target)
    except Exception:
        result = internal_error_result(name, "analysing the model", settings, graph.format)
    return Report(files=[result])
