"""Hostile model files for gradlint's fuzz harness: a seeded, deterministic generator, and the
checks that tests/test_fuzz.py and bench/fuzz.py apply to gradlint's output on them.

Every input is a REAL saved model (built once by Keras 3 or tf-keras, see `BASE_MODELS`) with
one mutation, or a structural attack (special files, polyglots). Inputs are made with
zipfile, json and h5py only, so making one takes milliseconds.

One input, by its seed and index::

    fuzzer = Fuzzer(base_dir, canary_dir)
    item = fuzzer.make(seed, index, directory)     # or make(seed, index, directory, ...)
    item.args                                      # the command-line arguments (bytes)

or from a shell (the base models must exist: ``build-base`` makes them, with TensorFlow)::

    python tests/fuzz_inputs.py build-base DIR
    python tests/fuzz_inputs.py make --seed S --index I --base DIR --canaries C OUTDIR

The input's class follows from the index alone (a fixed weighted cycle over `CLASSES`), its
variant from the index and the seed (each class cycles through its variants, so that any run
of a few hundred inputs covers every class and variant); a random generator seeded with both
then picks the base model, the values and the byte positions. The same seed, index and base
models give the same bytes (up to the canary directory's path, which some inputs hold).

Files that a mutation references outside the input (HDF5 external links, external raw storage,
virtual-dataset sources, symlink targets) are "canaries" in one directory, named after the
input's index (``0000123-link.h5``), so that a read of one, seen by `CanaryWatch` (Linux
inotify: HDF5 opens linked files from C, where Python's audit hooks do not see it), names the
input that caused it.

The second half of this module runs gradlint on a batch of inputs and checks its output
(`Runner.check`, `check_run`): no escaped exception, every input reported as it must be, no
hang (gradlint's ``--timeout`` limit, reported as a GL001 "time limit" message, counts as a
hang), no read of a canary. A batch that fails as a whole (a traceback, a killed run) is
bisected to the inputs that fail on their own.
"""

from __future__ import annotations

import base64
import ctypes
import ctypes.util
import errno
import json
import math
import os
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import warnings
import zipfile
import zlib
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# --------------------------------------------------------------------------------------------
# Base models: small real models, saved by Keras itself.

BASE_FORMATS = {"keras": ".keras", "keras2": ".keras", "h5": ".h5"}
BASE_NAMES = ("fuzz-mlp", "fuzz-conv", "fuzz-rnn", "fuzz-bn", "fuzz-nested")
BASE_MODELS = tuple((name, format) for name in BASE_NAMES for format in BASE_FORMATS)
# The two known-good files linted with every batch.
GOOD_MODELS = (("fuzz-mlp", "keras"), ("fuzz-rnn", "h5"))
FIXED_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
FIXED_DATE_SAVED = "2000-01-01@00:00:00"


def base_file_name(name: str, format: str) -> str:
    """The file name of a base model: the one tests/conftest.py's `save_model` gives it."""
    return f"{name}-{format}{BASE_FORMATS[format]}"


def _keras_module(format: str):
    if format == "keras":
        import keras

        return keras
    import absl.logging

    absl.logging.set_verbosity(absl.logging.ERROR)
    import tf_keras

    return tf_keras


def build_base_model(name: str, format: str):
    """The Keras model `name`, built with Keras 3 (format "keras") or tf-keras (the others),
    with seeded weights. Imports TensorFlow."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    keras = _keras_module(format)
    keras.utils.set_random_seed(1234)
    layers = keras.layers
    if name == "fuzz-mlp":
        model = keras.Sequential([keras.Input((8,)),
                                  layers.Dense(16, activation="relu", name="hidden"),
                                  layers.Dense(16, activation="tanh", name="hidden_tanh"),
                                  layers.Dense(1, name="out")], name="mlp")
        model.compile(keras.optimizers.SGD(learning_rate=0.01), "mse")
    elif name == "fuzz-conv":
        model = keras.Sequential([keras.Input((8, 8, 3)),
                                  layers.Conv2D(4, 3, activation="relu", name="conv"),
                                  layers.Conv2D(4, 3, groups=2, activation="relu",
                                                name="grouped"),
                                  layers.MaxPooling2D(2, name="pool"),
                                  layers.Flatten(name="flatten"),
                                  layers.Dense(2, name="out")], name="conv")
    elif name == "fuzz-rnn":
        model = keras.Sequential([keras.Input((5, 3)),
                                  layers.SimpleRNN(4, return_sequences=True, name="simple"),
                                  layers.LSTM(4, name="lstm"),
                                  layers.Dense(1, name="out")], name="rnn")
    elif name == "fuzz-bn":
        leaky = (layers.LeakyReLU(negative_slope=0.2, name="leaky") if format == "keras"
                 else layers.LeakyReLU(alpha=0.2, name="leaky"))
        model = keras.Sequential([keras.Input((6,)), layers.Dense(8, name="dense"),
                                  layers.BatchNormalization(name="bn"), leaky,
                                  layers.Dense(1, name="out")], name="bn")
    elif name == "fuzz-nested":
        inner_input = keras.Input((4,), name="inner_x")
        inner = keras.Model(inner_input,
                            layers.Dense(4, activation="relu", name="inner_dense")(inner_input),
                            name="inner")
        outer_input = keras.Input((4,), name="x")
        model = keras.Model(outer_input, layers.Dense(2, name="head")(inner(outer_input)),
                            name="nested")
    else:
        raise ValueError(f"no base model {name!r}")
    return model


def normalize_base_model(path: str) -> None:
    """Make a saved `.keras` archive's bytes independent of the time it was saved (member
    dates and metadata.json's date_saved), so that byte offsets mean the same next time."""
    if not path.endswith(".keras"):
        return
    members = read_members(path)
    changed = []
    for name, data, compress in members:
        if name == "metadata.json":
            metadata = json.loads(data)
            metadata["date_saved"] = FIXED_DATE_SAVED
            data = json.dumps(metadata).encode()
        changed.append((name, data, compress))
    write_members(path + ".normalizing", changed)
    os.replace(path + ".normalizing", path)


def build_base_models(directory: str) -> dict[tuple[str, str], str]:
    """Build (once: existing files are kept) every base model into `directory`."""
    os.makedirs(directory, exist_ok=True)
    paths = {}
    for name, format in BASE_MODELS:
        path = os.path.join(directory, base_file_name(name, format))
        if not os.path.exists(path):
            partial = path[:-len(BASE_FORMATS[format])] + ".partial" + BASE_FORMATS[format]
            model = build_base_model(name, format)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model.save(partial)
            normalize_base_model(partial)
            os.replace(partial, path)
        paths[(name, format)] = path
    return paths


def base_model_paths(directory: str) -> dict[tuple[str, str], str]:
    paths = {key: os.path.join(directory, base_file_name(*key)) for key in BASE_MODELS}
    missing = [path for path in paths.values() if not os.path.isfile(path)]
    if missing:
        raise FileNotFoundError(f"base models missing (build them with `python "
                                f"tests/fuzz_inputs.py build-base {directory}`): {missing}")
    return paths


# --------------------------------------------------------------------------------------------
# Zip and HDF5 helpers.

def read_members(path: str) -> list[tuple[str, bytes, int]]:
    with zipfile.ZipFile(path) as archive:
        return [(info.filename, archive.read(info), info.compress_type)
                for info in archive.infolist()]


def write_members(path: str, members: Iterable[tuple[str, bytes, int]]) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data, compress in members:
            info = zipfile.ZipInfo(name, FIXED_ZIP_TIME)
            info.compress_type = compress
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)


def raw_member(name: str, payload: bytes, *, method: int, crc: int, size: int,
               csize: int | None = None, zip64: bool = False) -> dict:
    """A zip member given as it is stored (already deflated, or with sizes that lie)."""
    return {"name": name, "payload": payload, "method": method, "crc": crc, "size": size,
            "csize": len(payload) if csize is None else csize, "zip64": zip64}


def plain_member(name: str, data: bytes, method: int = zipfile.ZIP_STORED) -> dict:
    if method == zipfile.ZIP_DEFLATED:
        compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
        payload = compressor.compress(data) + compressor.flush()
    else:
        payload = data
    return raw_member(name, payload, method=method, crc=zlib.crc32(data), size=len(data))


def raw_zip(members: list[dict]) -> bytes:
    """A zip archive written byte by byte, so that sizes may lie and members may be
    pre-compressed (zipfile can do neither)."""
    out = bytearray()
    central = bytearray()
    for member in members:
        offset = len(out)
        name = member["name"].encode()
        size, csize = member["size"], member["csize"]
        if member["zip64"] or size >= 0xFFFFFFFF or csize >= 0xFFFFFFFF:
            extra = struct.pack("<HHQQ", 1, 16, size, csize)
            size32 = csize32 = 0xFFFFFFFF
            version = 45
        else:
            extra = b""
            size32, csize32 = size, csize
            version = 20
        out += struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", version, 0, member["method"], 0,
                           0x21, member["crc"], csize32, size32, len(name), len(extra))
        out += name + extra + member["payload"]
        central += struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", version, version, 0,
                               member["method"], 0, 0x21, member["crc"], csize32, size32,
                               len(name), len(extra), 0, 0, 0, 0o100644 << 16, offset)
        central += name + extra
    start = len(out)
    out += central
    out += struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, len(members), len(members),
                       len(central), start, 0)
    return bytes(out)


def _h5():
    import h5py

    return h5py


def read_config(path: str) -> dict:
    """The model configuration of a base model (config.json, or the model_config attribute)."""
    if path.endswith(".keras"):
        with zipfile.ZipFile(path) as archive:
            return json.loads(archive.read("config.json"))
    with _h5().File(path, "r") as handle:
        value = handle.attrs["model_config"]
        return json.loads(value.decode() if isinstance(value, bytes) else value)


def write_config(base: str, destination: str, text: str) -> None:
    """A copy of `base` with its model configuration replaced by `text` (JSON text)."""
    if base.endswith(".keras"):
        members = [(name, text.encode("utf-8", "surrogatepass") if name == "config.json"
                    else data, compress) for name, data, compress in read_members(base)]
        write_members(destination, members)
        return
    if len(text) > 60_000:  # beyond a compact attribute: needs HDF5's dense attribute storage
        rebuild_h5(base, destination, attrs={"model_config": text}, libver="latest")
        return  # (not byte-for-byte reproducible: that storage writes timestamps)
    shutil.copyfile(base, destination)
    with _h5().File(destination, "r+") as handle:
        handle.attrs["model_config"] = text


def rebuild_h5(source: str, destination: str, *, attrs: dict | None = None,
               userblock: int = 0, libver: str | None = None) -> None:
    """A fresh HDF5 file with the source's groups and root attributes (some replaced)."""
    h5py = _h5()
    options: dict[str, Any] = {}
    if userblock:
        options["userblock_size"] = userblock
    if libver:
        options["libver"] = libver
    with h5py.File(source, "r") as old, h5py.File(destination, "w", **options) as new:
        for key in old.keys():
            old.copy(old[key], new, name=key)
        values = {key: old.attrs[key] for key in old.attrs.keys()}
        values.update(attrs or {})
        for key, value in values.items():
            new.attrs[key] = value


def kernel_paths(handle: Any, minimum_rank: int = 2) -> list[str]:
    """Dataset paths of the weight tensors of rank >= minimum_rank, in file order."""
    h5py = _h5()
    found: list[str] = []

    def visit(name: str, item: Any) -> None:
        if isinstance(item, h5py.Dataset) and len(item.shape) >= minimum_rank \
                and not name.startswith("optimizer"):
            found.append(name)

    handle.visititems(visit)
    return found


def edit_weights(base: str, destination: str, edit: Callable[[Any], str],
                 workdir: str) -> str:
    """A copy of `base` whose weights file (the .h5 itself, or the archive's
    model.weights.h5) `edit` changed in place; returns what `edit` says it did."""
    h5py = _h5()
    if base.endswith(".h5"):
        shutil.copyfile(base, destination)
        with h5py.File(destination, "r+") as handle:
            return edit(handle)
    members = read_members(base)
    scratch = os.path.join(workdir, ".weights-edit.h5")
    data = dict((name, data) for name, data, _ in members)["model.weights.h5"]
    with open(scratch, "wb") as out:
        out.write(data)
    with h5py.File(scratch, "r+") as handle:
        detail = edit(handle)
    with open(scratch, "rb") as edited:
        new = edited.read()
    os.remove(scratch)
    write_members(destination, [(name, new if name == "model.weights.h5" else data, compress)
                                for name, data, compress in members])
    return detail


# --------------------------------------------------------------------------------------------
# Mutations of configurations (JSON trees).

def walk_layers(node: Any) -> Iterable[dict]:
    """Every serialized layer ({"class_name", "config": {...}}) in a configuration tree."""
    if isinstance(node, dict):
        if isinstance(node.get("class_name"), str) and isinstance(node.get("config"), dict):
            yield node
        for value in node.values():
            yield from walk_layers(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk_layers(value)


def slots(node: Any, path: tuple = ()) -> Iterable[tuple[Any, Any, tuple]]:
    """(container, key, path) for every value in the tree, containers included."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield node, key, path + (key,)
            yield from slots(value, path + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield node, index, path + (index,)
            yield from slots(value, path + (index,))


def rename_strings(node: Any, old: str, new: str) -> Any:
    if isinstance(node, dict):
        return {rename_strings(k, old, new): rename_strings(v, old, new)
                for k, v in node.items()}
    if isinstance(node, list):
        return [rename_strings(v, old, new) for v in node]
    return new if node == old else node


def swapped(value: Any, rng: random.Random) -> Any:
    """The value replaced by one of another type (or a list cut short)."""
    if isinstance(value, bool):
        choices = ["true", 2, None, {}, [value]]
    elif isinstance(value, int):
        choices = [str(value), "abc", {}, [value], [], None, math.nan, math.inf, -value - 1,
                   float(value) + 0.5, 2 ** 70, True]
    elif isinstance(value, float):
        choices = [str(value), None, {}, [value], math.nan, -math.inf, 1e308, 0]
    elif isinstance(value, str):
        choices = [0, -1, None, {}, [value], "", value * 3, {"class_name": value}]
    elif isinstance(value, list):
        choices = [value[:rng.randrange(len(value))] if value else [], {}, None, "list",
                   [value], value + value, 7]
    elif isinstance(value, dict):
        choices = [[], None, "dict", 0, {"class_name": {}, "config": []}, [value]]
    else:  # None
        choices = [{}, [], "none", 0, math.nan, [None, None]]
    return rng.choice(choices)


DEEP_MARKER = "__gradlint_fuzz_deep__"

HOSTILE_NAMES = ("\x1b[31mred\x1b[0m", "\x1b]0;owned\x07title", "\x1b[2J\x1b[H", "two\nlines",
                 "carriage\rreturn", "nul\x00byte", "\udcff", "lone\ud800surrogate",
                 "\u202eright-to-left", "../../../etc/passwd", "", "tab\there", "x" * 5000,
                 "<script>alert(1)</script>", "%s%n%x", "a/b/c")

FIELD_VALUES = {
    "units": ({}, [0, 0, 0], math.nan, math.inf, -math.inf, -1, 1e308, "abc", 0, 2 ** 63),
    "strides": ([0, 0, 0], 1e59, [0, 0], -1, [1e59, 1e59]),
    "groups": (-1, 1e-300, 0, "2"),
    "filters": ("abc", 0, -5, 1e308),
    "negative_slope": (1e308, math.nan, -math.inf, "x"),
    "kernel_size": ([0, 0], [-1, 3], 1e9, [3]),
    "pool_size": ([0, 0], 1e59, "2"),
}
FIELD_CLASSES = {
    "units": ("Dense", "LSTM", "SimpleRNN"),
    "strides": ("Conv2D", "MaxPooling2D"),
    "groups": ("Conv2D",),
    "filters": ("Conv2D",),
    "negative_slope": ("LeakyReLU",),
    "kernel_size": ("Conv2D",),
    "pool_size": ("MaxPooling2D",),
}
FIELD_BASES = {"units": ("fuzz-mlp", "fuzz-rnn", "fuzz-nested", "fuzz-bn"),
               "negative_slope": ("fuzz-bn",)}
SHAPE_KEYS = ("shape", "batch_shape", "batch_input_shape", "input_shape")


# --------------------------------------------------------------------------------------------
# The inputs.

@dataclass
class FuzzInput:
    """One generated input: what to put on the command line, and what gradlint must say."""

    cls: str
    variant: str
    seed: int
    index: int
    args: list[bytes]          # command-line arguments: files or directories
    # "bad": GL001 (and exit 2); "good": linted; "unlinted": GL001, or (a directory) skipped
    # with a warning, but never linted; "any": any of these.
    expect: str = "any"
    canaries: list[str] = field(default_factory=list)
    detail: str = ""

    @property
    def label(self) -> str:
        return f"{self.cls}/{self.variant} (seed {self.seed}, index {self.index})"

    def shown(self) -> str:
        return ", ".join(repr(os.fsdecode(arg)) for arg in self.args)

    def to_dict(self) -> dict:
        return {"class": self.cls, "variant": self.variant, "seed": self.seed,
                "index": self.index, "args": [os.fsdecode(a) for a in self.args],
                "expect": self.expect, "canaries": self.canaries, "detail": self.detail}


class Spec:
    """What a class generator returns."""

    def __init__(self, args: list, expect: str = "any", detail: str = ""):
        self.args = [os.fsencode(arg) for arg in args]
        self.expect = expect
        self.detail = detail


CLASS_WEIGHTS = {
    "polyglot": 2,
    "extension": 1,
    "hdf5-external": 3,
    "special-file": 2,
    "size-bomb": 1,
    "hdf5-corrupt": 5,
    "config-field": 8,
    "file-name": 1,
    "other-format": 1,
}


def _cycle(weights: dict[str, int]) -> list[str]:
    """Classes in a fixed order with each appearing `weight` times, spread out (smooth
    weighted round robin)."""
    total = sum(weights.values())
    current = dict.fromkeys(weights, 0)
    order = []
    for _ in range(total):
        for name, weight in weights.items():
            current[name] += weight
        chosen = max(weights, key=lambda name: current[name])
        current[chosen] -= total
        order.append(chosen)
    return order


CYCLE = _cycle(CLASS_WEIGHTS)


def schedule(index: int) -> tuple[str, int]:
    """The class of input `index`, and how many inputs of that class come before it."""
    cls = CYCLE[index % len(CYCLE)]
    before = CYCLE[:index % len(CYCLE)].count(cls)
    return cls, (index // len(CYCLE)) * CLASS_WEIGHTS[cls] + before


class Fuzzer:
    """Makes inputs from the base models in `base_dir`; canaries go to `canary_dir`.

    `scratch_dir` holds files that several inputs share (hard-linked into each input), such
    as the 48 MB configuration; by default it is ``_shared`` inside the inputs' directory.
    """

    def __init__(self, base_dir: str, canary_dir: str, scratch_dir: str | None = None):
        self.base_dir = os.path.abspath(base_dir)
        self.base = base_model_paths(self.base_dir)
        self.canary_dir = os.path.abspath(canary_dir)
        os.makedirs(self.canary_dir, exist_ok=True)
        self.scratch_dir = scratch_dir
        self._cache: dict[Any, Any] = {}
        self._canaries: list[str] = []
        self._tag = ""

    # -- entry point ---------------------------------------------------------------------

    def make(self, seed: int, index: int, directory: str) -> FuzzInput:
        """Input `index` of the campaign `seed`, written below `directory`."""
        cls, ordinal = schedule(index)
        generator, variants = GENERATORS[cls]
        variant = variants[(ordinal + seed) % len(variants)]
        rng = random.Random(f"gradlint-fuzz:{seed}:{index}")
        directory = os.path.abspath(directory)
        workdir = os.path.join(directory, f"{index:07d}-{cls}")
        if os.path.lexists(workdir):
            shutil.rmtree(workdir)
        os.makedirs(workdir)
        scratch = self.scratch_dir or os.path.join(directory, "_shared")
        self._tag = f"{index:07d}"
        self._canaries = []
        self._scratch = scratch
        spec = generator(self, rng, workdir, variant)
        return FuzzInput(cls, variant, seed, index, spec.args, spec.expect,
                         list(self._canaries), spec.detail)

    # -- helpers for the generators ------------------------------------------------------

    def pick(self, rng: random.Random, names: Iterable[str] | None = None,
             formats: Iterable[str] | None = None) -> str:
        keys = [(name, format) for name, format in BASE_MODELS
                if (names is None or name in names) and (formats is None or format in formats)]
        return self.base[rng.choice(keys)]

    def canary_path(self, what: str) -> str:
        name = f"{self._tag}-{what}"
        self._canaries.append(name)
        return os.path.join(self.canary_dir, name)

    def canary_h5(self, what: str, shape: tuple, dtype: str, rng: random.Random,
                  group_from: Any = None) -> str:
        import numpy as np

        path = self.canary_path(what)
        with _h5().File(path, "w") as handle:
            values = np.random.default_rng(rng.randrange(1 << 30)).normal(0, 0.1, shape)
            handle.create_dataset("kernel", data=values.astype(dtype))
            if group_from is not None:
                group_from.file.copy(group_from, handle, name="group")
        return path

    def canary_raw(self, what: str, values) -> str:
        path = self.canary_path(what)
        with open(path, "wb") as handle:
            handle.write(values.tobytes())
        return path

    def shared(self, name: str, build: Callable[[str], None]) -> str:
        """A file built once per Fuzzer (per scratch directory) and reused."""
        os.makedirs(self._scratch, exist_ok=True)
        path = os.path.join(self._scratch, name)
        if not os.path.exists(path):
            build(path + ".partial")
            os.replace(path + ".partial", path)
        return path

    def link_shared(self, shared: str, destination: str) -> None:
        try:
            os.link(shared, destination)
        except OSError:
            shutil.copyfile(shared, destination)

    def deflated_run(self, byte: bytes, size: int):
        """A deflate compressor that has swallowed `size` copies of `byte` (not flushed), its
        output so far and the CRC: computed once, then copied for each input."""
        key = ("run", byte, size)
        if key not in self._cache:
            compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
            block = byte * (1 << 20)
            pieces = []
            crc = 0
            for _ in range(size >> 20):
                pieces.append(compressor.compress(block))
                crc = zlib.crc32(block, crc)
            self._cache[key] = (compressor, b"".join(pieces), crc)
        return self._cache[key]

    def deflate_after_run(self, byte: bytes, size: int, tail: bytes) -> tuple[bytes, int, int]:
        """Deflated `size` x `byte` + `tail`: (payload, crc, uncompressed size)."""
        compressor, head, crc = self.deflated_run(byte, size)
        compressor = compressor.copy()
        payload = head + compressor.compress(tail) + compressor.flush()
        return payload, zlib.crc32(tail, crc), size + len(tail)


# --------------------------------------------------------------------------------------------
# Class generators: each takes (fuzzer, rng, workdir, variant) and returns a Spec.

LAMBDA_PAYLOAD = base64.b64encode(b"gradlint fuzz: a Lambda layer's stored code would run "
                                  b"here").decode()


def lambda_layer(keras3: bool) -> dict:
    if keras3:
        return {"module": "keras.layers", "class_name": "Lambda", "registered_name": None,
                "config": {"name": "payload", "trainable": True, "dtype": "float32",
                           "function": {"class_name": "__lambda__",
                                        "config": {"code": LAMBDA_PAYLOAD, "defaults": None,
                                                   "closure": None}},
                           "arguments": {}}}
    return {"class_name": "Lambda",
            "config": {"name": "payload", "trainable": True, "dtype": "float32",
                       "function": [LAMBDA_PAYLOAD, None, None], "function_type": "lambda",
                       "module": "__main__", "output_shape": None,
                       "output_shape_type": "raw", "output_shape_module": None,
                       "arguments": {}}}


def with_lambda(config: dict, keras3: bool) -> dict:
    """A Sequential configuration with a Lambda layer after its first layer."""
    config = json.loads(json.dumps(config))
    layers = config["config"]["layers"]
    layers.insert(1, lambda_layer(keras3))
    return config


HARMLESS_CONFIG = {"module": "keras", "class_name": "Sequential", "registered_name": None,
                   "config": {"name": "harmless", "layers": [
                       {"module": "keras.layers", "class_name": "InputLayer",
                        "config": {"batch_shape": [None, 8], "dtype": "float32",
                                   "name": "in"}},
                       {"module": "keras.layers", "class_name": "Dense",
                        "config": {"name": "d", "units": 1}}]}}


def gen_polyglot(fz: Fuzzer, rng: random.Random, workdir: str, variant: str) -> Spec:
    """A file that is both a zip (a harmless config.json) and an HDF5 file (a model with a
    Lambda layer), in either order, under either name: what gradlint reads must be what
    Keras would load, or the file must be refused."""
    order, suffix = variant.split("-as-")
    path = os.path.join(workdir, "model." + suffix)
    mlp_h5, mlp_keras = fz.base[("fuzz-mlp", "h5")], fz.base[("fuzz-mlp", "keras")]
    if order == "zip-first":
        hidden = with_lambda(read_config(mlp_h5), keras3=False)
        rebuild_h5(mlp_h5, path, attrs={"model_config": json.dumps(hidden)}, userblock=512)
        harmless = json.dumps(HARMLESS_CONFIG, separators=(",", ":")).encode()
        metadata = b'{"keras_version":"3.5.0"}'
        archive = raw_zip([plain_member("metadata.json", metadata, zipfile.ZIP_DEFLATED),
                           plain_member("config.json", harmless, zipfile.ZIP_DEFLATED)])
        assert len(archive) <= 512, len(archive)
        with open(path, "r+b") as handle:
            size = os.fstat(handle.fileno()).st_size
            comment = size - len(archive)
            if comment <= 0xFFFF:  # the rest of the file is the archive's comment
                archive = archive[:-2] + struct.pack("<H", comment)
            handle.write(archive)
        return Spec([path], "bad", "zip (harmless) at 0, HDF5 with a Lambda after a 512-byte "
                                   "user block")
    # HDF5 first (harmless), a zip with a Lambda layer appended.
    hidden = with_lambda(read_config(mlp_keras), keras3=True)
    members = [(name, json.dumps(hidden).encode() if name == "config.json" else data,
                compress) for name, data, compress in read_members(mlp_keras)]
    shutil.copyfile(mlp_h5, path)
    appended = os.path.join(workdir, ".appended.zip")
    write_members(appended, members)
    with open(appended, "rb") as tail, open(path, "ab") as out:
        out.write(tail.read())
    os.remove(appended)
    return Spec([path], "bad", "HDF5 (harmless) at 0, a zip with a Lambda appended")


def gen_extension(fz: Fuzzer, rng: random.Random, workdir: str, variant: str) -> Spec:
    """The bytes say one format and the name the other."""
    if variant == "h5-named-keras":
        source, name = fz.pick(rng, formats=("h5",)), "model.keras"
    elif variant == "keras-named-h5":
        source, name = fz.pick(rng, formats=("keras", "keras2")), "model.h5"
    else:
        source, name = fz.pick(rng, formats=("keras", "keras2")), "model.hdf5"
    path = os.path.join(workdir, name)
    shutil.copyfile(source, path)
    return Spec([path], "any", f"{os.path.basename(source)} as {name}")


def gen_hdf5_external(fz: Fuzzer, rng: random.Random, workdir: str, variant: str) -> Spec:
    """Weights that live outside the file: external links, external raw storage, virtual
    datasets (their targets are canaries), /dev/zero as external storage, and link loops."""
    import numpy as np

    h5py = _h5()
    kind, format = variant.rsplit("-", 1)
    base = fz.pick(rng, formats=("h5",) if format == "h5" else ("keras", "keras2"))
    path = os.path.join(workdir, "model" + (".h5" if format == "h5" else ".keras"))

    def edit(handle: Any) -> str:
        target = rng.choice(kernel_paths(handle))
        dataset = handle[target]
        shape, dtype = dataset.shape, dataset.dtype.str
        if kind == "link-group":
            group_path = target.rsplit("/", 2)[0]  # model_weights/<layer>, layers/<key>
            canary = fz.canary_h5("group.h5", shape, dtype, rng, group_from=handle[group_path])
            del handle[group_path]
            handle[group_path] = h5py.ExternalLink(canary, "/group")
            return f"{group_path} -> external link to {canary}"
        del handle[target]
        if kind == "link-dataset":
            canary = fz.canary_h5("link.h5", shape, dtype, rng)
            handle[target] = h5py.ExternalLink(canary, "/kernel")
            return f"{target} -> external link to {canary}:/kernel"
        if kind == "external":
            values = np.random.default_rng(rng.randrange(1 << 30)).normal(0, 0.1, shape)
            canary = fz.canary_raw("raw.bin", values.astype(dtype))
            handle.create_dataset(target, shape=shape, dtype=dtype,
                                  external=[(canary, 0, values.astype(dtype).nbytes)])
            return f"{target} stored externally in {canary}"
        if kind == "virtual":
            canary = fz.canary_h5("vds.h5", shape, dtype, rng)
            layout = h5py.VirtualLayout(shape=shape, dtype=dtype)
            layout[...] = h5py.VirtualSource(canary, "kernel", shape=shape)
            handle.create_virtual_dataset(target, layout, fillvalue=0)
            return f"{target} is a virtual dataset over {canary}"
        if kind == "devzero":
            big = (1 << 17, 1 << 17)
            handle.create_dataset(target, shape=big, dtype="<f4",
                                  external=[("/dev/zero", 0, h5py.h5f.UNLIMITED)])
            return f"{target}: {big} float32 stored externally in /dev/zero"
        if kind == "softloop":
            handle[target] = h5py.SoftLink("/" + target)
            return f"{target} is a soft link to itself"
        if kind == "hardcycle":
            handle.create_dataset(target, data=np.zeros(shape, dtype))
            parent = target.rsplit("/", 1)[0]
            handle[parent + "/cycle"] = handle["/" + parent.split("/", 1)[0]]
            return f"{parent}/cycle is a hard link to an ancestor group"
        raise AssertionError(kind)

    detail = edit_weights(base, path, edit, workdir)
    return Spec([path], "any", f"{os.path.basename(base)}: {detail}")


def gen_special_file(fz: Fuzzer, rng: random.Random, workdir: str, variant: str) -> Spec:
    """Files that are not regular files, named explicitly or found in a searched directory,
    and symlinks that leave the searched directory."""
    where, _, what = variant.partition(":")
    folder = os.path.join(workdir, "searched")
    os.makedirs(folder)
    name = {"fifo": "model.keras", "socket": "model.h5", "devzero": "x.h5",
            "escape": "escape.keras", "escape-dir": "linked", "loop": "loop.keras"}[what]
    path = os.path.join(folder, name)
    if what == "fifo":
        os.mkfifo(path)
    elif what == "socket":
        # A socket's path has at most 107 bytes: bind through a descriptor of the folder.
        directory = os.open(folder, os.O_PATH | os.O_DIRECTORY)
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            server.bind(f"/proc/self/fd/{directory}/{name}")
        finally:
            server.close()
            os.close(directory)
    elif what == "devzero":
        os.symlink("/dev/zero", path)
    elif what == "escape":
        target = fz.canary_path("model.keras")
        shutil.copyfile(fz.pick(rng, formats=("keras", "keras2")), target)
        os.symlink(target, path)
    elif what == "escape-dir":
        target = fz.canary_path("dir")
        os.makedirs(target)
        shutil.copyfile(fz.pick(rng, formats=("keras", "keras2")),
                        os.path.join(target, "model.keras"))
        os.symlink(target, path)
    elif what == "loop":
        os.symlink(os.path.join(folder, "loop2.keras"), path)
        os.symlink(path, os.path.join(folder, "loop2.keras"))
    if where == "dir":  # skipped (a warning: no models), or GL001; never linted
        return Spec([folder], "unlinted", f"{what} in the searched directory")
    return Spec([path], "bad", f"{what} named on the command line")


MIB = 1 << 20


def gen_size_bomb(fz: Fuzzer, rng: random.Random, workdir: str, variant: str) -> Spec:
    """Small files that declare or inflate to hundreds of MB or more."""
    import numpy as np

    h5py = _h5()
    path = os.path.join(workdir, "model.keras")
    if variant in ("deflate-config", "deflate-weights-zeros", "deflate-weights-userblock"):
        base = fz.pick(rng, formats=("keras", "keras2"))
        members = read_members(base)
        config = dict((n, d) for n, d, _ in members)["config.json"]
        raw = []
        for name, data, compress in members:
            if name == "config.json" and variant == "deflate-config":
                payload, crc, size = fz.deflate_after_run(b" ", 256 * MIB, data)
                raw.append(raw_member(name, payload, method=8, crc=crc, size=size))
            elif name == "model.weights.h5" and variant == "deflate-weights-zeros":
                payload, crc, size = fz.deflate_after_run(b"\0", 256 * MIB, b"")
                raw.append(raw_member(name, payload, method=8, crc=crc, size=size))
            elif name == "model.weights.h5" and variant == "deflate-weights-userblock":
                block = 256 * MIB  # HDF5 finds its signature after a user block of zeros
                tail_path = fz.shared(f"userblock-{os.path.basename(base)}.h5",
                                      lambda p: _userblock_weights(data, p, block, workdir))
                with open(tail_path, "rb") as handle:
                    handle.seek(block)
                    tail = handle.read()
                payload, crc, size = fz.deflate_after_run(b"\0", block, tail)
                raw.append(raw_member(name, payload, method=8, crc=crc, size=size))
            else:
                raw.append(plain_member(name, data, compress))
        with open(path, "wb") as handle:
            handle.write(raw_zip(raw))
        return Spec([path], "bad" if variant == "deflate-weights-zeros" else "any",
                    f"{os.path.basename(base)}: {variant}, 256 MiB inflated from "
                    f"{os.path.getsize(path)} bytes ({len(config)}-byte config)")
    if variant == "whitespace-config":
        base = fz.base[("fuzz-mlp", "keras")]

        def build(target: str) -> None:
            members = read_members(base)
            write_members(target, [(n, b" " * (48 * MIB) + d if n == "config.json" else d, c)
                                   for n, d, c in members])

        fz.link_shared(fz.shared("whitespace-config.keras", build), path)
        return Spec([path], "any", "config.json is 48 MiB of whitespace, then the config")
    if variant.startswith("declared-"):
        base = fz.pick(rng, formats=("keras", "keras2"))
        raw = []
        for name, data, compress in read_members(base):
            member = plain_member(name, data, zipfile.ZIP_DEFLATED if name == "config.json"
                                  else compress)
            if name == "config.json" and variant == "declared-config-4g":
                member["size"] = 0xFFFFFFFE
            elif name == "config.json" and variant == "declared-config-zip64":
                member.update(size=1 << 62, zip64=True)
            elif name == "config.json" and variant == "declared-csize":
                member["csize"] = member["csize"] + (1 << 30)
            elif name == "model.weights.h5" and variant == "declared-weights-zip64":
                member.update(size=1 << 40, csize=1 << 40, zip64=True)
            raw.append(member)
        with open(path, "wb") as handle:
            handle.write(raw_zip(raw))
        return Spec([path], "any", f"{os.path.basename(base)}: {variant}")
    # Datasets that declare far more values than the file holds.
    format = variant.rsplit("-", 1)[1]
    base = fz.pick(rng, formats=("h5",) if format == "h5" else ("keras", "keras2"))
    path = os.path.join(workdir, "model" + (".h5" if format == "h5" else ".keras"))

    def edit(handle: Any) -> str:
        target = rng.choice(kernel_paths(handle))
        del handle[target]
        if variant.startswith("sparse"):
            handle.create_dataset(target, shape=(100_000, 100_000), dtype="<f4",
                                  chunks=(1000, 1000), compression="gzip")
            return f"{target}: (100000, 100000) float32, chunked and compressed, no chunk written"
        chunk = 1 << 20
        dataset = handle.create_dataset(target, shape=(1, 10 ** 8), dtype="<f4",
                                        chunks=(1, chunk), compression="gzip")
        block = fz._cache.get("gzip-chunk")
        if block is None:
            block = fz._cache["gzip-chunk"] = zlib.compress(
                np.full(chunk, 0.05, "<f4").tobytes(), 6)
        for start in range(0, 10 ** 8, chunk):
            dataset.id.write_direct_chunk((0, start), block)
        return f"{target}: (1, 10^8) float32 kernel, chunked and gzip-compressed"

    detail = edit_weights(base, path, edit, workdir)
    return Spec([path], "any", f"{os.path.basename(base)}: {detail}")


def _userblock_weights(data: bytes, path: str, block: int, workdir: str) -> None:
    source = os.path.join(workdir, ".weights-source.h5")
    with open(source, "wb") as handle:
        handle.write(data)
    h5py = _h5()
    with h5py.File(source, "r") as old, h5py.File(path, "w", userblock_size=block) as new:
        for key in old.keys():
            old.copy(old[key], new, name=key)
        for key in old.attrs.keys():
            new.attrs[key] = old.attrs[key]
    os.remove(source)


def _flip(data: bytearray, rng: random.Random, start: int, stop: int, count: int) -> list[int]:
    positions = []
    stop = max(start + 1, min(stop, len(data)))
    for _ in range(count):
        position = rng.randrange(start, stop)
        data[position] ^= rng.randrange(1, 256)
        positions.append(position)
    return positions


def gen_hdf5_corrupt(fz: Fuzzer, rng: random.Random, workdir: str, variant: str) -> Spec:
    """Corrupted HDF5 internals: the model_config attribute's global-heap object, its
    collection and its reference; random byte flips and truncations of real files."""
    if variant.startswith("vlen-"):
        base = fz.pick(rng, formats=("h5",))
        path = os.path.join(workdir, "model.h5")
        shutil.copyfile(base, path)
        text = json.dumps(read_config(base), separators=(",", ":"))
        with _h5().File(path, "r+") as handle:
            handle.attrs["model_config"] = text  # a variable-length string, in the global heap
        data = bytearray(open(path, "rb").read())
        start = data.find(text.encode())
        assert start >= 16, "the attribute's heap object was not found"
        collection = data.rfind(b"GCOL", 0, start)
        index = struct.unpack_from("<H", data, start - 16)[0]
        reference = data.find(struct.pack("<IQI", len(text), collection, index))
        if variant == "vlen-object-header":
            spots = _flip(data, rng, start - 16, start, rng.randint(1, 3))
        elif variant == "vlen-object-size":
            struct.pack_into("<Q", data, start - 8, rng.choice(
                [0, 1, len(text) * 2, 1 << 40, (1 << 64) - 1, rng.randrange(1 << 64)]))
            spots = [start - 8]
        elif variant == "vlen-text":
            spots = _flip(data, rng, start, start + len(text), rng.randint(1, 8))
        elif variant == "vlen-collection":
            spots = _flip(data, rng, collection, collection + 16, rng.randint(1, 3))
        else:  # vlen-reference: the attribute's (length, collection, index) triple
            if reference < 0:
                spots = _flip(data, rng, start - 64, start, 4)
            else:
                spots = _flip(data, rng, reference, reference + 16, rng.randint(1, 3))
        with open(path, "wb") as handle:
            handle.write(data)
        return Spec([path], "any", f"{os.path.basename(base)}: {variant} at {spots}")
    kind, format = variant.split("-")
    base = fz.pick(rng, formats=("h5",) if format == "h5" else ("keras", "keras2"))
    path = os.path.join(workdir, os.path.basename(base))
    data = bytearray(open(base, "rb").read())
    if kind == "truncate":
        cut = rng.randrange(1, len(data))
        with open(path, "wb") as handle:
            handle.write(data[:cut])
        return Spec([path], "bad", f"{os.path.basename(base)} cut to {cut} of {len(data)} bytes")
    if format == "keras" and rng.random() < 0.5:
        with zipfile.ZipFile(base) as archive:
            info = archive.getinfo("model.weights.h5")
        start = info.header_offset + 30 + len(info.filename) + len(info.extra)
        region = (start, start + min(info.file_size, 4096))  # the member's HDF5 metadata
    elif rng.random() < 0.5:
        region = (0, 4096)
    else:
        region = (0, len(data))
    spots = _flip(data, rng, region[0], region[1], rng.randint(1, 16))
    with open(path, "wb") as handle:
        handle.write(data)
    return Spec([path], "any", f"{os.path.basename(base)}: bytes flipped at {sorted(spots)}")


def gen_config_field(fz: Fuzzer, rng: random.Random, workdir: str, variant: str) -> Spec:
    """One field of a real model's configuration (config.json, or the h5 model_config
    attribute) set to a hostile value, or its stored kernel made one-dimensional."""
    if variant == "kernel-1d":
        base = fz.pick(rng, names=("fuzz-conv", "fuzz-rnn"))
        path = os.path.join(workdir, os.path.basename(base))

        def edit(handle: Any) -> str:
            import numpy as np

            target = rng.choice(kernel_paths(handle))
            size = int(np.prod(handle[target].shape))
            length = rng.choice([size, rng.randint(1, 50), 0])
            dtype = handle[target].dtype
            del handle[target]
            handle.create_dataset(target, data=np.linspace(-1, 1, length).astype(dtype))
            return f"{target} rewritten as a 1-D dataset of {length} values"

        detail = edit_weights(base, path, edit, workdir)
        return Spec([path], "any", f"{os.path.basename(base)}: {detail}")
    if variant.startswith("field:"):
        name = variant.split(":", 1)[1]
        base = fz.pick(rng, names=FIELD_BASES.get(name, ("fuzz-conv",)))
    else:
        base = fz.pick(rng)
    keras3 = base.endswith("-keras.keras")
    config = read_config(base)
    layers = list(walk_layers(config))
    detail = variant
    text = None
    if variant.startswith("field:"):
        key = name
        if name == "negative_slope" and not keras3:
            key = "alpha"
        targets = [layer for layer in layers if layer["class_name"] in FIELD_CLASSES[name]]
        layer = rng.choice(targets)
        value = rng.choice(FIELD_VALUES[name])
        layer["config"][key] = value
        detail = f"{layer['class_name']} {layer['config'].get('name')!r}: {key} = {value!r}"
    elif variant == "shape-dict":
        places = [(c, k) for c, k, p in slots(config)
                  if isinstance(c[k], list) and c[k] and p and p[-1] in SHAPE_KEYS]
        container, key = rng.choice(places)
        shape = container[key]
        shape[rng.randrange(len(shape))] = rng.choice([{"dim": 4}, {}, {"class_name": "x"}])
        detail = f"a dict inside the shape {key!r}: {shape!r}"
    elif variant == "type-swap":
        places = [(c, k, p) for c, k, p in slots(config)]
        changes = []
        for _ in range(rng.randint(1, 3)):
            container, key, where = rng.choice(places)
            try:
                old = container[key]
            except (KeyError, IndexError):
                continue  # an earlier swap removed it
            container[key] = swapped(old, rng)
            changes.append(f"{'/'.join(map(str, where))}: {json.dumps(old)[:40]} -> "
                           f"{json.dumps(container[key])[:40]}")
            places = [(c, k, p) for c, k, p in slots(config)]
        detail = "; ".join(changes)
    elif variant in ("deep-lists", "deep-dicts"):
        places = [(c, k, p) for c, k, p in slots(config) if not isinstance(c[k], (dict, list))]
        container, key, where = rng.choice(places)
        container[key] = DEEP_MARKER
        plain = json.dumps(config)
        per_level = 2 if variant == "deep-lists" else 6
        # An .h5 attribute stays compact (below 64 KB; HDF5's dense attribute storage would
        # write timestamps, and the same input would differ from one run to the next).
        depth = 100_000 if base.endswith(".keras") else (59_000 - len(plain)) // per_level
        nested = ("[" * depth + "]" * depth if variant == "deep-lists"
                  else '{"a":' * depth + "1" + "}" * depth)
        text = plain.replace(json.dumps(DEEP_MARKER), nested, 1)
        detail = f"{'/'.join(map(str, where))}: {depth} nested {variant[5:]}"
    elif variant == "layer-name":
        named = [layer for layer in layers
                 if isinstance(layer["config"].get("name"), str)
                 and layer["class_name"] != "InputLayer"]
        old = rng.choice(named)["config"]["name"]
        new = rng.choice(HOSTILE_NAMES)
        config = rename_strings(config, old, new)
        detail = f"layer {old!r} renamed {new!r}"
    else:
        raise AssertionError(variant)
    path = os.path.join(workdir, os.path.basename(base))
    write_config(base, path, text if text is not None else json.dumps(config))
    return Spec([path], "any", f"{os.path.basename(base)}: {detail}")


HOSTILE_FILE_NAMES = {
    "non-utf8": b"model-\xff\xfe",
    "newline": b"model\nwith a newline",
    "escape": b"\x1b[31mred\x1b[0m\r",
}


def gen_file_name(fz: Fuzzer, rng: random.Random, workdir: str, variant: str) -> Spec:
    """A real model under a hostile name: named explicitly, found in a directory, or in a
    directory whose own name is hostile. gradlint must lint it like any other."""
    kind, where = variant.split("@")
    base = fz.pick(rng)
    suffix = os.fsencode(os.path.splitext(base)[1])
    stem = HOSTILE_FILE_NAMES[kind]
    root = os.fsencode(workdir)
    if where == "named":
        path = os.path.join(root, stem + suffix)
        arg = path
    elif where == "in-dir":
        folder = os.path.join(root, b"searched")
        os.makedirs(folder)
        path = os.path.join(folder, stem + suffix)
        arg = folder
    else:  # the directory's own name
        folder = os.path.join(root, stem)
        os.makedirs(folder)
        path = os.path.join(folder, b"model" + suffix)
        arg = folder
    shutil.copyfile(base, path)
    return Spec([arg], "good", f"{os.path.basename(base)} as {path!r}")


def _protobuf_field(number: int, payload: bytes) -> bytes:
    """One length-delimited protocol buffer field."""
    def varint(value: int) -> bytes:
        out = bytearray()
        while True:
            out.append((value & 0x7F) | (0x80 if value > 0x7F else 0))
            value >>= 7
            if not value:
                return bytes(out)

    return varint(number << 3 | 2) + varint(len(payload)) + payload


def saved_metadata(config: dict, keras_version: str = "2.15.0") -> bytes:
    """A tf.keras `keras_metadata.pb` for a model configuration: the root node (path "root")
    with the metadata JSON tf-keras writes (class, config, model_config, keras_version), and
    the version tf-keras gives each node."""
    metadata = {"name": config.get("config", {}).get("name", "model"),
                "class_name": config.get("class_name"), "config": config.get("config"),
                "model_config": {"class_name": config.get("class_name"),
                                 "config": config.get("config")},
                "keras_version": keras_version, "backend": "tensorflow"}
    node = (_protobuf_field(3, b"root") + _protobuf_field(4, b"_tf_keras_network")
            + _protobuf_field(5, json.dumps(metadata).encode()) + _protobuf_field(6, b"\x08\x02\x10\x01"))
    return _protobuf_field(1, node)


def gen_other_format(fz: Fuzzer, rng: random.Random, workdir: str, variant: str) -> Spec:
    """The formats read beside the archives and HDF5 files: `model.to_json()` text (under a
    .json or an .h5 name) and SavedModel directories (their keras_metadata.pb encoded from a
    real model's configuration, without TensorFlow), whole or cut, flipped or lying."""
    source = fz.pick(rng, formats=("keras2", "h5"))
    config = read_config(source)
    if variant.startswith("json"):
        text = json.dumps({**config, "keras_version": "2.15.0", "backend": "tensorflow"})
        data = text.encode()
        expect = "good"
        if variant == "json-truncated":
            data, expect = data[:rng.randrange(1, len(data))], "bad"
        elif variant == "json-flipped":
            data = bytearray(data)
            for _ in range(rng.randint(1, 8)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            data, expect = bytes(data), "any"
        path = os.path.join(workdir, "model.h5" if variant == "json-named-h5" else
                            "model.json")
        with open(path, "wb") as handle:
            handle.write(data)
        return Spec([path], expect, f"to_json of {os.path.basename(source)} ({variant})")
    directory = os.path.join(workdir, "exported")
    os.makedirs(os.path.join(directory, "variables"))
    with open(os.path.join(directory, "saved_model.pb"), "wb") as handle:
        handle.write(b"\x08\x01")
    data = saved_metadata(config)
    expect = "good"
    if variant == "savedmodel-truncated":
        data, expect = data[:rng.randrange(1, len(data))], "bad"
    elif variant == "savedmodel-flipped":
        data = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        data, expect = bytes(data), "any"
    elif variant == "savedmodel-lying-length":
        data, expect = data[:1] + b"\xff\xff\xff\xff\x0f" + data[3:], "bad"
    with open(os.path.join(directory, "keras_metadata.pb"), "wb") as handle:
        handle.write(data)
    if variant == "savedmodel-in-dir":
        return Spec([workdir], "good", f"a SavedModel of {os.path.basename(source)}, searched")
    return Spec([directory], expect, f"a SavedModel of {os.path.basename(source)} ({variant})")


GENERATORS: dict[str, tuple[Callable, tuple[str, ...]]] = {
    "polyglot": (gen_polyglot, ("zip-first-as-h5", "zip-first-as-keras", "h5-first-as-keras",
                                "h5-first-as-h5")),
    "extension": (gen_extension, ("h5-named-keras", "keras-named-h5", "keras-named-hdf5")),
    "hdf5-external": (gen_hdf5_external, tuple(
        f"{kind}-{format}" for kind in ("link-dataset", "link-group", "external", "virtual",
                                        "devzero", "softloop", "hardcycle")
        for format in ("h5", "keras"))),
    "special-file": (gen_special_file, tuple(
        f"{where}:{what}" for where, what in (
            ("dir", "fifo"), ("named", "fifo"), ("dir", "socket"), ("named", "socket"),
            ("dir", "devzero"), ("named", "devzero"), ("dir", "escape"),
            ("dir", "escape-dir"), ("dir", "loop"), ("named", "loop")))),
    "size-bomb": (gen_size_bomb, ("deflate-config", "sparse-h5", "deflate-weights-zeros",
                                  "gzip-h5", "whitespace-config", "declared-config-4g",
                                  "sparse-keras", "deflate-weights-userblock", "gzip-keras",
                                  "declared-config-zip64", "declared-csize",
                                  "declared-weights-zip64")),
    "hdf5-corrupt": (gen_hdf5_corrupt, ("vlen-object-header", "flip-h5", "vlen-object-size",
                                        "flip-keras", "vlen-text", "truncate-h5",
                                        "vlen-collection", "truncate-keras", "vlen-reference")),
    "config-field": (gen_config_field, tuple(f"field:{name}" for name in FIELD_VALUES) + (
        "kernel-1d", "shape-dict", "type-swap", "type-swap", "type-swap", "deep-lists",
        "layer-name", "type-swap", "deep-dicts", "layer-name")),
    "file-name": (gen_file_name, tuple(f"{kind}@{where}" for kind in HOSTILE_FILE_NAMES
                                       for where in ("named", "in-dir", "dir-name"))),
    "other-format": (gen_other_format, ("json", "savedmodel", "json-named-h5",
                                        "savedmodel-truncated", "json-truncated",
                                        "savedmodel-flipped", "json-flipped",
                                        "savedmodel-lying-length", "savedmodel-in-dir")),
}
CLASSES = tuple(GENERATORS)
assert set(CLASSES) == set(CLASS_WEIGHTS)


def make(seed: int, index: int, directory: str, base_dir: str, canary_dir: str) -> FuzzInput:
    """Input `index` of campaign `seed` in `directory` (the one-call entry point)."""
    return Fuzzer(base_dir, canary_dir).make(seed, index, directory)


# --------------------------------------------------------------------------------------------
# Watching the canaries: Linux inotify through ctypes.

IN_ACCESS = 0x00000001
IN_OPEN = 0x00000020
IN_Q_OVERFLOW = 0x00004000
IN_ISDIR = 0x40000000
IN_NONBLOCK = 0o4000
IN_CLOEXEC = 0o2000000


class InotifyUnavailable(OSError):
    pass


class CanaryWatch:
    """Every open or read of a file in the canary directory tree, by any process."""

    def __init__(self, root: str):
        self.root = os.path.abspath(root)
        try:
            self._libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
            init = self._libc.inotify_init1
            self._add = self._libc.inotify_add_watch
        except (OSError, AttributeError) as error:
            raise InotifyUnavailable(f"no inotify in the C library: {error}") from None
        self._add.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
        self.fd = init(IN_NONBLOCK | IN_CLOEXEC)
        if self.fd < 0:
            code = ctypes.get_errno()
            raise InotifyUnavailable(f"inotify_init1 failed: {os.strerror(code)}")
        self._dirs: dict[int, str] = {}
        self.add_tree()
        self.drain()

    def add_tree(self) -> None:
        """Watch the root and every directory below it (call again after adding some)."""
        for directory, _, _ in os.walk(self.root):
            wd = self._add(self.fd, os.fsencode(directory), IN_OPEN | IN_ACCESS)
            if wd < 0:
                code = ctypes.get_errno()
                raise InotifyUnavailable(f"inotify_add_watch {directory}: {os.strerror(code)}")
            self._dirs[wd] = directory

    def drain(self) -> list[tuple[str, str]]:
        """The events since the last drain: (path, "open" | "read" | "overflow")."""
        events = []
        while True:
            try:
                data = os.read(self.fd, 1 << 16)
            except BlockingIOError:
                break
            except OSError as error:
                if error.errno in (errno.EAGAIN, errno.EWOULDBLOCK):
                    break
                raise
            offset = 0
            while offset + 16 <= len(data):
                wd, mask, _, length = struct.unpack_from("iIII", data, offset)
                name = data[offset + 16:offset + 16 + length].rstrip(b"\0")
                offset += 16 + length
                if mask & IN_Q_OVERFLOW:
                    events.append((self.root, "overflow"))
                    continue
                directory = self._dirs.get(wd, self.root)
                where = os.path.join(directory, os.fsdecode(name)) if name else directory
                events.append((where, "open" if mask & IN_OPEN else "read"))
        return events

    def self_check(self) -> bool:
        """Open and read a canary here, and see the watch report it."""
        path = os.path.join(self.root, "self-check.bin")
        with open(path, "wb") as handle:
            handle.write(b"canary")
        self.drain()
        with open(path, "rb") as handle:
            handle.read()
        seen = self.drain()
        return any(where == path and kind == "open" for where, kind in seen) and \
            any(where == path and kind == "read" for where, kind in seen)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def index_of_canary(path: str, root: str) -> int | None:
    relative = os.path.relpath(path, root)
    head = relative.split(os.sep, 1)[0]
    return int(head[:7]) if re.match(r"\d{7}-", head) else None


# --------------------------------------------------------------------------------------------
# Running gradlint and checking what it says.

PER_FILE_TIMEOUT = 10
_TIMEOUT_SUPPORTED: dict[str, bool] = {}


def gradlint_env() -> dict:
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["NO_COLOR"] = "1"
    env.pop("FORCE_COLOR", None)
    env["PYTHONPATH"] = REPO + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def timeout_supported(python: str = sys.executable) -> bool:
    """Whether this gradlint has the per-file `--timeout` option."""
    if python not in _TIMEOUT_SUPPORTED:
        result = subprocess.run([python, "-m", "gradlint", "check", "--help"],
                                capture_output=True, text=True, env=gradlint_env(), timeout=120)
        _TIMEOUT_SUPPORTED[python] = "--timeout" in result.stdout
    return _TIMEOUT_SUPPORTED[python]


def command(paths: list[bytes], *, jobs: int = 2, timeout_option: bool = True,
            per_file_timeout: int = PER_FILE_TIMEOUT, python: str = sys.executable) -> list:
    args: list = [python, "-m", "gradlint", "--output-format", "json"]
    if timeout_option:
        args += ["--timeout", str(per_file_timeout)]
    args += ["-j", str(jobs), "--isolated", "--", *paths]
    return args


def shell_command(args: list) -> str:
    """The command as a POSIX shell would take it (bash's $'...' for unprintable names)."""
    import shlex

    shown = []
    for arg in args:
        raw = os.fsencode(arg)
        if all(32 <= byte < 127 for byte in raw):
            shown.append(shlex.quote(raw.decode()))
        else:
            shown.append("$'" + "".join(chr(b) if 32 <= b < 127 and b not in b"'\\" else
                                        f"\\x{b:02x}" for b in raw) + "'")
    return " ".join(shown)


@dataclass
class Run:
    args: list
    returncode: int | None
    stdout: str
    stderr: str
    wall: float
    timed_out: bool
    maxrss_kb: int
    leftover: bool = False  # processes of the run still alive after it exited


# The measured command runs under this small launcher, which reports the command's exit status
# and peak RSS. Linux counts in a process's peak RSS the memory of the process that exec'd
# it, so a command spawned straight from a big process (this one, after the size bombs'
# deflate streams) would report at least that process's size; the launcher is small.
LAUNCHER = r"""
import json, os, sys
report, command = sys.argv[1], sys.argv[2:]
pid = os.posix_spawnp(command[0], command, os.environ)
_, status, usage = os.wait4(pid, 0)
with open(report, "w") as handle:
    json.dump({"status": status, "maxrss_kb": usage.ru_maxrss}, handle)
code = os.waitstatus_to_exitcode(status)
sys.exit(code if code >= 0 else 128 - code)
"""


def _session_alive(session: int) -> bool:
    """Whether a process of the process group is still running (zombies, which their new
    parent has not reaped yet, do not count)."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                fields = handle.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == session and fields[0] not in (b"Z", b"X"):
            return True
    return False


LIVE_SESSIONS: set[int] = set()  # the sessions of the runs under way (see kill_live_runs)


def kill_live_runs() -> None:
    """Kill every run under way (for a signal handler: runs have their own sessions, so a
    terminal's Ctrl-C or a parent's SIGTERM does not reach them)."""
    for session in list(LIVE_SESSIONS):
        try:
            os.killpg(session, signal.SIGKILL)
        except ProcessLookupError:
            pass


def run(args: list, *, timeout: float, cwd: str | None = None) -> Run:
    """Run a command in its own session; kill the whole session at the timeout. The exit
    status and the peak RSS (the command and the children it waited for) come from wait4."""
    import tempfile

    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.TemporaryDirectory() as scratch:
        report = os.path.join(scratch, "usage.json")
        start = time.perf_counter()
        process = subprocess.Popen([sys.executable, "-I", "-S", "-c", LAUNCHER, report, *args],
                                   stdout=out, stderr=err, stdin=subprocess.DEVNULL, cwd=cwd,
                                   env=gradlint_env(), start_new_session=True)
        killed = threading.Event()

        def kill() -> None:
            killed.set()
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

        timer = threading.Timer(timeout, kill)
        timer.start()
        LIVE_SESSIONS.add(process.pid)
        try:
            _, status, usage = os.wait4(process.pid, 0)
        except BaseException:  # interrupted: the run is in its own session, so end it here
            kill()
            raise
        finally:
            timer.cancel()
            LIVE_SESSIONS.discard(process.pid)
        wall = time.perf_counter() - start
        returncode, maxrss = os.waitstatus_to_exitcode(status), usage.ru_maxrss
        try:
            with open(report) as handle:
                measured = json.load(handle)
            returncode = os.waitstatus_to_exitcode(measured["status"])
            maxrss = measured["maxrss_kb"]
        except (OSError, ValueError, KeyError):
            pass  # killed before the command ended
        process.returncode = returncode
        leftover = False
        for _ in range(40):
            if not _session_alive(process.pid):
                break
            time.sleep(0.05)
        else:
            leftover = not killed.is_set()  # (after a kill the hang is reported already)
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        out.seek(0)
        err.seek(0)
        return Run(args, returncode, out.read().decode("utf-8", "replace"),
                   err.read().decode("utf-8", "replace"), wall, killed.is_set(), maxrss,
                   leftover)


@dataclass
class Failure:
    kind: str                      # "exception", "hang", "canary", "contract"
    message: str
    item: FuzzInput | None = None  # None: the batch as a whole
    signature: str = ""

    def describe(self, reproduce: Callable[[FuzzInput], str] | None = None) -> str:
        who = self.item.label if self.item else "the batch"
        text = f"[{self.kind}] {who}: {self.message}"
        if self.item is not None:
            text += f"\n    input: {self.item.shown()}"
            if self.item.detail:
                text += f"\n    mutation: {self.item.detail[:300]}"
            if reproduce:
                text += f"\n    reproduce: {reproduce(self.item)}"
        return text


def traceback_signature(stderr: str) -> str:
    """The innermost gradlint frame and the exception of the root-cause traceback."""
    block = re.split(r"\n(?:The above exception was the direct cause|During handling of the "
                     r"above exception)", stderr)[0]
    frames = re.findall(r'File "([^"]+)", line (\d+), in (\S+)', block)
    ours = [f for f in frames if re.search(r"/(gradlint|rules)/", f[0])]
    frame = (ours or frames or [("?", "?", "?")])[-1]
    where = re.sub(r".*/(gradlint|rules)/", r"\1/", frame[0])
    lines = [line.strip().strip('"') for line in block.strip().splitlines()
             if line.strip().strip('"')]
    exception = next((line for line in reversed(lines)
                      if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Pool|Interrupt|"
                                  r"Warning|Failure)\b", line)), lines[-1] if lines else "")
    return f"{where}:{frame[1]} in {frame[2]}: {exception[:200]}"


def json_path(text: str) -> str:
    """A path as gradlint's JSON report writes it: a lone surrogate (a non-UTF-8 byte of the
    name, decoded with surrogateescape) as the six characters ``\\udcff``
    (gradlint.report.Report.to_json)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _names(arg: bytes) -> set[str]:
    """How the report may name a command-line argument."""
    text = os.fsdecode(arg)
    names = {text, os.path.realpath(text)}
    return names | {json_path(name) for name in names}


def _entries(arg: bytes, files: list[dict]) -> list[dict]:
    """The report's entries for one command-line argument: the file itself, or the files
    found below a directory (or the directory, when it holds no model)."""
    names = _names(arg)
    prefixes = tuple(name.rstrip("/") + "/" for name in names)
    return [entry for entry in files if isinstance(entry, dict) and isinstance(
        entry.get("path"), str) and (entry["path"] in names
                                     or entry["path"].startswith(prefixes))]


def _time_limited(entry: dict) -> bool:
    error = entry.get("error")
    texts = [error.get("message", "")] if isinstance(error, dict) else []
    texts += [f.get("message", "") for f in entry.get("findings") or [] if isinstance(f, dict)
              and f.get("code") == "GL001"]
    return any("time limit" in str(text) for text in texts)


def check_run(items: list[FuzzInput], goods: list[bytes], result: Run,
              events: list[tuple[str, str]], canary_root: str,
              timeout_option: bool) -> tuple[list[Failure], bool]:
    """The failures of one run of gradlint on `items` plus the good files, and whether the
    run failed as a whole (so that which input caused it is not known)."""
    failures: list[Failure] = []
    by_index = {item.index: item for item in items}
    for where, kind in events:
        index = index_of_canary(where, canary_root)
        item = by_index.get(index)
        if item is None and index is None:
            failures.append(Failure("canary", f"{kind} of {where} (outside every input)"))
        elif item is not None:
            failures.append(Failure("canary", f"gradlint {'opened' if kind == 'open' else 'read'}"
                                              f" {where}, outside the input", item))
    whole = None
    if result.timed_out:
        whole = Failure("hang", f"the run did not finish in {result.wall:.0f} s (killed)")
    elif "Traceback" in result.stderr:
        signature = traceback_signature(result.stderr)
        whole = Failure("exception", f"exit {result.returncode}, traceback: {signature}",
                        signature=signature)
    elif result.returncode not in (0, 1, 2):
        whole = Failure("exception", f"exit status {result.returncode}; stderr: "
                                     f"{result.stderr.strip()[-300:]!r}",
                        signature=f"exit {result.returncode}")
    report = None
    if whole is None:
        try:
            report = json.loads(result.stdout)
            if not isinstance(report, dict) or not isinstance(report.get("files"), list):
                raise ValueError("no 'files' list")
        except ValueError as error:
            whole = Failure("exception", f"exit {result.returncode}, stdout is not the JSON "
                                         f"report ({error}): {result.stdout[:200]!r} stderr: "
                                         f"{result.stderr.strip()[-300:]!r}",
                            signature="no JSON report")
    if result.leftover:
        failures.append(Failure("hang", "processes of the run were still alive after it exited"))
    if whole is not None:
        failures.append(whole)
        return failures, True
    files = report["files"]
    warnings = [w for w in report.get("warnings") or [] if isinstance(w, str)]
    for good in goods:
        entries = _entries(good, files)
        if not entries or any(e.get("error") is not None or not isinstance(e.get("model"), dict)
                              for e in entries):
            failures.append(Failure("contract", f"the good file {os.fsdecode(good)} was not "
                                                f"linted: {json.dumps(entries)[:300]}"))
    for item in items:
        for arg in item.args:
            entries = _entries(arg, files)
            if not entries:
                warned = os.path.isdir(arg) and any(
                    warning.startswith(name) for name in _names(arg) for warning in warnings)
                if not warned:
                    failures.append(Failure("contract", f"{os.fsdecode(arg)!r} is missing "
                                                        "from the report's files", item))
                elif item.expect in ("bad", "good"):
                    wanted = "GL001" if item.expect == "bad" else "its model linted"
                    failures.append(Failure("contract", "the directory was skipped with a "
                                                        f"warning; expected {wanted}", item))
                continue
            bad_entries = []
            for entry in entries:
                error = entry.get("error")
                if _time_limited(entry):
                    failures.append(Failure("hang", f"stopped by the time limit: "
                                                    f"{error and error.get('message')!r}", item))
                if error is None:
                    if not isinstance(entry.get("model"), dict):
                        failures.append(Failure("contract", "no error and no model for "
                                                f"{entry['path']!r}", item))
                elif not (isinstance(error, dict) and error.get("code") == "GL001"
                          and isinstance(error.get("message"), str) and error["message"]):
                    failures.append(Failure("contract", f"malformed error {error!r}", item))
                else:
                    bad_entries.append(entry)
            linted = [e for e in entries if e.get("error") is None]
            if item.expect == "bad" and not bad_entries:
                failures.append(Failure("contract", "expected GL001 (unreadable), but it was "
                                                    "linted", item))
            elif item.expect == "unlinted" and linted:
                failures.append(Failure("contract", f"{linted[0]['path']!r} was linted; "
                                        "expected GL001 or a skip", item))
            elif item.expect == "good" and bad_entries:
                failures.append(Failure("contract", "a real model was not linted: "
                                        f"{bad_entries[0]['error']['message']!r}", item))
    if any(isinstance(e, dict) and e.get("error") is not None for e in files) \
            and result.returncode != 2:
        failures.append(Failure("contract", f"exit status {result.returncode} with an unreadable "
                                            "file in the report (expected 2)"))
    return failures, False


class Runner:
    """Runs batches of inputs through gradlint and checks them, finding the culprits of a
    failed batch by bisection."""

    def __init__(self, goods: list[str], watch: CanaryWatch | None, *,
                 timeout_option: bool | None = None, batch_timeout: float = 120,
                 isolate_timeout: float = 40, isolate_budget: float = 180,
                 total_isolate_budget: float | None = None, jobs: int = 2,
                 python: str = sys.executable, cwd: str | None = None):
        self.goods = [os.fsencode(os.path.abspath(g)) for g in goods]
        self.watch = watch
        self.python = python
        self.timeout_option = timeout_supported(python) if timeout_option is None \
            else timeout_option
        self.batch_timeout = batch_timeout
        self.isolate_timeout = isolate_timeout
        self.isolate_budget = isolate_budget
        # Bisection time left for all batches together (None: no limit beyond each batch's).
        self.total_isolate_left = total_isolate_budget
        self.jobs = jobs
        self.cwd = cwd
        self.runs: list[Run] = []

    def run_items(self, items: list[FuzzInput], timeout: float) -> tuple[list[Failure], bool]:
        if self.watch is not None:
            self.watch.drain()
        args = command([a for item in items for a in item.args] + self.goods, jobs=self.jobs,
                       timeout_option=self.timeout_option, python=self.python)
        result = run(args, timeout=timeout, cwd=self.cwd)
        self.runs.append(result)
        events = self.watch.drain() if self.watch is not None else []
        root = self.watch.root if self.watch is not None else ""
        return check_run(items, self.goods, result, events, root, self.timeout_option)

    def check(self, items: list[FuzzInput]) -> list[Failure]:
        """All failures of one batch, each attributed to an input where one can be."""
        failures, whole = self.run_items(items, self.batch_timeout)
        if not whole:
            return failures
        attributed = [f for f in failures if f.item is not None]
        batch = [f for f in failures if f.item is None]
        budget = self.isolate_budget if self.total_isolate_left is None else \
            min(self.isolate_budget, self.total_isolate_left)
        started = time.monotonic()
        culprits, unexplored = self._bisect(items, started + budget)
        if self.total_isolate_left is not None:
            self.total_isolate_left = max(0.0, self.total_isolate_left -
                                          (time.monotonic() - started))
        result = attributed + culprits
        if unexplored:
            result += [Failure(f.kind, f"{f.message} (the isolation time budget was spent "
                                       f"before {len(unexplored)} of the batch's inputs were "
                                       f"run alone: {', '.join(i.label for i in unexplored[:8])}"
                                       f"{' ...' if len(unexplored) > 8 else ''})",
                               signature=f.signature) for f in batch]
        elif not culprits:
            result += [Failure(f.kind, f"{f.message} (no input fails on its own: only the "
                                       "batch as a whole)", signature=f.signature)
                       for f in batch]
        return _unique(result)

    def _bisect(self, items: list[FuzzInput], deadline: float):
        """Split a failed group in halves until single inputs fail on their own."""
        culprits: list[Failure] = []
        unexplored: list[FuzzInput] = []
        pending = [items]
        while pending:
            group = pending.pop(0)
            if time.monotonic() > deadline:
                unexplored.extend(group)
                continue
            half = len(group) // 2
            for part in (group[:half], group[half:]):
                if not part:
                    continue
                failures, whole = self.run_items(part, self.isolate_timeout)
                culprits.extend(f for f in failures if f.item is not None)
                if whole and len(part) > 1:
                    pending.append(part)
                elif whole:
                    for failure in failures:
                        if failure.item is None:
                            failure.item = part[0]
                            culprits.append(failure)
        return _unique(culprits), unexplored


def _unique(failures: list[Failure]) -> list[Failure]:
    """Each failure once, though several runs (a batch and its halves) saw it."""
    unique, seen = [], set()
    for failure in failures:
        key = (failure.kind, failure.item.index if failure.item else None, failure.message)
        if key not in seen:
            seen.add(key)
            unique.append(failure)
    return unique


# --------------------------------------------------------------------------------------------

def _main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build-base", help="build the base models (imports TensorFlow)")
    build.add_argument("directory")
    one = sub.add_parser("make", help="write one input and print its command-line arguments")
    one.add_argument("directory")
    one.add_argument("--seed", type=int, required=True)
    one.add_argument("--index", type=int, required=True)
    one.add_argument("--base", required=True)
    one.add_argument("--canaries", required=True)
    options = parser.parse_args(argv)
    if options.command == "build-base":
        for path in build_base_models(options.directory).values():
            print(path)
        return 0
    item = make(options.seed, options.index, options.directory, options.base, options.canaries)
    print(json.dumps(item.to_dict(), indent=2))
    print(shell_command(command(item.args)))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
