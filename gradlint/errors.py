"""Errors a reader raises when a file cannot be linted; the engine reports them as GL001."""

from __future__ import annotations


class ModelReadError(Exception):
    """The file could not be read as a Keras model. The message says what and why."""


class UnsupportedFormat(ModelReadError):
    """The input is not a format gradlint reads (a SavedModel directory, a weights-only file)."""
