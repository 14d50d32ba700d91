"""A compiled model whose every layer with weights is frozen (`trainable=False`): training updates nothing.

## What it flags
Models saved with a compile configuration (an optimizer) in which every layer that has
weights, kernels or normalization parameters, is saved with `trainable=False`. A frozen
model saved without an optimizer (a feature extractor kept for inference) is not flagged,
nor is the usual transfer-learning setup, a frozen base under a trainable head.

## Why it hurts gradient flow
No variable receives a gradient update: `fit` runs, the loss stays where it is and the
weights never change. Keras 3 only warns once, at the start of training ("The model does
not have any trainable weights", keras/src/backend/tensorflow/trainer.py). `model.trainable
= False` freezes every layer of a model, and the flag is saved with each layer's
configuration (measured in Keras 3.15 and tf-keras 2.21), so a model frozen for a first
stage of fine-tuning and saved before its head was unfrozen comes back frozen.

A frozen `BatchNormalization` in a model that trains its other layers is not flagged: in
Keras 3 and in tf.keras since TensorFlow 2.0 it then runs in inference mode (its moving
statistics), which is the recommended way to fine-tune (Keras transfer-learning guide). Only
multi-backend Keras 2 normalized a frozen layer with batch statistics while training
(keras-team/keras#9965, #9522), a difference between training and inference rather than a
gradient problem, and one the file cannot show: what decides it is the Keras that trains the
model, not the one that saved it.

A GAN's discriminator frozen after its own compile, for the combined model (the pattern of
the classic Keras GAN examples), is flagged when it is saved so: in that process tf-keras
captured its trainable weights when it was compiled and kept training it, but the file
loads frozen (two public GAN repositories' discriminators, found by an unseen-file sweep).
Save it with `trainable = True`, or ignore GL404 for that file (`per-file-ignores`).

## Example
    model.trainable = False
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    model.save("model.keras")

## Use instead
Unfreeze the layers that should learn (`layer.trainable = True` for the head, or
`model.trainable = True` to fine-tune everything) and compile again before training.
"""

from gradlint.findings import Problem, span

CODE = "GL404"
NAME = "frozen-model"
SEVERITY = "error"
PRECISION = "very-high"
GROUPS = ("optimizer",)
ALIASES = ("all-layers-frozen",)
OPTIONS = {}


def _has_weights(layer) -> bool:
    return bool(layer.weights) or layer.weighted or bool(layer.family.normalizes)


def check(analysis, options):
    graph = analysis.graph
    if graph.training is None or not graph.graph_stored:
        return
    layers = [layer for layer in graph.layers() if _has_weights(layer)]
    if not layers:
        return
    if any(layer.config.get("trainable", True) is not False for layer in layers):
        return
    paths = [layer.path for layer in layers]
    optimizer = graph.training.optimizer or "an optimizer"
    yield Problem(
        f"every layer with weights ({span(paths)}) is saved with trainable=False, yet the "
        f"model is compiled with {optimizer}: training will update nothing",
        layer=None, layers=paths,
        evidence={"frozen_layers": len(paths), "optimizer": graph.training.optimizer})
