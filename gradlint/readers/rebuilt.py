"""Models whose class builds its graph: rebuild them with Keras, read the rebuilt graph.

A keras-hub backbone (`keras_hub.models.BertBackbone`) or a subclassed Functional model saves
only its constructor arguments, so the file holds no layer graph to estimate. When the person
names the module that defines the class (`--custom-objects keras_hub`, never a module named by
the file), this reader lets Keras rebuild the model from the stored configuration:

- inside Keras's safe mode (`keras.config.enable_unsafe_deserialization` is never called),
  after importing only the named modules; the model class must then be one Keras knows;
- without loading the stored weights and without running the model: the graph comes from
  Keras's symbolic tensors only, so the estimate uses the initializers;
- a custom layer that holds Keras layers (keras-hub's `TransformerEncoder`) is traced once,
  symbolically, so that its `Dense`, `EinsumDense`, `MultiHeadAttention` and normalization
  layers appear in the graph as ``transformer_layer_0/<sublayer>``; a layer that cannot be
  traced stays one opaque node (GL002). A custom subclass of a Keras layer that gradlint does
  not know by name (keras-hub's `CachedMultiHeadAttention`) is read as its Keras base class.

The rebuilt graph then goes through the live-model reader, so the analyses and rules see the
same `ModelGraph` a stored Functional model gives. It imports Keras, which takes seconds, so
the engine calls it only when `--custom-objects` is given.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

from gradlint.errors import ModelReadError
from gradlint.graph import ModelGraph

# The sequence length the trace uses for an unknown length, as the probe's synthetic batch.
TRACE_LENGTH = 32
TRACE_BATCH = 2


class RebuildError(Exception):
    """The model could not be rebuilt; the message says why, in one sentence."""


def rebuild_or_note(path: str, graph: ModelGraph, settings: Any) -> ModelGraph:
    """The rebuilt graph, or `graph` with a note saying why it could not be rebuilt (Keras or
    a named module missing). A configuration that does not rebuild raises
    `ModelReadError` (GL001)."""
    if not graph.format.startswith("keras-v3"):
        graph.notes.append("--custom-objects: only a Keras 3 .keras archive is rebuilt from "
                           "its stored configuration; this file's graph stays unknown")
        return graph
    try:
        return rebuild(path, graph, list(settings.custom_objects),
                       unsafe_load=settings.unsafe_load)
    except RebuildError as error:
        graph.notes.append(f"the model was not rebuilt: {error}")
        return graph


def rebuild(path: str, graph: ModelGraph, custom_objects: list[str], *,
            unsafe_load: bool = False) -> ModelGraph:
    """The graph of the model at `path` (read as `graph`, whose layer graph is not stored),
    rebuilt by Keras from its stored configuration. Raises `RebuildError` when Keras or the
    named modules cannot be imported, and `ModelReadError` when the configuration does not
    rebuild."""
    config = _stored_config(path)
    keras = _import_keras()
    from gradlint.probe.environment import ProbeError
    from gradlint.probe.loading import import_custom_objects, unsafe_layers

    try:
        objects = import_custom_objects(list(custom_objects))
    except ProbeError as error:
        raise RebuildError(str(error)) from None
    model = _deserialize(keras, config, objects, graph.model_class)
    if not getattr(model, "inputs", None) or not hasattr(model, "_run_through_graph"):
        raise ModelReadError(f"the model class '{graph.model_class}' rebuilt with Keras, but "
                             "it does not build a Functional graph of layers, so there is no "
                             "graph to analyse")
    try:
        functional = _trace(keras, model)
    except Exception as error:  # Keras's own failure on a configuration it built
        raise ModelReadError(f"the model class '{graph.model_class}' rebuilt, but its graph "
                             f"could not be traced ({_one_line(error)})") from None
    from gradlint.readers.live_model import read_live_model

    rebuilt = read_live_model(_Serialized(functional), read_weights=False)
    unsafe = unsafe_layers(rebuilt)
    if unsafe and not unsafe_load:
        raise RebuildError(f"the rebuilt model has a Lambda layer ({', '.join(unsafe[:3])}) "
                           "whose Python code would be analysed as opaque anyway; it was not "
                           "rebuilt (pass --unsafe-load if you trust the named module)")
    rebuilt.name = graph.name
    rebuilt.format = graph.format
    rebuilt.model_class = graph.model_class
    rebuilt.keras_version = graph.keras_version
    rebuilt.training = graph.training
    rebuilt.notes = [note for note in graph.notes if "constructor arguments" not in note]
    rebuilt.notes.append(
        f"the model class '{graph.model_class}' saves only its constructor arguments; its "
        f"graph was rebuilt with Keras from them (--custom-objects "
        f"{', '.join(custom_objects)}), without running it or loading the stored weights: "
        "the estimate uses the initializers only, and the stored weights are not checked")
    rebuilt.notes.extend(functional.notes)
    return rebuilt


def _stored_config(path: str) -> dict:
    """The archive's config.json, read again within the limits the reader already checked."""
    import json
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive, archive.open("config.json") as handle:
            return json.loads(handle.read())
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as error:
        raise ModelReadError(f"config.json could not be read again to rebuild the model "
                             f"({error})") from None


def _import_keras():
    try:
        from gradlint.probe.environment import quiet_native_logs, quiet_python, quiet_stderr

        quiet_native_logs()
        with quiet_stderr(True), quiet_python(True):
            import keras
    except Exception as error:  # ImportError, or TensorFlow failing to start
        if "map segment" in str(error) or isinstance(error, MemoryError):
            raise RebuildError("Keras and TensorFlow could not be loaded within the per-file "
                               "memory limit (limits.max-memory-mb, at least 4,096 MB "
                               "with --custom-objects); raise it, e.g. --max-memory "
                               "16384") from None
        raise RebuildError(f"rebuilding the model needs Keras, which could not be imported "
                           f"({_one_line(error)}); install it with pip install -e "
                           "'.[probe]'") from None
    return keras


def _deserialize(keras: Any, config: dict, objects: dict, class_name: str) -> Any:
    from keras.src.saving import serialization_lib

    from gradlint.probe.environment import quiet_python, quiet_stderr

    registered = config.get("registered_name") or class_name
    known = registered in objects or class_name in objects or \
        keras.saving.get_registered_object(registered) is not None
    if not known:
        raise RebuildError(f"the model class '{registered}' is not defined or registered by "
                           "the modules named with --custom-objects, so it was not rebuilt "
                           "(a module named by the file is never imported)")
    config = {key: value for key, value in config.items() if key != "compile_config"}
    try:
        with quiet_stderr(True), quiet_python(True), serialization_lib.SafeModeScope(True):
            return keras.saving.deserialize_keras_object(config, custom_objects=objects or None,
                                                         safe_mode=True)
    except Exception as error:
        message = _one_line(error)
        if "safe_mode" in message or "safe mode" in message.lower():
            raise ModelReadError(f"Keras refused to rebuild part of the model in safe mode "
                                 f"({message})") from None
        raise ModelReadError(f"the model class '{class_name}' could not be rebuilt from its "
                             f"stored configuration ({message})") from None


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    if len(text) > 300:
        text = text[:297] + "..."
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


class _Serialized:
    """What the live-model reader reads: a Functional configuration of the traced graph."""

    def __init__(self, traced: "_Traced"):
        self._config = traced.config
        self.layers: list = []  # no weights: they are the fresh initial values, not stored
        self.optimizer = None

    def get_config(self) -> dict:
        return self._config


_Serialized.__name__ = "Functional"  # read as a Functional model's configuration


class _Traced:
    def __init__(self, config: dict, notes: list[str]):
        self.config = config
        self.notes = notes


def _trace_length(model: Any) -> int:
    bounds = [value for value in (getattr(model, name, None) for name in
                                  ("max_sequence_length", "sequence_length"))
              if isinstance(value, int) and not isinstance(value, bool) and value > 0]
    return min(bounds + [TRACE_LENGTH])


def _trace(keras: Any, model: Any) -> _Traced:
    """Run the model's graph again on fresh symbolic inputs, expanding custom layers that
    hold Keras layers, and serialize what was recorded."""
    from gradlint.probe.environment import quiet_python, quiet_stderr

    length = _trace_length(model)
    originals = list(model.inputs)
    inputs = []
    for tensor in originals:
        # Concrete sizes: layer code computes masks from them (keras-hub's causal mask
        # broadcasts to the batch size). The configuration records the batch as unknown.
        shape = tuple(TRACE_BATCH if i == 0 else (length if d is None else d)
                      for i, d in enumerate(tensor.shape))
        inputs.append(keras.Input(batch_shape=shape, dtype=tensor.dtype,
                                  name=getattr(tensor, "name", None)))
    paths: dict[int, str] = {}  # id(operation) -> its path in the rebuilt graph
    expanded: list[str] = []
    kept: list[str] = []

    def operation_fn(operation):
        if not _expandable(operation):
            return operation

        def call(*args, **kwargs):
            prefix = operation.name
            for sub in operation._flatten_layers(include_self=False, recursive=True):
                paths.setdefault(id(sub), f"{prefix}/{sub.name}")
            try:
                with _lenient_output_specs(operation):
                    outputs = operation.call(*args, **kwargs)
            except Exception:  # the layer's code does not trace: keep it as one node
                kept.append(prefix)
                return operation(*args, **kwargs)
            _name_inner_ops(outputs, args, kwargs, prefix, paths)
            expanded.append(prefix)
            return outputs

        return call

    with quiet_stderr(True), quiet_python(True):
        outputs = model._run_through_graph(inputs, operation_fn=operation_fn)
    config = _serialize(keras, inputs, originals, outputs, paths, model.name)
    notes = []
    if expanded:
        notes.append(f"traced the layers inside {', '.join(expanded[:4])}"
                     f"{' …' if len(expanded) > 4 else ''} symbolically (sequence length "
                     f"{length}) to size their sublayers")
    if kept:
        notes.append(f"could not trace inside {', '.join(kept[:4])}"
                     f"{' …' if len(kept) > 4 else ''}: kept as one opaque layer each")
    return _Traced(config, notes)


@contextlib.contextmanager
def _lenient_output_specs(operation: Any):
    """While `operation` is traced, its sublayers' `compute_output_spec` ignore keyword
    arguments left at None that it does not take: a subclass's extra call arguments
    (keras-hub's `CachedMultiHeadAttention` takes `cache=None`) would otherwise stop the
    symbolic call of its Keras base class."""
    import inspect

    patched = []
    for sub in operation._flatten_layers(include_self=False, recursive=True):
        original = getattr(sub, "compute_output_spec", None)
        try:
            parameters = inspect.signature(original).parameters
        except (TypeError, ValueError):
            continue
        if any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
            continue

        def lenient(*args, _original=original, _names=frozenset(parameters), **kwargs):
            kwargs = {key: value for key, value in kwargs.items()
                      if key in _names or value is not None}
            return _original(*args, **kwargs)

        sub.compute_output_spec = lenient
        patched.append(sub)
    try:
        yield
    finally:
        for sub in patched:
            del sub.compute_output_spec


def _expandable(operation: Any) -> bool:
    """A custom layer (not Keras's own) that holds Keras layers."""
    module = type(operation).__module__ or ""
    if module.startswith("keras.") or not getattr(operation, "_layers", None):
        return False
    return hasattr(operation, "call") and hasattr(operation, "_flatten_layers")


def _tensors(value: Any) -> list:
    """The symbolic tensors in a nest of lists, tuples and dicts, in order."""
    found = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(reversed(list(item.values())))
        elif isinstance(item, (list, tuple)):
            stack.extend(reversed(item))
        elif hasattr(item, "_keras_history"):
            found.append(item)
    return found


def _name_inner_ops(outputs: Any, args: tuple, kwargs: dict, prefix: str,
                    paths: dict[int, str]) -> None:
    """Give the operations a traced call created (ops such as `x + residual`) its prefix."""
    boundary = {id(t) for t in _tensors((args, kwargs))}
    stack = _tensors(outputs)
    seen = set()
    while stack:
        tensor = stack.pop()
        if id(tensor) in boundary or id(tensor) in seen:
            continue
        seen.add(id(tensor))
        operation, node_index, _ = tensor._keras_history
        if operation is None:
            continue
        paths.setdefault(id(operation), f"{prefix}/{operation.name}")
        stack.extend(operation._inbound_nodes[node_index].input_tensors)


def _base_class(operation: Any) -> tuple[str, str]:
    """(class name, module) to record: a custom subclass of a Keras layer that gradlint does
    not know by its own name is recorded as its nearest Keras base class."""
    from gradlint.families import family_of

    cls = type(operation)
    name, module = cls.__name__, cls.__module__ or ""
    try:
        config = operation.get_config()
    except Exception:
        config = {}
    if not family_of(name, config).unknown_class(name, config):
        return name, "keras.layers" if module.startswith("keras.") else module
    for base in cls.__mro__[1:]:
        base_module = base.__module__ or ""
        if base_module.startswith("keras.src.layers") and base.__name__ not in ("Layer",):
            if not family_of(base.__name__, config).unknown_class(base.__name__, config):
                return base.__name__, "keras.layers"
    return name, module


def _serialize(keras: Any, inputs: list, originals: list, outputs: Any,
               paths: dict[int, str], name: str) -> dict:
    """A Keras 3 Functional configuration of everything the outputs were computed from."""
    entries: dict[int, dict] = {}  # id(operation) -> its layer entry
    order: list[int] = []
    call_index: dict[int, int] = {}  # id(node) -> the node's index in its entry
    used: set[str] = set()
    input_shapes = {id(t): list(o.shape) for t, o in zip(inputs, originals)}

    def path_of(operation) -> str:
        path = paths.get(id(operation)) or operation.name
        candidate, suffix = path, 1
        while candidate in used:
            candidate = f"{path}_{suffix}"
            suffix += 1
        return candidate

    def tensor_ref(tensor) -> dict:
        operation, node_index, tensor_index = tensor._keras_history
        node = operation._inbound_nodes[node_index]
        return {"class_name": "__keras_tensor__",
                "config": {"shape": [None if d is None or i == 0 else int(d)
                                     for i, d in enumerate(tensor.shape)],
                           "dtype": str(tensor.dtype),
                           "keras_history": [entries[id(operation)]["name"],
                                             call_index[id(node)], tensor_index]}}

    def arguments(value):
        if isinstance(value, dict):
            return {key: arguments(item) for key, item in value.items()
                    if "mask" not in str(key)}
        if isinstance(value, (list, tuple)):
            return [arguments(item) for item in value]
        if hasattr(value, "_keras_history"):
            return tensor_ref(value)
        return value if isinstance(value, (bool, int, float, str, type(None))) else None

    def visit(node) -> None:
        """Serialize `node` after every node it reads from (iteratively: deep graphs)."""
        stack = [(node, False)]
        while stack:
            current, ready = stack.pop()
            if id(current) in call_index:
                continue
            sources = [t for t in _tensors((current.arguments.args,
                                            {k: v for k, v in current.arguments.kwargs.items()
                                             if "mask" not in str(k)}))]
            if not ready:
                stack.append((current, True))
                for tensor in sources:
                    operation, index, _ = tensor._keras_history
                    stack.append((operation._inbound_nodes[index], False))
                continue
            operation = current.operation
            entry = entries.get(id(operation))
            if entry is None:
                entry = _entry(operation, path_of(operation), input_shapes)
                used.add(entry["name"])
                entries[id(operation)] = entry
                order.append(id(operation))
            call_index[id(current)] = len(entry["inbound_nodes"])
            if not current.is_input:
                entry["inbound_nodes"].append({"args": arguments(current.arguments.args),
                                               "kwargs": arguments(
                                                   current.arguments.kwargs)})

    def endpoints(value) -> list:
        result = []
        for tensor in _tensors(value):
            operation, node_index, tensor_index = tensor._keras_history
            visit(operation._inbound_nodes[node_index])
            result.append([entries[id(operation)]["name"],
                           call_index[id(operation._inbound_nodes[node_index])], tensor_index])
        return result

    input_layers = endpoints(inputs)
    output_layers = endpoints(keras.tree.flatten(outputs))
    return {"name": name, "trainable": True, "layers": [entries[key] for key in order],
            "input_layers": input_layers, "output_layers": output_layers}


def _entry(operation: Any, path: str, input_shapes: dict[int, list]) -> dict:
    class_name, module = _base_class(operation)
    try:
        config = dict(operation.get_config()) if hasattr(operation, "get_config") else {}
    except Exception:  # an operation that cannot describe itself is sized as unknown
        config = {}
    config["name"] = path
    # Plain data only, as a file would hold it: a live object in a layer's configuration
    # (a sublayer, a function) could not leave the worker process.
    config = json.loads(json.dumps(config, default=lambda value: None))
    if class_name == "InputLayer":
        output = operation.output
        config["batch_shape"] = input_shapes.get(id(output), list(output.shape))
    return {"module": module, "class_name": class_name, "config": config, "name": path,
            "inbound_nodes": []}
