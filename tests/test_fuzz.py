"""Fuzz: 2,000 hostile inputs (tests/fuzz_inputs.py: real saved models with one mutation,
and structural attacks), run through the real command line in batches of 50, each batch with
two known-good models:

    python -m gradlint --output-format json --timeout 10 -j 2 --isolated -- FILE...

For every batch: no escaped exception (exit status 0, 1 or 2, no "Traceback" on standard
error, standard output is the JSON report, every input is in its ``files``, or, for a
searched directory whose special file was skipped, in its ``warnings``), exit status 2 when
a file is unreadable, the good files still linted, what each input must give (GL001 for a
polyglot, a truncated file or a special file named explicitly; a lint for a real model under
a hostile name; anything but a lint for a directory holding only a special file), no hang
(no GL001 "time limit" message, no run killed at its timeout, no process left behind) and no
open or read of a canary (the files that the inputs' external links, external storage,
virtual datasets and symlinks point at), watched with inotify. A failed batch is bisected
to the inputs that fail on their own.

Run it alone (``pytest tests/test_fuzz.py``, or with ``-n 1``): each batch's gradlint uses
both cores itself. About a minute and a half on 2 cores, plus the base models' build.

Deterministic: seed `SEED`; input N of the campaign is the same input in bench/fuzz.py, which
reproduces one with ``python bench/fuzz.py --seed SEED --index N --base DIR`` (each failure
prints that command, with this session's base-model directory).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from fuzz_inputs import (BASE_MODELS, GOOD_MODELS, CanaryWatch, Fuzzer, InotifyUnavailable,
                         Runner, base_file_name, build_base_model, normalize_base_model,
                         timeout_supported)

SEED = 20260611
COUNT = 2000
BATCH = 50
BATCHES = range(COUNT // BATCH)


@pytest.fixture(scope="module")
def fuzz_base(save_model) -> str:
    """The base models, built once per session by Keras 3 and tf-keras."""
    directory = None
    for name, format in BASE_MODELS:
        path = save_model(name, lambda name=name, format=format: build_base_model(name, format),
                          format)
        assert path.name == base_file_name(name, format)
        normalize_base_model(str(path))
        directory = str(path.parent)
    return directory


@pytest.fixture(scope="module")
def fuzz_root(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


@pytest.fixture(scope="module")
def watch(fuzz_root):
    canaries = fuzz_root / "canaries"
    canaries.mkdir()
    try:
        watch = CanaryWatch(str(canaries))
    except InotifyUnavailable as error:
        pytest.skip(f"Linux inotify is unavailable ({error}), so reads outside the inputs "
                    "cannot be watched")
    yield watch
    watch.close()


class Corpus:
    """The campaign's inputs, made batch by batch on first use (each once per module)."""

    def __init__(self, root, base_dir: str, canary_dir: str):
        self.inputs = str(root / "inputs")
        self.base_dir = base_dir
        self.fuzzer = Fuzzer(base_dir, canary_dir, scratch_dir=str(root / "shared"))
        self.batches: dict[int, list] = {}

    def batch(self, number: int) -> list:
        if number not in self.batches:
            self.batches[number] = [self.fuzzer.make(SEED, index, self.inputs)
                                    for index in range(number * BATCH, (number + 1) * BATCH)]
        return self.batches[number]

    def reproduce(self, item) -> str:
        return (f"python bench/fuzz.py --seed {item.seed} --index {item.index} "
                f"--base {self.base_dir}")


@pytest.fixture(scope="module")
def corpus(fuzz_root, fuzz_base, watch):
    return Corpus(fuzz_root, fuzz_base, watch.root)


@pytest.fixture(scope="module")
def runner(fuzz_root, fuzz_base, watch):
    goods = [os.path.join(fuzz_base, base_file_name(*key)) for key in GOOD_MODELS]
    # A failed batch is bisected to its culprits, within limits, so that a broken gradlint
    # fails this module in minutes, not hours (bench/fuzz.py --index isolates the rest).
    return Runner(goods, watch, isolate_timeout=30, isolate_budget=60,
                  total_isolate_budget=300, cwd=str(fuzz_root))


def test_the_canary_watch_sees_a_read(watch):
    """The watch is not vacuous: a canary opened and read here is reported."""
    assert watch.self_check()


def test_the_canary_watch_sees_hdf5_follow_an_external_link(watch, tmp_path):
    """HDF5 opens an external link's file from C, in another process: the watch sees that
    too (what the fuzz batches rely on; Python's audit hooks would not)."""
    import h5py

    canary = os.path.join(watch.root, "self-check-link.h5")
    with h5py.File(canary, "w") as handle:
        handle["kernel"] = [1.0, 2.0, 3.0]
    linking = tmp_path / "linking.h5"
    with h5py.File(linking, "w") as handle:
        handle["kernel"] = h5py.ExternalLink(canary, "/kernel")
    watch.drain()
    subprocess.run([sys.executable, "-c", "import h5py, sys; "
                    "print(h5py.File(sys.argv[1], 'r')['kernel'][()])", str(linking)],
                   check=True, capture_output=True, timeout=120)
    assert any(path == canary for path, _ in watch.drain())


def test_the_command_line_has_a_per_file_time_limit():
    """`--timeout SECONDS`: the fuzz batches run with it, so that a hang is one file's GL001
    "time limit" and not a killed batch (without it they run, and hang, unlimited)."""
    assert timeout_supported(), "`gradlint check --help` lists no --timeout option"


@pytest.mark.parametrize("number", BATCHES,
                         ids=[f"inputs{n * BATCH}-{(n + 1) * BATCH - 1}" for n in BATCHES])
def test_fuzz_batch(number, corpus, watch, runner):
    items = corpus.batch(number)
    watch.add_tree()  # directories that this batch's canaries added
    assert watch.self_check(), "the canary watch no longer sees reads"
    failures = runner.check(items)
    assert not failures, (
        f"{len(failures)} failure(s) in inputs {items[0].index}-{items[-1].index} "
        f"(seed {SEED}; --timeout {'on' if runner.timeout_option else 'unsupported, off'}):\n"
        + "\n".join(failure.describe(corpus.reproduce) for failure in failures))
