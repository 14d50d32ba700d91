"""GL955 on real digits runs: SGD at 1.0 (100 times SGD's default) and at 1e-4 (100 times
below it) are flagged from the update-to-weight ratios; SGD at 0.1 and Adam at 1e-3, the
healthy runs nearest to either threshold, are not."""

from callback_runs import codes, relu_run


def test_a_learning_rate_far_too_high_is_flagged():
    findings = [f for f in relu_run("sgd", 1.0).findings if f.code == "GL955"]
    assert findings[0].severity == "error"
    assert findings[0].evidence["median_update_ratio"] > 0.1
    assert findings[0].evidence["step"] <= 5


def test_a_learning_rate_far_too_low_is_flagged():
    finding = next(f for f in relu_run("sgd", 1e-4).findings if f.code == "GL955")
    assert finding.evidence["largest_update_ratio"] < 1e-4
    assert "too low" in finding.message


def test_near_misses_the_healthy_runs_closest_to_the_thresholds():
    assert "GL955" not in codes(relu_run("sgd", 0.1))
    assert "GL955" not in codes(relu_run("adam", 1e-3))
