"""GL952 on real digits runs: SGD at 1e-4 (100 times too low) barely lowers the loss in 168
steps; SGD at 0.01, the slowest healthy run measured, lowers it by half."""

from callback_runs import codes, relu_run


def test_a_loss_that_does_not_go_down_is_flagged():
    finding = next(f for f in relu_run("sgd", 1e-4).findings if f.code == "GL952")
    assert finding.evidence["relative_drop"] < 0.1
    assert finding.evidence["steps"] >= 100


def test_near_miss_a_slow_but_learning_run():
    check = relu_run("sgd", 0.01)
    assert "GL952" not in codes(check)
