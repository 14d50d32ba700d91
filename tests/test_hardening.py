"""Regression tests for each class of hostile file the fuzz campaign found, each built from a
real saved model and one mutation: GL001 with a message that says what is wrong, exit 2,
nothing read outside the input (Linux inotify watches the canary files HDF5 would open from
C), no hang, and every good file on the same command line still linted.
"""

from __future__ import annotations

import json
import os
import socket
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

from conftest import keras2, keras3, run_gradlint
from fuzz_inputs import CanaryWatch, InotifyUnavailable

PREFIX = "test_hardening"


def build_dense():
    keras = keras3()
    return keras.Sequential([keras.Input((6,)), keras.layers.Dense(5, name="hidden"),
                             keras.layers.Dense(1, name="out")], name="dense_model")


def build_dense_h5():
    keras = keras2()
    return keras.Sequential([keras.layers.Dense(5, input_shape=(6,), name="hidden"),
                             keras.layers.Dense(1, name="out")], name="dense_h5")


@pytest.fixture(scope="module")
def good(save_model):
    return save_model(f"{PREFIX}-dense", build_dense)


@pytest.fixture(scope="module")
def good_h5(save_model):
    return save_model(f"{PREFIX}-dense", build_dense_h5, "h5")


@pytest.fixture
def canaries(tmp_path):
    directory = tmp_path / "canaries"
    directory.mkdir()
    (directory / "secret.h5").write_bytes(b"\0" * 4096)
    with h5py.File(directory / "linked.h5", "w") as handle:
        handle["x"] = np.ones((6, 5), "float32")
    try:
        watch = CanaryWatch(str(directory))
    except InotifyUnavailable as error:
        pytest.skip(f"Linux inotify is needed to see reads from C: {error}")
    assert watch.self_check(), "the inotify watch does not see reads: the check could not fail"
    watch.drain()
    yield directory, watch
    watch.close()


def _lint(*paths, extra=()):
    isolated = () if "--config" in extra else ("--isolated",)
    completed = run_gradlint(*isolated, "--output-format", "json", "--timeout", "60",
                             *extra, *paths)
    assert "Traceback" not in completed.stderr, completed.stderr
    return completed, {entry["path"]: entry for entry in json.loads(completed.stdout)["files"]}


def _refused(path, good, fragment, extra=()):
    completed, files = _lint(path, good, extra=extra)
    assert completed.returncode == 2
    entry = files[str(path)]
    assert entry["error"]["code"] == "GL001", entry
    assert fragment in entry["error"]["message"], entry["error"]["message"]
    assert files[str(good)]["error"] is None and files[str(good)]["model"] is not None
    return entry["error"]["message"]


def _members(path):
    with zipfile.ZipFile(path) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist()}


def _archive(path, members, compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def _with_weights(good, path, edit):
    """A copy of the archive `good` whose model.weights.h5 `edit(handle)` changed."""
    members = _members(good)
    weights = path.with_suffix(".weights-member.h5")
    weights.write_bytes(members["model.weights.h5"])
    with h5py.File(weights, "a") as handle:
        edit(handle)
    members["model.weights.h5"] = weights.read_bytes()
    return _archive(path, members)


def _kernel_path(handle):
    found = []
    handle.visititems(lambda name, item: found.append(name)
                      if isinstance(item, h5py.Dataset) and item.ndim == 2 else None)
    return found[0]


# Reads outside the input.

def test_external_link_in_an_archive(good, tmp_path, canaries):
    directory, watch = canaries

    def edit(handle):
        handle["layers/evil"] = h5py.ExternalLink(str(directory / "linked.h5"), "/x")

    path = _with_weights(good, tmp_path / "link.keras", edit)
    _refused(path, good, "'layers/evil' is an external link")
    assert watch.drain() == []


def test_external_link_in_a_legacy_file(good_h5, good, tmp_path, canaries):
    directory, watch = canaries
    path = tmp_path / "link.h5"
    path.write_bytes(good_h5.read_bytes())
    with h5py.File(path, "a") as handle:
        kernel = _kernel_path(handle["model_weights"])
        del handle["model_weights"][kernel]
        handle["model_weights"][kernel] = h5py.ExternalLink(str(directory / "linked.h5"), "/x")
    _refused(path, good, "an external link")
    assert watch.drain() == []


@pytest.mark.parametrize("target", ["canary", "/dev/zero"])
def test_external_raw_storage(good, tmp_path, canaries, target):
    directory, watch = canaries
    source = str(directory / "secret.h5") if target == "canary" else "/dev/zero"

    def edit(handle):
        kernel = _kernel_path(handle)
        shape = handle[kernel].shape
        del handle[kernel]
        handle.create_dataset(kernel, shape=shape, dtype="float32",
                              external=[(source, 0, 4 * int(np.prod(shape)))])

    path = _with_weights(good, tmp_path / "external.keras", edit)
    _refused(path, good, "keeps its values in an external file")
    assert watch.drain() == []


def test_virtual_dataset(good, tmp_path, canaries):
    directory, watch = canaries

    def edit(handle):
        kernel = _kernel_path(handle)
        shape = handle[kernel].shape
        del handle[kernel]
        layout = h5py.VirtualLayout(shape=shape, dtype="float32")
        layout[:] = h5py.VirtualSource(str(directory / "linked.h5"), "x", shape=shape)
        handle.create_virtual_dataset(kernel, layout)

    path = _with_weights(good, tmp_path / "virtual.keras", edit)
    _refused(path, good, "is a virtual dataset")
    assert watch.drain() == []


@pytest.mark.parametrize("link", ["soft", "cycle"])
def test_soft_links_and_cycles_in_the_weights(good, tmp_path, link):
    def edit(handle):
        if link == "soft":
            handle["layers/elsewhere"] = h5py.SoftLink("/layers")
        else:
            handle["layers/dense/vars/loop"] = handle["layers/dense"]

    path = _with_weights(good, tmp_path / f"{link}.keras", edit)
    _refused(path, good, "is a soft link" if link == "soft" else "is linked again as")


# Files that are not what their name says.

def test_polyglot_zip_and_hdf5(good, good_h5, tmp_path):
    path = tmp_path / "polyglot.h5"
    with h5py.File(good_h5, "r") as source, h5py.File(path, "w", userblock_size=512) as copy:
        for key, value in source.attrs.items():
            copy.attrs[key] = value
    head = tmp_path / "head.zip"
    _archive(head, {"config.json": b"{}"})
    data = bytearray(path.read_bytes())
    data[:head.stat().st_size] = head.read_bytes()
    path.write_bytes(bytes(data))
    _refused(path, good, "both a zip archive and an HDF5 file")


def test_polyglot_with_a_zip_appended_to_hdf5(good, good_h5, tmp_path):
    """Python's zipfile (and so Keras) finds a zip by its end record: one appended to an
    HDF5 file makes it both."""
    path = tmp_path / "appended.h5"
    head = tmp_path / "tail.zip"
    _archive(head, {"config.json": b"{}"})
    path.write_bytes(good_h5.read_bytes() + head.read_bytes())
    _refused(path, good, "both a zip archive and an HDF5 file (its HDF5 data starts at byte 0)")


def test_archive_whose_weights_happen_to_start_at_a_user_block_offset(good, tmp_path):
    """HDF5 looks for its signature at 512, 1024, 2048, ...: a .keras archive whose stored
    weights member begins exactly there is still an archive, not a polyglot."""
    members = _members(good)
    order = ["metadata.json", "config.json", "model.weights.h5"]
    before = sum(30 + len(name) + len(members[name]) for name in order[:2]) + 30 + \
        len(order[2])
    target = 1 << max(12, before.bit_length())
    members["config.json"] += b" " * (target - before)
    path = tmp_path / "aligned.keras"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for name in order:
            archive.writestr(zipfile.ZipInfo(name, (2020, 1, 1, 0, 0, 0)), members[name])
    assert path.read_bytes()[target:target + 8] == b"\x89HDF\r\n\x1a\n"
    completed, files = _lint(path)
    assert completed.returncode == 0, files
    assert files[str(path)]["error"] is None


def test_extension_that_names_the_other_format(good, good_h5, tmp_path):
    path = tmp_path / "legacy.keras"
    path.write_bytes(good_h5.read_bytes())
    _refused(path, good, "the name ends in .keras but the file is an HDF5 file")
    completed, files = _lint(path, extra=("--allow-ambiguous-format",))
    assert completed.returncode == 0 and files[str(path)]["error"] is None


@pytest.mark.parametrize("name", ["model.keras", "model.h5"])
def test_git_lfs_pointer(good, tmp_path, name):
    """Named or found in a directory, a pointer is a model nobody checked: GL001."""
    folder = tmp_path / "repository"
    folder.mkdir()
    path = folder / name
    path.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 12\n")
    _refused(path, good, "a Git LFS pointer, not the model itself: run `git lfs pull`")
    completed, files = _lint(folder)
    assert completed.returncode == 2
    assert "run `git lfs pull`" in files[str(path)]["error"]["message"]


# Special files: nothing may block or read without end.

@pytest.mark.parametrize("kind", ["fifo", "socket", "device"])
def test_special_files_named_explicitly(good, tmp_path, kind):
    path = tmp_path / "model.keras"
    if kind == "fifo":
        os.mkfifo(path)
        fragment = "a FIFO (named pipe), not a regular file"
    elif kind == "socket":
        server = socket.socket(socket.AF_UNIX)
        server.bind(str(path))
        fragment = "a socket, not a regular file"
    else:
        path = tmp_path / "zero.h5"
        path.symlink_to("/dev/zero")
        fragment = "a character device, not a regular file"
    _refused(path, good, fragment)


def test_special_files_and_outward_links_in_a_searched_directory(good, tmp_path):
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "good.keras").write_bytes(good.read_bytes())
    os.mkfifo(tree / "fifo.keras")
    (tree / "zero.h5").symlink_to("/dev/zero")
    (tree / "outside.keras").symlink_to(good)
    (tree / "inside.keras").symlink_to(tree / "good.keras")
    completed = run_gradlint("--isolated", "--timeout", "60", tree)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert f"note: {tree / 'fifo.keras'}: a FIFO (named pipe), not a regular file, skipped" \
        in completed.stdout
    assert f"{tree / 'zero.h5'}: a symbolic link to outside the searched directory, skipped" \
        in completed.stdout
    assert f"{tree / 'outside.keras'}: a symbolic link to outside" in completed.stdout
    assert "in 2 models" in completed.stdout  # good.keras and the link inside the tree


# Declared sizes against what the file holds.

def test_chunked_dataset_with_no_stored_data(good, tmp_path):
    def edit(handle):
        handle.create_dataset("layers/dense/vars/9", shape=(10 ** 10,), chunks=(4096,),
                              dtype="float32")

    path = _with_weights(good, tmp_path / "unwritten.keras", edit)
    _refused(path, good, "declares 38147.0 MB of values but stores 0.00 MB")


def test_compressed_kernel_of_a_hundred_million_values(good, tmp_path):
    def edit(handle):
        kernel = _kernel_path(handle)
        del handle[kernel]
        handle.create_dataset(kernel, shape=(1, 10 ** 8), chunks=(1, 1 << 20),
                              dtype="float32", compression="gzip", fillvalue=0.0)
        handle[kernel][0, :1 << 20] = 1.0  # one chunk written; the rest inflates from nothing

    path = _with_weights(good, tmp_path / "long-row.keras", edit)
    assert path.stat().st_size < 2 << 20
    _refused(path, good, "declares 381.5 MB of values")


def test_deflate_bomb_weights_member(good, tmp_path):
    members = _members(good)
    members["model.weights.h5"] = b"\0" * (600 << 20)
    path = _archive(tmp_path / "bomb.keras", members, zipfile.ZIP_DEFLATED)
    assert path.stat().st_size < 1 << 20
    _refused(path, good, "a decompression bomb")


def test_config_over_the_size_limit(good, tmp_path):
    members = _members(good)
    members["config.json"] = b" " * (2 << 20) + members["config.json"]
    path = _archive(tmp_path / "spaces.keras", members, zipfile.ZIP_DEFLATED)
    config = tmp_path / "gradlint.toml"
    config.write_text("[limits]\nmax-config-mb = 1\n")
    _refused(path, good, "config.json inside the archive is 2 MB, over the 1 MB limit",
             extra=("--config", str(config)))


def test_deeply_nested_config(good, tmp_path):
    members = _members(good)
    members["config.json"] = b"[" * 100_000 + b"]" * 100_000
    path = _archive(tmp_path / "nested.keras", members)
    _refused(path, good, "nests too deeply")


def test_corrupted_variable_length_model_config(good, good_h5, tmp_path):
    import struct

    path = tmp_path / "corrupted.h5"
    with h5py.File(good_h5, "r") as source, h5py.File(path, "w") as copy:
        copy.attrs["model_config"] = source.attrs["model_config"]  # a variable-length string
        copy.create_group("model_weights")
    data = bytearray(path.read_bytes())
    heap = data.find(b"GCOL")
    assert heap > 0
    data[heap + 24:heap + 32] = struct.pack("<Q", 1 << 62)  # the stored string's length
    path.write_bytes(bytes(data))
    _refused(path, good, "the HDF5 file is corrupted")


def test_a_group_where_the_weights_layout_expects_a_dataset(good, tmp_path):
    def edit(handle):
        kernel = _kernel_path(handle)
        del handle[kernel]
        handle.create_group(kernel)

    path = _with_weights(good, tmp_path / "group.keras", edit)
    completed, files = _lint(path, good)
    assert files[str(path)]["error"] is None or \
        "internal error" not in files[str(path)]["error"]["message"]


def test_every_bad_file_in_one_mixed_run(good, good_h5, tmp_path):
    """All of the above at once, with the good files between them, in parallel: exit 2, and
    every good file reported."""
    bad = []
    os.mkfifo(tmp_path / "fifo.keras")
    bad.append(tmp_path / "fifo.keras")
    members = _members(good)
    members["model.weights.h5"] = b"\0" * (200 << 20)
    bad.append(_archive(tmp_path / "bomb.keras", members, zipfile.ZIP_DEFLATED))
    renamed = tmp_path / "renamed.h5"
    renamed.write_bytes(good.read_bytes())
    bad.append(renamed)
    (tmp_path / "empty.keras").write_bytes(b"")
    bad.append(tmp_path / "empty.keras")
    paths = [good, *bad[:2], good_h5, *bad[2:]]
    completed, files = _lint(*paths, extra=("-j", "2"))
    assert completed.returncode == 2
    assert set(files) == {str(path) for path in paths}
    for path in bad:
        assert files[str(path)]["error"]["code"] == "GL001"
    for path in (good, good_h5):
        assert files[str(path)]["error"] is None and files[str(path)]["model"] is not None


def test_list_form_sequential_config_inside_an_archive(good, tmp_path):
    """Keras 2.2.0-2.2.2 stored a Sequential's configuration as a bare list of layers; in an
    archive with weights that must read, not fail inside the weights reader."""
    members = _members(good)
    config = json.loads(members["config.json"])
    config["config"] = config["config"]["layers"]
    members["config.json"] = json.dumps(config).encode()
    path = _archive(tmp_path / "list-form.keras", members)
    completed, files = _lint(path)
    error = files[str(path)]["error"]
    assert error is None or "internal error" not in error["message"], error
