"""Models from tests/data/configs/, for rule and renderer tests that need no TensorFlow.

Each `<name>.json` there is what gradlint's reader reads from a real saved model, weights
aside (written by tests/extract_configs.py from the builders in tests/rule_models.py, and
checked against freshly saved files by tests/test_configs_match_keras.py). A graph is built
from it by the readers' own `graph_from_config` (`readers.keras_archive`,
`readers.legacy_h5`: what their `read` calls once the JSON is parsed) and linted by
`engine.lint_graph`, the path the command line takes after reading a file.
Nothing here imports TensorFlow or Keras.

    rule_findings_from_config("gl101-sigmoid20-keras", "GL101")   # like conftest.rule_findings
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from gradlint.config import Settings
from gradlint.engine import lint_graph
from gradlint.graph import ModelGraph
from gradlint.readers import keras_archive, legacy_h5
from gradlint.report import FileResult, Report

CONFIGS = Path(__file__).resolve().parent / "data" / "configs"
SUFFIXES = {"keras": ".keras", "keras2": ".keras", "h5": ".h5"}


def config_names() -> list[str]:
    return sorted(path.stem for path in CONFIGS.glob("*.json"))


@lru_cache(maxsize=None)
def _stored_text(name: str) -> str:
    path = CONFIGS / f"{name}.json"
    if not path.is_file():
        raise LookupError(f"no {path.relative_to(CONFIGS.parent.parent)}: add the case to "
                          "tests/rule_models.py and run tests/extract_configs.py")
    return path.read_text(encoding="utf-8")


def load_config(name: str) -> dict:
    """The stored record: {"format", "keras_version", "config"[, "training_config"]}
    (a fresh copy each time: the reader may keep parts of it)."""
    return json.loads(_stored_text(name))


def model_path(name: str) -> str:
    """The file name the model was saved under by tests/extract_configs.py."""
    return f"{name}{SUFFIXES[load_config(name)['format']]}"


def graph_from_record(record: dict) -> ModelGraph:
    """The graph the reader builds from the saved file without its weights: the steps of
    `keras_archive.read` (a `.keras` archive) or `legacy_h5.read` (an `.h5` file) after
    their JSON is parsed, with `read_weights=False`."""
    version = record.get("keras_version")
    if record["format"] == "h5":
        return legacy_h5.graph_from_config(record["config"], record.get("training_config"),
                                           version)
    return keras_archive.graph_from_config(record["config"], version)


def graph_from_config(name: str) -> ModelGraph:
    return graph_from_record(load_config(name))


def lint_config(name: str, settings: Settings | None = None) -> FileResult:
    """One file's result, as `gradlint.lint(path, weights=False)` gives it for the saved
    model (its path is the saved file's name)."""
    settings = settings or Settings()
    result, _ = lint_graph(graph_from_config(name), model_path(name), settings, probe=False)
    result.to_dict()  # as engine.lint_file does: what every renderer reads
    return result


def rule_findings_from_config(name: str, code: str, settings: Settings | None = None) -> list:
    """The findings of one rule on a stored config, also where they are folded into another
    rule's finding of the same cause (as conftest's `rule_findings` on a file)."""
    result = lint_config(name, settings)
    every = result.findings + [related for finding in result.findings
                               for related in finding.related]
    return [finding for finding in every if finding.code == code]


def report_from_configs(*names: str, settings: Settings | None = None) -> Report:
    """A report over several stored configs, in order, for the renderers."""
    return Report(files=[lint_config(name, settings) for name in names])
