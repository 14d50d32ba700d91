"""Build the static-path benchmark's models with Keras 3, once, and cache them.

    python bench/make_models.py [--models-dir bench/models] [--sizes 1000,2500,5000,10000]

Writes, into the models directory (git-ignored):

- ``resnet50.keras``: ``keras.applications.ResNet50(weights=None)``, about 100 MB.
- ``vgg16.keras``: ``keras.applications.VGG16(weights=None)``, about 550 MB, with a single
  411 MB kernel (``fc1``): the large-file case.
- ``chain_<N>.keras``: a Sequential chain of N tiny layers, alternating ``Dense(4)`` and
  ``Activation("relu")`` after a 4-wide input, so N/2 weighted layers.
- ``manifest.json``: per model its layer count, parameter count, file size and build time.

A model already in the directory is kept as it is; ``--force`` rebuilds. Files are written
under a temporary name and renamed, so an interrupted build never leaves a half-written model
that a later run would take for a finished one.

Keras builds and saves a Sequential model by recursing once per layer, so deep chains need a
recursion limit above Python's default of 1,000 and a thread with a large stack; the chains are
built inside such a thread. Building and saving the 10,000-layer chain takes several minutes.

This script imports TensorFlow and Keras; the benchmark runs it in its own process so that the
measuring process never imports them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_MODELS_DIR = os.path.join(HERE, "models")
DEFAULT_CHAIN_SIZES = (1000, 2500, 5000, 10000)
APPLICATIONS = {"resnet50": "ResNet50", "vgg16": "VGG16"}
MANIFEST = "manifest.json"

# Keras maps a Sequential chain with one Python frame per layer (ops/function.py:_build_map_helper).
RECURSION_LIMIT = 1_000_000
THREAD_STACK_BYTES = 1 << 30


def chain_name(layers: int) -> str:
    return f"chain_{layers}"


def model_names(chain_sizes=DEFAULT_CHAIN_SIZES) -> list[str]:
    """The benchmark's models, in the order the benchmark reports them."""
    return list(APPLICATIONS) + [chain_name(n) for n in chain_sizes]


def model_path(models_dir: str, name: str) -> str:
    return os.path.join(models_dir, name + ".keras")


def read_manifest(models_dir: str) -> dict:
    try:
        with open(os.path.join(models_dir, MANIFEST), encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return {}


def _write_manifest(models_dir: str, manifest: dict) -> None:
    path = os.path.join(models_dir, MANIFEST)
    with open(path + ".tmp", "w", encoding="utf-8") as handle:
        json.dump(manifest, handle, indent=2, sort_keys=True)
        handle.write("\n")
    os.replace(path + ".tmp", path)


def _build_application(name: str):
    import keras

    return getattr(keras.applications, APPLICATIONS[name])(weights=None)


def _build_chain(layers: int):
    import keras

    if layers % 2:
        raise ValueError("a chain alternates Dense and Activation, so its length must be even")
    stack = [keras.Input(shape=(4,), name="chain_input")]
    for index in range(layers // 2):
        stack.append(keras.layers.Dense(4, name=f"dense_{index}"))
        stack.append(keras.layers.Activation("relu", name=f"relu_{index}"))
    return keras.Sequential(stack, name=chain_name(layers))


def build(models_dir: str, chain_sizes=DEFAULT_CHAIN_SIZES, force: bool = False,
          log=print) -> dict:
    """Build every missing model; return the manifest."""
    os.makedirs(models_dir, exist_ok=True)
    manifest = read_manifest(models_dir)
    todo = [name for name in model_names(chain_sizes)
            if force or not os.path.exists(model_path(models_dir, name))]
    if not todo:
        return manifest

    started = time.perf_counter()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    log(f"imported Keras {keras.__version__} in {time.perf_counter() - started:.1f} s")
    for name in todo:
        path = model_path(models_dir, name)
        begin = time.perf_counter()
        if name in APPLICATIONS:
            model = _build_application(name)
        else:
            model = _build_chain(int(name.split("_", 1)[1]))
        built = time.perf_counter() - begin
        temporary = os.path.join(models_dir, f".{name}.partial.keras")
        model.save(temporary)
        os.replace(temporary, path)
        saved = time.perf_counter() - begin - built
        manifest[name] = {
            "file": os.path.basename(path),
            "layers": len(model.layers),
            "params": int(model.count_params()),
            "bytes": os.path.getsize(path),
            "build_seconds": round(built, 1),
            "save_seconds": round(saved, 1),
            "keras_version": keras.__version__,
        }
        _write_manifest(models_dir, manifest)
        log(f"{name}: {len(model.layers)} layers, {os.path.getsize(path) / 1e6:.1f} MB, "
            f"built in {built:.1f} s, saved in {saved:.1f} s")
        del model
        keras.backend.clear_session()
    return manifest


def _run_in_big_stack(function, *args, **kwargs):
    """Run `function` in a thread whose stack and recursion limit fit Keras's deep recursion."""
    sys.setrecursionlimit(RECURSION_LIMIT)
    threading.stack_size(THREAD_STACK_BYTES)
    outcome: dict = {}

    def target():
        try:
            outcome["value"] = function(*args, **kwargs)
        except BaseException as error:  # re-raised in the calling thread
            outcome["error"] = error

    thread = threading.Thread(target=target, name="build-models")
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models-dir", default=DEFAULT_MODELS_DIR,
                        help="where the models are cached (default: bench/models)")
    parser.add_argument("--sizes", default=",".join(map(str, DEFAULT_CHAIN_SIZES)),
                        help="chain lengths in layers, comma-separated")
    parser.add_argument("--force", action="store_true", help="rebuild models that exist")
    args = parser.parse_args(argv)
    sizes = tuple(int(size) for size in args.sizes.split(",") if size.strip())

    def log(message):
        print(f"make_models: {message}", file=sys.stderr, flush=True)

    _run_in_big_stack(build, args.models_dir, sizes, args.force, log)
    return 0


if __name__ == "__main__":
    sys.exit(main())
