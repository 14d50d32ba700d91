"""Float16 layers without loss scaling whose estimated gradient falls below float16's normal range.

## What it flags
Models whose weighted layers compute in float16 (dtype policy `mixed_float16` or
`float16`), whose saved compile configuration does not scale the loss (no
`LossScaleOptimizer`, no `loss_scale_factor`), and where the estimated gradient at some of
those layers, times `loss-gradient`, falls below `warning-below` (6.1e-5, float16's smallest
normal number), or below `error-below` (1e-6) for an error. Files saved without a compile
configuration are not judged.

## Why it hurts gradient flow
In float16 a gradient below 2^-14 = 6.1e-5 is subnormal and loses precision, and one below
2^-24 = 6e-8 becomes zero; loss scaling multiplies the loss (by 2^15 at first) so that the
backward pass stays in range (Micikevicius et al. 2018). Keras 3.15 does not save
`auto_scale_loss`, nor the model's own dtype policy: a `.keras` file reloaded in a fresh
process (global policy float32) keeps its layers in `mixed_float16` and compiles a plain
optimizer, so `fit` runs without loss scaling unless the policy is set before loading
(measured: `load_model` gives `Adam`, and `LossScaleOptimizer` only after
`set_dtype_policy("mixed_float16")`); an optimizer's own `loss_scale_factor` is saved only
with `auto_scale_loss=False`, since the wrapper sets it to None. tf-keras's `.keras`
files reload the same way (measured: a plain Adam); its `.h5` files save the
`LossScaleOptimizer` when the model's policy was `mixed_float16`, and a plain optimizer
when only the layers had it.

gradlint's estimate is relative to the output layer's gradient, so the rule assumes a loss
gradient: `loss-gradient` (1e-2), the RMS of dL/d(logit) for softmax cross-entropy over 10
classes at chance averaged over a batch of 32 (measured: 9.4e-3). Measured on sigmoid MLPs
of width 64 with float16 hidden layers and that loss (`bench/float16_underflow.py`:
tf.GradientTape, unscaled against scaled by 2^15, 2 to 10 layers): the estimate times 1e-2 matched the measured RMS gradient
at the first layer's output within a factor of 1.35, and the first kernel's unscaled
gradient was off by 0.14% where that RMS was 6e-5, 2.4% at 3.7e-6, 52% (16% of entries
zero) at 1.6e-7, and entirely zero at 1e-8.

## Example
    keras.mixed_precision.set_dtype_policy("mixed_float16")
    hidden = [keras.layers.Dense(64, activation="sigmoid") for _ in range(8)]
    head = keras.layers.Dense(10, activation="softmax", dtype="float32")
    model = keras.Sequential([keras.Input((64,)), *hidden, head])
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    model.save("model.keras")   # reloaded elsewhere: no loss scaling

## Use instead
Set the global policy before loading (`keras.mixed_precision.set_dtype_policy(
"mixed_float16")`), wrap the optimizer in `keras.optimizers.LossScaleOptimizer`, or set the
optimizer's `loss_scale_factor`; or train in `float32` or `mixed_bfloat16`.

## Options
- `loss-gradient` (1e-2): the assumed RMS of the loss gradient at the output layer.
- `warning-below` (6.1e-5), `error-below` (1e-6): thresholds on the estimated gradient
  times `loss-gradient`.

## References
Micikevicius et al., *Mixed Precision Training*, ICLR 2018. Keras mixed precision guide
(keras.io/api/mixed_precision).
"""

from gradlint.findings import Problem, number, severity_below, span

CODE = "GL405"
NAME = "float16-gradient-underflow"
SEVERITY = "error"
PRECISION = "high"
GROUPS = ("optimizer", "vanishing")
ALIASES = ("missing-loss-scaling",)
OPTIONS = {"loss-gradient": 1e-2, "warning-below": 6.1e-5, "error-below": 1e-6}
# About float16 arithmetic and the loss's scale: the probe measures in the model's own
# precision with a synthetic loss and no optimizer, so it gives no verdict.
CLAIMS = None
FLOAT16_POLICIES = ("mixed_float16", "float16")


def policy_name(layer) -> str | None:
    """The layer's dtype policy name as saved: Keras 3's DTypePolicy, tf-keras's Policy, or
    a plain string."""
    for config in (layer.config, layer.inner.config if layer.inner is not None else {}):
        dtype = config.get("dtype")
        if isinstance(dtype, str):
            return dtype
        if isinstance(dtype, dict):
            inner = dtype.get("config")
            if isinstance(inner, dict) and isinstance(inner.get("name"), str):
                return inner["name"]
    return None


def scales_loss(optimizer) -> bool:
    """Whether a saved optimizer configuration scales the loss."""
    if not isinstance(optimizer, dict):
        return False
    if "LossScaleOptimizer" in str(optimizer.get("class_name", "")):
        return True
    config = optimizer.get("config")
    return isinstance(config, dict) and config.get("loss_scale_factor") not in (None, 1, 1.0)


def check(analysis, options):
    training = analysis.graph.training
    if training is None or training.optimizer_config is None or \
            scales_loss(training.optimizer_config):
        return
    scale = options["loss-gradient"]
    low = []
    for node in analysis.weighted_nodes():
        record = analysis.estimate[node.id]
        if policy_name(node.layer) not in FLOAT16_POLICIES or record.gradient is None \
                or analysis.routes.behind_learnable_scale[node.id]:
            continue
        value = record.gradient * scale
        if value < options["warning-below"]:
            low.append((node, value))
    if not low:
        return
    node, worst = min(low, key=lambda item: item[1])
    severity = severity_below(worst, options["error-below"], options["warning-below"])
    paths = [item.path for item, _ in low]
    optimizer = training.optimizer or "the optimizer"
    yield Problem(
        f"{span(paths)} compute{'s' if len(paths) == 1 else ''} in float16 and the saved "
        f"{optimizer} does not scale the loss: the estimated gradient at '{node.path}' is "
        f"{number(worst)} for a loss gradient of {number(scale)}, below float16's normal "
        "range (6.1e-05), so it loses precision or becomes zero; wrap the optimizer in "
        "LossScaleOptimizer",
        layer=paths[0], layers=paths, severity=severity,
        evidence={"min_gradient": worst, "where": node.path, "loss_gradient": scale,
                  "policy": policy_name(node.layer)})
