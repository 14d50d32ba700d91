"""`gradlint fix`: lint one model file, choose the fixes to apply, edit its configuration,
re-draw the re-initialized kernels, write the new file, and lint that file again to verify.

Which fixes apply: every automatic, safe fix by default; `select` (codes, prefixes, names,
groups) narrows that to the rules named and also admits their fixes that are not safe by
default (GL101's activation swap); `ignore` leaves rules out. Structural fixes are never
applied (the result lists them). A fix that re-draws kernels is refused on a trained
checkpoint (`gradlint.fix.trained`) unless `reinitialize_trained`: re-drawing trained
weights discards training. Optimizer fixes (clipnorm) re-draw nothing and apply to trained
checkpoints too.

The static path: nothing here imports TensorFlow or Keras.
"""

from __future__ import annotations

import copy
import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any

from gradlint.config import Settings
from gradlint.findings import Finding
from gradlint.fix.config_edits import FixError, apply_fixes

REDRAWN_ROLES = ("kernel", "backward_kernel")
# The formats `gradlint.fix.writer` writes back (as `ModelGraph.format` names them).
WRITABLE_FORMATS = ("keras-v3-archive", "keras-v2-archive", "keras-legacy-h5")


@dataclass
class FixResult:
    """What `gradlint fix` did (or, with a dry run, would do) to one file."""

    path: str
    output: str | None
    format: str | None = None
    applied: list[Finding] = field(default_factory=list)
    not_applied: list[tuple[Finding, str]] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)
    redrawn: list[str] = field(default_factory=list)  # HDF5 datasets written
    trained: str | None = None  # why the file counts as a trained checkpoint
    remaining: list[Finding] = field(default_factory=list)  # findings of the written file
    verified: dict[str, bool] = field(default_factory=dict)  # code -> gone after the fix
    calibration: dict[str, float] = field(default_factory=dict)  # layer -> kernel factor
    probe: dict[str, Any] | None = None
    written: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path, "output": self.output, "format": self.format,
            "written": self.written, "trained": self.trained,
            "applied": [{"code": f.code, "layer": f.layer, "fix": f.fix.to_dict(),
                         "verified": self.verified.get(f.code)} for f in self.applied],
            "not_applied": [{"code": f.code, "layer": f.layer, "reason": reason,
                             "fix": f.fix.to_dict() if f.fix else None}
                            for f, reason in self.not_applied],
            "changes": list(self.changes), "redrawn": list(self.redrawn),
            "calibration": dict(self.calibration),
            "remaining": [f.to_dict() for f in self.remaining],
            "probe": self.probe,
        }


def _lint(path: str, settings: Settings):
    from gradlint.engine import lint_file

    result, analysis = lint_file(path, settings, keep_analysis=True)
    if result is None or result.error is not None or analysis is None:
        message = result.error["message"] if result is not None and result.error else \
            "not a Keras model file"
        raise FixError(f"{path}: {message}")
    return result, analysis


def _stored_configs(path: str, settings: Settings) -> tuple[str, dict, dict | None]:
    """(kind, model configuration, legacy training configuration) as the file stores them."""
    from gradlint.readers import KERAS_ARCHIVE, detect_format

    kind = detect_format(path, allow_ambiguous=settings.allow_ambiguous_format)
    if kind == KERAS_ARCHIVE:
        import zipfile

        from gradlint.readers.keras_archive import _read_json

        with zipfile.ZipFile(path) as archive:
            return kind, _read_json(archive, "config.json", settings.limits), None
    from gradlint.readers.hdf5 import open_checked
    from gradlint.readers.legacy_h5 import _attribute_json

    with open_checked(path, settings.limits, os.path.getsize(path), scan=False) as handle:
        return (kind, _attribute_json(handle, "model_config", settings.limits),
                _attribute_json(handle, "training_config", settings.limits))


def _optimizer_state(path: str, kind: str) -> str | None:
    import h5py

    from gradlint.fix.trained import optimizer_stepped
    from gradlint.readers import KERAS_ARCHIVE

    if kind == KERAS_ARCHIVE:
        import io
        import zipfile

        with zipfile.ZipFile(path) as archive:
            if "model.weights.h5" not in archive.namelist():
                return None
            info = archive.getinfo("model.weights.h5")
            if info.file_size > 1 << 30:
                return None
            with h5py.File(io.BytesIO(archive.read(info)), "r") as weights:
                return optimizer_stepped(weights)
    with h5py.File(path, "r") as handle:
        return optimizer_stepped(handle)


def choose(findings: list[Finding], select: list[str] | None, ignore: list[str]
           ) -> tuple[list[Finding], list[tuple[Finding, str]]]:
    """(findings whose fixes apply, [(finding, why not)]) among the findings with a fix."""
    from gradlint.rule_registry import codes_for

    selected = codes_for(select) if select else None
    ignored = codes_for(ignore) if ignore else set()
    from gradlint.fix.estimate import with_related

    chosen, left, seen = [], [], set()
    for finding in with_related(findings):
        if finding.code in seen:
            continue
        seen.add(finding.code)
        fix = finding.fix
        if fix is None:
            continue
        if finding.code in ignored or (selected is not None and finding.code not in selected):
            left.append((finding, "not selected"))
        elif not fix.automatic or not fix.edits:
            left.append((finding, f"no automatic fix ({fix.reason or fix.scope})"))
        elif not fix.safe and selected is None:
            left.append((finding, "changes the function the model computes: applied only "
                                  f"with --select {finding.code}"))
        else:
            chosen.append(finding)
    return chosen, left


def _optimizer_state_edits(path: str, kind: str, applied: list[Finding]
                           ) -> dict[str, tuple[float, float]]:
    """Keras 3 keeps the learning rate as an optimizer variable in ``model.weights.h5``,
    and loading the file restores it over the configuration: a learning-rate fix rewrites
    that scalar too (the float scalar under ``optimizer/vars`` whose value is the old rate).
    {dataset: (old, new)}."""
    import h5py
    import numpy as np

    edits = [edit for finding in applied if finding.fix.scope == "optimizer"
             for edit in finding.fix.edits if edit.setting == "learning_rate"]
    if not edits:
        return {}
    from gradlint.readers import KERAS_ARCHIVE

    found: dict[str, tuple[float, float]] = {}

    def scan(handle):
        group = handle.get("optimizer/vars")
        if not isinstance(group, h5py.Group):
            return
        for key in group:
            item = group[key]
            if not isinstance(item, h5py.Dataset) or item.shape != () or item.dtype.kind != "f":
                continue
            value = float(np.asarray(item[()]))
            for edit in edits:
                if isinstance(edit.old, (int, float)) and \
                        abs(value - edit.old) <= 1e-6 * max(abs(edit.old), 1e-12):
                    found[item.name] = (value, float(edit.new))

    if kind == KERAS_ARCHIVE:
        import io
        import zipfile

        with zipfile.ZipFile(path) as archive:
            if "model.weights.h5" in archive.namelist():
                with h5py.File(io.BytesIO(archive.read("model.weights.h5")), "r") as handle:
                    scan(handle)
    else:
        with h5py.File(path, "r") as handle:
            scan(handle)
    return found


def plan_redraws(graph, chosen: list[Finding], seed: int) -> dict[str, Any]:
    """HDF5 dataset path -> the kernel re-drawn from its new initializer at its own shape
    (Keras's fans), one seeded generator in the order of the edits."""
    import numpy as np

    from gradlint import initializers

    rng = np.random.default_rng(seed)
    by_path = {layer.path: layer for layer in graph.layers()}
    redraws: dict[str, Any] = {}
    for finding in chosen:
        if finding.fix.scope != "layer":
            continue
        for edit in finding.fix.edits:
            if edit.setting != "kernel_initializer":
                continue
            layer = by_path.get(edit.layer)
            if layer is None:
                raise FixError(f"layer '{edit.layer}' is not in the model graph")
            stored = [stats for stats in layer.weights if stats.role in REDRAWN_ROLES]
            if not stored and layer.weights:
                raise FixError(f"layer '{edit.layer}': its stored kernel could not be found "
                               "in the weights file")
            for stats in stored:
                if stats.dataset is None:
                    raise FixError(f"layer '{edit.layer}': its stored kernel has no dataset "
                                   "name to rewrite")
                redraws[stats.dataset] = initializers.draw(edit.new, stats.shape, rng)
    return redraws


def fix_file(path: str, output: str | None, settings: Settings | None = None, *,
             select: list[str] | None = None, ignore: list[str] = (), dry_run: bool = False,
             reinitialize_trained: bool = False, seed: int = 0, calibrate: bool = False,
             probe: bool = False, force: bool = False) -> FixResult:
    """Apply the chosen fixes of `path`'s findings and write `output` (nothing with
    `dry_run`). Raises `FixError` with a message for anything that stops it."""
    settings = dataclasses.replace(settings or Settings(), read_weights=True, probe=False)
    if not dry_run:
        if not output:
            raise FixError("name the fixed file with -o FIXED (or pass --dry-run)")
        if os.path.abspath(output) == os.path.abspath(path) or (
                os.path.exists(output) and os.path.samefile(output, path)):
            raise FixError(f"{output} is the input file: gradlint fix never writes its input; "
                           "name another file with -o")
        directory = os.path.dirname(os.path.abspath(output))
        if not os.path.isdir(directory):
            raise FixError(f"cannot write {output}: no such directory {directory}")
        expected = os.path.splitext(path)[1].lower()
        if os.path.splitext(output)[1].lower() != expected:
            raise FixError(f"{output}: the fixed file keeps the input's format, so its name "
                           f"must end in {expected}")
    lint_result, analysis = _lint(path, settings)
    if lint_result.format not in WRITABLE_FORMATS:
        raise FixError(f"{path}: gradlint fix writes .keras archives and legacy .h5 files; this "
                       f"file is {lint_result.format or 'another format'}")
    result = FixResult(path=path, output=output, format=lint_result.format)
    chosen, result.not_applied = choose(lint_result.findings, select, list(ignore))
    kind, model_config, training_config = _stored_configs(path, settings)
    model_config, training_config = copy.deepcopy(model_config), copy.deepcopy(training_config)
    applicable = []
    for finding in chosen:
        if finding.fix.estimate_after and finding.fix.estimate_after.get("resolved") is False \
                and not force:
            result.not_applied.append((finding, "the estimate after it still shows the "
                                                "finding (--force applies it anyway)"))
            continue
        applicable.append(finding)
    for finding in applicable:
        trial_model, trial_training = copy.deepcopy(model_config), copy.deepcopy(training_config)
        try:
            changes = apply_fixes(trial_model, trial_training, [finding.fix])
        except FixError as error:
            result.not_applied.append((finding, str(error)))
            continue
        model_config, training_config = trial_model, trial_training
        result.applied.append(finding)
        result.changes += [change for change in changes if change not in result.changes]
    redraws = plan_redraws(analysis.graph, result.applied, seed)
    if calibrate:
        from gradlint.fix.calibration import calibrate_file

        from gradlint.fix.calibration import calibration_edits

        result.calibration, redraws = calibrate_file(analysis, result.applied, redraws,
                                                     path, kind, seed)
        apply_fixes(model_config, training_config,
                    [calibration_edits(analysis, result.applied, result.calibration)])
        result.changes += [f"{layer}: kernel × sqrt({factor:.4g}) (calibrated: E[w^2] × "
                           f"{factor:.4g})" for layer, factor in result.calibration.items()]
    if redraws:
        result.trained = _optimizer_state(path, kind)
        if result.trained is None:
            from gradlint.fix.trained import weights_moved

            result.trained = weights_moved(analysis.graph)
        if result.trained and not reinitialize_trained:
            raise FixError(f"{path} is a trained checkpoint ({result.trained}): re-drawing "
                           "its kernels would discard training; pass --reinitialize-trained "
                           "to do it anyway, or --select only optimizer fixes")
    result.redrawn = sorted(redraws)
    state = _optimizer_state_edits(path, kind, result.applied)
    result.changes += [f"optimizer state: {name}: {old:g} → {new:g}"
                       for name, (old, new) in state.items()]
    if dry_run or not result.applied and not result.calibration:
        return result
    import numpy as np

    redraws = dict(redraws, **{name: np.asarray(new) for name, (_, new) in state.items()})
    from gradlint.fix.writer import write_archive, write_legacy
    from gradlint.readers import KERAS_ARCHIVE

    if kind == KERAS_ARCHIVE:
        write_archive(path, output, model_config, redraws)
    else:
        write_legacy(path, output, model_config, training_config, redraws)
    result.written = True
    after, _ = _lint(output, settings)
    result.remaining = after.findings
    from gradlint.fix.estimate import with_related

    remaining = {finding.code for finding in with_related(after.findings)}
    result.verified = {finding.code: finding.code not in remaining for finding in result.applied}
    if probe:
        from gradlint.fix.verify import probe_both

        result.probe = probe_both(path, output, result, settings)
        unconfirmed = result.probe["unconfirmed"]
        if unconfirmed and not force:
            # Not confirmed, not applied: the file is written again without those fixes.
            again = fix_file(path, output, settings, select=select,
                             ignore=list(ignore) + unconfirmed, dry_run=False,
                             reinitialize_trained=reinitialize_trained, seed=seed,
                             calibrate=calibrate, probe=False, force=force)
            again.not_applied += [(finding, "the probe did not confirm it (--force applies "
                                            "it anyway)")
                                  for finding in result.applied if finding.code in unconfirmed]
            again.not_applied = [(finding, reason) for finding, reason in again.not_applied
                                 if reason != "not selected" or finding.code not in unconfirmed]
            again.probe = result.probe
            if not again.written and os.path.exists(output):
                os.unlink(output)  # nothing confirmed is left to write
            return again
    return result
