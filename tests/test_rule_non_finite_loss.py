"""GL951 on real digits runs: SGD at 50 drives the loss to NaN; SGD at 0.1 does not."""

import math

from callback_runs import codes, relu_run


def test_a_loss_that_turns_nan_is_flagged_at_the_first_step_it_does():
    check = relu_run("sgd", 50.0, epochs=1)
    finding = next(f for f in check.findings if f.code == "GL951")
    first = finding.evidence["first_step"]
    losses = dict(check.history.losses())
    assert not math.isfinite(losses[first])
    assert all(math.isfinite(loss) for step, loss in losses.items() if step < first)


def test_near_miss_a_fast_but_healthy_learning_rate():
    assert "GL951" not in codes(relu_run("sgd", 0.1))
