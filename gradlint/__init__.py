"""gradlint: find vanishing- and exploding-gradient risks in saved Keras models before training.

    >>> import gradlint
    >>> report = gradlint.lint("model.keras")
    >>> report.exit_code()

Importing gradlint is cheap: the engine, numpy and h5py load only when a model is linted.
"""

__version__ = "0.1.0"

__all__ = ["lint", "Report", "__version__"]


def lint(target, **options):
    """Lint a model file, a directory, a list of paths, or a live `keras.Model`.

    Keyword options: `select`, `ignore` (rule selectors), `weights` (read stored weights,
    default True), `jobs`, `probe` (also measure the gradients with TensorFlow: the probe),
    `settings` (a `gradlint.config.Settings`). Returns a `Report`.
    """
    from gradlint.engine import lint as run

    return run(target, **options)


def __getattr__(name):
    if name == "Report":
        from gradlint.report import Report

        return Report
    raise AttributeError(f"module 'gradlint' has no attribute {name!r}")
