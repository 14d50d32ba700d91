"""JSON output: the versioned contract of `gradlint.report`.

The JSON keeps every string exactly as the file holds it (control characters are written as
JSON escapes, ``\\u001b``), with one exception: a lone surrogate (a non-UTF-8 byte of a path,
decoded with surrogateescape, or a ``\\udcff`` escape in the file's own JSON) cannot be
encoded as UTF-8, and strict parsers reject it even as a ``\\udcff`` escape. Such a
character is written as the six characters ``\\udcff`` (the JSON string ``"\\\\udcff"``):
valid Unicode that every parser accepts, that names the original byte, and that reads the
same as in the other formats, where U+FFFD would lose which byte it was.
"""

from __future__ import annotations

import json

from gradlint.renderers.safe_text import SURROGATE, map_strings, valid_unicode


def render(report, options) -> str:
    text = report.to_json(indent=2)
    # `to_json` escapes every non-ASCII character, so a lone surrogate shows as a \ud800-
    # \udfff escape (or, were it ever to write non-ASCII as it is, as itself); without one,
    # the usual case, the output is already valid and is kept as it is.
    is_ascii = text.isascii()
    if "\\ud" in text or (not is_ascii and SURROGATE.search(text)):
        data = map_strings(json.loads(text), valid_unicode)
        text = json.dumps(data, indent=2, allow_nan=False, ensure_ascii=is_ascii)
    return text + "\n"
