"""The probe measured a recurrent layer's gradient fading across the time steps of its input.

## What it flags
Runs only with `--probe`. For each recurrent layer, the norm of the loss gradient with respect
to its input at every time step: the first step processed over the last (for a bidirectional
layer, the weakest step over the strongest). Below `error-ratio-below` (1e-3) for an ungated
layer (SimpleRNN) it is an error, below `warning-ratio-below` (1e-2) a warning. Gated layers
(LSTM, GRU, ConvLSTM) get an info finding below `error-ratio-below`: untrained gates forget
too, and learn to hold memory only during training. Trained ones forget as well where the
task needs only recent steps: the two healthy 3-layer LSTM predictors of the labelled corpus
(bench/corpus, jaungiers' sine-wave and S&P 500 models, whose README shows their
predictions) measure 4e-6 over 49 steps, so a fade alone does not make a trained gated
layer's finding more than info either.

Kernel-gradient ratios do not show this: measured here, an untrained 32-unit SimpleRNN over 50
steps has a first/last kernel ratio of 1.2 while the gradient reaching its first step is
6.7e-9 of the last step's (x0.68 per step; 0.03 over 10 steps, 5e-4 over 20). Gated layers
decay at initialization as well: an LSTM over 50 steps measured 6.7e-6, and an LSTM over 200
steps and a GRU over 100 steps exactly 0 at the first step in float32.

## Why it hurts gradient flow
Backpropagation through time multiplies the gradient by the recurrent Jacobian once per step;
an ungated layer cannot learn to keep it near one, so what happened more than a few dozen
steps before the output cannot influence learning (Bengio et al. 1994; Pascanu et al. 2013).

## Example
    keras.Sequential([keras.Input((50, 16)), keras.layers.SimpleRNN(32),
                      keras.layers.Dense(1)])

## Use instead
`LSTM` or `GRU`; shorter sequences (truncated backpropagation, downsampling); a 1-D
convolution or attention across the sequence.

## Options
- `error-ratio-below` (1e-3), `warning-ratio-below` (1e-2): on the first/last step ratio.
- `gated-severity` ("info"): the severity for gated layers.

## References
Bengio, Simard & Frasconi, IEEE TNN 1994. Pascanu, Mikolov & Bengio, ICML 2013.
Hochreiter & Schmidhuber, *Long Short-Term Memory*, 1997.
"""

from gradlint.findings import Problem, number

CODE = "GL905"
NAME = "vanishing-through-time"
SEVERITY = "error"
PRECISION = "high"
GROUPS = ("probe", "recurrent", "vanishing")
ALIASES = ()
OPTIONS = {"error-ratio-below": 1e-3, "warning-ratio-below": 1e-2, "gated-severity": "info"}
PROBE = True
# Left out where a static finding claiming the same is confirmed (gradlint.verdicts).
MEASURES = "recurrent"


def check(analysis, options):
    measured = analysis.measurements
    if measured is None:
        return
    for path, record in measured.recurrent.items():
        ratio = record.ratio
        if ratio is None:
            continue
        if record.gated:
            if ratio >= options["error-ratio-below"]:
                continue
            severity = options["gated-severity"]
            if severity not in ("error", "warning", "info"):
                severity = "info"
        elif ratio < options["error-ratio-below"]:
            severity = "error"
        elif ratio < options["warning-ratio-below"]:
            severity = "warning"
        else:
            continue
        where = "the weakest step's" if record.bidirectional else "the first step's"
        kind = "gated" if record.gated else "ungated"
        note = " (informational: gates learn to hold memory during training)" \
            if record.gated else "; use LSTM or GRU"
        yield Problem(
            f"'{path}' ({kind} {record.cell}) over {record.length} steps: {where} input gradient "
            f"is {number(ratio)} of the {'strongest' if record.bidirectional else 'last'} "
            f"step's (x{number(record.decay_per_step)} per step){note}",
            layer=path, layers=[path], severity=severity,
            evidence={"time_steps": record.length, "first_last_ratio": ratio,
                      "decay_per_step": record.decay_per_step, "cell": record.cell,
                      "gated": record.gated})
