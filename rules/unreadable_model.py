"""The file could not be read as a Keras model.

## What it flags
A file named on the command line (or found in a directory) that gradlint cannot read: a
truncated or corrupted archive, a zip without `config.json`, invalid JSON, a configuration
that is not a model, an HDF5 file without a model in it, an empty file, or a format gradlint
does not read (a TensorFlow SavedModel without `keras_metadata.pb`).

## Why it matters
A model that cannot be read cannot be checked, and a CI gate that silently skipped it would
pass models nobody looked at. gradlint reports the file, says why, exits with status 2, and
still lints every other file.

## Example
    $ gradlint broken.keras
    broken.keras: GL001 [error] not a readable zip archive (File is not a zip file)

## Use instead
Save the whole model with `model.save("model.keras")` (or `model.save("model.h5")` on
Keras 2). Weights-only files (`*.weights.h5`) hold no architecture to check.
"""

CODE = "GL001"
NAME = "unreadable-model"
SEVERITY = "error"
PRECISION = "very-high"
GROUPS = ("file",)
ALIASES = ()
OPTIONS = {}
