"""The gradient probe (`gradlint --probe`): a few forward and backward passes on a synthetic
batch, measured layer by layer, to confirm or refute the static findings.

This package is the only code in gradlint that imports TensorFlow, JAX or Keras, and it does so
inside functions, only when the probe runs; importing `gradlint.probe` itself is free.

- `environment`: the quiet, lazy import and the error a missing install gives;
- `loading`: safe loading (no Lambda without `--unsafe-load`, custom objects by module);
- `plan`: seeds and batch size from the model's cost;
- `batch`: the synthetic inputs, targets and loss;
- `instrument`, `measure`: the measurement itself, the same on every backend;
- `backends`: what the measurement asks of a Keras backend (the forward and backward pass
  with its own gradient machinery, and a few reductions): TensorFlow and JAX;
- `worker`: the process a backend other than TensorFlow runs in (`--probe-backend jax`);
- `measurements`: what was measured, as plain data for rules and reports;
- `hook`: the measurement of one model, from a file or a live model.

What the measurements mean is decided outside this package: the probe rules (GL9xx) and each
static rule's `confirm` (`gradlint.verdicts`), run by the engine's measurement stage
(`gradlint.engine.apply_measurements`).
"""

from gradlint.probe.environment import INSTALL_HINT, ProbeError

__all__ = ["INSTALL_HINT", "ProbeError"]
