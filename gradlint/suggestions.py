""""Did you mean" for a mistyped rule code, rule name, configuration key or command."""

from __future__ import annotations

import difflib
from typing import Iterable


def did_you_mean(word: str, candidates: Iterable[str], cutoff: float = 0.7) -> str:
    """"; did you mean 'X'?" for the closest candidate (compared without case), or ""."""
    candidates = list(dict.fromkeys(candidates))
    by_folded = {candidate.lower(): candidate for candidate in candidates}
    close = difflib.get_close_matches(word.lower(), list(by_folded), n=1, cutoff=cutoff)
    return f"; did you mean '{by_folded[close[0]]}'?" if close else ""
