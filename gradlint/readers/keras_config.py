"""Turn a Keras model configuration (the JSON that every format stores) into a `ModelGraph`.

Handles Keras 3 and Keras 2 configurations: Functional and Sequential models, nested models
(flattened into path names such as ``encoder/dense_1``), shared layers called several times,
several inputs and outputs, wrappers and custom layers. Nothing is deserialized: the
configuration is only read as data.

The configuration is data from anywhere, so the values the graph and the estimate compute
with are checked as they are read: a size, stride, shape or parameter that no Keras could
have saved (`layer_catalog.check_config`, `activations.activation_of_layer`) and a
malformed layer reference raise `ModelReadError` naming the layer and the key, which the
engine reports as GL001. An initializer parameter that is not a finite number only leaves
that layer unsized in the initializer estimate, with a note on the graph.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from gradlint import activations, initializers
from gradlint.errors import ModelReadError
from gradlint.graph import Layer, ModelGraph, Node, TrainingConfig
from gradlint.families import family_of
from gradlint.families.opaque import MODEL_CLASSES
from gradlint.layer_catalog import (MAX_SIZE, ConfigValueError, as_shape, bounded, check_config,
                                    shape_value, shown, whole)

KERAS_MODULE_PREFIXES = ("keras", "tf_keras", "tensorflow")


def build_graph(model_config: Any, *, format: str, keras2: bool) -> ModelGraph:
    """Build the graph of a serialized model (``{"class_name": ..., "config": {...}}``)."""
    if not isinstance(model_config, dict) or "class_name" not in model_config:
        raise ModelReadError("the configuration is not a Keras model configuration "
                             "(no 'class_name' at the top level)")
    if isinstance(model_config.get("config"), list) and not _is_sequential(model_config):
        # Only Keras 2.2.0-2.2.2 Sequential models stored their layers as a bare list.
        raise ModelReadError(f"the {shown(model_config['class_name'])} model's 'config' is a "
                             "list, not an object")
    model_config = _normalized(model_config)
    config = model_config["config"]
    class_name = str(model_config["class_name"])
    name = str(config.get("name") or class_name)
    graph = ModelGraph(name=name, format=format, model_class=class_name)
    if not isinstance(config.get("layers"), list):
        if class_name in MODEL_CLASSES:
            raise ModelReadError(f"the {class_name} model's configuration has no layer list")
        if family_of(class_name, config).understood_class(class_name, config):
            raise ModelReadError(f"the configuration describes a single {class_name} layer, "
                                 "not a model")
        graph.graph_stored = False
        graph.notes.append(
            f"the model class '{class_name}' saves only its constructor arguments, not its "
            "layer graph")
        return graph
    builder = _GraphBuilder(graph, keras2)
    if _is_sequential(model_config):
        graph.outputs = builder.add_sequential(model_config, prefix="", inputs=None)
    else:
        graph.outputs = builder.add_functional(model_config, prefix="", inputs=None)
    complete_shapes(graph, builder.declared)
    return graph


def _normalized(entry: dict) -> dict:
    """The entry with its ``config`` as a dict: Keras 2.2.0-2.2.2 stored a Sequential model's
    configuration as the bare list of its layers."""
    config = entry.get("config")
    if isinstance(config, dict):
        return entry
    if isinstance(config, list):
        return dict(entry, config={"name": entry.get("name") or "sequential", "layers": config})
    return dict(entry, config={})


def _is_sequential(entry: dict) -> bool:
    return entry.get("class_name") == "Sequential"


def _is_model(entry: dict) -> bool:
    config = _normalized(entry)["config"]
    return entry.get("class_name") in MODEL_CLASSES or isinstance(config.get("layers"), list)


def _is_custom(entry: dict) -> bool:
    module = entry.get("module")
    registered = entry.get("registered_name")
    if isinstance(module, str) and not module.startswith(KERAS_MODULE_PREFIXES):
        return True
    if isinstance(registered, str) and ">" in registered:
        return True
    return False


# Keras 1 configuration keys and what Keras 2 calls them (Keras 1.2 wrote `nb_filter`,
# `nb_row`/`nb_col`, `border_mode`, `subsample`, `init`, `bias`, `output_dim`, `p`).
KERAS1_KEYS = {"nb_filter": "filters", "border_mode": "padding", "subsample": "strides",
               "subsample_length": "strides", "filter_length": "kernel_size",
               "init": "kernel_initializer", "inner_init": "recurrent_initializer",
               "bias": "use_bias", "p": "rate"}
KERAS1_WINDOWS = (("nb_row", "nb_col"), ("kernel_dim1", "kernel_dim2", "kernel_dim3"))
# Layers whose `output_dim` kept its name in Keras 2.
OUTPUT_DIM_CLASSES = frozenset({"Embedding"})


def keras1_config(class_name: str, config: dict) -> dict:
    """A Keras 1 layer configuration under the Keras 2 keys the families read; any other
    configuration unchanged. Keys already present win."""
    if class_name.rsplit(">", 1)[-1] == "Merge" and "concat_axis" in config \
            and "axis" not in config:
        # Keras 1's Merge(mode="concat") joins along `concat_axis`.
        config = dict(config, axis=config["concat_axis"])
    if not any(key in config for key in ("nb_filter", "nb_row", "output_dim", "init",
                                          "border_mode", "subsample", "dim_ordering")):
        return config
    translated = dict(config)
    for old, new in KERAS1_KEYS.items():
        if old in config and new not in config:
            translated[new] = config[old]
    for keys in KERAS1_WINDOWS:
        if all(key in config for key in keys) and "kernel_size" not in config:
            translated["kernel_size"] = [config[key] for key in keys]
    name = class_name.rsplit(">", 1)[-1]
    if "output_dim" in config and "units" not in config and name not in OUTPUT_DIM_CLASSES:
        translated["units"] = config["output_dim"]
    ordering = config.get("dim_ordering")
    if ordering in ("th", "tf") and "data_format" not in config:
        # Theano ordering also laid kernels out channels first; the estimate reads the
        # stored kernel's shape as Keras 2 stores it, so such a file's fans are approximate.
        translated["data_format"] = "channels_first" if ordering == "th" else "channels_last"
    if translated.get("forget_bias_init") == "one" and "unit_forget_bias" not in config:
        translated["unit_forget_bias"] = True
    return translated


OPERATION_MODULES = ("keras.src.ops.", "keras.ops.")


def _constants(entry: dict) -> tuple[tuple[int, float], ...]:
    """A Keras 3 operation's finite scalar arguments in its first call, by position (the
    `3.0` of `x + 3.0`); () for a layer."""
    module = entry.get("module")
    calls = entry.get("inbound_nodes")
    if not (isinstance(module, str) and module.startswith(OPERATION_MODULES)) or \
            not isinstance(calls, list) or not calls or not isinstance(calls[0], dict):
        return ()
    args = calls[0].get("args")
    if not isinstance(args, list):
        return ()
    return tuple((position, float(value)) for position, value in enumerate(args)
                 if type(value) in (int, float) and math.isfinite(value))


def make_layer(entry: dict, path: str, notes: list[str] | None = None) -> Layer:
    """Describe one serialized layer (never instantiating it). Raises `ModelReadError` for a
    configuration value the graph or the estimate cannot use; initializers that are not
    usable are noted in `notes`."""
    class_name = str(entry.get("class_name", "?"))
    config = entry.get("config") if isinstance(entry.get("config"), dict) else {}
    config = keras1_config(class_name, config)
    family = family_of(class_name, config)
    kind = family.kind_of_layer(class_name, config)
    try:
        check_config(class_name, family, config)
    except ConfigValueError as error:
        raise ModelReadError(f"layer '{path}': {error}") from None
    custom = family.unknown_class(class_name, config) or _is_custom(entry)
    layer = Layer(path=path, class_name=class_name, kind=kind, config=config, custom=custom,
                  module=entry.get("module"), family=family, constants=_constants(entry))
    inner_entry = None
    if class_name in ("Bidirectional", "TimeDistributed"):
        inner_entry = config.get("layer")
    elif class_name == "RNN":
        inner_entry = config.get("cell")
        if isinstance(inner_entry, dict) and inner_entry.get("class_name") == "StackedRNNCells":
            stacked = inner_entry.get("config")
            cells = stacked.get("cells") if isinstance(stacked, dict) else None
            inner_entry = cells[-1] if isinstance(cells, list) and cells else None
    if isinstance(inner_entry, dict):
        inner_config = inner_entry.get("config") if isinstance(inner_entry.get("config"), dict) else {}
        # A wrapped layer's initializers are noted where the estimate reads them: on the
        # TimeDistributed's inner layer, on the Bidirectional or RNN itself.
        layer.inner = make_layer(inner_entry, f"{path}/{inner_config.get('name', 'layer')}",
                                 notes if class_name == "TimeDistributed" else None)
    describing = layer.inner if layer.inner is not None and class_name != "TimeDistributed" else None
    source = describing.config if describing is not None else config
    try:
        if family.applies_activation:
            layer.activation = activations.activation_of_layer(class_name, config) or \
                activations.normalize(config.get("activation"))
        elif family.wraps and layer.inner is not None:
            layer.activation = layer.inner.activation
            layer.kernel_initializer = layer.inner.kernel_initializer
            layer.bias_initializer = layer.inner.bias_initializer
        elif hasattr(family, "activation_of"):
            layer.activation = family.activation_of(layer)
        elif "activation" in source or family.weighted:
            layer.activation = activations.normalize(source.get("activation"))
    except ConfigValueError as error:
        where = "" if family.applies_activation else "in its 'activation', "
        raise ModelReadError(f"layer '{path}': {where}{error}") from None
    if not family.wraps:
        layer.kernel_initializer = initializers.parse(
            source.get("kernel_initializer") or source.get("depthwise_initializer")
            or source.get("embeddings_initializer"))
        layer.bias_initializer = initializers.parse(source.get("bias_initializer"))
        if notes is not None and (family.normalizes or family.weighted and (
                getattr(layer.kernel_initializer, "problem", None)
                or getattr(layer.bias_initializer, "problem", None)
                or "pointwise_kernel" in family.weight_roles(layer, 0))):
            _note_initializers(layer, source, notes)
    return layer


def _note_initializers(layer: Layer, source: dict, notes: list[str]) -> None:
    """Note the initializers the estimate reads whose parameters are not usable."""
    checked = []
    family = layer.family
    if family.weighted:
        kernel_key = next((key for key in ("kernel_initializer", "depthwise_initializer",
                                           "embeddings_initializer") if source.get(key)),
                          "kernel_initializer")
        checked += [(kernel_key, layer.kernel_initializer, "passes the signal through this layer"),
                    ("bias_initializer", layer.bias_initializer, "takes the bias as zero")]
    if "pointwise_kernel" in family.weight_roles(layer, 0):
        checked.append(("pointwise_initializer", _parameterized(source, "pointwise_initializer"),
                        "passes the signal through this layer"))
    if family.normalizes:
        checked += [("gamma_initializer", _parameterized(source, "gamma_initializer"),
                     "takes gamma as one"),
                    ("beta_initializer", _parameterized(source, "beta_initializer"),
                     "takes beta as zero")]
    for key, initializer, effect in checked:
        if initializer is not None and initializer.problem:
            notes.append(f"layer '{layer.path}': its {key} {initializer.name} is not usable "
                         f"({initializer.problem}); the estimate from the initializers "
                         f"{effect}")


def _parameterized(source: dict, key: str):
    """The initializer at `key` when it has parameters that could be unusable, else None."""
    value = source.get(key)
    if isinstance(value, dict) and value.get("config"):
        return initializers.parse(value)
    return None


def _keras3_refs(value: Any, refs: list, shapes: list, layer: str) -> None:
    if isinstance(value, dict):
        if value.get("class_name") == "__keras_tensor__":
            tensor_config = value.get("config")
            if tensor_config is None:
                tensor_config = {}
            if not isinstance(tensor_config, dict):
                raise ModelReadError(f"layer '{layer}': an input tensor in 'inbound_nodes' has "
                                     f"a 'config' that is not an object (got "
                                     f"{shown(tensor_config)})")
            history = tensor_config.get("keras_history")
            if isinstance(history, (list, tuple)) and len(history) >= 3:
                node_index, tensor_index = history[1], history[2]
                if type(node_index) is int and type(tensor_index) is int \
                        and 0 <= node_index <= MAX_SIZE and 0 <= tensor_index <= MAX_SIZE:
                    refs.append((str(history[0]), node_index, tensor_index))
                else:
                    refs.append(_reference(layer, history, "keras_history"))
                shape = tensor_config.get("shape")
                if isinstance(shape, list):
                    try:
                        shapes.append(shape_value("shape", shape))
                    except ConfigValueError as error:
                        raise ModelReadError(f"layer '{layer}': in the input it reads from "
                                             f"'{refs[-1][0]}', {error}") from None
                elif shape is None or isinstance(shape, tuple):
                    shapes.append(None)
                else:
                    raise ModelReadError(f"layer '{layer}': in the input it reads from "
                                         f"'{refs[-1][0]}', 'shape' must be a list of whole "
                                         f"numbers or nulls (got {shown(shape)})")
            return
        for sub_key, item in value.items():
            if sub_key != "mask":
                _keras3_refs(item, refs, shapes, layer)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _keras3_refs(item, refs, shapes, layer)


def _reference(layer: str, history: Any, key: str) -> tuple[str, int, int]:
    """(layer name, node index, tensor index) from a `keras_history` or a Keras 2 inbound
    entry; `ModelReadError` when the indexes are not whole numbers from 0."""
    node_index, tensor_index = whole(history[1]), whole(history[2])
    if node_index is None or tensor_index is None or not 0 <= node_index <= MAX_SIZE \
            or not 0 <= tensor_index <= MAX_SIZE:
        raise ModelReadError(f"layer '{layer}': an input's '{key}' must be [layer name, node "
                             f"index, tensor index] with whole-number indexes (got "
                             f"{shown(list(history))})")
    return str(history[0]), node_index, tensor_index


def _is_keras2_ref(value: Any) -> bool:
    return (isinstance(value, (list, tuple)) and len(value) >= 3 and isinstance(value[0], str)
            and isinstance(value[1], int) and isinstance(value[2], int))


def _keras2_refs(node: Any, refs: list) -> None:
    if _is_keras2_ref(node):
        refs.append((node[0], node[1], node[2]))
        if len(node) > 3 and isinstance(node[3], dict):
            for key, item in node[3].items():
                if key != "mask":
                    _keras2_refs(item, refs)
        return
    if isinstance(node, (list, tuple)):
        for item in node:
            _keras2_refs(item, refs)
    elif isinstance(node, dict):
        for key, item in node.items():
            if key != "mask":
                _keras2_refs(item, refs)


def parse_inbound_node(node: Any, layer: str = "?") -> tuple[list[tuple[str, int, int]],
                                                              list[tuple | None]]:
    """The tensors one call of `layer` reads: (layer name, node index, tensor index), and
    their shapes where the file records them (Keras 3 only)."""
    refs: list[tuple[str, int, int]] = []
    shapes: list[tuple | None] = []
    if isinstance(node, dict) and ("args" in node or "kwargs" in node):
        _keras3_refs(node.get("args", []), refs, shapes, layer)
        _keras3_refs(node.get("kwargs", {}), refs, shapes, layer)
        return refs, shapes
    _keras2_refs(node, refs)
    for ref in refs:
        if ref[1] < 0 or ref[2] < 0:
            raise ModelReadError(f"layer '{layer}': an entry of its 'inbound_nodes' has a "
                                 f"negative index (got {shown(list(ref))})")
    return refs, [None] * len(refs)


def _endpoint_list(value: Any, prefix: str = "", key: str = "output_layers"
                   ) -> list[tuple[str, int, int]]:
    """`input_layers` / `output_layers`: a list of [name, node, tensor], or just one."""
    if _is_keras2_ref(value):
        if value[1] < 0 or value[2] < 0:
            raise ModelReadError(f"{_where(prefix)}: an entry of its '{key}' has a negative "
                                 f"index (got {shown(list(value))})")
        return [(value[0], value[1], value[2])]
    result = []
    if isinstance(value, (list, tuple)):
        for item in value:
            result.extend(_endpoint_list(item, prefix, key))
    elif isinstance(value, dict):
        for item in value.values():
            result.extend(_endpoint_list(item, prefix, key))
    return result


def _where(prefix: str) -> str:
    """The model a message is about: the whole model, or the nested one at `prefix`."""
    return f"the nested model '{prefix.rstrip('/')}'" if prefix else "the model"


def _layer_list(config: dict, prefix: str) -> list:
    layers = config.get("layers", [])
    if not isinstance(layers, list):
        raise ModelReadError(f"{_where(prefix)}: 'layers' must be a list (got {shown(layers)})")
    return layers


class _GraphBuilder:
    def __init__(self, graph: ModelGraph, keras2: bool):
        self.graph = graph
        self.keras2 = keras2
        # One Layer per layer path, however often it (or the nested model holding it) is
        # called; each call is a node, numbered in call order.
        self.layers: dict[str, Layer] = {}
        self.calls: dict[int, int] = {}
        # The shapes nested models' own inputs declare, by the node that feeds them: the
        # shape of that node's output when nothing else gives it (after a Lambda).
        self.declared: dict[int, tuple] = {}

    def declare(self, node_id: int, entry: dict) -> None:
        config = entry.get("config") if isinstance(entry.get("config"), dict) else {}
        shape = as_shape(config.get("batch_shape") or config.get("batch_input_shape"))
        if shape is not None:
            self.declared.setdefault(node_id, shape)

    def layer(self, entry: dict, path: str) -> Layer:
        if path not in self.layers:
            self.layers[path] = make_layer(entry, path, self.graph.notes)
        return self.layers[path]

    def new_node(self, layer: Layer, inputs: list[int], input_shapes: list[tuple | None]) -> int:
        call_index = self.calls.get(id(layer), 0)
        self.calls[id(layer)] = call_index + 1
        node = Node(id=len(self.graph.nodes), layer=layer, call_index=call_index,
                    inputs=list(inputs), input_shapes=list(input_shapes))
        self.graph.nodes.append(node)
        return node.id

    def _input_node(self, entry: dict, path: str, shape: Any = None) -> int:
        layer = make_layer(entry, path, self.graph.notes)
        if shape is not None and not layer.config.get("batch_shape"):
            layer.config = dict(layer.config, batch_shape=list(shape))
        node_id = self.new_node(layer, [], [])
        self.graph.inputs.append(node_id)
        return node_id

    def add_sequential(self, entry: dict, prefix: str, inputs: list[int] | None) -> list[int]:
        config = _normalized(entry)["config"]
        layer_entries = [item for item in _layer_list(config, prefix) if isinstance(item, dict)]
        current: int | None = inputs[0] if inputs else None
        for index, item in enumerate(layer_entries):
            item_config = item.get("config") if isinstance(item.get("config"), dict) else {}
            layer_name = str(item_config.get("name") or item.get("name") or f"layer_{index}")
            path = prefix + layer_name
            if item.get("class_name") == "InputLayer":
                if current is None:
                    current = self._input_node(item, path)
                else:
                    self.declare(current, item)
                continue
            if item.get("class_name") == "Merge" and isinstance(item_config.get("layers"), list):
                current = self._add_keras1_merge(item, item_config, prefix, path, current)
                continue
            if current is not None and index == 0:
                self.declare(current, item)  # Keras 2: the first layer's batch_input_shape
            if current is None:
                shape = None
                for source, key in ((item_config, "batch_input_shape"),
                                    (item_config, "batch_shape"), (config, "build_input_shape")):
                    if source.get(key):
                        shape = source[key]
                        try:
                            shape_value(key, shape)
                        except ConfigValueError as error:
                            where = f"layer '{path}'" if source is item_config else _where(prefix)
                            raise ModelReadError(f"{where}: {error}") from None
                        break
                current = self._input_node(
                    {"class_name": "InputLayer", "config": {"name": "input"}}, prefix + "input",
                    shape=shape)
            if _is_model(item):
                outputs = self._add_model(item, path + "/", [current])
                current = outputs[0] if outputs else current
                continue
            current = self.new_node(self.layer(item, path), [current], [None])
        if current is None:
            raise ModelReadError("the Sequential model has no layers")
        return [current]

    def _add_keras1_merge(self, item: dict, item_config: dict, prefix: str, path: str,
                          current: int | None) -> int:
        """Keras 1's `Merge([left, right], mode=...)` in a Sequential model: each branch (a
        model or a layer) reads the model's input, or an input of its own, and the Merge
        combines their outputs. Keras 1 saved the branches' layers by their own names, as
        if the model were flat, and so are their paths here."""
        sources = []
        for branch in item_config["layers"]:
            if not isinstance(branch, dict):
                continue
            inputs = [current] if current is not None else None
            if _is_model(branch):
                outputs = self._add_model(branch, prefix, inputs)
            else:
                outputs = self.add_sequential({"class_name": "Sequential",
                                               "config": {"layers": [branch]}}, prefix, inputs)
            sources.extend(outputs[:1])
        if not sources:
            raise ModelReadError(f"layer '{path}': a Keras 1 Merge of no branches")
        merge = dict(item, config={key: value for key, value in item_config.items()
                                   if key != "layers"})
        return self.new_node(self.layer(merge, path), sources, [None] * len(sources))

    def _add_model(self, entry: dict, prefix: str, inputs: list[int]) -> list[int]:
        if _is_sequential(entry):
            return self.add_sequential(entry, prefix, inputs)
        return self.add_functional(entry, prefix, inputs)

    def add_functional(self, entry: dict, prefix: str, inputs: list[int] | None) -> list[int]:
        config = _normalized(entry)["config"]
        layer_entries = [item for item in _layer_list(config, prefix) if isinstance(item, dict)]
        by_name: dict[str, dict] = {}
        for item in layer_entries:
            item_config = item.get("config") if isinstance(item.get("config"), dict) else {}
            layer_name = str(item.get("name") or item_config.get("name"))
            by_name[layer_name] = item
        # (layer name, node index) -> the graph node ids of that call's output tensors.
        produced: dict[tuple[str, int], list[int]] = {}
        input_refs = _endpoint_list(config.get("input_layers"), prefix, "input_layers")
        for position, (layer_name, node_index, _) in enumerate(input_refs):
            item = by_name.get(layer_name)
            if item is None:
                raise ModelReadError(f"input layer '{layer_name}' is not among the model's layers")
            if inputs is not None and position < len(inputs):
                produced[(layer_name, node_index)] = [inputs[position]]
                self.declare(inputs[position], item)
            else:
                produced[(layer_name, node_index)] = [self._input_node(item, prefix + layer_name)]
        offsets = {name: self._node_offset(item) for name, item in by_name.items()}
        pending = [(name, item) for name, item in by_name.items()
                   if item.get("class_name") != "InputLayer"]
        while pending:
            still_pending = []
            progressed = False
            for layer_name, item in pending:
                calls = item.get("inbound_nodes") or []
                if not isinstance(calls, list):
                    raise ModelReadError(f"layer '{prefix}{layer_name}': 'inbound_nodes' must be "
                                         f"a list (got {shown(calls)})")
                done = True
                for call_index, inbound in enumerate(calls):
                    if (layer_name, call_index + offsets[layer_name]) in produced:
                        continue
                    refs, shapes = parse_inbound_node(inbound, prefix + layer_name)
                    sources = []
                    for ref_name, ref_node, ref_tensor in refs:
                        outputs = produced.get((ref_name, ref_node))
                        if outputs is None:
                            sources = None
                            break
                        if not outputs:
                            raise ModelReadError(f"layer '{prefix}{layer_name}' reads the output "
                                                 f"of '{prefix}{ref_name}', which has none")
                        sources.append(outputs[min(ref_tensor, len(outputs) - 1)])
                    if sources is None:
                        done = False
                        break
                    progressed = True
                    key = (layer_name, call_index + offsets[layer_name])
                    if _is_model(item):
                        produced[key] = self._add_model(item, f"{prefix}{layer_name}/", sources)
                    else:
                        layer = self.layer(item, prefix + layer_name)
                        produced[key] = [self.new_node(layer, sources, shapes)]
                if not done:
                    still_pending.append((layer_name, item))
            if not progressed and still_pending:
                names = ", ".join(name for name, _ in still_pending[:5])
                raise ModelReadError(f"the layer graph refers to tensors that no layer produces "
                                     f"(stuck at: {names})")
            pending = still_pending
        outputs = []
        for layer_name, node_index, tensor_index in _endpoint_list(config.get("output_layers"),
                                                                   prefix, "output_layers"):
            produced_ids = None
            if self._counts_own_node(by_name.get(layer_name)):
                produced_ids = produced.get((layer_name, node_index - 1))
            produced_ids = produced_ids or produced.get((layer_name, node_index))
            if not produced_ids:
                raise ModelReadError(f"output layer '{layer_name}' is not produced by the graph")
            outputs.append(produced_ids[min(tensor_index, len(produced_ids) - 1)])
        if not outputs and not prefix and (config.get("output_layers") is not None
                                           or entry.get("class_name") in MODEL_CLASSES):
            raise ModelReadError(f"the model names no outputs (its 'output_layers' is "
                                 f"{shown(config.get('output_layers'))})")
        return outputs

    def _counts_own_node(self, item: dict | None) -> bool:
        """Keras 3 numbers a nested Functional model's calls from 1 in `output_layers` (the
        model's own node, linking its inputs to its outputs, is node 0: `get_network_config`
        starts Functional sub-models at 1), though its calls' `keras_history` in the layers
        that read them count from 0."""
        return (not self.keras2 and item is not None and _is_model(item)
                and not _is_sequential(item))

    def _node_offset(self, item: dict) -> int:
        """Keras 2 numbers a nested model's calls from 1 when the model was built on its own
        Input, whose call the configuration leaves out (tf-keras `_should_skip_first_node`)."""
        if not self.keras2 or not _is_model(item):
            return 0
        if item.get("class_name") != "Sequential":
            return 1
        layers = _normalized(item)["config"].get("layers")
        if not isinstance(layers, list) or not layers or not isinstance(layers[0], dict):
            return 0  # (a layer list that is not a list is reported when the model is read)
        first = layers[0]
        first_config = first.get("config") if isinstance(first.get("config"), dict) else {}
        if first.get("class_name") == "InputLayer" or "batch_input_shape" in first_config:
            return 1
        return 0


def complete_shapes(graph: ModelGraph, declared: dict[int, tuple] | None = None) -> None:
    """Fill in each node's output shape: from what its consumers record (Keras 3 stores every
    tensor's shape), by inference from the layer configuration, or else from the shape a
    nested model's input that reads it declares (`declared`, by node id)."""
    recorded: dict[int, tuple] = {}
    for node in graph.nodes:
        for source, shape in zip(node.inputs, node.input_shapes):
            if shape is not None and source not in recorded:
                recorded[source] = shape
    for node in graph.nodes:
        input_shapes = []
        for position, source in enumerate(node.inputs):
            known = node.input_shapes[position] if position < len(node.input_shapes) else None
            if known is None:
                known = graph.nodes[source].output_shape
            input_shapes.append(known)
        node.input_shapes = input_shapes
        if node.id in recorded:
            node.output_shape = recorded[node.id]
            continue
        layer = node.layer
        try:
            node.output_shape = bounded(layer.family.output_shape(layer, input_shapes))
        except (TypeError, ValueError, KeyError, IndexError, ArithmeticError):
            # A value `check_config` lets through but the shape cannot use: unknown.
            node.output_shape = None
        if node.output_shape is None and declared and node.id in declared:
            node.output_shape = declared[node.id]


def _is_number(value: Any) -> bool:
    """A real number, including numpy scalars (tf-keras reports rates as np.float32)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _float(value: Any) -> float | None:
    """A saved rate or clipping value as a float: None for NaN or what is not a number,
    +-inf for what is beyond the float range (a JSON integer can be any size)."""
    if not _is_number(value):
        return None
    try:
        number = float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf
    except (TypeError, ValueError):
        return None
    return None if number != number else number


def _learning_rate(value: Any) -> tuple[float | None, str | None]:
    if _is_number(value):
        return _float(value), None
    if isinstance(value, dict):
        schedule = str(value.get("class_name", "schedule"))
        config = value.get("config")
        if not isinstance(config, dict):
            config = {}
        candidates = [config.get(key) for key in ("initial_learning_rate", "warmup_target",
                                                   "maximal_learning_rate", "learning_rate")]
        values = config.get("values")
        if isinstance(values, list):
            candidates.extend(values)
        rates = [rate for rate in map(_float, candidates) if rate is not None]
        return (max(rates) if rates else None), schedule
    return None, None


def parse_training(optimizer: Any, loss: Any) -> TrainingConfig | None:
    """The optimizer and loss from a compile configuration (Keras 3 `compile_config`,
    tf-keras's, or a legacy `training_config`'s `optimizer_config`). A learning rate that is
    NaN is left unknown; a clipping value that is NaN or infinite clips nothing, so it is
    left out."""
    if optimizer is None and loss is None:
        return None
    training = TrainingConfig(loss=loss, optimizer_config=optimizer)
    if isinstance(optimizer, str):
        training.optimizer = optimizer
    elif isinstance(optimizer, dict):
        training.optimizer = str(optimizer.get("class_name", "")).rsplit(">", 1)[-1] or None
        config = optimizer.get("config") or {}
        if isinstance(config, dict):
            # Wrappers such as LossScaleOptimizer keep the real optimizer inside.
            inner = config.get("inner_optimizer")
            if isinstance(inner, dict):
                nested = parse_training(inner, loss)
                if nested is not None:
                    nested.optimizer_config = optimizer
                    return nested
            rate = config.get("learning_rate", config.get("lr"))
            training.learning_rate, training.learning_rate_schedule = _learning_rate(rate)
            for key in ("clipnorm", "clipvalue", "global_clipnorm"):
                value = _float(config.get(key))
                if value is not None and math.isfinite(value):
                    setattr(training, key, value)
    return training
