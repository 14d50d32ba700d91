"""What `gradlint.keras.GradientCheck` measured during `model.fit`, as plain data: no
TensorFlow or Keras here, so that the training rules (GL95x), the verdicts and the reports
read it without importing either.

A checked step records, for each weighted layer, the norm of the kernel gradient the
optimizer applied, the kernel's norm before the update and the norm of the update itself;
for each sigmoid/tanh or ReLU layer, the fraction of saturated pre-activations or of dead
units on that real batch; and the batch's loss. `measurements_from_history` turns the last
few checked steps into the same `Measurements` the probe builds (medians over those steps
instead of over seeds), so that the probe's rules (GL901-GL904) and the engine's one
measurement stage judge the real training gradients exactly as they judge the probe's;
`TrainingMeasurements.training` carries the whole history for the rules that need the steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from gradlint.probe.measurements import (CallMeasurement, KernelMeasurement, Measurements,
                                         median)


@dataclass
class StepRecord:
    """One checked training step (`step` counts from 1 across the epochs of one fit)."""

    step: int
    epoch: int
    loss: float | None
    batch: int | None = None
    gradient_norms: dict[str, float] = field(default_factory=dict)
    weight_norms: dict[str, float] = field(default_factory=dict)
    update_norms: dict[str, float] = field(default_factory=dict)
    saturated: dict[str, float] = field(default_factory=dict)
    dead: dict[str, float] = field(default_factory=dict)

    def update_ratio(self, path: str) -> float | None:
        """How far one step moved the kernel, relative to its size."""
        update, weight = self.update_norms.get(path), self.weight_norms.get(path)
        if update is None or not weight:
            return None
        return update / weight


@dataclass
class TrainingHistory:
    """Every checked step of one fit, in order."""

    records: list[StepRecord] = field(default_factory=list)
    order: list[str] = field(default_factory=list)  # weighted layers, inputs first
    classes: dict[str, str] = field(default_factory=dict)
    activations: dict[str, str] = field(default_factory=dict)  # measured layers
    embeddings: set[str] = field(default_factory=set)
    optimizer: str | None = None
    learning_rate: float | None = None
    steps_per_epoch: int | None = None
    window: int = 5  # the checked steps each judgement takes medians over

    @property
    def last_step(self) -> int:
        return self.records[-1].step if self.records else 0

    def losses(self) -> list[tuple[int, float]]:
        return [(r.step, r.loss) for r in self.records if r.loss is not None]

    def trajectory(self, path: str, quantity: str = "gradient_norms") -> list[tuple[int, float]]:
        """(step, value) of one layer's `gradient_norms`, `update_norms`, `dead`, ... ."""
        return [(r.step, getattr(r, quantity)[path]) for r in self.records
                if path in getattr(r, quantity)]

    def update_ratios(self, path: str) -> list[tuple[int, float]]:
        found = []
        for record in self.records:
            ratio = record.update_ratio(path)
            if ratio is not None:
                found.append((record.step, ratio))
        return found

    def to_dict(self) -> dict:
        """The JSON report's ``training`` object: per-layer trajectories over the steps."""
        def rounded(value):
            return None if value is None else (float(f"{value:.4g}") if math.isfinite(value)
                                               else value)

        layers: dict[str, dict] = {}
        for path in self.order:
            layers[path] = {
                "path": path,
                "gradient_norm": [[s, rounded(v)] for s, v in self.trajectory(path)],
                "update_ratio": [[s, rounded(v)] for s, v in self.update_ratios(path)],
            }
        for path, activation in self.activations.items():
            entry = layers.setdefault(path, {"path": path})
            entry["activation"] = activation
            entry["saturated_fraction"] = [[s, rounded(v)] for s, v in
                                           self.trajectory(path, "saturated")]
            entry["dead_fraction"] = [[s, rounded(v)] for s, v in self.trajectory(path, "dead")]
        return {"steps": [r.step for r in self.records],
                "loss": [[s, rounded(v)] for s, v in self.losses()],
                "optimizer": self.optimizer, "learning_rate": self.learning_rate,
                "layers": list(layers.values())}


@dataclass
class TrainingMeasurements(Measurements):
    """The probe's `Measurements`, measured on real batches during training, with the
    history of every checked step for the rules about training (GL95x)."""

    training: TrainingHistory | None = None


def measurements_from_history(history: TrainingHistory, window: int,
                              reference: str | None = None) -> TrainingMeasurements:
    """The last `window` checked steps as probe measurements: per layer, the medians over
    those steps of the kernel-gradient norm, its ratio to the reference layer's (taken per
    step, as the probe takes it per seed) and the saturated and dead fractions."""
    recent = history.records[-max(1, window):]
    candidates = [p for p in history.order if p not in history.embeddings]
    if reference not in history.order:
        reference = candidates[-1] if candidates else None
    result = TrainingMeasurements(seeds=len(recent), batch=recent[-1].batch or 0 if recent else 0,
                                  training_mode=True, loader="training", training=history)
    result.reference = reference
    result.order = list(history.order)
    result.loss = "the model's compiled loss"
    result.loss_source = "training"
    result.loss_value = median(r.loss for r in recent)
    nonfinite = set()
    for path in history.order:
        norms = [r.gradient_norms.get(path) for r in recent]
        relatives = []
        for record in recent:
            norm, ref = record.gradient_norms.get(path), record.gradient_norms.get(reference)
            if norm is None or ref is None:
                continue
            relatives.append(norm / ref if ref > 0 else (math.inf if norm > 0 else math.nan))
        gradient_norm = median(norms)
        weight = median(r.weight_norms.get(path) for r in recent)
        bad = any(n is not None and not math.isfinite(n) for n in norms)
        if bad:
            nonfinite.add(path)
        result.kernels[path] = KernelMeasurement(
            path=path, class_name=history.classes.get(path, ""), gradient_norm=gradient_norm,
            weight_norm=weight,
            gradient_to_weight=(gradient_norm / weight if gradient_norm is not None and weight
                                else None),
            relative=median(relatives), nonfinite=bad, embedding=path in history.embeddings)
    for path, activation in history.activations.items():
        result.calls[path] = CallMeasurement(
            path=path, class_name=history.classes.get(path, ""), activation=activation,
            saturated_fraction=median(r.saturated.get(path) for r in recent),
            dead_fraction=median(r.dead.get(path) for r in recent))
    result.nonfinite = sorted(nonfinite)
    return result


def training_of(analysis) -> TrainingHistory | None:
    """The training history behind an analysis's measurements, or None (the probe's)."""
    return getattr(getattr(analysis, "measurements", None), "training", None)


# -- the HTML report's chart ------------------------------------------------------------------
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
           "#17becf", "#7f7f7f", "#bcbd22")
MAX_LINES = 12  # beyond, the first, the last and evenly spaced layers between them


def trajectory_section(training: dict) -> str:
    """An HTML section (inline SVG, no script) with each weighted layer's kernel-gradient
    norm over the checked steps on a log scale, from `TrainingHistory.to_dict()`."""
    import html

    layers = [layer for layer in training.get("layers", []) if layer.get("gradient_norm")]
    if not layers:
        return ""
    if len(layers) > MAX_LINES:
        picks = sorted({round(i * (len(layers) - 1) / (MAX_LINES - 1)) for i in range(MAX_LINES)})
        layers = [layers[i] for i in picks]
    points = [(s, v) for layer in layers for s, v in layer["gradient_norm"]
              if v is not None and math.isfinite(v) and v > 0]
    if not points:
        return ""
    width, height, left, top, bottom = 760, 260, 62, 12, 34
    steps = [s for s, _ in points]
    low = math.floor(math.log10(min(v for _, v in points)))
    high = math.ceil(math.log10(max(v for _, v in points)))
    high = max(high, low + 1)
    first, last = min(steps), max(max(steps), min(steps) + 1)

    def x_of(step):
        return left + (width - left - 10) * (step - first) / (last - first)

    def y_of(value):
        return top + (height - top - bottom) * (high - math.log10(value)) / (high - low)

    parts = [f'<svg viewBox="0 0 {width} {height}" width="100%" role="img" '
             'aria-label="kernel-gradient norm per layer over the training steps" '
             'style="font:11px sans-serif">']
    for exponent in range(low, high + 1):
        y = y_of(10.0 ** exponent)
        parts.append(f'<line x1="{left}" x2="{width - 10}" y1="{y:.1f}" y2="{y:.1f}" '
                     'stroke="#ccc" stroke-width="0.5"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">1e{exponent}</text>')
    for step in sorted({first, last, round((first + last) / 2)}):
        parts.append(f'<text x="{x_of(step):.1f}" y="{height - bottom + 16}" '
                     f'text-anchor="middle">step {step}</text>')
    legend = []
    for index, layer in enumerate(layers):
        colour = PALETTE[index % len(PALETTE)]
        line = [(s, v) for s, v in layer["gradient_norm"]
                if v is not None and math.isfinite(v) and v > 0]
        if not line:
            continue
        coordinates = " ".join(f"{x_of(s):.1f},{y_of(v):.1f}" for s, v in line)
        name = html.escape(str(layer["path"]))
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" '
                     f'points="{coordinates}"><title>{name}</title></polyline>')
        legend.append(f'<span style="color:{colour}">&#9632; {name}</span>')
    parts.append("</svg>")
    return ('<section class="gl-training"><h2>Gradient norms during training</h2>'
            '<p>The norm of each layer\'s kernel gradient at every checked step (log scale); '
            'lines that sink away from the others are layers the gradient does not reach.</p>'
            + "".join(parts) + '<p style="display:flex;flex-wrap:wrap;gap:0 1em">'
            + "".join(legend) + "</p></section>")
