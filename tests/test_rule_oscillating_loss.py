"""GL953 on real digits runs: SGD at 1.0 makes the loss climb back again and again; SGD at
0.1 (small rises of at most 0.042 of the first loss) does not."""

from callback_runs import codes, relu_run


def test_a_loss_that_keeps_going_back_up_is_flagged():
    finding = next(f for f in relu_run("sgd", 1.0).findings if f.code == "GL953")
    assert finding.evidence["rises"] >= 3
    assert finding.evidence["largest_rise"] > 0.05


def test_near_miss_a_noisy_loss_that_still_goes_down():
    assert "GL953" not in codes(relu_run("sgd", 0.1))
