"""`GradientCheck`: gradlint during `model.fit`, on the real batches, with the real loss and
optimizer (Keras 3, TensorFlow backend).

    from gradlint.keras import GradientCheck

    check = GradientCheck(log_dir="logs/gradients", report="gradients.html")
    model.fit(x, y, epochs=5, callbacks=[check])
    for finding in check.findings:
        print(finding.code, finding.severity, finding.layer, finding.message)

At train begin the live model gets gradlint's static analysis (`static=False` turns it off).
Then the first `first_steps` steps and every `every`-th step after them are checked: the step
runs an instrumented copy of the model's own `train_step`, which hands back through its logs
the kernel gradients exactly as the optimizer received them, each kernel's norm before and
after the update, and the saturated and dead fractions of the activations on that batch. The
other steps run the model's own, untouched train function, so a check costs nothing on them.
The checked steps go through the engine's measurement stage (`engine.apply_measurements`):
the probe's rules (GL901-GL904) judge them as they judge the probe's measurements, the
training rules (GL951-GL955) judge the history, and every static finding gets its verdict.

How the numbers stay exact without disturbing training: the instrumented step is the model's
own `train_step`, traced with three instance-level wrappers that only look: the optimizer's
`scale_loss` (the batch's loss) and `apply_gradients` (the gradients it gets, the kernels
read before and after it), and the activation functions of sigmoid/tanh and ReLU layers
(their input and output). There is no second forward pass, no change to what the optimizer
sees, and the wrappers are removed once the step is traced. The rebuilt train function
(`make_train_function(force=True)`) is used only on the checked steps; at train end the
model's own train function and `train_step` are back in place.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import sys
from typing import Any, Callable

import keras

from gradlint.findings import SEVERITY_RANK, Finding
from gradlint.probe.instrument import (DYING, HARD_SATURATING, SATURATION_BOUND,
                                       SMOOTH_SATURATING, activation_name, is_recurrent,
                                       kernel_variables, leaf_layers, patch, undo_patches)
from gradlint.training import StepRecord, TrainingHistory, measurements_from_history

__all__ = ["GradientCheck"]

STATS_KEY = "_gradlint"  # the train step's extra log entry, taken out before fit sees it


class GradientCheck(keras.callbacks.Callback):
    """Check gradient flow while `model.fit` trains.

    - `first_steps` (30), `every` (100): which steps are checked, counted from 1 over the
      whole fit.
    - `window` (5): how many of the latest checked steps each judgement takes medians over.
    - `static` (True): lint the live model at train begin and print its findings.
    - `select`, `ignore`, `rules` (per-rule options, as in `[tool.gradlint.rules]`),
      `settings` (a `gradlint.config.Settings`): which rules, with which options.
    - `log_dir`: write per-layer gradient-norm, update-ratio, saturation and dead-unit
      scalars and gradient histograms there (TensorBoard event files, under `gradlint/`).
    - `stop_on_error` (False): stop training when a training-time check finds an error.
    - `report`: a path ending in `.html` or `.json`, written at train end, with the
      per-layer gradient-norm trajectories.
    - `verbose` (True): print each finding, once, as it is found; `print_fn` prints it.

    After `fit`: `findings` (the `Finding` objects a `Report` holds, static ones with their
    training verdict, each training-time one once, with the step it was found at in
    `evidence["step"]`), `history` (a `gradlint.training.TrainingHistory`) and `result`
    (the latest `FileResult`).
    """

    def __init__(self, *, first_steps: int = 30, every: int = 100, window: int = 5,
                 static: bool = True, select: list[str] | None = None,
                 ignore: list[str] | None = None, rules: dict[str, dict] | None = None,
                 settings: Any = None, log_dir: str | os.PathLike | None = None,
                 histograms: bool = True, stop_on_error: bool = False,
                 report: str | os.PathLike | None = None, verbose: bool = True,
                 print_fn: Callable[[str], None] | None = None):
        super().__init__()
        if keras.backend.backend() != "tensorflow":
            raise RuntimeError(f"GradientCheck needs Keras's TensorFlow backend; this Keras runs "
                               f"on {keras.backend.backend()} (set KERAS_BACKEND=tensorflow)")
        if first_steps < 0 or every < 1 or window < 1:
            raise ValueError("first_steps must be >= 0, every and window >= 1")
        if report is not None and os.path.splitext(os.fspath(report))[1].lower() not in (
                ".html", ".htm", ".json"):
            raise ValueError(f"{report}: a report's name must end in .html or .json")
        self.first_steps, self.every, self.window = int(first_steps), int(every), int(window)
        self.static = static
        self.settings = _settings(settings, select, ignore, rules)
        self.log_dir = os.fspath(log_dir) if log_dir is not None else None
        self.histograms = histograms
        self.stop_on_error = stop_on_error
        self.report = os.fspath(report) if report is not None else None
        self.verbose = verbose
        self.print_fn = print_fn or (lambda line: print(line, file=sys.stderr))
        self.findings: list[Finding] = []
        self.history: TrainingHistory | None = None
        self.result = None
        self._reset()

    def _reset(self) -> None:
        self._step = 0
        self._epoch = 0
        self._seen: dict[tuple, int] = {}  # (code, layer) -> the highest severity said
        self._training_findings: list[Finding] = []
        self._static_findings: list[Finding] = []
        self._confirmed: set[int] = set()
        self._recording: dict[str, Any] | None = None
        self._patches: list[tuple[Any, str, Any, bool]] = []
        self._plain = None
        self._checked = None
        self._writer = None

    # -- train begin: static analysis, the instrumented train function -----------------
    def on_train_begin(self, logs=None):
        from gradlint.analysis import analyse
        from gradlint.engine import lint_graph
        from gradlint.readers.live_model import read_live_model
        from gradlint.report import FileResult

        self._reset()
        model = self.model
        self.findings = []
        self.name = f"<{model.name}>"
        graph = read_live_model(model, read_weights=True)
        if self.static:
            result, self.analysis = lint_graph(graph, self.name, self.settings, probe=False)
            self._static_findings = list(result.findings)
            for finding in self._static_findings:
                self._say(finding)
        else:
            self.analysis = analyse(graph, self.settings.estimate_mode,
                                    self.settings.batch_size)
            from gradlint.engine import layer_entries, model_summary

            result = FileResult(path=self.name, format=graph.format,
                                model=model_summary(graph), layers=layer_entries(self.analysis))
        self._base = result
        self.result = copy.deepcopy(result)
        self.findings = list(self._static_findings)
        self._watch(model)
        self._plain = model.train_function
        self._install_checked_function(model)
        if self.log_dir is not None:
            import tensorflow as tf

            self._writer = tf.summary.create_file_writer(os.path.join(self.log_dir, "gradlint"))

    def _watch(self, model) -> None:
        """Which layers are measured, and the activation wrappers that measure them."""
        self._layers: list[tuple[str, list]] = []  # weighted layers: path, kernel variables
        history = TrainingHistory()
        seen: set[int] = set()
        for path, layer in leaf_layers(model):
            history.classes[path] = type(layer).__name__
            variables = [v for v in kernel_variables(layer) if id(v) not in seen
                         and getattr(v, "trainable", True)]
            seen.update(id(v) for v in variables)
            if variables:
                self._layers.append((path, variables))
                history.order.append(path)
                if type(layer).__name__ == "Embedding":
                    history.embeddings.add(path)
            # A recurrent layer's activations run inside its loop over time, whose tensors
            # cannot leave it; its gradients are measured all the same.
            if is_recurrent(layer):
                continue
            function = getattr(layer, "activation", None)
            name = activation_name(function) if callable(function) else None
            if name in SMOOTH_SATURATING or name in HARD_SATURATING or name in DYING:
                history.activations[path] = name
                self._wrap_activation(path, layer, function, name)
        optimizer = model.optimizer
        history.optimizer = type(optimizer).__name__ if optimizer is not None else None
        history.learning_rate = _learning_rate(optimizer)
        history.steps_per_epoch = (self.params or {}).get("steps")
        history.window = self.window
        self.history = history

    def _set(self, owner, name, value) -> None:
        patch(self._patches, owner, name, value)

    def _undo(self, patches) -> None:
        undo_patches(patches)

    def _wrap_activation(self, path, layer, function, name) -> None:
        import tensorflow as tf

        check = self

        def activation(x, *args, **kwargs):
            y = function(x, *args, **kwargs)
            recording = check._recording
            # Only while the checked step is traced, once per layer: the plain train
            # function, evaluation and prediction trace the activation untouched.
            if recording is not None and path not in recording:
                recording[path] = _activation_stats(tf, name, tf.stop_gradient(y))
            return y

        activation.__name__ = getattr(function, "__name__", name)
        self._set(layer, "activation", activation)

    def _install_checked_function(self, model) -> None:
        own_step = model.train_step
        check = self

        def train_step(data):
            return check._instrumented_step(own_step, data)

        patches = []
        had = "train_step" in vars(model)
        patches.append((model, "train_step", vars(model).get("train_step"), had))
        object.__setattr__(model, "train_step", train_step)
        try:
            model.make_train_function(force=True)
        finally:
            self._undo(patches)
        instrumented = model.train_function
        model.train_function = self._plain

        def checked_function(iterator):
            logs = instrumented(iterator)
            stats = logs.pop(STATS_KEY, None) if isinstance(logs, dict) else None
            if stats is not None:
                check._record(stats)
            return logs

        self._checked = checked_function

    def _instrumented_step(self, own_step, data):
        """The model's own train step, traced with wrappers that only look (see the module's
        docstring); its logs gain the measurements under `STATS_KEY`."""
        import tensorflow as tf

        model = self.model
        optimizer = model.optimizer
        captured: dict[str, Any] = {}
        kernels = {id(v): path for path, variables in self._layers for v in variables}
        original_scale = optimizer.scale_loss
        original_apply = optimizer.apply_gradients

        def scale_loss(loss):
            captured["loss"] = loss
            return original_scale(loss)

        def apply_gradients(grads_and_vars, *args, **kwargs):
            pairs = list(grads_and_vars)
            captured["gradients"] = {id(v): g for g, v in pairs if id(v) in kernels}
            captured["before"] = {id(v): tf.identity(tf.convert_to_tensor(v)) for _, v in pairs
                                  if id(v) in kernels}
            result = original_apply(pairs, *args, **kwargs)
            # Automatic control dependencies order these reads after the update's writes.
            captured["after"] = {id(v): tf.convert_to_tensor(v) for _, v in pairs
                                 if id(v) in kernels}
            return result

        patches = self._patches
        self._patches = []
        self._set(optimizer, "scale_loss", scale_loss)
        self._set(optimizer, "apply_gradients", apply_gradients)
        mine, self._patches = self._patches, patches
        self._recording = {}
        try:
            logs = own_step(data)
            recorded = self._recording
        finally:
            self._recording = None
            self._undo(mine)
        gradients = captured.get("gradients", {})
        before, after = captured.get("before", {}), captured.get("after", {})
        grad, weight, update, histograms = [], [], [], {}
        for path, variables in self._layers:
            squares, weight_squares, update_squares = [], [], []
            for variable in variables:
                key = id(variable)
                gradient = gradients.get(key)
                if gradient is None or key not in before:
                    continue
                squares.append(_sum_squares(tf, gradient))
                weight_squares.append(tf.reduce_sum(tf.square(tf.cast(before[key], tf.float32))))
                update_squares.append(tf.reduce_sum(tf.square(
                    tf.cast(after[key], tf.float32) - tf.cast(before[key], tf.float32))))
                if self.histograms and self.log_dir is not None and path not in histograms:
                    histograms[path] = tf.cast(tf.convert_to_tensor(gradient), tf.float32)
            nothing = tf.constant(math.nan, tf.float32)
            grad.append(tf.sqrt(tf.add_n(squares)) if squares else nothing)
            weight.append(tf.sqrt(tf.add_n(weight_squares)) if weight_squares else nothing)
            update.append(tf.sqrt(tf.add_n(update_squares)) if update_squares else nothing)
        stats = {"gradient": tf.stack(grad) if grad else tf.zeros((0,)),
                 "weight": tf.stack(weight) if weight else tf.zeros((0,)),
                 "update": tf.stack(update) if update else tf.zeros((0,)),
                 "loss": tf.cast(captured["loss"], tf.float32) if "loss" in captured
                 else tf.constant(math.nan, tf.float32),
                 "batch": tf.shape(tf.nest.flatten(data)[0])[0],
                 "activations": recorded, "histograms": histograms}
        logs = dict(logs)
        logs[STATS_KEY] = stats
        return logs

    # -- every step: which train function runs ----------------------------------------------
    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        self._step += 1
        due = self._step <= self.first_steps or self._step % self.every == 0
        self.model.train_function = self._checked if due and self._checked else self._plain

    # -- a checked step: record, judge, report -------------------------------------------
    def _record(self, stats) -> None:
        import numpy as np

        def value(tensor) -> float:
            return float(np.asarray(tensor))

        gradient = np.asarray(stats["gradient"], dtype=np.float64)
        weight = np.asarray(stats["weight"], dtype=np.float64)
        update = np.asarray(stats["update"], dtype=np.float64)
        record = StepRecord(step=self._step, epoch=self._epoch, loss=value(stats["loss"]),
                            batch=int(np.asarray(stats["batch"])))
        for index, path in enumerate(self.history.order):
            if not math.isnan(gradient[index]) or not math.isnan(weight[index]):
                record.gradient_norms[path] = float(gradient[index])
                record.weight_norms[path] = float(weight[index])
                record.update_norms[path] = float(update[index])
        for path, measured in (stats.get("activations") or {}).items():
            if "saturated" in measured:
                record.saturated[path] = value(measured["saturated"])
            if "dead" in measured:
                record.dead[path] = value(measured["dead"])
        self.history.records.append(record)
        if self._writer is not None:
            self._write_summaries(record, stats.get("histograms") or {})
        self._judge()

    def _judge(self) -> None:
        from gradlint.engine import apply_measurements

        result = copy.deepcopy(self._base)
        measurements = measurements_from_history(self.history, self.window,
                                                 self._reference())
        apply_measurements(result, self.analysis, measurements, self.settings)
        # The static findings come first and stay (only probe findings are ever folded).
        statics = result.findings[:len(self._static_findings)]
        stop = False
        for index, finding in enumerate(statics):
            if (finding.probe or {}).get("verdict") == "confirmed" and \
                    index not in self._confirmed:
                self._confirmed.add(index)
                self._say(finding, suffix=f" (confirmed in training at step {self._step})")
        for finding in result.findings[len(statics):]:
            # Said once; again only if it gets worse (a warning that turns into an error).
            key, rank = (finding.code, finding.layer), SEVERITY_RANK[finding.severity]
            if self._seen.get(key, 0) >= rank:
                continue
            self._seen[key] = rank
            finding.evidence = dict(finding.evidence, step=self._step, epoch=self._epoch + 1)
            self._training_findings.append(finding)
            self._say(finding, suffix=f" (step {self._step})")
            if finding.severity == "error" and self.stop_on_error:
                stop = True
        self.findings = statics + list(self._training_findings)
        result.findings = list(self.findings)
        result.extra = dict(result.extra, training=self.history.to_dict())
        self.result = result
        if stop:
            self.model.stop_training = True

    def _reference(self) -> str | None:
        analysis = self.analysis
        if analysis is not None and analysis.estimate.reference is not None:
            return analysis.graph.nodes[analysis.estimate.reference].layer.path
        return None

    def _say(self, finding: Finding, suffix: str = "") -> None:
        if not self.verbose:
            return
        from gradlint.renderers.text import finding_line

        self.print_fn("gradlint: " + finding_line(self.name, finding) + suffix)

    def _write_summaries(self, record: StepRecord, histograms: dict) -> None:
        import tensorflow as tf

        with self._writer.as_default(step=record.step):
            if record.loss is not None:
                tf.summary.scalar("loss", record.loss)
            for path, norm in record.gradient_norms.items():
                tf.summary.scalar(f"gradient_norm/{path}", norm)
                ratio = record.update_ratio(path)
                if ratio is not None:
                    tf.summary.scalar(f"update_ratio/{path}", ratio)
            for path, fraction in record.saturated.items():
                tf.summary.scalar(f"saturated_fraction/{path}", fraction)
            for path, fraction in record.dead.items():
                tf.summary.scalar(f"dead_fraction/{path}", fraction)
            for path, gradient in histograms.items():
                tf.summary.histogram(f"gradient/{path}", gradient)

    # -- epoch and train end ---------------------------------------------------------------
    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            # Numbers only, so that the progress bar, History and CSVLogger take them.
            logs["gradlint_findings"] = float(len(self.findings))
            logs["gradlint_errors"] = float(sum(f.severity == "error" for f in self.findings))

    def on_train_end(self, logs=None):
        model = self.model
        if self._plain is not None:
            model.train_function = self._plain
        self._undo(self._patches)
        self._patches = []
        if self._writer is not None:
            self._writer.flush()
            self._writer.close()
            self._writer = None
        if logs is not None:
            logs["gradlint_findings"] = float(len(self.findings))
        if self.report is not None and self.result is not None:
            write_report(self.result, self.report)


def _settings(settings, select, ignore, rules):
    from gradlint.config import Settings

    settings = settings or Settings()
    changes: dict[str, Any] = {}
    if select is not None:
        changes["select"] = list(select)
    if ignore is not None:
        changes["ignore"] = list(ignore)
    if rules:
        from gradlint.rule_registry import find_rule

        merged = {code: dict(options) for code, options in settings.rules.items()}
        for selector, options in rules.items():
            rule = find_rule(selector)
            if rule is None:
                raise ValueError(f"rules: '{selector}' names no rule")
            unknown = set(options) - set(rule.options) - {"severity"}
            if unknown:
                raise ValueError(f"rules.{rule.code}: unknown option(s) "
                                 f"{', '.join(sorted(unknown))}")
            merged.setdefault(rule.code, {}).update(options)
        changes["rules"] = merged
    return dataclasses.replace(settings, **changes) if changes else settings


def _learning_rate(optimizer) -> float | None:
    try:
        return float(keras.ops.convert_to_numpy(optimizer.learning_rate))
    except Exception:  # a schedule or a missing optimizer: nothing simple to report
        return None


def _sum_squares(tf, gradient):
    if isinstance(gradient, tf.IndexedSlices):
        # Rows looked up several times in a batch add up before they are squared.
        unique, positions = tf.unique(gradient.indices)
        gradient = tf.math.unsorted_segment_sum(gradient.values, positions, tf.size(unique))
    return tf.reduce_sum(tf.square(tf.cast(gradient, tf.float32)))


# |z| > SATURATION_BOUND read from the activation's output: a second reader of the
# pre-activation would stop TensorFlow's graph optimizer from fusing MatMul, bias and
# activation into one kernel, whose float results differ in the last bits, and the checked
# steps would then no longer train exactly as the unchecked ones.
_SOFTSIGN = SATURATION_BOUND / (1 + SATURATION_BOUND)
SATURATED_OUTPUT = {
    "sigmoid": (1 / (1 + math.exp(SATURATION_BOUND)), 1 / (1 + math.exp(-SATURATION_BOUND))),
    "tanh": (-math.tanh(SATURATION_BOUND), math.tanh(SATURATION_BOUND)),
    "softsign": (-_SOFTSIGN, _SOFTSIGN),
}


def _activation_stats(tf, name, post) -> dict:
    y = tf.cast(post, tf.float32)
    if name in SATURATED_OUTPUT or name in HARD_SATURATING:
        low, high = SATURATED_OUTPUT.get(name) or HARD_SATURATING[name]
        strict = name in SATURATED_OUTPUT
        outside = ((y < low) | (y > high)) if strict else ((y <= low) | (y >= high))
        return {"saturated": tf.reduce_mean(tf.cast(outside, tf.float32))}
    rank = len(y.shape)
    if rank == 0:
        return {}
    # A unit (a channel, for convolutions) is dead when it is zero for every sample and
    # position of the batch, as the probe counts it.
    alive = tf.reduce_any(tf.not_equal(y, 0.0), axis=list(range(rank - 1))) if rank > 1 \
        else tf.not_equal(y, 0.0)
    return {"dead": 1.0 - tf.reduce_mean(tf.cast(alive, tf.float32))}


def write_report(result, path: str) -> None:
    """The HTML or JSON report of one fit: gradlint's own report of the model, and, for HTML,
    a chart of each layer's kernel-gradient norm over the checked steps."""
    from gradlint.report import Report

    report = Report(files=[result])
    if path.lower().endswith(".json"):
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(report.to_json())
        return
    from gradlint.renderers import render
    from gradlint.training import trajectory_section

    page = render("html", report)
    section = trajectory_section(result.extra.get("training") or {})
    marker = page.rfind("</main>")
    if marker < 0:
        marker = page.rfind("</body>")
    page = page[:marker] + section + page[marker:] if marker >= 0 else page + section
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(page)
