"""The Jinja environment for the HTML and Markdown reports. Templates are package data of
`gradlint.templates` (the repository's `templates/` directory) and are read with
importlib.resources, so they work from a checkout and from an installed wheel alike."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

TEMPLATE_PACKAGE = "gradlint.templates"


def read_template(name: str) -> str:
    return resources.files(TEMPLATE_PACKAGE).joinpath(name).read_text(encoding="utf-8")


@lru_cache(maxsize=2)
def environment(autoescape: bool):
    import jinja2

    def load(name: str):
        try:
            source = read_template(name)
        except (FileNotFoundError, OSError):
            return None
        return source, None, lambda: True

    return jinja2.Environment(
        loader=jinja2.FunctionLoader(load),
        autoescape=autoescape,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render_template(name: str, autoescape: bool, **context) -> str:
    return environment(autoescape).get_template(name).render(**context)
