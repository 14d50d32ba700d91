"""The lint run: read each file, analyse its graph, run the selected rules, collect findings.

One file's failure never stops the others: a file that cannot be read becomes a GL001
finding with its reason, and the run goes on.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Iterable

from gradlint.analysis import Analysis, analyse, is_weighted
from gradlint.config import Settings
from gradlint.discovery import discover, glob_matches
from gradlint.errors import ModelReadError, UnsupportedFormat
from gradlint.findings import Finding, Problem
from gradlint.graph import ModelGraph
from gradlint.report import FileResult, Report
from gradlint.rule_registry import Rule, codes_for, find_rule, select

UNREADABLE = "GL001"


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
                              layers=list(problem.layers), evidence=dict(problem.evidence))
            if not _ignored_for_layer(finding, settings):
                findings.append(finding)
    return findings, notes


def layer_entries(analysis: Analysis) -> list[dict[str, Any]]:
    """The JSON contract's per-layer list: every layer call with its estimate."""
    entries = []
    weights_estimate = analysis.weights_estimate
    for node in analysis.graph.nodes:
        if node.layer.kind == "input":
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
            "activation": str(activation) if activation is not None else None,
            "weighted": is_weighted(node.layer),
            "estimate": estimate,
            "measured": None,  # filled in by the probe
        })
    return entries


def model_summary(graph: ModelGraph) -> dict[str, Any]:
    layers = [layer for layer in graph.layers() if layer.kind != "input"]
    return {"name": graph.name, "class": graph.model_class, "layers": len(layers),
            "params": graph.params, "keras_version": graph.keras_version}


def lint_graph(graph: ModelGraph, path: str, settings: Settings,
               rules: list[Rule] | None = None, model: Any = None) -> tuple[FileResult, Analysis]:
    """Lint an already-read graph (from a file or a live model). With `settings.probe`, the
    probe then measures the file at `path` (or the live `model`)."""
    rules = selected_rules(settings) if rules is None else rules
    analysis = analyse(graph)
    ignored = _ignored_codes_for_file(path, settings)
    findings, notes = run_rules(analysis, rules, settings, ignored)
    passed = [analysis.node(n).path for n in analysis.estimate.passed_through
              if analysis.node(n).layer.kind not in ("unknown", "opaque", "model")]
    if passed:
        notes.append("the estimate passes the signal unchanged through layers it cannot "
                     f"size: {', '.join(passed[:5])}{' …' if len(passed) > 5 else ''}")
    result = FileResult(path=path, format=graph.format, model=model_summary(graph),
                        layers=layer_entries(analysis), findings=findings,
                        notes=list(graph.notes) + notes)
    if settings.probe:
        from gradlint.probe.hook import attach_probe

        attach_probe(result, analysis, path if model is None else model, settings,
                     lambda: run_rules(analysis, rules, settings, ignored, probe=True))
    return result, analysis


def lint_file(path: str, settings: Settings, searched: bool = False) -> FileResult | None:
    """Lint one file. Returns None for a searched-for file that turned out not to be a model
    (it is skipped with a note by the caller)."""
    from gradlint.readers import read_model

    try:
        graph = read_model(path, read_weights=settings.read_weights)
    except UnsupportedFormat as error:
        # A searched-for HDF5 file may hold data or weights only; a `.keras` file that is
        # not a model archive is broken, and says so.
        if searched and not path.lower().endswith(".keras"):
            return None
        return _unreadable(path, str(error), settings)
    except ModelReadError as error:
        return _unreadable(path, str(error), settings)
    except (RecursionError, MemoryError) as error:
        return _unreadable(path, f"the model is too large or too deeply nested to read ({type(error).__name__})", settings)
    except Exception as error:  # a file we did not foresee must not stop the run
        return _unreadable(path, f"could not be read ({type(error).__name__}: {error})", settings)
    result, _ = lint_graph(graph, path, settings)
    return result


def _lint_one(arguments: tuple[str, Settings, bool]) -> tuple[str, FileResult | None]:
    path, settings, searched = arguments
    return path, lint_file(path, settings, searched)


def lint_paths(paths: list[str], settings: Settings, jobs: int = 1,
               on_file: Callable[[int, int, str], None] | None = None) -> Report:
    """Lint files and directories. `jobs` > 1 lints files in parallel processes."""
    exclude = list(settings.exclude) + list(settings.extend_exclude)
    found = discover(paths, exclude=exclude, root=settings.root,
                     respect_gitignore=settings.respect_gitignore)
    report = Report(skipped=list(found.skipped))
    work = [(path, settings, False) for path in found.explicit] + \
           [(path, settings, True) for path in found.found]
    results: dict[str, FileResult | None] = {}
    # The probe loads one model at a time and frees it before the next: TensorFlow in
    # several processes at once would multiply its memory and start-up for nothing.
    if jobs > 1 and len(work) > 1 and not settings.probe:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=min(jobs, len(work))) as pool:
            for index, (path, result) in enumerate(pool.map(_lint_one, work)):
                results[path] = result
                if on_file:
                    on_file(index + 1, len(work), path)
    else:
        for index, item in enumerate(work):
            path, result = _lint_one(item)
            results[path] = result
            if on_file:
                on_file(index + 1, len(work), path)
    for path, _, searched in work:
        result = results[path]
        if result is None:
            report.skipped.append(f"{path}: not a Keras model file, skipped")
        else:
            report.files.append(result)
    for path, reason in found.missing:
        report.files.append(_unreadable(path, reason, settings))
    directories_with_models = {found.searched_in[path] for path, _, searched in work
                               if searched and results[path] is not None}
    for directory in dict.fromkeys(found.searched_in.values()):
        if directory not in directories_with_models:
            report.files.append(_unreadable(
                directory, "no Keras model in this directory: the HDF5 files found hold no "
                           "model configuration", settings))
    return report


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
    if probe is not None:
        settings.probe = bool(probe)
    if select is not None:
        settings.select = list(select)
    if ignore is not None:
        settings.ignore = list(ignore)
    settings.read_weights = weights and settings.read_weights
    if isinstance(target, (str, os.PathLike)):
        return lint_paths([os.fspath(target)], settings, jobs=jobs)
    if isinstance(target, (list, tuple)) and all(isinstance(t, (str, os.PathLike)) for t in target):
        return lint_paths([os.fspath(t) for t in target], settings, jobs=jobs)
    from gradlint.readers.live_model import read_live_model

    graph = read_live_model(target, read_weights=settings.read_weights)
    result, _ = lint_graph(graph, f"<{graph.name}>", settings, model=target)
    return Report(files=[result])
