"""Finding the model files to lint: files named on the command line, and below directories
`*.keras`, `*.h5`, `*.hdf5`, the `*.json` files that look like `model.to_json()` (their
first bytes name a "class_name" and a "config") and SavedModel directories (those with a
`keras_metadata.pb`, not searched further), minus excluded globs and what `.gitignore`
files ignore. As in ruff, a file named on the command line is always read."""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field
from functools import lru_cache

MODEL_SUFFIXES = (".keras", ".h5", ".hdf5")
JSON_SUFFIX = ".json"
WEIGHTS_ONLY_SUFFIXES = (".weights.h5", ".weights.hdf5")
SAVED_MODEL_METADATA = "keras_metadata.pb"
SAVED_MODEL_GRAPH = "saved_model.pb"


@dataclass
class Discovery:
    """What to lint: `explicit` files were named by the user; `found` ones were searched for,
    so a found file that turns out not to be a model is skipped with a note."""

    explicit: list[str] = field(default_factory=list)
    found: list[str] = field(default_factory=list)
    searched_in: dict[str, str] = field(default_factory=dict)  # found file -> its directory
    skipped: list[str] = field(default_factory=list)
    missing: list[tuple[str, str]] = field(default_factory=list)
    without_models: list[str] = field(default_factory=list)  # searched, nothing found

    @property
    def files(self) -> list[str]:
        return self.explicit + self.found


@lru_cache(maxsize=512)
def glob_to_regex(pattern: str) -> re.Pattern:
    """A glob with `**` (any number of directories), `*`, `?` and `[...]`, as a regex over
    '/'-separated paths."""
    result = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if pattern.startswith("**/", index):
            result.append("(?:.*/)?")
            index += 3
            continue
        if pattern.startswith("**", index):
            result.append(".*")
            index += 2
            continue
        if char == "*":
            result.append("[^/]*")
        elif char == "?":
            result.append("[^/]")
        elif char == "[":
            end = pattern.find("]", index + 1)
            if end == -1:
                result.append(re.escape(char))
            else:
                body = pattern[index + 1:end].replace("\\", "\\\\")
                if body.startswith("!"):
                    body = "^" + body[1:]
                result.append(f"[{body}]")
                index = end
        else:
            result.append(re.escape(char))
        index += 1
    return re.compile("".join(result) + r"\Z")


def glob_matches(pattern: str, path: str, root: str | None = None) -> bool:
    """Whether `path` matches `pattern`: against the path relative to `root`, the path as
    given, or (for patterns without a '/') any single component."""
    normalized = path.replace(os.sep, "/")
    candidates = [normalized]
    if root is not None:
        try:
            relative = os.path.relpath(os.path.abspath(path), root).replace(os.sep, "/")
            candidates.append(relative)
        except ValueError:
            pass
    regex = glob_to_regex(pattern.rstrip("/"))
    if any(regex.match(candidate) for candidate in candidates):
        return True
    if "/" not in pattern.rstrip("/"):
        return any(regex.match(part) for part in normalized.split("/") if part)
    return False


GITIGNORE_LIMIT = 1 << 20  # a bigger ignore file is not read: it is no list of patterns


def _ignore_lines(path: str) -> list[str] | None:
    """The lines of an ignore file, or None where there is none (only a regular file, read
    as git does: bytes, up to `GITIGNORE_LIMIT`)."""
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode) or info.st_size > GITIGNORE_LIMIT:
            return None
        with open(path, "rb") as handle:
            return handle.read().decode("utf-8", "surrogateescape").splitlines()
    except OSError:
        return None


class GitIgnore:
    """What git ignores below a repository: `.git/info/exclude`, then each `.gitignore` from
    the repository root down to a path's directory, the last matching pattern winning, as in
    git. The patterns are git's own syntax, matched by `pathspec`'s implementation of it
    (escapes, negation, directory-only and anchored patterns, `**`), imported only when a
    repository has an ignore file."""

    def __init__(self, start: str):
        self._specs: dict[str, object | None] = {}
        directory = os.path.abspath(start)
        self._root = directory
        while True:
            if os.path.exists(os.path.join(directory, ".git")):
                self._root = directory
                break
            parent = os.path.dirname(directory)
            if parent == directory:
                break
            directory = parent

    def _spec(self, path: str):
        if path not in self._specs:
            lines = _ignore_lines(path)
            if lines is None:
                self._specs[path] = None
            else:
                import pathspec

                self._specs[path] = pathspec.GitIgnoreSpec.from_lines(lines)
        return self._specs[path]

    def ignored(self, path: str, is_directory: bool) -> bool:
        absolute = os.path.abspath(path)
        if not absolute.startswith(self._root + os.sep):
            return False
        levels = [(self._root, os.path.join(self._root, ".git", "info", "exclude"))]
        directory = self._root
        for part in os.path.relpath(os.path.dirname(absolute), self._root).split(os.sep):
            if part not in ("", "."):
                levels.append((directory, os.path.join(directory, ".gitignore")))
                directory = os.path.join(directory, part)
        levels.append((directory, os.path.join(directory, ".gitignore")))
        result = False
        for base, ignore_file in levels:
            spec = self._spec(ignore_file)
            if spec is None:
                continue
            relative = os.path.relpath(absolute, base).replace(os.sep, "/")
            verdict = spec.check_file(relative + "/" if is_directory else relative).include
            if verdict is not None:
                result = verdict
        return result


def is_excluded(path: str, patterns: list[str], root: str) -> bool:
    return any(glob_matches(pattern, path, root) for pattern in patterns)


def _not_a_tree_file(path: str, tree: str) -> str | None:
    """Why a file found in a directory search is not read, or None: only regular files are,
    and (as git does) a symbolic link is not followed out of the searched tree."""
    try:
        info = os.lstat(path)
        if stat.S_ISLNK(info.st_mode):
            target = os.path.realpath(path)
            if os.path.commonpath([tree, target]) != tree:
                return "a symbolic link to outside the searched directory"
            info = os.stat(path)
    except (OSError, ValueError):
        return "a broken symbolic link"
    if not stat.S_ISREG(info.st_mode):
        from gradlint.readers import special_file_kind

        return f"{special_file_kind(info.st_mode)}, not a regular file"
    return None


def _is_keras_json(path: str) -> bool:
    """Whether a `.json` file found in a search opens like `model.to_json()` (only its first
    few kilobytes are read; a regular file only, checked by the caller)."""
    from gradlint.readers.json_architecture import SNIFF_BYTES, looks_like_keras_json

    try:
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(descriptor, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                return False
            head = handle.read(SNIFF_BYTES)
    except OSError:
        return False
    return looks_like_keras_json(head)


def discover(paths: list[str], *, exclude: list[str], root: str,
             respect_gitignore: bool = True) -> Discovery:
    result = Discovery()
    for path in paths:
        try:
            mode = os.stat(path).st_mode
        except OSError as error:
            result.missing.append((path, (error.strerror or "cannot be read").lower()))
            continue
        if not stat.S_ISDIR(mode):
            result.explicit.append(path)  # the reader says what a FIFO or a device is
            continue
        if os.path.exists(os.path.join(path, SAVED_MODEL_GRAPH)) or \
                os.path.exists(os.path.join(path, SAVED_MODEL_METADATA)):
            result.explicit.append(path)  # a SavedModel: the directory is the model
            continue
        gitignore = GitIgnore(path) if respect_gitignore else None
        if gitignore is not None and gitignore.ignored(path, True):
            # Named on the command line, a directory git ignores (a local checkpoints/, say)
            # is searched as it is, as a file named there would be linted.
            result.skipped.append(f"{path}: git ignores this directory; searched without "
                                  "the ignore files, since it was named")
            gitignore = None
        tree = os.path.realpath(path)
        found_here = []
        for directory, subdirectories, files in os.walk(path):
            subdirectories[:] = sorted(
                name for name in subdirectories
                if not is_excluded(os.path.join(directory, name), exclude, root)
                and not (gitignore and gitignore.ignored(os.path.join(directory, name), True)))
            if directory != path and (SAVED_MODEL_METADATA in files
                                      or SAVED_MODEL_GRAPH in files):
                # A SavedModel: the directory is one model, and nothing inside it is another.
                subdirectories[:] = []
                if SAVED_MODEL_METADATA not in files:
                    result.skipped.append(f"{directory}: a TensorFlow SavedModel without "
                                          f"{SAVED_MODEL_METADATA} (no Keras configuration), "
                                          "skipped")
                    continue
                refused = _not_a_tree_file(os.path.join(directory, SAVED_MODEL_METADATA), tree)
                if refused:
                    result.skipped.append(f"{directory}: its {SAVED_MODEL_METADATA} is "
                                          f"{refused}, skipped")
                    continue
                found_here.append(directory)
                continue
            for name in sorted(files):
                full = os.path.join(directory, name)
                is_json = name.lower().endswith(JSON_SUFFIX)
                if not is_json and not name.lower().endswith(MODEL_SUFFIXES):
                    continue
                if is_excluded(full, exclude, root) or (gitignore and gitignore.ignored(full, False)):
                    continue
                if name.lower().endswith(WEIGHTS_ONLY_SUFFIXES):
                    result.skipped.append(f"{full}: weights-only file skipped")
                    continue
                refused = _not_a_tree_file(full, tree)
                if refused:
                    if not is_json:  # any other JSON file is no model: no note
                        result.skipped.append(f"{full}: {refused}, skipped")
                    continue
                if is_json and not _is_keras_json(full):
                    continue
                found_here.append(full)
        if not found_here:
            result.without_models.append(path)
        result.found.extend(found_here)
        result.searched_in.update((file, path) for file in found_here)
    return result
