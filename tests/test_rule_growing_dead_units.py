"""GL954 on real digits runs: SGD at 1.0 kills ReLU units as it trains; SGD at 0.1 (dead
fractions that grow by at most 0.09) does not."""

from callback_runs import codes, relu_run


def test_dead_units_growing_during_training_are_flagged():
    finding = next(f for f in relu_run("sgd", 1.0).findings if f.code == "GL954")
    assert finding.layer.startswith("hidden_")
    assert finding.evidence["latest_dead_fraction"] - finding.evidence["first_dead_fraction"] > 0.25


def test_near_miss_a_fast_learning_rate_that_keeps_its_units():
    check = relu_run("sgd", 0.1)
    assert "GL954" not in codes(check)
    for path in check.history.activations:
        values = [v for _, v in check.history.trajectory(path, "dead")]
        assert max(values) < 0.5
