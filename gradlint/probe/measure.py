"""The measurement: a few forward and backward passes on synthetic batches.

For each seed the probe draws a batch and targets, runs the model in training mode
(BatchNormalization normalizes with the batch's statistics, as during training: measured
here, ResNet50's first/last kernel-gradient ratio is 0.09 in inference mode and 33 in
training mode), and takes, in one backward pass of the backend's own gradient machinery
(`backends`: `tf.GradientTape` on TensorFlow, `jax.value_and_grad` over `stateless_call` on
JAX), the loss gradient with respect to every layer's kernel and every recurrent layer's
input sequence; the norms are then taken in NumPy, the same for every backend. Each number is
then the median over the seeds. The model's non-trainable state (BatchNormalization's moving
statistics, random-number generators) is put back afterwards, so that probing a live model
leaves it as it was.

The batch follows the model: a dict of inputs for a model built on one (keras-hub backbones),
token ids for every input that reaches an Embedding, sequences no longer than the model
accepts, and only the input shapes the file declares: a loaded model that takes another
shape is not measured. A layer call's forward scale is the RMS of its output, sqrt(E[x^2]),
the quantity the static estimate's forward scale describes.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from gradlint.probe.batch import (DEFAULT_LENGTH, DEFAULT_VOCABULARY, InputSpec,
                                  concrete_shape, losses_for_outputs, make_input, make_loss,
                                  make_target)
from gradlint.probe.backends import SparseRows, for_module, to_numpy
from gradlint.probe.environment import ProbeError
from gradlint.probe.instrument import (GATED_CELLS, Instrument, activation_name, cell_class,
                                       kernel_variables, leaf_layers)
from gradlint.probe.measurements import (CallMeasurement, KernelMeasurement, Measurements,
                                         RecurrentMeasurement, median)

IDENTICAL_TOLERANCE = 1e-6


def _spec(tensor, name: str, key: str | None = None) -> InputSpec:
    shape = tuple(None if d is None else int(d) for d in list(tensor.shape))
    dtype = getattr(tensor.dtype, "name", None) or str(tensor.dtype)
    return InputSpec(str(name).split(":")[0], shape, str(dtype), key)


def _input_structure(model: Any) -> dict[str, Any] | None:
    """The model's inputs by key when it takes a dict (keras-hub backbones take
    ``{"token_ids": ..., "padding_mask": ...}``), None otherwise."""
    try:
        structure = model.input
    except (AttributeError, ValueError, TypeError):
        return None
    if not isinstance(structure, dict) or not structure or \
            not all(hasattr(tensor, "shape") and hasattr(tensor, "dtype")
                    for tensor in structure.values()):
        return None
    return structure


def input_specs(model: Any, graph: Any) -> list[InputSpec]:
    """The model's inputs: name, shape (None where unknown), dtype, and the key of each when
    the model takes a dict."""
    structure = _input_structure(model)
    if structure is not None:
        # Named as their InputLayer (what the model graph calls them), fed by their key.
        return [_spec(tensor, getattr(tensor, "name", None) or str(key), str(key))
                for key, tensor in structure.items()]
    specs = []
    inputs = None
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):
        inputs = None
    if inputs:
        return [_spec(tensor, getattr(tensor, "name", None) or f"input_{index}")
                for index, tensor in enumerate(inputs)]
    shapes = getattr(model, "_build_shapes_dict", None) or {}
    if not shapes and getattr(model, "_build_input_shape", None) is not None:
        shapes = {"input_shape": model._build_input_shape}
    for name, shape in shapes.items():
        if hasattr(shape, "as_list"):
            shape = shape.as_list()
        if isinstance(shape, (list, tuple)) and all(d is None or isinstance(d, int) for d in shape):
            specs.append(InputSpec(name, tuple(shape), "float32"))
    if specs:
        return specs
    if graph is not None:
        for node_id in graph.inputs:
            config = graph.nodes[node_id].layer.config
            shape = config.get("batch_shape") or config.get("batch_input_shape")
            if isinstance(shape, (list, tuple)):
                specs.append(InputSpec(graph.nodes[node_id].path, tuple(shape),
                                       str(config.get("dtype") or "float32")))
    if not specs:
        raise ProbeError("the probe cannot tell the shape of the model's inputs (the model was "
                         "saved without a known input shape); build it on an Input before "
                         "saving")
    return specs


def _input_nodes(specs: list[InputSpec], graph: Any) -> list[int | None]:
    """The graph's input node for each of the model's inputs: by name when every name
    matches, by position when only the count does."""
    if graph is None or not graph.graph_stored or not graph.inputs:
        return [None] * len(specs)
    by_name = {graph.nodes[node_id].path: node_id for node_id in graph.inputs}
    if all(spec.name in by_name for spec in specs):
        return [by_name[spec.name] for spec in specs]
    if len(graph.inputs) == len(specs):
        return list(graph.inputs)
    return [None] * len(specs)


def _declared_shape(graph: Any, node_id: int | None) -> tuple | None:
    if node_id is None:
        return None
    shape = graph.nodes[node_id].output_shape
    if not isinstance(shape, tuple) or not all(d is None or isinstance(d, int) for d in shape):
        return None
    return shape


def undeclared_input_shape(specs: list[InputSpec], graph: Any) -> str | None:
    """How the loaded model's inputs differ from the shapes the file declares (rank, or a
    size the file fixes), or None when they agree or the file declares none."""
    for spec, node_id in zip(specs, _input_nodes(specs, graph)):
        declared = _declared_shape(graph, node_id)
        if declared is None:
            continue
        differs = len(declared) != len(spec.shape) or any(
            want is not None and have is not None and want != have
            for want, have in zip(declared[1:], spec.shape[1:]))
        if differs:
            return (f"input '{spec.name}' of shape {_shape_text(spec.shape)} where the file "
                    f"declares {_shape_text(declared)}")
    return None


def _shape_text(shape: tuple) -> str:
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + \
        ("," if len(shape) == 1 else "") + ")"


def _with_declared_sizes(specs: list[InputSpec], graph: Any) -> list[InputSpec]:
    """The model's input specs with the sizes the file declares where the model left them
    open (after `undeclared_input_shape` found no disagreement)."""
    result = []
    for spec, node_id in zip(specs, _input_nodes(specs, graph)):
        declared = _declared_shape(graph, node_id)
        if declared is not None and len(declared) == len(spec.shape):
            shape = (spec.shape[0],) + tuple(have if have is not None else want for want, have
                                             in zip(declared[1:], spec.shape[1:]))
            spec = InputSpec(spec.name, shape, spec.dtype, spec.key)
        result.append(spec)
    return result


def _graph_hints(graph: Any, specs: list[InputSpec]
                 ) -> tuple[list[tuple[int, int] | None], int | None]:
    """Per input, the token range valid for every Embedding it reaches (None when it reaches
    none); and a configured sequence length."""
    vocabularies: list[tuple[int, int] | None] = [None] * len(specs)
    length = None
    if graph is None:
        return vocabularies, length
    consumers = graph.consumers()
    for position, node_id in enumerate(_input_nodes(specs, graph)):
        if node_id is None:
            continue
        frontier = [node_id]
        seen = set()
        while frontier:
            current = frontier.pop()
            if current in seen:
                continue
            seen.add(current)
            for consumer in consumers[current]:
                layer = graph.nodes[consumer].layer
                if layer.family.takes_indices:
                    size = layer.config.get("input_dim")
                    size = size if isinstance(size, int) and size > 0 else DEFAULT_VOCABULARY
                    low = 1 if layer.config.get("mask_zero") and size > 1 else 0
                    vocabularies[position] = _narrowed(vocabularies[position], low, size)
                    configured = layer.config.get("input_length")
                    if isinstance(configured, int) and configured > 0:
                        length = configured
                elif layer.family.reshapes_only or layer.family.wraps:
                    frontier.append(consumer)
    return vocabularies, length


def _embedding_inputs(model: Any, count: int) -> list[tuple[int, int] | None]:
    """Per model input, the token range of the Embeddings that read it directly, from the
    loaded model's own graph: for models whose graph the file does not store (keras-hub
    backbones), where `_graph_hints` has nothing to go by."""
    structure = _input_structure(model)
    try:
        tensors = list(structure.values()) if structure is not None else list(model.inputs)
    except (AttributeError, ValueError, TypeError):
        return [None] * count
    if len(tensors) != count:
        return [None] * count
    position_of = {id(tensor): position for position, tensor in enumerate(tensors)}
    ranges: list[tuple[int, int] | None] = [None] * count
    for _, layer in leaf_layers(model):
        if not any(base.__name__ == "Embedding" for base in type(layer).__mro__):
            continue
        size = getattr(layer, "input_dim", None)
        if not isinstance(size, int) or size <= 0:
            continue
        low = 1 if getattr(layer, "mask_zero", False) is True and size > 1 else 0
        nodes = getattr(layer, "_inbound_nodes", None)
        for node in nodes if isinstance(nodes, (list, tuple)) else ():
            # tf-keras keeps a single input as the tensor itself, whose truth value raises.
            tensors = getattr(node, "input_tensors", None)
            if not isinstance(tensors, (list, tuple)):
                tensors = [] if tensors is None else [tensors]
            for tensor in tensors:
                position = position_of.get(id(tensor))
                if position is None:
                    continue
                ranges[position] = _narrowed(ranges[position], low, size)
    return ranges


def _narrowed(known: tuple[int, int] | None, low: int, high: int) -> tuple[int, int]:
    """Token ids valid in one more Embedding: an input read by several must fit them all."""
    if known is None:
        return low, high
    low = max(known[0], low)
    return low, max(min(known[1], high), low + 1)


def _longest_sequence(model: Any) -> int | None:
    """The longest sequence the model accepts where it says so, when that is shorter than the
    default length: a position embedding's `sequence_length`, a keras-hub backbone's
    `max_sequence_length` (read as stored values; nothing is called)."""
    bounds = []
    for owner in [model] + [layer for _, layer in leaf_layers(model)]:
        for name in ("max_sequence_length", "sequence_length"):
            value = getattr(owner, name, None)
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                bounds.append(value)
    shortest = min(bounds, default=None)
    return shortest if shortest is not None and shortest < DEFAULT_LENGTH else None


def output_activations(model: Any, graph: Any, count: int) -> list[str | None]:
    """The activation at each output, from the graph where it has one."""
    names: list[str | None] = []
    if graph is not None and graph.graph_stored and len(graph.outputs) == count:
        for node_id in graph.outputs:
            current = graph.nodes[node_id]
            name = None
            while True:
                activation = current.layer.activation
                if activation is not None and activation.name != "linear":
                    name = activation.name
                    break
                if current.layer.family.reshapes_only and len(current.inputs) == 1:
                    current = graph.nodes[current.inputs[0]]
                    continue
                break
            names.append(name)
        return names
    layers = []
    for name in getattr(model, "output_names", None) or []:
        try:
            layers.append(model.get_layer(name))
        except (ValueError, AttributeError):
            layers.append(None)
    if len(layers) != count:
        last = (getattr(model, "layers", None) or [None])[-1]
        layers = [last] * count
    for layer in layers:
        names.append(activation_name(getattr(layer, "activation", None)) if layer else None)
    return names


def _activations_by_path(graph: Any) -> dict[str, str | None]:
    if graph is None:
        return {}
    result = {}
    for layer in graph.layers():
        if layer.family.applies_activation and layer.activation is not None:
            result[layer.path] = layer.activation.name
    return result


def _norm_squared(gradient) -> float | None:
    if gradient is None:
        return None
    values = gradient.values if isinstance(gradient, SparseRows) else gradient
    values = np.asarray(values, dtype=np.float64).ravel()
    return float(np.dot(values, values))


def _units_identical(gradient) -> bool | None:
    if gradient is None or isinstance(gradient, SparseRows) or gradient.ndim < 2 \
            or gradient.shape[-1] < 2:
        return None
    values = np.asarray(gradient, dtype=np.float32).reshape(-1, gradient.shape[-1])
    spread = float(np.max(np.abs(values - values[:, :1])))
    scale = float(np.max(np.abs(values)))
    if not math.isfinite(spread) or scale == 0.0:
        return None
    return spread <= IDENTICAL_TOLERANCE * scale


def _step_norms(gradient) -> list[float]:
    values = np.asarray(gradient, dtype=np.float64)
    axes = (0,) + tuple(range(2, values.ndim))
    return [float(v) for v in np.sqrt(np.sum(np.square(values), axis=axes))]


def _weight_norm(variables) -> float:
    total = 0.0
    for variable in variables:
        values = np.asarray(to_numpy(variable), dtype=np.float64).ravel()
        total += float(np.dot(values, values))
    return math.sqrt(total)


def measure(tf, keras, model: Any, graph: Any = None, *, seeds: int = 3, batch: int = 4,
            reference: str | None = None, training_loss: Any = None,
            symmetry: set[str] | None = None) -> Measurements:
    """Measure gradients of `model` over `seeds` synthetic batches of `batch` samples.

    `tf` is the framework `environment.import_keras` returned (TensorFlow, or JAX), which
    picks the backend (`backends.for_module`). `reference` is the path of the layer whose
    kernel gradient the ratios divide by (the static estimate's reference); by default the
    last weighted layer. `symmetry` names the layers whose units are checked for identical
    gradients (every layer when None).
    """
    specs = input_specs(model, graph)
    problem = undeclared_input_shape(specs, graph)
    if problem is not None:
        raise ProbeError(f"the loaded model takes {problem}, so the probe did not run: it "
                         "measures only the shapes the file declares")
    specs = _with_declared_sizes(specs, graph)
    vocabularies, length = _graph_hints(graph, specs)
    for position, vocabulary in enumerate(_embedding_inputs(model, len(specs))):
        if vocabularies[position] is None:
            vocabularies[position] = vocabulary
    if length is None:
        length = _longest_sequence(model)
    backend = for_module(tf, keras)
    instrument = Instrument(backend, model, _activations_by_path(graph),
                            frozenset(layer.path for layer in graph.layers()) if graph else
                            frozenset())
    kernels = []
    seen_variables: set[int] = set()
    for path, layer in instrument.layers:
        variables = [v for v in kernel_variables(layer) if id(v) not in seen_variables]
        seen_variables.update(id(v) for v in variables)
        if variables:
            kernels.append((path, layer, variables))
            instrument.weighted.add(path)
    flat = [v for _, _, variables in kernels for v in variables]
    weight_norms = {path: _weight_norm(variables) for path, _, variables in kernels}
    state = [(v, to_numpy(v)) for v in getattr(model, "non_trainable_variables", [])]
    per_seed_kernels: dict[str, list[float | None]] = {path: [] for path, _, _ in kernels}
    identical: dict[str, list[bool | None]] = {path: [] for path, _, _ in kernels}
    per_seed_calls: list[dict[str, dict[str, Any]]] = []
    per_seed_steps: dict[str, list[list[float]]] = {}
    recurrent_layers: dict[str, Any] = {}
    nonfinite: set[str] = set()
    losses = None
    loss_values = []
    seeds_run = 0

    def loss_of(outputs_list: list, rng: np.random.Generator):
        """The loss of one pass; the targets are drawn from `rng` after the inputs, in
        the order of the outputs, so every backend differentiates the same numbers."""
        nonlocal losses
        if losses is None:
            names = list(getattr(model, "output_names", None) or [])
            if len(names) != len(outputs_list):
                names = [f"output_{i}" for i in range(len(outputs_list))]
            loss_specs = losses_for_outputs(
                training_loss, names, output_activations(model, graph, len(outputs_list)))
            losses = [(spec, make_loss(keras, spec)) for spec in loss_specs]
        total = 0.0
        for output, (spec, loss_function) in zip(outputs_list, losses):
            with backend.paused():
                target = backend.convert(make_target(spec, output.shape, rng))
            total = total + loss_function(target, keras.ops.cast(output, "float32"))
        return total

    try:
        for seed in range(max(seeds, 1)):
            rng = np.random.default_rng(seed)
            arrays = []
            for spec, vocabulary in zip(specs, vocabularies):
                shape = concrete_shape(spec, batch, length)
                arrays.append(make_input(spec, shape, vocabulary, rng))
            tensors = [backend.convert(a) for a in arrays]
            if all(spec.key is not None for spec in specs):
                feed: Any = {spec.key: tensor for spec, tensor in zip(specs, tensors)}
            else:
                feed = tensors[0] if len(tensors) == 1 else tensors
            step = backend.step(model, feed, tensors, flat,
                                lambda outputs: loss_of(outputs, rng), instrument)
            gradients = step.gradients
            seeds_run += 1
            loss_values.append(step.loss)
            if not math.isfinite(step.loss):
                nonfinite.add("loss")
            if not all(step.outputs_finite):
                nonfinite.add("output")
            position = 0
            for path, layer, variables in kernels:
                parts = gradients[position:position + len(variables)]
                position += len(variables)
                squares = [_norm_squared(g) for g in parts]
                known = [s for s in squares if s is not None]
                norm = math.sqrt(sum(known)) if known else None
                if norm is not None and not math.isfinite(norm):
                    nonfinite.add(path)
                per_seed_kernels[path].append(norm)
                if parts and (symmetry is None or path in symmetry):
                    identical[path].append(_units_identical(parts[0]))
            for node_path, layer, gradient in step.sequences:
                steps = _step_norms(gradient)
                if getattr(layer, "go_backwards", False) and \
                        type(layer).__name__ != "Bidirectional":
                    steps = steps[::-1]
                per_seed_steps.setdefault(node_path, []).append(steps)
                recurrent_layers[node_path] = layer
            calls = instrument.collect()
            per_seed_calls.append(calls)
            for node_path, stats in calls.items():
                if stats["nonfinite"]:
                    nonfinite.add(node_path)
            del gradients, step
    finally:
        instrument.restore()
        for variable, value in state:
            try:
                variable.assign(value)
            except Exception:  # a variable that cannot be assigned keeps the probe's value
                pass
    result = _aggregate(kernels, weight_norms, per_seed_kernels, identical, per_seed_calls,
                        per_seed_steps, recurrent_layers, instrument.order, reference,
                        nonfinite, losses, loss_values, seeds_run, batch,
                        [concrete_shape(s, batch, length) for s in specs])
    if not result.weighted():
        result.notes.append(_nothing_measured(model))
    return result


def _nothing_measured(model: Any) -> str:
    """Why no kernel gradient was measured: a frozen model has none to give."""
    try:
        frozen = bool(model.weights) and not model.trainable_weights
    except Exception:  # a model that cannot list its weights: say only what is known
        frozen = False
    if frozen:
        return ("nothing was measured: no weight of the model is trainable (every layer has "
                "trainable=False), so there is no gradient to measure")
    return ("nothing was measured: the model has no trainable kernel outside its "
            "embeddings, so there is no gradient flow to measure")


def _aggregate(kernels, weight_norms, per_seed_kernels, identical, per_seed_calls,
               per_seed_steps, recurrent_layers, order, reference, nonfinite, losses,
               loss_values, seeds_run, batch, shapes) -> Measurements:
    result = Measurements(seeds=seeds_run, batch=batch, training_mode=True,
                          input_shapes=[tuple(s) for s in shapes])
    weighted_order = [path for path in order if path in per_seed_kernels]
    embedding_paths = {path for path, layer, _ in kernels
                       if type(layer).__name__ == "Embedding"}
    if reference not in per_seed_kernels:
        candidates = [p for p in weighted_order if p not in embedding_paths]
        reference = candidates[-1] if candidates else None
    result.reference = reference
    result.order = weighted_order
    reference_norms = per_seed_kernels.get(reference) or []
    for path, layer, _ in kernels:
        norms = per_seed_kernels[path]
        relatives = []
        for norm, ref in zip(norms, reference_norms):
            if norm is None or ref is None:
                continue
            relatives.append(norm / ref if ref > 0 else (math.inf if norm > 0 else math.nan))
        gradient_norm = median(norms)
        weight = weight_norms.get(path)
        flags = [f for f in identical[path] if f is not None]
        result.kernels[path] = KernelMeasurement(
            path=path, class_name=type(layer).__name__, gradient_norm=gradient_norm,
            weight_norm=weight,
            gradient_to_weight=(gradient_norm / weight if gradient_norm is not None and weight
                                else None),
            relative=median(relatives), units_identical=all(flags) if flags else None,
            nonfinite=path in nonfinite, embedding=path in embedding_paths)
    for node_path in (per_seed_calls[0] if per_seed_calls else {}):
        samples = [calls[node_path] for calls in per_seed_calls if node_path in calls]
        first = samples[0]
        result.calls[node_path] = CallMeasurement(
            path=node_path, class_name=first["class_name"],
            forward_scale=median(s["forward_scale"] for s in samples),
            input_scale=median(s["input_scale"] for s in samples),
            activation=first["activation"],
            saturated_fraction=median(s["saturated"] for s in samples),
            dead_fraction=median(s["dead"] for s in samples),
            nonfinite=any(s["nonfinite"] for s in samples))
    for node_path, runs in per_seed_steps.items():
        layer = recurrent_layers[node_path]
        length = min(len(r) for r in runs)
        steps = [median(r[i] for r in runs) for i in range(length)]
        cell = cell_class(layer)
        result.recurrent[node_path] = RecurrentMeasurement(
            path=node_path, class_name=type(layer).__name__, cell=cell,
            gated=cell in GATED_CELLS, steps=[s if s is not None else 0.0 for s in steps],
            bidirectional=type(layer).__name__ == "Bidirectional")
    result.nonfinite = sorted(nonfinite)
    if losses:
        names = sorted({spec.name for spec, _ in losses})
        result.loss = " + ".join(names)
        result.loss_source = "; ".join(sorted({spec.source for spec, _ in losses}))
    result.loss_value = median(loss_values)
    return result
