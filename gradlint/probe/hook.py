"""The probe's measurement of one model: load the file (from a private copy of the bytes the
static stage checked) or take the live model, and measure it. What the measurements mean
(the probe rules, the verdicts) is the engine's measurement stage, `engine.apply_measurements`.

When the probe cannot run on a file, `measure_file` raises `ProbeError` saying why; the file
keeps its static findings and the exit status is then 2.
"""

from __future__ import annotations

import sys
from typing import Any

from gradlint.probe.environment import ProbeError
from gradlint.probe.measurements import Measurements


def probe_info(ran: bool = False, error: str | None = None,
               measurements: Measurements | None = None, seconds: float = 0.0) -> dict[str, Any]:
    """The JSON contract's per-file ``probe`` object. Besides what the contract lists:
    ``batch_statistics`` (the model normalizes by batch statistics, so it was measured at
    the settings' ``batch-size`` unless ``--probe-batch`` was given), ``backend`` (the Keras
    backend whose gradients were measured: ``tensorflow`` or ``jax``) and ``notes`` (what
    the probe could not measure, and why)."""
    info: dict[str, Any] = {"ran": ran, "error": error, "seeds": 0, "batch": 0,
                            "training_mode": True, "loss": None, "seconds": round(seconds, 3)}
    if measurements is not None:
        info.update(seeds=measurements.seeds, batch=measurements.batch,
                    batch_statistics=measurements.batch_statistics,
                    training_mode=measurements.training_mode, loss=measurements.loss or None,
                    loss_source=measurements.loss_source or None, loader=measurements.loader,
                    reference_layer=measurements.reference,
                    input_shapes=[list(s) for s in measurements.input_shapes],
                    backend=measurements.backend,
                    nonfinite=list(measurements.nonfinite), notes=list(measurements.notes))
    return info


def _constant_kernels(graph) -> set[str]:
    """Layers whose units may be identical (constant kernels): only these get the check."""
    paths = set()
    for layer in graph.layers() if graph is not None else ():
        initializer = layer.kernel_initializer
        stored = layer.weight("kernel")
        if (initializer is not None and getattr(initializer, "is_constant", False)) or \
                (stored is not None and stored.std == 0.0):
            paths.add(layer.path)
    return paths


def live_backend(model: Any) -> str:
    """The backend a live model runs on: tf-keras models and a process without Keras 3 on
    TensorFlow, a Keras 3 model on the backend this process imported Keras with."""
    if type(model).__module__.split(".")[0] == "tf_keras" or "keras" not in sys.modules:
        return "tensorflow"
    try:
        return str(sys.modules["keras"].config.backend())
    except Exception:  # an old or partial Keras: the default
        return "tensorflow"


def measure_target(target: Any, analysis, settings, backend: str = "tensorflow"
                   ) -> Measurements:
    """Load `target` (a path, or a live model) and measure it on `backend` in this process;
    a loaded model is released when the next one loads."""
    from gradlint.probe import loading
    from gradlint.probe.environment import import_keras
    from gradlint.probe.instrument import batch_statistics_layers
    from gradlint.probe.measure import measure
    from gradlint.probe.plan import macs_per_sample, plan, recurrent_steps

    verbose = bool(getattr(settings, "verbose", False))
    graph = analysis.graph if analysis is not None else None
    framework, keras = import_keras(verbose, backend)
    live = not isinstance(target, str)
    model, loader = (target, "live") if live else loading.load(
        target, graph, unsafe_load=bool(getattr(settings, "unsafe_load", False)),
        custom_objects=list(getattr(settings, "custom_objects", []) or []), verbose=verbose,
        backend=backend)
    try:
        macs = macs_per_sample(graph)
        if macs is None:
            try:
                macs = float(model.count_params())
            except Exception:  # an unbuilt model: keep the defaults
                macs = None
        # BatchNormalization in training mode measures the batch as much as the model: such
        # a model runs at the batch the settings (and the static estimate) assume.
        statistics = bool(batch_statistics_layers(model))
        seeds, batch = plan(macs, getattr(settings, "probe_seeds", None),
                            getattr(settings, "probe_batch", None), recurrent_steps(graph),
                            batch_statistics=getattr(settings, "batch_size", None)
                            if statistics else None)
        reference = None
        if graph is not None and analysis.estimate.reference is not None:
            reference = graph.nodes[analysis.estimate.reference].layer.path
        training = graph.training if graph is not None else None
        try:
            measurements = measure(framework, keras, model, graph, seeds=seeds, batch=batch,
                                   reference=reference,
                                   training_loss=training.loss if training else None,
                                   symmetry=_constant_kernels(graph))
        except ProbeError:
            raise
        except Exception as error:  # the model itself failed to run: say how
            if verbose:
                import traceback

                traceback.print_exc(file=sys.stderr)
            text = " ".join(str(error).split())
            if len(text) > 300:
                text = text[:297] + "..."
            raise ProbeError(f"the model failed to run on the probe's synthetic batch "
                             f"({type(error).__name__}: {text})") from None
        measurements.loader = loader
        measurements.batch_statistics = statistics
        measurements.backend = backend
        return measurements
    finally:
        model = None  # the next load releases it (loading.free_previous)


# Formats the static stage reads that the probe does not load (gradlint.readers).
NOT_PROBED = {"keras-json-architecture": "a model.to_json() architecture (no weights)",
              "keras-savedmodel": "a SavedModel directory"}


def measure_file(target: Any, analysis, settings, digest: str | None = None) -> Measurements:
    """Measure `target`: a path, loaded from a private copy whose bytes must hash to `digest`
    (the bytes the static stage checked), or a live model. Raises `ProbeError`."""
    from gradlint.probe.loading import snapshot

    if isinstance(target, str) and analysis.graph.format in NOT_PROBED:
        raise ProbeError(f"the probe loads .keras and .h5 files; "
                         f"{NOT_PROBED[analysis.graph.format]} is not loaded")
    backend = getattr(settings, "probe_backend", None) or "tensorflow"
    if not isinstance(target, str):
        running = live_backend(target)
        measurements = measure_target(target, analysis, settings, running)
        if running != backend:
            measurements.notes.append(
                f"the live model was measured on {running}, the backend it runs on "
                f"(probe-backend {backend} applies to model files)")
        return measurements
    refuse_keras1(analysis.graph)
    if backend != "tensorflow":
        from gradlint.probe.loading import refuse_unsafe

        # Both before a process starts for nothing (the child checks the Lambda layers too).
        refuse_keras2(analysis.graph, backend)
        refuse_unsafe(analysis.graph, bool(getattr(settings, "unsafe_load", False)))
    with snapshot(target, digest, analysis.graph.format) as copy:
        if backend == "tensorflow":
            return measure_target(copy, analysis, settings)
        from gradlint.probe.worker import measure_in_worker

        return measure_in_worker(copy, analysis, settings, backend)


def refuse_keras1(graph) -> None:
    """A file Keras 1 wrote: neither Keras 3 nor tf-keras reads its configuration (`init`,
    `output_dim`, `border_mode`), so there is nothing to load; the static checks stand."""
    version = str(getattr(graph, "keras_version", None) or "")
    if version.split(".", 1)[0] == "1":
        raise ProbeError(f"the file was written by Keras {version}, whose models neither "
                         "Keras 3 nor tf-keras loads, so the probe cannot measure it (the "
                         "static checks read it all the same)")


def refuse_keras2(graph, backend: str) -> None:
    """A file Keras 2 (tf-keras) wrote is measured on TensorFlow only: tf-keras is
    TensorFlow's, and Keras 3 on another backend may build it otherwise."""
    version = str(getattr(graph, "keras_version", None) or "")
    major = version.split(".", 1)[0]
    if major.isdigit() and int(major) < 3:
        raise ProbeError(f"the file was written by Keras {version} (tf-keras), whose models "
                         f"the probe measures only on TensorFlow, not on {backend}: use "
                         "--probe-backend tensorflow for this file")
