"""Write tests/data/configs/: what gradlint's reader reads from a real saved model, without its
weights, for the rule and renderer tests that run without TensorFlow.

    .venv/bin/python tests/extract_configs.py                 # rewrite tests/data/configs/
    .venv/bin/python tests/extract_configs.py --out DIR --models DIR2   # elsewhere, keep the files

Each case of `rule_models.CASES` is built with real Keras, saved with `model.save` in its
format, and read back from the saved file: a `.keras` archive's `config.json` and the Keras
version from its `metadata.json`; an `.h5` file's `model_config` and `training_config`
attributes and its `keras_version`. The JSON texts are parsed, not edited, so a test that
builds the graph from `config` (tests/config_cases.py) reads exactly the object the reader
reads from the file, with two differences, both for a file that one run reproduces exactly:
`metadata.json`'s save date is left out, and each `shared_object_id` (Keras writes the
memory address of the object that layers share, such as a dtype policy) is renumbered 1, 2,
3, ... in the order it first appears, which keeps which entries share an object; gradlint
reads neither. Keras numbers unnamed layers and models from a counter per session, so the
session is cleared before each build: a case's names do not depend on the cases built
before it.

tests/test_configs_match_keras.py runs this into a temporary directory and checks that it
reproduces the committed files.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import warnings
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

CONFIGS = HERE / "data" / "configs"
SUFFIXES = {"keras": ".keras", "keras2": ".keras", "h5": ".h5"}


def _text(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if hasattr(value, "tobytes"):
        return value.tobytes().decode("utf-8")
    return str(value)


def renumber_shared_objects(value, numbers: dict | None = None):
    """`value` with each `shared_object_id` replaced by 1, 2, 3, ... in first-seen order."""
    numbers = {} if numbers is None else numbers
    if isinstance(value, dict):
        return {key: (numbers.setdefault(item, len(numbers) + 1)
                      if key == "shared_object_id" and isinstance(item, int)
                      else renumber_shared_objects(item, numbers))
                for key, item in value.items()}
    if isinstance(value, list):
        return [renumber_shared_objects(item, numbers) for item in value]
    return value


def read_saved(path: Path, format: str) -> dict:
    """What the reader reads from a saved model, weights aside, as one JSON object."""
    if format == "h5":
        import h5py

        with h5py.File(path, "r") as handle:
            training = _text(handle.attrs.get("training_config"))
            return {"format": format,
                    "keras_version": _text(handle.attrs.get("keras_version")),
                    "config": renumber_shared_objects(
                        json.loads(_text(handle.attrs["model_config"]))),
                    "training_config": json.loads(training) if training is not None else None}
    with zipfile.ZipFile(path) as archive:
        config = json.loads(archive.read("config.json"))
        metadata = json.loads(archive.read("metadata.json"))
    return {"format": format, "keras_version": metadata.get("keras_version"),
            "config": renumber_shared_objects(config)}


def _fresh_session(format: str) -> None:
    from conftest import keras2, keras3

    (keras3() if format == "keras" else keras2()).backend.clear_session()


def build_and_save(name: str, format: str, build, models: Path) -> Path:
    _fresh_session(format)
    path = models / f"{name}{SUFFIXES[format]}"
    model = build()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.save(str(path))
    return path


def dumps(record: dict) -> str:
    return json.dumps(record, indent=1, ensure_ascii=False) + "\n"


def extract(out: Path, models: Path, names: list[str] | None = None) -> list[str]:
    """Build, save and extract the cases (all, or `names`) into `out`; returns their names."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    from rule_models import CASES

    out.mkdir(parents=True, exist_ok=True)
    models.mkdir(parents=True, exist_ok=True)
    chosen = names or sorted(CASES)
    for name in chosen:
        format, build = CASES[name]
        path = build_and_save(name, format, build, models)
        (out / f"{name}.json").write_text(dumps(read_saved(path, format)), encoding="utf-8")
    if names is None:
        for stale in out.glob("*.json"):
            if stale.stem not in CASES:
                stale.unlink()
    return chosen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=CONFIGS,
                        help="where to write <case>.json (default: tests/data/configs)")
    parser.add_argument("--models", type=Path, default=None,
                        help="keep the saved model files here (default: a temporary directory)")
    parser.add_argument("names", nargs="*", help="only these cases")
    args = parser.parse_args(argv)
    if args.models is not None:
        written = extract(args.out, args.models, args.names or None)
    else:
        with tempfile.TemporaryDirectory(prefix="gradlint-configs-") as models:
            written = extract(args.out, Path(models), args.names or None)
    print(f"wrote {len(written)} configs to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
