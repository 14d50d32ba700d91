"""The full Markdown report (`--output-format markdown-full`): every model with its layer
table, for a file or a wiki page rather than a pull-request comment, which `markdown` keeps
within GitHub's 65,536 characters."""

from gradlint.renderers.markdown import render_full as render

__all__ = ["render"]
