"""The rule registry: rules are discovered from the `gradlint.rules` package, one module each,
and selected by code, code prefix, name, alias or group.

A rule module defines ``CODE``, ``NAME``, ``SEVERITY``, ``GROUPS``, ``ALIASES``, ``OPTIONS``
(name -> default) and ``check(analysis, options)`` yielding `Problem`s; its docstring is its
documentation. Probe rules set ``PROBE = True`` and run only when the probe measured the model;
``MEASURES`` names what they measure ("vanishing", "exploding", "recurrent"). ``PRECISION``
says how often its findings are true (code scanning's very-high, high, medium or low).

A static rule about gradient flow (in the group "vanishing", "exploding" or "recurrent")
says how the probe judges its findings, beside its own thresholds: ``CLAIMS`` (the same
words) and ``confirm(finding, measurements, options)`` returning a verdict
(`gradlint.verdicts`), or ``CLAIMS = None`` where no measurement can (a finding about
training). A rule that says neither is refused when it loads, so none goes without a
verdict by oversight.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from dataclasses import dataclass
from functools import lru_cache
from types import ModuleType
from typing import Any, Callable, Iterable

from gradlint.findings import SEVERITIES

CODE_PATTERN = re.compile(r"^GL\d{3}$")
FLOW_FAMILIES = ("vanishing", "exploding", "recurrent")
NAME_PATTERN = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")


class SelectionError(ValueError):
    """A selector names no rule, code prefix, alias or group."""


PRECISIONS = ("very-high", "high", "medium", "low")


@dataclass(frozen=True)
class Rule:
    code: str
    name: str
    severity: str
    groups: tuple[str, ...]
    aliases: tuple[str, ...]
    options: dict[str, Any]
    doc: str
    check: Callable | None
    probe: bool = False
    claims: str | None = None
    confirm: Callable | None = None
    measures: str | None = None
    # How often its findings are true (code scanning's `precision`). very-high: a fact read
    # from the file or the run (it could not be read, a layer is custom, the kernels are
    # constant or not finite, the loss is NaN). high: the mean-field estimate, checked
    # against tf.GradientTape, or a measurement. medium: a rule of thumb about architecture
    # or training settings, which some models train well in spite of.
    precision: str = "medium"

    @property
    def summary(self) -> str:
        return self.doc.strip().splitlines()[0] if self.doc.strip() else ""


def _load(module: ModuleType) -> Rule:
    code = getattr(module, "CODE", None)
    name = getattr(module, "NAME", None)
    severity = getattr(module, "SEVERITY", None)
    problems = []
    if not isinstance(code, str) or not CODE_PATTERN.match(code):
        problems.append("CODE must look like GL123")
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        problems.append("NAME must be kebab-case")
    if severity not in SEVERITIES:
        problems.append(f"SEVERITY must be one of {', '.join(SEVERITIES)}")
    if not (module.__doc__ or "").strip():
        problems.append("the module docstring (the rule's documentation) is missing")
    probe = bool(getattr(module, "PROBE", False))
    claims = getattr(module, "CLAIMS", None)
    confirm = getattr(module, "confirm", None)
    measures = getattr(module, "MEASURES", None)
    precision = getattr(module, "PRECISION", None)
    about_flow = set(getattr(module, "GROUPS", ())) & set(FLOW_FAMILIES)
    if not probe and about_flow and not hasattr(module, "CLAIMS"):
        problems.append("a rule about gradient flow must say how the probe judges it: CLAIMS "
                        "and confirm(finding, measurements, options), or CLAIMS = None")
    if claims is not None and (claims not in FLOW_FAMILIES or not callable(confirm)):
        problems.append(f"CLAIMS must be one of {', '.join(FLOW_FAMILIES)} and come with "
                        "confirm(finding, measurements, options)")
    if measures is not None and (not probe or measures not in FLOW_FAMILIES):
        problems.append(f"MEASURES is for probe rules, one of {', '.join(FLOW_FAMILIES)}")
    if precision not in PRECISIONS:
        problems.append(f"PRECISION must be one of {', '.join(PRECISIONS)}")
    if problems:
        raise RuntimeError(f"rule module {module.__name__}: " + "; ".join(problems))
    return Rule(code=code, name=name, severity=severity,
                groups=tuple(getattr(module, "GROUPS", ())),
                aliases=tuple(getattr(module, "ALIASES", ())),
                options=dict(getattr(module, "OPTIONS", {})),
                doc=module.__doc__ or "", check=getattr(module, "check", None),
                probe=probe, claims=claims, confirm=confirm if claims else None,
                measures=measures, precision=precision)


@lru_cache(maxsize=1)
def all_rules() -> tuple[Rule, ...]:
    """Every rule, sorted by code."""
    package = importlib.import_module("gradlint.rules")
    rules = []
    for info in pkgutil.iter_modules(package.__path__):
        if info.name.startswith("_"):
            continue
        rules.append(_load(importlib.import_module(f"gradlint.rules.{info.name}")))
    codes = [rule.code for rule in rules]
    duplicates = {code for code in codes if codes.count(code) > 1}
    if duplicates:
        raise RuntimeError(f"rule codes defined twice: {', '.join(sorted(duplicates))}")
    return tuple(sorted(rules, key=lambda rule: rule.code))


def find_rule(selector: str) -> Rule | None:
    """The one rule a code, name or alias names."""
    wanted = selector.strip()
    for rule in all_rules():
        if wanted.upper() == rule.code or wanted.lower() == rule.name or wanted in rule.aliases:
            return rule
    return None


def suggestion(selector: str, groups: bool = False) -> str:
    """"; did you mean 'GL101'?" for a selector that names no rule (or group), or ""."""
    from gradlint.suggestions import did_you_mean

    words = [word for rule in all_rules()
             for word in (rule.code, rule.name, *rule.aliases, *(rule.groups if groups else ()))]
    return did_you_mean(selector, words)


def matching(selector: str) -> list[Rule]:
    """The rules a selector picks: ALL, a code, a code prefix (GL1), a name, alias or group."""
    wanted = selector.strip()
    if not wanted:
        raise SelectionError("empty rule selector")
    if wanted.upper() == "ALL":
        return list(all_rules())
    upper = wanted.upper()
    rules = [rule for rule in all_rules()
             if (upper.startswith("GL") and rule.code.startswith(upper))
             or wanted.lower() == rule.name or wanted in rule.aliases
             or wanted.lower() in rule.groups]
    if not rules:
        raise SelectionError(f"'{selector}' names no rule, code prefix, alias or group"
                             f"{suggestion(wanted, groups=True)} (see 'gradlint rules')")
    return rules


def select(select: Iterable[str] | None, ignore: Iterable[str] = (),
           extend_select: Iterable[str] = ()) -> list[Rule]:
    """Apply select / extend-select / ignore the way ruff does: `select` replaces the default
    set (every rule), `extend-select` adds to it, `ignore` removes from the result."""
    chosen: dict[str, Rule] = {}
    for selector in (select if select is not None else ["ALL"]):
        for rule in matching(selector):
            chosen[rule.code] = rule
    for selector in extend_select:
        for rule in matching(selector):
            chosen[rule.code] = rule
    for selector in ignore:
        for rule in matching(selector):
            chosen.pop(rule.code, None)
    return sorted(chosen.values(), key=lambda rule: rule.code)


def codes_for(selectors: Iterable[str]) -> set[str]:
    result: set[str] = set()
    for selector in selectors:
        result.update(rule.code for rule in matching(selector))
    return result
