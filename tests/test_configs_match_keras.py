"""tests/data/configs/ is what Keras writes: tests/extract_configs.py, run here into a
temporary directory with the installed Keras and tf-keras, reproduces every committed config,
and the graph tests/config_models.py builds from each lints exactly as gradlint reads the
saved file without its weights. When Keras changes what it writes, this fails: regenerate
with `.venv/bin/python tests/extract_configs.py` and review the diff."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import gradlint
from config_models import CONFIGS, config_names, lint_config, load_config, model_path

from conftest import REPO

pytestmark = pytest.mark.keras
REGENERATE = "regenerate with `.venv/bin/python tests/extract_configs.py` and review the diff"


@pytest.fixture(scope="module")
def extracted(tmp_path_factory):
    """(configs directory, models directory) written by the script in a fresh interpreter:
    the names Keras gives unnamed layers depend on what the process built before."""
    root = tmp_path_factory.mktemp("extracted")
    result = subprocess.run(
        [sys.executable, str(REPO / "tests" / "extract_configs.py"), "--out",
         str(root / "configs"), "--models", str(root / "models")],
        capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return root / "configs", root / "models"


def without_version(record: dict) -> dict:
    return {key: value for key, value in record.items() if key != "keras_version"}


def test_every_case_is_committed_and_nothing_else(extracted):
    configs, _ = extracted
    assert sorted(path.stem for path in configs.glob("*.json")) == config_names(), REGENERATE


def test_regenerated_configs_equal_the_committed_ones(extracted):
    configs, _ = extracted
    differ = []
    for name in config_names():
        fresh = json.loads((configs / f"{name}.json").read_text(encoding="utf-8"))
        committed = load_config(name)
        # The version is read (Keras 2 or 3) but a new patch release writing the same
        # configuration is no drift.
        assert fresh["keras_version"].split(".")[0] == committed["keras_version"].split(".")[0]
        if without_version(fresh) != without_version(committed):
            differ.append(f"{name} (committed from Keras {committed['keras_version']}, "
                          f"now {fresh['keras_version']})")
    assert not differ, f"Keras now writes other configs for {', '.join(differ)}: {REGENERATE}"


def comparable(result) -> dict:
    """A result's dict without what differs by design: the path, and the Keras version
    when a patch release writes the same configuration."""
    data = result.to_dict()
    data.pop("path")
    data["model"].pop("keras_version")
    return data


def test_a_config_lints_as_its_saved_file_without_weights(extracted):
    _, models = extracted
    names = config_names()
    report = gradlint.lint([str(models / model_path(name)) for name in names], weights=False)
    assert len(report.files) == len(names)
    for name, from_file in zip(names, report.files):
        assert from_file.error is None, (name, from_file.error)
        assert comparable(lint_config(name)) == comparable(from_file), name
