"""GL001 unreadable-model: a truncated archive is reported with an error, not a traceback, and
the readable file beside it is still linted."""

from __future__ import annotations

from pathlib import Path

import gradlint

from conftest import keras3

PREFIX = Path(__file__).stem


def small_model():
    keras = keras3()
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, name="output")])


def test_truncated_archive_is_gl001(save_model, tmp_path):
    good = save_model(f"{PREFIX}-small", small_model)
    broken = tmp_path / "broken.keras"
    data = good.read_bytes()
    broken.write_bytes(data[:len(data) // 2])

    report = gradlint.lint([broken, good])
    by_path = {Path(result.path).name: result for result in report.files}
    result = by_path["broken.keras"]
    assert result.error is not None and result.error["code"] == "GL001"
    assert [(f.code, f.severity) for f in result.findings] == [("GL001", "error")]
    assert result.findings[0].message == result.error["message"]
    assert by_path[good.name].error is None
    assert report.exit_code() == 2
    assert report.to_dict()["summary"]["files_unreadable"] == 1
