"""The installed wheel works on its own: built from a copy of the source tree, installed into
a fresh virtual environment with only the core dependencies, its `gradlint` command lints an
example model, and `rules/` and `templates/` live inside the `gradlint` package."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import gradlint
from gradlint.rule_registry import all_rules

from conftest import REPO

pytestmark = pytest.mark.slow

CORE_DEPENDENCIES = ["click", "jinja2", "numpy", "h5py<3.15"]
COPY_IGNORE = shutil.ignore_patterns(".git", ".venv", "venv", "build", "dist", "*.egg-info",
                                     "__pycache__", ".pytest_cache", "tests", "bench")


def _run(command, cwd, timeout=600):
    environment = {key: value for key, value in os.environ.items()
                   if not key.startswith(("PYTHON", "VIRTUAL_ENV"))}
    result = subprocess.run([str(part) for part in command], cwd=cwd, env=environment,
                            capture_output=True, text=True, timeout=timeout)
    return result


def _example_model() -> Path:
    examples = sorted((REPO / "examples").glob("*.keras"))
    assert examples, "examples/ holds the example models"
    preferred = [path for path in examples if "sigmoid" in path.name]
    return (preferred or examples)[0]


def _build_wheel(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    shutil.copytree(REPO, source, ignore=COPY_IGNORE)
    result = _run([sys.executable, "-m", "build", "--wheel", "--outdir", work / "dist", source],
                  cwd=work)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    wheels = list((work / "dist").glob("gradlint-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def _install(wheel, tmp_path_factory) -> Path:
    """A fresh virtual environment (no system site-packages) with the wheel installed."""
    home = tmp_path_factory.mktemp("venv") / "env"
    result = _run([sys.executable, "-m", "venv", home], cwd=home.parent)
    assert result.returncode == 0, result.stderr
    pip = home / "bin" / "pip"
    result = _run([pip, "install", "-q", "--no-deps", wheel], cwd=home.parent)
    assert result.returncode == 0, result.stderr[-3000:]
    result = _run([pip, "install", "-q", *CORE_DEPENDENCIES], cwd=home.parent)
    assert result.returncode == 0, result.stderr[-3000:]
    return home


def _check_wheel_contents(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    top_level = {name.split("/", 1)[0] for name in names if ".dist-info/" not in name}
    assert top_level == {"gradlint"}, top_level
    for rule in sorted((REPO / "rules").glob("*.py")):
        assert f"gradlint/rules/{rule.name}" in names, rule.name
    for template in sorted((REPO / "templates").iterdir()):
        if template.suffix in (".j2", ".css"):
            assert f"gradlint/templates/{template.name}" in names, template.name
    assert "gradlint/templates/__init__.py" in names
    assert not any(name.startswith(("rules/", "templates/", "tests/")) for name in names)
    entry_points = next(name for name in names if name.endswith(".dist-info/entry_points.txt"))
    with zipfile.ZipFile(wheel) as archive:
        assert "gradlint = gradlint.cli:run" in archive.read(entry_points).decode()


def _check_command_lints_an_example(environment, tmp_path):
    example = _example_model()
    model = tmp_path / example.name
    shutil.copyfile(example, model)
    expected = gradlint.lint(str(model))
    assert expected.findings, "the example model is one that gradlint has something to say about"
    result = _run([environment / "bin" / "gradlint", "--isolated", model.name], cwd=tmp_path)
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == expected.exit_code()
    lines = result.stdout.splitlines()
    for finding in expected.findings:
        location = f"{model.name}::{finding.layer}" if finding.layer else model.name
        assert f"{location}: {finding.code} [{finding.severity}] {finding.message}" in lines


def _check_package_layout(environment, tmp_path):
    script = (
        "import importlib.util, json, gradlint, gradlint.rules, gradlint.templates\n"
        "from gradlint.rule_registry import all_rules\n"
        "print(json.dumps({'gradlint': gradlint.__file__,"
        " 'rules': list(gradlint.rules.__path__),"
        " 'templates': list(gradlint.templates.__path__),"
        " 'top_level_rules': importlib.util.find_spec('rules') is not None,"
        " 'top_level_templates': importlib.util.find_spec('templates') is not None,"
        " 'codes': [rule.code for rule in all_rules()],"
        " 'version': gradlint.__version__}))\n"
    )
    result = _run([environment / "bin" / "python", "-c", script], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    site = str(environment)
    assert data["gradlint"].startswith(site)
    assert all(path.startswith(site) for path in data["rules"] + data["templates"])
    assert data["top_level_rules"] is False
    assert data["top_level_templates"] is False
    assert data["codes"] == [rule.code for rule in all_rules()]
    assert data["version"] == gradlint.__version__


def _check_rule_command(environment, tmp_path):
    result = _run([environment / "bin" / "gradlint", "rule", "GL101"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("GL101 saturating-activation-chain")
    listing = _run([environment / "bin" / "gradlint", "rules"], cwd=tmp_path)
    assert listing.returncode == 0
    assert "GL403" in listing.stdout


def test_wheel(tmp_path_factory, tmp_path):
    """One test, so that a parallel run builds and installs the wheel once."""
    built = _build_wheel(tmp_path_factory)
    _check_wheel_contents(built)
    home = _install(built, tmp_path_factory)
    _check_command_lints_an_example(home, tmp_path)
    _check_package_layout(home, tmp_path)
    _check_rule_command(home, tmp_path)
