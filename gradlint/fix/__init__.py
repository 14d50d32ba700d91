"""From finding to fix: the fixes rules propose (`gradlint.findings.Fix`) applied to a saved
model (`gradlint fix MODEL -o FIXED`), and data-free calibrated initialization
(`calibrate`).

The pieces, in the order data flows through them:

- `graph_edits`: a fix applied to a `ModelGraph` copy, so the estimate after it can be run
  (`estimate`: the "estimate after" each fix carries; no TensorFlow);
- `config_edits`: the same fix applied to the stored configuration (the JSON every format
  keeps);
- `trained`: whether a file is a trained checkpoint, whose weights a re-draw would discard;
- `writer`: the new file, in the input's format, with re-drawn kernels and every other
  stored byte copied;
- `apply`: the whole `gradlint fix` run;
- `calibration`: kernel scales that hold each weighted layer's estimated pre-activation second
  moment at 1 (on a file's graph, or on a live `keras.Model`, which imports Keras there only).
"""

from __future__ import annotations


def calibrate(model, **options):
    """Scale a live `keras.Model`'s kernels in place so that the estimated pre-activation
    second moment of every weighted layer is 1; returns {layer path: factor applied to the
    kernel}. See `gradlint.fix.calibration.calibrate_model`."""
    from gradlint.fix.calibration import calibrate_model

    return calibrate_model(model, **options)


__all__ = ["calibrate"]
