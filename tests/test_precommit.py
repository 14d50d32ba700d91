"""The pre-commit hook, through real pre-commit: `pre-commit try-repo` against this
repository fails on a flagged model with the finding printed and passes on a clean one.

try-repo installs the hook's environment from the repository (pip, from the package index),
which takes tens of seconds; both runs go in parallel. The environments are installed under a
pip constraint that forbids TensorFlow and Keras, so that a core dependency pulling them in
would fail the installation: the hook must stay light.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import report_models
from conftest import REPO

pytestmark = pytest.mark.slow

HEAVY = ("tensorflow", "tensorflow-cpu", "keras", "tf-keras")
GIT_IDENTITY = ["-c", "user.name=gradlint tests", "-c", "user.email=tests@gradlint.invalid",
                "-c", "commit.gpgsign=false", "-c", "init.defaultBranch=main"]


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *GIT_IDENTITY, *args], cwd=cwd, check=True,
                          capture_output=True, text=True).stdout


def snapshot_of_this_repository(destination: Path) -> Path:
    """This repository's working tree (tracked and new files, as .gitignore allows) committed
    in a fresh git repository, so that try-repo sees uncommitted work too: on its own it
    takes only changes to files git already tracks."""
    listing = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                              "--exclude-standard"], cwd=REPO, capture_output=True)
    if listing.returncode != 0:
        pytest.skip("the source tree is not a git checkout")
    destination.mkdir()
    for name in filter(None, listing.stdout.decode().split("\0")):
        source = REPO / name
        if source.is_file():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    git("init", "-q", ".", cwd=destination)
    git("add", "-A", cwd=destination)
    git("commit", "-q", "-m", "snapshot", cwd=destination)
    return destination


@pytest.fixture(scope="module")
def hook_repository(tmp_path_factory):
    return snapshot_of_this_repository(tmp_path_factory.mktemp("precommit") / "gradlint")


@pytest.fixture(scope="module")
def project(tmp_path_factory, save_model):
    """A model repository with a flagged model and a clean one, whose configuration turns
    the probe on: the hook must keep it off (its environment has no TensorFlow, so a probe
    would fail the clean model with exit status 2)."""
    root = tmp_path_factory.mktemp("precommit_project")
    (root / "models").mkdir()
    (root / "pyproject.toml").write_text("[tool.gradlint]\nprobe = true\n", encoding="utf-8")
    shutil.copy(save_model("precommit_deep_sigmoid", report_models.deep_sigmoid),
                root / "models" / "deep.keras")
    shutil.copy(save_model("precommit_relu_he", report_models.relu_he),
                root / "models" / "clean.keras")
    git("init", "-q", ".", cwd=root)
    git("add", "-A", cwd=root)
    git("commit", "-q", "-m", "models", cwd=root)
    return root


def environment(tmp_path: Path) -> dict[str, str]:
    constraints = tmp_path / "no-tensorflow.txt"
    constraints.write_text("".join(f"{name}<0\n" for name in HEAVY), encoding="utf-8")
    env = dict(os.environ)
    existing = env.get("PIP_CONSTRAINT", "")
    if not existing:  # keep constraints the machine's pip configuration sets
        probe = subprocess.run([sys.executable, "-m", "pip", "config", "get",
                                "global.constraint"], capture_output=True, text=True)
        existing = probe.stdout.strip() if probe.returncode == 0 else ""
    env["PIP_CONSTRAINT"] = " ".join(filter(None, [existing, str(constraints)]))
    env["PRE_COMMIT_HOME"] = str(tmp_path / "pre-commit-home")
    env["PRE_COMMIT_COLOR"] = "never"
    env["NO_COLOR"] = "1"
    env.pop("VIRTUAL_ENV", None)
    return env


def test_hook_manifest():
    validation = subprocess.run([sys.executable, "-m", "pre_commit", "validate-manifest",
                                 str(REPO / ".pre-commit-hooks.yaml")],
                                capture_output=True, text=True)
    assert validation.returncode == 0, validation.stdout + validation.stderr
    [hook] = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))
    assert hook["id"] == "gradlint" and hook["language"] == "python"
    assert hook["require_serial"] is True
    assert "--no-probe" in hook["entry"].split()  # even where the configuration asks for it
    assert "--probe" not in hook["entry"].split() and "--probe" not in hook.get("args", [])
    files = re.compile(hook["files"])
    exclude = re.compile(hook["exclude"])
    for name in ("a.keras", "m/b.h5", "c.hdf5"):
        assert files.search(name) and not exclude.search(name)
    assert not files.search("model.keras.json") and not files.search("notes.md")
    assert exclude.search("m/model.weights.h5")


def test_core_dependencies_are_light():
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    names = {re.split(r"[<>=!~;\[ ]", dependency, maxsplit=1)[0].lower()
             for dependency in project["dependencies"]}
    assert not names & set(HEAVY)


def test_try_repo_fails_on_the_flagged_model_and_passes_on_the_clean_one(
        hook_repository, project, tmp_path):
    runs = {}
    for name in ("deep", "clean"):
        scratch = tmp_path / name
        scratch.mkdir()
        runs[name] = subprocess.Popen(
            [sys.executable, "-m", "pre_commit", "try-repo", str(hook_repository), "gradlint",
             "--files", f"models/{name}.keras"],
            cwd=project, env=environment(scratch), stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True)
    outputs = {}
    for name, process in runs.items():
        try:
            outputs[name] = process.communicate(timeout=900)[0]
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    deep, clean = outputs["deep"], outputs["clean"]
    assert runs["deep"].returncode == 1, deep
    assert "gradlint" in deep and "Failed" in deep
    assert "models/deep.keras::hidden_1: GL101 [error] 10 saturating activations" in deep
    assert runs["clean"].returncode == 0, clean
    assert "Passed" in clean and "GL101" not in clean

