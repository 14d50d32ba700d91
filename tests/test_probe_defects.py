"""The probe is the reference the estimate is judged by, so each way it measured the wrong
thing has a test here, on a real model saved to a real file:

- BatchNormalization in training mode runs at the settings' `batch-size`, not at a batch of
  4 whose statistics made a healthy tanh+BatchNorm stack "explode";
- an all-zero gradient (0/0) is no gradient, never an explosion;
- a Keras 2 `Sequential` without an `InputLayer` is measured on the shape it declares (Keras 3
  invents a time axis for it; tf-keras reads it as written), and never on another;
- an input that reaches an `Embedding` gets token ids, whatever its declared dtype;
- a model on a dict of inputs gets a dict;
- a model without a trainable weight gets a note that nothing was measured, not a healthy
  verdict;
- `measured.forward_scale` is an RMS, as `estimate.forward_scale` is.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import pytest

import gradlint
from gradlint.config import Settings

import probe_models as models
from legacy_files import derive_legacy_h5, read_root_attributes

PREFIX = Path(__file__).stem


@pytest.fixture(scope="module")
def saved(save_model):
    def get(name: str, format: str = "keras") -> Path:
        return save_model(f"{PREFIX}-{name}", getattr(models, name), format)

    return get


@pytest.fixture(scope="module")
def keras22_sequential(saved, model_dir):
    """The tf-keras `Dense(8, input_dim=4)` stack rewritten as Keras 2.2.4 wrote it: the first
    Dense carries `batch_input_shape` and there is no InputLayer."""
    target = model_dir / f"{PREFIX}-keras22-sequential.h5"
    if not target.exists():
        derive_legacy_h5(saved("tf_keras_dense", "h5"), target)
    return target


def probe(path, settings: Settings | None = None, **options):
    report = gradlint.lint(str(path), probe=True, settings=settings, **options)
    (result,) = report.files
    assert result.error is None, result.error
    assert result.probe is not None and result.probe["ran"] is True, result.probe
    return report, result


def codes(result) -> dict:
    return {finding.code: finding for finding in result.findings}


def first_last_ratio(result) -> float:
    """The measured kernel-gradient ratio of the first weighted layer to the reference."""
    first = next(layer for layer in result.layers
                 if layer["weighted"] and (layer.get("measured") or {}).get("kernel_gradient"))
    return first["measured"]["kernel_gradient"]


def measured(result) -> dict:
    return {layer["path"]: layer["measured"] for layer in result.layers}


# -- 1. BatchNormalization in training mode: the batch of the settings ----------------------

def test_batchnorm_model_is_measured_at_the_settings_batch_size(saved):
    path = saved("tanh_batchnorm")
    _, result = probe(path)
    assert result.probe["batch"] == Settings().batch_size == 32
    assert result.probe["batch_statistics"] is True
    assert result.probe["input_shapes"] == [[32, 64]]
    assert "GL902" not in codes(result), codes(result)["GL902"].message
    # The estimate moves by less than 10x along the route, so no depth finding either.
    assert "GL301" not in codes(result)
    assert first_last_ratio(result) < 30

    # At 4 samples the batch statistics fake an explosion (the defect); --probe-batch is
    # used as given. (GL902 no longer judges layers whose output is normalized.)
    _, result = probe(path, Settings(probe_batch=4))
    assert result.probe["batch"] == 4
    assert first_last_ratio(result) > 300
    assert "GL902" not in codes(result)


def test_tf_keras_batchnorm_counts_and_other_models_keep_the_cost_plan(saved):
    _, result = probe(saved("tf_keras_batchnorm", "h5"), Settings(batch_size=16))
    assert result.probe["loader"] == "keras"
    # The setting decides the batch.
    assert (result.probe["batch"], result.probe["batch_statistics"]) == (16, True)
    _, result = probe(saved("shallow_relu"))
    assert (result.probe["seeds"], result.probe["batch"]) == (3, 4)
    assert result.probe["batch_statistics"] is False


def test_the_cost_plan_cuts_seeds_but_never_the_batch_of_batch_statistics():
    from gradlint.probe.plan import plan

    assert plan(1e5, batch_statistics=32) == (3, 32)
    assert plan(3.9e9, batch_statistics=32) == (1, 32)  # ResNet50 at 224x224
    assert plan(3.9e9, batch=2, batch_statistics=32) == (1, 2)
    assert plan(3.9e9) == (1, 2)


# -- 2. An all-zero gradient is no gradient, not an explosion --------------------------------

def _measurements(path):
    """The probe's measurements of a file, as the engine's measurement stage receives them."""
    from gradlint.engine import lint_file
    from gradlint.probe.hook import measure_file

    settings = Settings(probe=True)
    result, analysis = lint_file(str(path), settings, keep_analysis=True)
    assert result.error is None and analysis is not None
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return measure_file(str(path), analysis, settings, digest)


def test_all_zero_gradient_is_reported_as_vanishing_not_exploding(saved):
    path = saved("dead_relu")
    # The probe's own rules only: a confirmed static finding (GL103, the dead biases) would
    # take GL901 in.
    _, result = probe(path, select=["GL9"])
    found = codes(result)
    assert "GL902" not in found, found["GL902"].message
    finding = found["GL901"]
    assert finding.severity == "error"
    assert "no gradient" in finding.message and "nan" not in finding.message
    assert finding.evidence["first_norm"] == finding.evidence["last_norm"] == 0.0

    from gradlint.findings import Finding
    from gradlint import verdicts

    measurements = _measurements(path)
    assert measurements.gradient_absent() and measurements.first_last_ratio() is None
    claim = Finding(code="GL203", name="exploding-initialization", severity="error",
                    message="", layer="hidden_1", layers=["hidden_1"])
    exploding = verdicts.exploding(claim, measurements, 1e3, 1e3)
    assert exploding["verdict"] == "not-confirmed", exploding
    assert "nan" not in exploding["summary"] and "no gradient" in exploding["summary"]
    vanishing = verdicts.vanishing(claim, measurements, 1e-3)
    assert vanishing["verdict"] == "confirmed"
    assert "no gradient at all" in vanishing["summary"]


# -- 3. A Keras 2 Sequential without an InputLayer: the shape the file declares --------------

def test_keras2_sequential_without_input_layer_is_probed_on_its_declared_shape(
        keras22_sequential):
    assert b"InputLayer" not in read_root_attributes(keras22_sequential)["model_config"]
    _, result = probe(keras22_sequential)
    assert result.probe["loader"] == "tf_keras"
    assert result.probe["input_shapes"] == [[4, 4]]
    assert measured(result)["dense"]["kernel_gradient_norm"] > 0


def test_a_model_on_another_shape_than_the_file_declares_is_never_probed(keras22_sequential):
    from gradlint.engine import lint_file
    from gradlint.probe.environment import ProbeError, import_keras
    from gradlint.probe.measure import measure

    tf, keras = import_keras()
    _, analysis = lint_file(str(keras22_sequential), Settings(), keep_analysis=True)
    # What Keras 3 makes of the file: the same layers on an invented time axis.
    model = keras.saving.load_model(str(keras22_sequential), compile=False)
    assert tuple(model.inputs[0].shape) == (None, None, 4)
    with pytest.raises(ProbeError, match=r"shape \(None, None, 4\) where the file declares "
                                         r"\(None, 4\)"):
        measure(tf, keras, model, analysis.graph, seeds=1, batch=2)


# -- 4. Token ids for an Embedding, whatever the input's dtype --------------------------------

def test_embedding_after_a_float_input_gets_token_ids(saved):
    _, result = probe(saved("tf_keras_embedding", "keras2"))
    assert result.probe["loader"] == "tf_keras"
    embedding = next(layer for layer in result.layers if layer["class"] == "Embedding")
    assert embedding["measured"]["kernel_gradient_norm"] > 0


# -- 5. A dict of inputs for a model built on one ---------------------------------------------

def test_dict_input_model_gets_a_dict(saved):
    _, result = probe(saved("dict_inputs"))
    assert len(result.probe["input_shapes"]) == 3
    values = measured(result)
    for name in ("token_ids_embedding", "segment_ids_embedding", "padding_mask_embedding",
                 "feed_forward", "head"):
        assert values[name]["kernel_gradient_norm"] > 0, name


def test_keras_hub_backbone_gets_its_dict_and_its_sequence_length(saved):
    """keras-hub is not a dependency of gradlint: this runs where it is installed."""
    pytest.importorskip("keras_hub")
    _, result = probe(saved("keras_hub_bert"), Settings(custom_objects=["keras_hub"]))
    assert result.probe["loader"] == "keras"
    # max_sequence_length is 16: the default length of 32 would overrun the positions.
    assert result.probe["input_shapes"] == [[4, 16]] * 3
    values = measured(result)
    # segment_ids reach an Embedding of 2 rows: ids beyond it would fail the lookup.
    for name in ("token_embedding", "segment_embedding", "pooled_dense"):
        assert values[name]["kernel_gradient_norm"] > 0, name


# -- 6. Nothing trainable: a note, not a healthy verdict -------------------------------------

def test_frozen_model_gets_a_note_instead_of_a_healthy_verdict(saved):
    report, result = probe(saved("frozen_sigmoid"))
    static = codes(result)["GL101"]
    assert static.probe is None  # no verdict: nothing confirms or refutes it
    for finding in result.findings:
        assert "healthy" not in str((finding.probe or {}).get("summary")), finding.probe
    (note,) = result.probe["notes"]
    assert "nothing was measured" in note and "no weight of the model is trainable" in note
    # A frozen BatchNormalization uses its moving statistics: the cost plan's batch.
    assert (result.probe["batch"], result.probe["batch_statistics"]) == (4, False)
    assert report.exit_code(fail_on="never") == 0


# -- 7. measured.forward_scale is an RMS ------------------------------------------------------

def test_measured_forward_scale_is_an_rms(saved):
    _, result = probe(saved("constant_offset"))
    offset = next(layer for layer in result.layers if layer["path"] == "offset")
    # Every output is 3: its RMS is 3, its standard deviation 0.
    assert offset["measured"]["forward_scale"] == pytest.approx(3.0, rel=1e-4)
    assert math.isfinite(offset["measured"]["kernel_gradient_norm"])
