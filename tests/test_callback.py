"""GradientCheck during real `model.fit` runs on scikit-learn's digits: the four scenarios of
issue 11, training left exactly as it would be without the callback, what it leaves behind
(logs, the restored train step, TensorBoard event files, the report) and the static analysis
at train begin."""

from __future__ import annotations

import json

import numpy as np
import pytest

from callback_runs import BATCH, STEPS_PER_EPOCH, codes, digits, fit, mlp, weights
from conftest import keras3

pytest.importorskip("sklearn")


def _step(check, code):
    return min(f.evidence["step"] for f in check.findings if f.code == code)


def test_deep_sigmoid_mlp_is_flagged_for_vanishing_within_the_first_epoch():
    check = fit(mlp(20, "sigmoid", "glorot_uniform"), "sgd", 0.01)
    assert "GL901" in codes(check)
    finding = next(f for f in check.findings if f.code == "GL901")
    assert finding.severity == "error" and finding.layer == "hidden_0"
    assert finding.evidence["first_last_ratio"] < 1e-6
    assert _step(check, "GL901") <= STEPS_PER_EPOCH
    assert "GL101" not in codes(check)  # static=False: training-time checks only


def test_raw_pixels_saturate_a_tanh_mlp_on_the_real_data_and_standardized_ones_do_not():
    raw = fit(mlp(3, "tanh", "glorot_uniform"), "sgd", 0.01, pixels="raw")
    standardized = fit(mlp(3, "tanh", "glorot_uniform"), "sgd", 0.01)
    saturated = [f for f in raw.findings if f.code == "GL903"]
    assert saturated and saturated[0].layer == "hidden_0"
    assert saturated[0].evidence["saturated_fraction"] > 0.5
    assert codes(standardized) == set()
    # The same fraction the callback judged, step by step: above half on raw pixels only.
    assert min(v for _, v in raw.history.trajectory("hidden_0", "saturated")) > 0.5
    assert max(v for _, v in standardized.history.trajectory("hidden_0", "saturated")) < 0.1


def test_a_learning_rate_100_times_too_high_for_sgd_is_flagged_from_the_update_ratios():
    check = fit(mlp(3, "relu", "he_normal"), "sgd", 1.0)  # SGD's default is 0.01
    finding = next(f for f in check.findings if f.code == "GL955")
    assert finding.severity == "error"
    assert finding.evidence["median_update_ratio"] > 0.1
    assert _step(check, "GL955") <= 5


def test_a_relu_he_mlp_gets_no_finding():
    check = fit(mlp(3, "relu", "he_normal"), "sgd", 0.01, epochs=2)
    assert check.findings == []
    assert len(check.history.records) == 30 + 1  # the first 30 steps, then step 100


def _train(jit_compile, with_check):
    keras = keras3()
    _, standardized, labels = digits()
    keras.utils.set_random_seed(7)
    # Dropout and BatchNormalization: random state and moving statistics that a second
    # forward pass would advance; sigmoid, tanh and ReLU layers all get watched.
    model = keras.Sequential([
        keras.Input((64,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dropout(0.2),
        keras.layers.Dense(32, activation="tanh"), keras.layers.BatchNormalization(),
        keras.layers.Dense(32, activation="sigmoid"), keras.layers.Dense(10, activation="softmax")])
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy",
                  jit_compile=jit_compile)
    callbacks = []
    if with_check:
        from gradlint.keras import GradientCheck

        callbacks = [GradientCheck(verbose=False, first_steps=20, every=7)]
    model.fit(standardized[:300], labels[:300], batch_size=50, epochs=2, verbose=0,
              shuffle=True, callbacks=callbacks)
    return weights(model) + [np.array(v.numpy()) for v in model.optimizer.variables]


# XLA on CPU compiles each train function for seconds: marked slow.
@pytest.mark.parametrize("jit_compile", [False, pytest.param(True, marks=pytest.mark.slow)],
                         ids=["no-jit", "xla"])
def test_trained_weights_are_bit_identical_with_and_without_the_callback(jit_compile):
    plain = _train(jit_compile, with_check=False)
    checked = _train(jit_compile, with_check=True)
    assert len(plain) == len(checked)
    for a, b in zip(plain, checked):
        assert a.shape == b.shape and a.tobytes() == b.tobytes()


def test_the_model_is_left_as_it_was_and_fit_sees_only_its_own_logs():
    keras = keras3()
    from gradlint.keras import GradientCheck

    model = mlp(2, "relu", "he_normal")
    model.compile(keras.optimizers.SGD(0.01), "sparse_categorical_crossentropy")
    _, standardized, labels = digits()
    model.fit(standardized[:64], labels[:64], batch_size=BATCH, epochs=1, verbose=0)
    own_function = model.train_function
    own_activations = [layer.activation for layer in model.layers]
    batch_logs = []
    spy = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: batch_logs.append(dict(logs)))
    check = GradientCheck(verbose=False, first_steps=2, every=2)
    history = model.fit(standardized[:256], labels[:256], batch_size=BATCH, epochs=2,
                        verbose=0, callbacks=[check, spy])
    assert model.train_function is own_function
    assert "train_step" not in vars(model)
    assert "apply_gradients" not in vars(model.optimizer)
    assert [layer.activation for layer in model.layers] == own_activations
    assert all(set(logs) == {"loss"} for logs in batch_logs)
    assert history.history["gradlint_findings"] == [0.0, 0.0]
    assert [r.step for r in check.history.records] == [1, 2, 4, 6, 8, 10, 12, 14, 16]


def test_findings_are_printed_once_and_a_stop_is_asked_for_on_an_error():
    lines = []
    check = fit(mlp(20, "sigmoid", "glorot_uniform"), "sgd", 0.01, verbose=True,
                print_fn=lines.append, stop_on_error=True, epochs=3, samples=320)
    assert len(check.history.records) == 1  # stopped after the first checked step
    assert len(lines) == 1 and "GL901 [error]" in lines[0] and "(step 1)" in lines[0]
    assert lines[0].startswith("gradlint: <sigmoid_20>::hidden_0: ")


def test_static_analysis_at_train_begin_and_its_verdict_from_training():
    lines = []
    check = fit(mlp(20, "sigmoid", "glorot_uniform"), "sgd", 0.01, static=True, verbose=True,
                print_fn=lines.append, samples=320)
    static = [f for f in check.findings if f.code == "GL101"]
    assert static and static[0].probe["verdict"] == "confirmed"
    assert "GL101 [error]" in lines[0] and "(step" not in lines[0]
    assert any("GL101" in line and "confirmed in training at step 1" in line for line in lines)
    # The static finding carries the measured numbers: GL901 only repeats it, and is folded.
    assert "GL901" not in codes(check)


def test_tensorboard_event_files_hold_per_layer_gradient_norms(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.util.tensor_util import make_ndarray

    check = fit(mlp(3, "tanh", "glorot_uniform"), "sgd", 0.01, log_dir=tmp_path,
                first_steps=5, every=20)
    accumulator = EventAccumulator(str(tmp_path / "gradlint"),
                                   size_guidance={"tensors": 0, "histograms": 0})
    accumulator.Reload()
    tags = set(accumulator.Tags()["tensors"])
    for layer in ("hidden_0", "hidden_1", "hidden_2", "output"):
        assert f"gradient_norm/{layer}" in tags and f"update_ratio/{layer}" in tags
        assert f"gradient/{layer}" in tags  # the histogram
    assert "saturated_fraction/hidden_0" in tags and "loss" in tags
    events = accumulator.Tensors("gradient_norm/hidden_0")
    assert [e.step for e in events] == [1, 2, 3, 4, 5, 20, 40]
    recorded = dict(check.history.trajectory("hidden_0"))
    for event in events:
        value = float(make_ndarray(event.tensor_proto))
        assert value == pytest.approx(recorded[event.step], rel=1e-6) and value > 0


@pytest.mark.parametrize("suffix", [".json", ".html"])
def test_the_report_at_train_end_has_the_gradient_norm_trajectories(tmp_path, suffix):
    path = tmp_path / f"training{suffix}"
    fit(mlp(20, "sigmoid", "glorot_uniform"), "sgd", 0.01, report=path, first_steps=3, every=10,
        samples=640)
    text = path.read_text(encoding="utf-8")
    if suffix == ".json":
        data = json.loads(text)
        result = data["files"][0]
        assert [f["code"] for f in result["findings"]] == ["GL901"]
        layers = {layer["path"]: layer for layer in result["training"]["layers"]}
        steps = [s for s, _ in layers["hidden_0"]["gradient_norm"]]
        assert steps == [1, 2, 3, 10, 20]
        first, last = layers["hidden_0"]["gradient_norm"], layers["output"]["gradient_norm"]
        assert first[0][1] < 1e-6 < last[0][1]
    else:
        assert "GL901" in text and "Gradient norms during training" in text
        assert text.count("<polyline") == 12  # 21 weighted layers, 12 of them drawn
        assert text.index("gl-training") < text.index("</body>")


def test_a_backend_other_than_tensorflow_is_refused_clearly():
    keras = keras3()
    from gradlint.keras import GradientCheck

    assert keras.backend.backend() == "tensorflow"
    with pytest.raises(ValueError):
        GradientCheck(report="report.txt")
    with pytest.raises(ValueError):
        GradientCheck(rules={"GL955": {"no-such-option": 1}})
