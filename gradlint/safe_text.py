"""Strings from a model file, made safe to print.

Everything a renderer shows can come from a hostile file: layer, model and class names,
messages quoting config values, and paths, which may hold bytes that are not UTF-8 (Python
decodes them with surrogateescape, into lone surrogates such as U+DCFF). Two helpers:

- `printable` is for plain text meant for a person (the text output, GitHub annotations,
  JUnit failure text, SARIF message text, the Markdown and HTML reports). Every character
  that a terminal or a viewer may act on instead of showing is replaced by a visible,
  Python-style escape: C0 controls (tab and newline included), DEL and C1 controls (so every
  ANSI/OSC escape sequence), lone surrogates, the Unicode line and paragraph separators,
  the bidirectional embeddings, overrides and isolates (which reorder the text around
  them), and the noncharacters U+FFFE and U+FFFF (which XML forbids). ASCII controls become
  ``\\x1b``-style escapes (``\\t``, ``\\n`` and ``\\r`` for those three), everything else
  ``\\u009b``-style ones, so a C1 control is never mistaken for a byte. A lone surrogate
  from a path, ``\\udcff``, names its original byte (0xff) and stays readable.
- `valid_unicode` only replaces lone surrogates, the one thing that cannot be encoded as
  UTF-8, for data formats (JSON) that must keep every other character as it is.

Both are one regular-expression substitution, cheap enough for every lint.
"""

from __future__ import annotations

import os
import re
from typing import Any, Callable

# Everything but C0 controls: DEL, C1, line and paragraph separators, bidirectional
# embeddings/overrides (U+202A-U+202E) and isolates (U+2066-U+2069), lone surrogates,
# U+FFFE and U+FFFF.
_OTHER = "\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff\ufffe\uffff"
UNSAFE = re.compile(f"[\x00-\x1f{_OTHER}]")
# The same without newline and carriage return, for formats that show line breaks their own
# way (GitHub's %0A, Markdown's <br>).
UNSAFE_BUT_LINE_BREAKS = re.compile(f"[\x00-\x09\x0b\x0c\x0e-\x1f{_OTHER}]")
SURROGATE = re.compile("[\ud800-\udfff]")
SHORT = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _escape(match: re.Match) -> str:
    char = match.group()
    short = SHORT.get(char)
    if short is not None:
        return short
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x80 else f"\\u{code:04x}"


def printable(text: Any, line_breaks: bool = False) -> str:
    """`text` with every control character, lone surrogate and other invisible trouble-maker
    shown as an escape (``\\x1b``, ``\\n``, ``\\u009b``, ``\\udcff``); with `line_breaks`,
    newline and carriage return are left for the caller to show its own way."""
    pattern = UNSAFE_BUT_LINE_BREAKS if line_breaks else UNSAFE
    return pattern.sub(_escape, text if isinstance(text, str) else str(text))


def valid_unicode(text: str) -> str:
    """`text` with each lone surrogate written as its escape (``\\udcff``): valid Unicode,
    encodable as UTF-8, every other character unchanged."""
    return SURROGATE.sub(_escape, text)


def map_strings(value: Any, function: Callable[[str], str]) -> Any:
    """A copy of JSON-like data (dicts, lists, tuples as lists) with `function` applied to
    every string, dict keys included; other values are kept as they are."""
    if isinstance(value, str):
        return function(value)
    if isinstance(value, dict):
        return {map_strings(key, function): map_strings(item, function)
                for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [map_strings(item, function) for item in value]
    return value


def path_bytes(path: str) -> bytes:
    """The bytes of a path as the file system holds them: a name Python decoded with
    surrogateescape gets its original bytes back (``model-\\udcff.keras`` is
    b"model-\\xff.keras"). A string no file system gave (a live model's ``<name>`` with
    another lone surrogate) is encoded as UTF-8 with its surrogates passed through."""
    try:
        return os.fsencode(path)
    except UnicodeEncodeError:
        return path.encode("utf-8", "surrogatepass")
