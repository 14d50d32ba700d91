"""The opt-in rebuild of models whose class builds its graph (gradlint/readers/rebuilt.py):
keras-hub backbones from small configurations, saved as `.keras` (constructor arguments
only), get no graph without `--custom-objects` and the full static analysis with it."""

from __future__ import annotations

import json
import math

import pytest

from conftest import run_gradlint

keras_hub = pytest.importorskip("keras_hub")

SMALL = dict(vocabulary_size=100, num_layers=2, num_heads=2, hidden_dim=32,
             intermediate_dim=64, max_sequence_length=32)
BACKBONES = {"bert": "BertBackbone", "gpt2": "GPT2Backbone",
             "distil_bert": "DistilBertBackbone"}
SIZED = {"Dense", "EinsumDense", "MultiHeadAttention", "Embedding"}


def _backbone(save_model, name):
    def build():
        import keras_hub

        return getattr(keras_hub.models, BACKBONES[name])(**SMALL)

    return save_model(f"rebuild_{name}", build)


def _lint(path, *args):
    completed = run_gradlint("--exit-zero", "--output-format", "json", *args, str(path),
                             timeout=300)
    assert "Traceback" not in completed.stderr, completed.stderr
    return json.loads(completed.stdout)["files"][0]


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_without_custom_objects_only_the_unknown_graph(save_model, name):
    result = _lint(_backbone(save_model, name))
    assert result["error"] is None
    assert {finding["code"] for finding in result["findings"]} <= {"GL002"}
    assert not any(layer["estimate"] for layer in result["layers"])
    assert any("constructor arguments" in note for note in result["notes"])


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_custom_objects_rebuilds_the_graph(save_model, name):
    result = _lint(_backbone(save_model, name), "--custom-objects", "keras_hub")
    assert result["error"] is None, result["error"]
    assert result["model"]["class"] == BACKBONES[name]
    assert any("rebuilt with Keras" in note for note in result["notes"])
    sized = [layer for layer in result["layers"] if layer["class"] in SIZED]
    classes = {layer["class"] for layer in sized}
    assert {"Dense", "MultiHeadAttention", "Embedding"} <= classes, classes
    assert all(layer["weighted"] and layer["estimate"]["forward_scale"] is not None
               for layer in sized)
    # The transformer blocks are traced into their sublayers, not left opaque.
    assert any(layer["path"].startswith("transformer_layer_0/") for layer in sized)
    assert not any(finding["layer"] == "transformer_layer_0" for finding in result["findings"])
    # GPT-2 and DistilBERT end at a LayerNormalization: the estimate has no output kernel
    # to give a kernel gradient relative to; BERT's pooled Dense gives one.
    if name == "bert":
        assert all(layer["estimate"]["kernel_gradient"] is not None for layer in sized)


def test_a_missing_module_is_a_note(save_model):
    result = _lint(_backbone(save_model, "bert"), "--custom-objects", "no_such_module_x")
    assert result["error"] is None
    assert {finding["code"] for finding in result["findings"]} <= {"GL002"}
    assert any("could not be imported" in note for note in result["notes"])


def test_the_rebuild_raises_the_workers_memory_limit(save_model):
    # TensorFlow maps about 2.5 GB of address space: with --custom-objects the workers get
    # at least 4,096 MB, even under an explicit 1,024 MB limit (limits.worker_memory_mb).
    result = _lint(_backbone(save_model, "bert"), "--max-memory", "1024",
                   "--custom-objects", "keras_hub")
    assert result["error"] is None
    assert any("rebuilt with Keras" in note for note in result["notes"]), result["notes"]


def test_probe_measures_beside_the_rebuilt_estimate(save_model, capsys):
    result = _lint(_backbone(save_model, "bert"), "--custom-objects", "keras_hub", "--probe")
    assert result["error"] is None, result["error"]
    pairs = {layer["path"]: (layer["estimate"]["kernel_gradient"],
                             layer["measured"]["kernel_gradient"])
             for layer in result["layers"]
             if layer.get("estimate") and layer.get("measured")
             and layer["estimate"].get("kernel_gradient")
             and layer["measured"].get("kernel_gradient")}
    assert pairs, [layer["path"] for layer in result["layers"] if layer.get("measured")]
    # The probe measures the traced sublayers of the transformer blocks under the paths the
    # estimate gives them, and the two agree within a decade, embeddings included.
    inner = [path for path in pairs if path.startswith("transformer_layer_")]
    assert len(inner) >= 6, sorted(pairs)
    assert any("embedding" in path for path in pairs), sorted(pairs)
    errors = {path: math.log10(estimate / measured)
              for path, (estimate, measured) in pairs.items()}
    assert all(abs(error) <= 1.0 for error in errors.values()), errors
    with capsys.disabled():
        for path, (estimate, measured) in pairs.items():
            print(f"\n{path}: estimate {estimate:.3g} measured {measured:.3g} "
                  f"|log10| {abs(math.log10(estimate / measured)):.2f}", end="")
