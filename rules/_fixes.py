"""What the initialization rules' fixes share: the edit that gives a layer the initializer
its activation needs (He for ReLU, Glorot for sigmoid and tanh, LeCun for SELU), as data
(`gradlint.findings.Fix`). Which layers to fix, and why, stays in each rule."""

from __future__ import annotations

from gradlint import initializers
from gradlint.findings import Edit, Fix

INITIALIZER_KEYS = ("kernel_initializer", "depthwise_initializer", "embeddings_initializer")


def stored_initializer(layer):
    """The kernel initializer as the configuration stores it (a wrapper's from its inner
    layer), or None."""
    for source in (layer.config, layer.inner.config if layer.inner is not None else {}):
        for key in INITIALIZER_KEYS:
            if source.get(key) is not None:
                return source[key]
    return None


def fitting_initializer(activation) -> str:
    """``he_normal``, ``glorot_uniform`` or ``lecun_normal``: what keeps the variance for
    this activation."""
    name = activation.name if activation is not None else "linear"
    return initializers.SNAKE_NAMES[initializers.suggestion_for(name)]


def initializer_edit(analysis, node, new: str | None = None) -> Edit | None:
    """The edit that re-initializes `node`'s kernel with `new` (by default the initializer
    that fits its activation), or None when it already has that one."""
    new = new or fitting_initializer(analysis.effective_activation(node))
    old = initializers.snake_name(stored_initializer(node.layer)) \
        if stored_initializer(node.layer) is not None else "glorot_uniform"
    if old == new:
        return None
    return Edit("kernel_initializer", old, new, layer=node.layer.path)


def initializer_fix(analysis, nodes, quantity: str | None = "gradient",
                    at: str | None = None) -> Fix | None:
    """One fix re-initializing every layer of `nodes` with the initializer its activation
    needs (shared layers once)."""
    edits, seen = [], set()
    for node in nodes:
        if id(node.layer) in seen:
            continue
        seen.add(id(node.layer))
        edit = initializer_edit(analysis, node)
        if edit is not None:
            edits.append(edit)
    if not edits:
        return None
    news = sorted({edit.new for edit in edits})
    return Fix(scope="layer", edits=edits, quantity=quantity, at=at,
               description=f"re-initialize {len(edits)} kernel{'s' if len(edits) != 1 else ''} "
                           f"with {' / '.join(news)}")


def structural(description: str) -> Fix:
    """A fix that changes the architecture: said, never applied."""
    return Fix(scope="structural", description=description, automatic=False,
               reason="a structural change", quantity=None)
