"""File discovery: directories are searched for *.keras, *.h5 and *.hdf5; --exclude replaces
the default exclusions, --extend-exclude adds to them; .gitignore files are respected
unless --no-respect-gitignore."""

from __future__ import annotations

import json
import shutil
import textwrap

import os

import pytest
from click.testing import CliRunner

from gradlint.cli import main

from conftest import keras2, keras3

PREFIX = "test_discovery"


def build_keras3():
    keras = keras3()
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(4, activation="relu"),
                             keras.layers.Dense(1)], name="small")


def build_keras2():
    keras = keras2()
    return keras.Sequential([keras.layers.Dense(4, activation="relu", input_shape=(4,)),
                             keras.layers.Dense(1)], name="small_h5")


@pytest.fixture(scope="module")
def sources(save_model):
    return {"keras": save_model(f"{PREFIX}-small", build_keras3),
            "h5": save_model(f"{PREFIX}-small-h5", build_keras2, "h5")}


@pytest.fixture
def tree(tmp_path, sources, monkeypatch):
    """A folder of models and other files; the working directory is its parent."""
    root = tmp_path / "work"
    layout = {
        "models/a.keras": "keras",
        "models/b.h5": "h5",
        "models/c.hdf5": "h5",
        "models/UPPER.KERAS": "keras",
        "models/deep/er/d.keras": "keras",
        "models/venv/lib/e.keras": "keras",
        "models/__pycache__/f.keras": "keras",
        "models/archive/old_g.keras": "keras",
        "models/archive/h.h5": "h5",
    }
    for relative, kind in layout.items():
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(sources[kind], target)
    (root / "models" / "notes.txt").write_text("not a model\n")
    (root / "models" / "config.json").write_text("{}\n")
    shutil.copyfile(sources["keras"], root / "models" / "a.keras.bak")
    monkeypatch.chdir(root)
    return root


def found(*args):
    """The files a lint run reported, relative to the working directory."""
    result = CliRunner().invoke(main, ["-j", "1", "--isolated", "--output-format", "json",
                                       *map(str, args)])
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        repr(result.exception)
    report = json.loads(result.stdout)
    for file in report["files"]:
        assert file["error"] is None, file
    return sorted(file["path"] for file in report["files"])


DEFAULT = sorted(["models/a.keras", "models/b.h5", "models/c.hdf5", "models/UPPER.KERAS",
                  "models/deep/er/d.keras", "models/archive/old_g.keras",
                  "models/archive/h.h5"])


def test_directory_search(tree):
    assert found("models") == DEFAULT


def test_directory_search_from_inside(tree, monkeypatch):
    monkeypatch.chdir(tree / "models")
    assert found(".") == sorted("./" + path[len("models/"):] for path in DEFAULT)


def test_files_and_directories_together(tree):
    assert found("models/deep", "models/a.keras") == ["models/a.keras", "models/deep/er/d.keras"]


def test_default_exclusions_are_replaced_by_exclude(tree):
    everything = found("--exclude", "nothing-matches-this", "models")
    assert everything == sorted(DEFAULT + ["models/venv/lib/e.keras",
                                           "models/__pycache__/f.keras"])
    assert found("--exclude", "archive", "models") == sorted(
        [path for path in DEFAULT if "/archive/" not in path]
        + ["models/venv/lib/e.keras", "models/__pycache__/f.keras"])


@pytest.mark.parametrize("pattern, removed", [
    ("archive", ["models/archive/old_g.keras", "models/archive/h.h5"]),
    ("*.hdf5", ["models/c.hdf5"]),
    ("old_*", ["models/archive/old_g.keras"]),
    ("models/archive/*.h5", ["models/archive/h.h5"]),
    ("**/er", ["models/deep/er/d.keras"]),
])
def test_extend_exclude(tree, pattern, removed):
    assert found("--extend-exclude", pattern, "models") == sorted(
        path for path in DEFAULT if path not in removed)


def test_extend_exclude_comma_separated_and_repeated(tree):
    result = found("--extend-exclude", "archive,*.hdf5", "--extend-exclude", "deep", "models")
    assert result == ["models/UPPER.KERAS", "models/a.keras", "models/b.h5"]


def test_files_named_explicitly_are_linted_even_if_excluded(tree):
    assert found("--extend-exclude", "archive", "models/archive/h.h5") == ["models/archive/h.h5"]
    assert found("models/venv/lib/e.keras") == ["models/venv/lib/e.keras"]


def test_exclusions_from_the_configuration_file(tree):
    (tree / "gradlint.toml").write_text('extend-exclude = ["archive", "deep"]\n')
    result = CliRunner().invoke(main, ["-j", "1", "--output-format", "json", "models"])
    paths = sorted(file["path"] for file in json.loads(result.stdout)["files"])
    assert paths == ["models/UPPER.KERAS", "models/a.keras", "models/b.h5", "models/c.hdf5"]


# --- .gitignore -----------------------------------------------------------------------------

@pytest.fixture
def repository(tree):
    """The tree as a git working copy with .gitignore files at two levels."""
    (tree / ".git").mkdir()
    (tree / ".gitignore").write_text(textwrap.dedent("""\
        # models we do not keep
        *.h5
        !models/archive/h.h5
        deep/
    """))
    (tree / "models" / "archive" / ".gitignore").write_text("old_*\n")
    return tree


def test_gitignore_is_respected(repository):
    assert found("models") == ["models/UPPER.KERAS", "models/a.keras", "models/archive/h.h5",
                               "models/c.hdf5"]


def test_gitignore_when_searching_a_subdirectory(repository, monkeypatch):
    monkeypatch.chdir(repository / "models")
    assert found("archive") == ["archive/h.h5"]
    assert found(".") == ["./UPPER.KERAS", "./a.keras", "./archive/h.h5", "./c.hdf5"]


def test_no_respect_gitignore(repository):
    assert found("--no-respect-gitignore", "models") == DEFAULT


def test_respect_gitignore_from_the_configuration_file(repository):
    (repository / "gradlint.toml").write_text("respect-gitignore = false\n")
    result = CliRunner().invoke(main, ["-j", "1", "--output-format", "json", "models"])
    paths = sorted(file["path"] for file in json.loads(result.stdout)["files"])
    assert paths == DEFAULT


def test_gitignored_file_named_explicitly_is_linted(repository):
    assert found("models/b.h5") == ["models/b.h5"]


def test_gitignore_without_the_pattern_ignores_nothing(tree):
    (tree / ".git").mkdir()
    (tree / ".gitignore").write_text("*.txt\n")
    assert found("models") == DEFAULT


def test_gitignore_parity_with_git_itself(tmp_path):
    """In a real git repository, the files a directory search finds are exactly the model
    files git reports as untracked and not ignored: escapes, negation, directory-only and
    anchored patterns, `**`, character classes, nested ignore files and .git/info/exclude."""
    import shutil
    import subprocess

    from gradlint.discovery import MODEL_SUFFIXES, WEIGHTS_ONLY_SUFFIXES, discover

    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    repo = tmp_path / "repo"
    repo.mkdir()
    environment = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path),
                   "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}
    subprocess.run(["git", "-c", "core.fsmonitor=", "init", "-q", str(repo)], check=True,
                   env=environment)
    files = ["a.keras", "b c.keras", "star*.keras", "starx.keras", "keep.h5", "drop.h5",
             "anchored.keras", "sub/anchored.keras", "deep/x/y/model.h5", "deep/model.h5",
             "build/out.keras", "notbuild.keras/inner.keras", "a.keras.bak",
             "m1.keras", "m2.keras", "m9.keras", "nested/local.keras", "nested/other.keras",
             "nested/inner/again.keras", "info/excluded.keras", "#hash.keras",
             "trailing.keras", "!bang.keras"]
    for name in files:
        path = repo / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
    (repo / ".gitignore").write_text(
        "b\\ c.keras\nstar\\*.keras\n*.h5\n!keep.h5\n/anchored.keras\n**/x/**/*.h5\n"
        "build/\nm[12].keras\nnested/**/again.keras\n\\#hash.keras\ntrailing.keras   \n"
        "\\!bang.keras\n")
    (repo / "nested" / ".gitignore").write_text("local.keras\n")
    (repo / ".git" / "info").mkdir(exist_ok=True)
    (repo / ".git" / "info" / "exclude").write_text("info/\n")
    listed = subprocess.run(["git", "-c", "core.fsmonitor=", "-C", str(repo), "ls-files",
                             "--others", "--exclude-standard"], check=True,
                            capture_output=True, text=True, env=environment).stdout
    expected = {line for line in listed.splitlines()
                if line.lower().endswith(MODEL_SUFFIXES)
                and not line.lower().endswith(WEIGHTS_ONLY_SUFFIXES)}
    found = discover([str(repo)], exclude=[".git"], root=str(repo))
    got = {os.path.relpath(path, repo).replace(os.sep, "/") for path in found.found}
    assert got == expected
    assert "b c.keras" not in got and "starx.keras" in got and "keep.h5" in got


def test_a_directory_git_ignores_is_searched_when_named(tmp_path):
    """`gradlint checkpoints/` where .gitignore has `checkpoints/` lints what is there (as a
    file named on the command line would be), with a note; found below a searched
    directory, it is skipped as git skips it."""
    from gradlint.discovery import discover

    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    (repo / "checkpoints").mkdir()
    (repo / "checkpoints" / "best.keras").write_bytes(b"")
    (repo / ".gitignore").write_text("checkpoints/\n")
    named = discover([str(repo / "checkpoints")], exclude=[], root=str(repo))
    assert named.found == [str(repo / "checkpoints" / "best.keras")]
    assert any("git ignores this directory" in note for note in named.skipped)
    assert discover([str(repo)], exclude=[], root=str(repo)).found == []
