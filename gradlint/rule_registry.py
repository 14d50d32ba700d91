"""The rule registry: rules are discovered from the `gradlint.rules` package, one module each,
and from installed rule plugins (the entry-point group ``gradlint.rules``, docs/plugins.md),
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

Plugins follow the same contract, checked by the same `_load`. An entry point's name is the
code prefix of its rules (``XMP = "xmp_rules"``: codes XMP101, XMP901, ...; ``GL`` is
gradlint's own) and its value a rule module or a package whose modules are rules. Only
installed distributions are asked (never the working directory), and a plugin that fails to
import, breaks the contract or takes another rule's code, name or alias is a `PluginError`
that names its distribution. `use_plugins(False)`, ``--no-plugins``, ``plugins = false`` or
``GRADLINT_NO_PLUGINS=1`` leave them all out.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import re
import sys
from dataclasses import dataclass
from functools import lru_cache
from types import ModuleType
from typing import Any, Callable, Iterable

from gradlint.findings import SEVERITIES

CODE_PATTERN = re.compile(r"^GL\d{3}$")
FLOW_FAMILIES = ("vanishing", "exploding", "recurrent")
NAME_PATTERN = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
# A selector that is a code prefix: letters, then up to three digits (GL, GL1, XMP10).
PREFIX_SELECTOR = re.compile(r"^([A-Z]+)(\d{0,3})$")

ENTRY_POINT_GROUP = "gradlint.rules"
# A plugin's code prefix is its entry point's name: capital letters of its own, not GL.
PLUGIN_PREFIX = re.compile(r"^[A-Z]{2,5}$")
RESERVED_PREFIX = "GL"
NO_PLUGINS_VARIABLE = "GRADLINT_NO_PLUGINS"


class SelectionError(ValueError):
    """A selector names no rule, code prefix, alias or group."""


class RuleContractError(RuntimeError):
    """A rule module that does not follow the rule contract."""


class PluginError(Exception):
    """A rule plugin that cannot be used: it fails to import, breaks the rule contract, or
    claims a code, name or alias another rule has. The message names its distribution."""


PRECISIONS = ("very-high", "high", "medium", "low")


@dataclass(frozen=True)
class Plugin:
    """Where a plugin rule comes from: an entry point of an installed distribution."""

    distribution: str
    version: str
    prefix: str  # the entry point's name
    entry_point: str  # its value: the module or package of rules

    def __str__(self) -> str:
        return f"{self.distribution} {self.version}"

    def to_dict(self) -> dict[str, str]:
        return {"distribution": self.distribution, "version": self.version,
                "prefix": self.prefix, "entry-point": self.entry_point}


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
    # A condition (CONDITION = True: depth, a missing normalization) rather than a cause:
    # where a cause with the same claim covers its layers, it is reported inside that
    # finding (`gradlint.folding`).
    condition: bool = False
    plugin: Plugin | None = None  # None: a built-in rule
    module: str = ""

    @property
    def summary(self) -> str:
        return self.doc.strip().splitlines()[0] if self.doc.strip() else ""

    @property
    def origin(self) -> str:
        """"built-in", or the plugin's distribution and version ("xmp-rules 0.1.0")."""
        return "built-in" if self.plugin is None else str(self.plugin)

    def describe(self) -> str:
        """The rule and where it comes from, for messages about clashes."""
        if self.plugin is None:
            return f"built-in rule {self.code} ({self.name})"
        return (f"rule {self.code} ({self.name}) of plugin {self.plugin} "
                f"(module {self.module})")


def _load(module: ModuleType, plugin: Plugin | None = None) -> Rule:
    code = getattr(module, "CODE", None)
    name = getattr(module, "NAME", None)
    severity = getattr(module, "SEVERITY", None)
    problems = []
    if plugin is None:
        if not isinstance(code, str) or not CODE_PATTERN.match(code):
            problems.append("CODE must look like GL123")
    elif not isinstance(code, str) or not re.fullmatch(re.escape(plugin.prefix) + r"\d{3}",
                                                        code):
        problems.append(f"CODE must be the plugin's prefix {plugin.prefix} (its entry point's "
                        f"name) and three digits, like {plugin.prefix}101 (got {code!r})")
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
    groups = getattr(module, "GROUPS", ())
    aliases = getattr(module, "ALIASES", ())
    options = getattr(module, "OPTIONS", {})
    check = getattr(module, "check", None)
    if not _strings(groups) or not _strings(aliases):
        problems.append("GROUPS and ALIASES must be tuples of strings")
        groups, aliases = (), ()
    if not isinstance(options, dict) or not all(isinstance(key, str) for key in options):
        problems.append("OPTIONS must be a dict of option name -> default")
        options = {}
    if plugin is not None and not callable(check):
        problems.append("check(analysis, options) is missing")
    about_flow = set(groups) & set(FLOW_FAMILIES)
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
        raise RuleContractError(f"rule module {module.__name__}: " + "; ".join(problems))
    return Rule(code=code, name=name, severity=severity, groups=tuple(groups),
                aliases=tuple(aliases), options=dict(options), doc=module.__doc__ or "",
                check=check, probe=probe, claims=claims, confirm=confirm if claims else None,
                measures=measures, precision=precision, plugin=plugin, module=module.__name__,
                condition=bool(getattr(module, "CONDITION", False)))


def _strings(values: Any) -> bool:
    return isinstance(values, (tuple, list)) and all(isinstance(v, str) for v in values)


@lru_cache(maxsize=1)
def built_in_rules() -> tuple[Rule, ...]:
    """gradlint's own rules (the `gradlint.rules` package), sorted by code."""
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


# -- plugins ----------------------------------------------------------------------------------
_use_plugins: bool | None = None  # None: on, unless GRADLINT_NO_PLUGINS says otherwise


def disabled_by_environment() -> bool:
    """GRADLINT_NO_PLUGINS set to anything but "", "0", "false" or "no"."""
    value = os.environ.get(NO_PLUGINS_VARIABLE, "").strip().lower()
    return value not in ("", "0", "false", "no")


def use_plugins(enabled: bool | None) -> None:
    """Load rule plugins (True), leave them out (False), or decide from GRADLINT_NO_PLUGINS
    (None, the default) for this process. The command line sets it from --plugins /
    --no-plugins and the configuration's `plugins` key (`config.plugins_wanted`)."""
    global _use_plugins
    _use_plugins = enabled


def plugins_enabled() -> bool:
    return _use_plugins if _use_plugins is not None else not disabled_by_environment()


def _search_path() -> list[str]:
    """Where installed distributions are looked for: `sys.path` without the working
    directory, which `python -c` and notebooks put first; a linted repository must not be
    able to plant a plugin's metadata there."""
    try:
        here = os.getcwd()
    except OSError:  # the working directory was removed: nothing to leave out
        here = None
    return [entry for entry in sys.path
            if entry not in ("", ".") and (here is None or os.path.abspath(entry) != here)]


@dataclass(frozen=True)
class _EntryPoint:
    """One `gradlint.rules` entry point and the distribution that declares it."""

    name: str
    value: str
    distribution: str
    version: str

    @property
    def module(self) -> str:
        match = _ENTRY_POINT_VALUE.match(self.value)
        return match.group("module") if match else self.value

    @property
    def attr(self) -> str | None:
        match = _ENTRY_POINT_VALUE.match(self.value)
        return match.group("attr") if match else None


# importlib.metadata.EntryPoint's own pattern for "module:attr [extras]".
_ENTRY_POINT_VALUE = re.compile(r"(?P<module>[\w.]+)\s*(:\s*(?P<attr>[\w.]+)\s*)?"
                                r"((?P<extras>\[.*\])\s*)?$")


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _group_entries(text: str) -> list[tuple[str, str]]:
    """(name, value) of the group's section of an entry_points.txt, read as
    importlib.metadata reads it."""
    entries, section = [], None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip()
        elif section == ENTRY_POINT_GROUP and "=" in line:
            name, _, value = line.partition("=")
            entries.append((name.strip(), value.strip()))
    return entries


def _headers(directory: str) -> dict[str, str]:
    """Name and Version from a distribution's METADATA (or an egg's PKG-INFO): the first
    header lines, which is all that is needed, without an email parser."""
    found: dict[str, str] = {}
    for file in ("METADATA", "PKG-INFO"):
        try:
            with open(os.path.join(directory, file), encoding="utf-8",
                      errors="replace") as handle:
                for line in handle:
                    if not line.strip():
                        break
                    key, colon, value = line.partition(":")
                    if colon and key in ("Name", "Version") and key not in found:
                        found[key] = value.strip()
            return found
        except OSError:
            continue
    return found


def _scan(path: list[str]) -> list[_EntryPoint] | None:
    """The group's entry points of the distributions on `path`, each distribution once (the
    first of its name on the path, as importlib.metadata takes it), read straight from their
    ``.dist-info`` and ``.egg-info`` directories: about 1 ms for a hundred distributions,
    where importing importlib.metadata alone costs about 12 ms (and its scan 5 ms more) on
    every run. None where this cannot see every distribution (a zip on the path, a finder
    with distributions of its own): then importlib.metadata looks."""
    import importlib.machinery

    for finder in sys.meta_path:
        if hasattr(finder, "find_distributions") and \
                finder is not importlib.machinery.PathFinder:
            return None
    marker = ENTRY_POINT_GROUP.encode()
    seen: set[str] = set()
    found = []
    for entry in path:
        try:
            listing = os.scandir(entry or ".")
        except NotADirectoryError:
            return None
        except OSError:
            continue
        with listing:
            items = [(item.name, item.path) for item in listing
                     if item.name.endswith((".dist-info", ".egg-info"))]
        for name, directory in items:
            # importlib.metadata's name for a distribution: its directory's, up to a "-".
            normalized = _normalize(os.path.splitext(name)[0].partition("-")[0])
            if normalized in seen:
                continue
            seen.add(normalized)
            try:
                with open(os.path.join(directory, "entry_points.txt"), "rb") as handle:
                    data = handle.read()
            except OSError:
                continue
            if marker not in data:
                continue
            entries = _group_entries(data.decode("utf-8", "replace"))
            if not entries:
                continue
            headers = _headers(directory)
            stem = os.path.splitext(name)[0].split("-")
            distribution = headers.get("Name") or stem[0]
            version = headers.get("Version") or (stem[1] if len(stem) > 1 else "?")
            found += [_EntryPoint(point, value, distribution, version)
                      for point, value in entries]
    return found


def _scan_with_importlib(path: list[str]) -> list[_EntryPoint]:
    import importlib.metadata

    found = []
    seen: set[str] = set()
    for distribution in importlib.metadata.distributions(path=path):
        normalized = getattr(distribution, "_normalized_name", None) or \
            _normalize(distribution.metadata["Name"] or "")
        if normalized in seen:
            continue
        seen.add(normalized)
        for point in distribution.entry_points:
            if point.group == ENTRY_POINT_GROUP:
                found.append(_EntryPoint(point.name, point.value,
                                         distribution.metadata["Name"] or "?",
                                         distribution.version or "?"))
    return found


def _entry_points() -> list[_EntryPoint]:
    """Every installed rule plugin's entry point, in a stable order."""
    path = _search_path()
    found = _scan(path)
    if found is None:
        found = _scan_with_importlib(path)
    return sorted(found, key=lambda point: (point.name, point.distribution, point.value))


def _failure(error: BaseException) -> str:
    """"ModuleNotFoundError: No module named 'x' (at xmp_rules/rule.py:3)": the error and
    the plugin's own line that raised it."""
    text = f"{type(error).__name__}: {error}"
    if isinstance(error, SyntaxError):
        return text  # it says the file and line itself
    import traceback

    frames = [frame for frame in traceback.extract_tb(error.__traceback__)
              if not frame.filename.startswith("<frozen ")
              and frame.filename not in (__file__, importlib.__file__)]
    if frames:
        frame = frames[-1]
        text += f" (at {frame.filename}:{frame.lineno})"
    return text


def _import(module: str, plugin: Plugin) -> ModuleType:
    try:
        return importlib.import_module(module)
    except (Exception, SystemExit) as error:
        raise PluginError(f"plugin {plugin} (entry point '{plugin.prefix} = "
                          f"{plugin.entry_point}' in group {ENTRY_POINT_GROUP}): importing "
                          f"{module} failed: {_failure(error)}") from None


def _plugin_rules(entry_point: _EntryPoint) -> list[Rule]:
    plugin = Plugin(distribution=entry_point.distribution, version=entry_point.version,
                    prefix=entry_point.name, entry_point=entry_point.value)
    where = (f"plugin {plugin} (entry point '{entry_point.name} = {entry_point.value}' in "
             f"group {ENTRY_POINT_GROUP})")
    if entry_point.name.startswith(RESERVED_PREFIX):
        raise PluginError(f"{where}: the entry point's name is its rules' code prefix, and "
                          f"{RESERVED_PREFIX} is the prefix of gradlint's built-in rules "
                          "(GL001-GL999): give the plugin a prefix of its own, 2 to 5 capital "
                          "letters such as XMP")
    if not PLUGIN_PREFIX.match(entry_point.name):
        raise PluginError(f"{where}: the entry point's name is its rules' code prefix and "
                          "must be 2 to 5 capital letters, such as XMP")
    if entry_point.attr:
        raise PluginError(f"{where}: the entry point must name a module or a package of rule "
                          f"modules, not an object inside one (':{entry_point.attr}')")
    module = _import(entry_point.module, plugin)
    if hasattr(module, "CODE"):
        modules = [module]
    elif hasattr(module, "__path__"):
        modules = [_import(f"{module.__name__}.{info.name}", plugin)
                   for info in sorted(pkgutil.iter_modules(module.__path__),
                                      key=lambda info: info.name)
                   if not info.name.startswith("_")]
        if not modules:
            raise PluginError(f"{where}: the package {module.__name__} has no rule modules")
    else:
        raise PluginError(f"{where}: {module.__name__} defines no CODE and is not a package "
                          "of rule modules")
    rules = []
    for rule_module in modules:
        try:
            rules.append(_load(rule_module, plugin))
        except RuleContractError as error:
            raise PluginError(f"{where}: {error}") from None
    return rules


def _check_clashes(rules: Iterable[Rule]) -> None:
    """No two rules may answer to the same code, name or alias (`find_rule` compares them
    without case), and a plugin's group must not be another rule's code, name or alias: a
    selector must mean one thing."""
    owners: dict[str, tuple[Rule, str]] = {}
    groups: dict[str, Rule] = {}
    for rule in rules:
        words = [(rule.code, "code"), (rule.name, "name"),
                 *((alias, "alias") for alias in rule.aliases)]
        for word, kind in words:
            key = word.lower()
            if key == "all" and rule.plugin is not None:
                raise PluginError(f"{rule.describe()}: '{word}' is the selector ALL, every "
                                  "rule; give the rule another " + kind)
            other = owners.get(key)
            if other is not None and other[0] is not rule and \
                    (rule.plugin is not None or other[0].plugin is not None):
                raise PluginError(
                    f"rule plugins clash: '{word}' is the {other[1]} of "
                    f"{other[0].describe()} and the {kind} of {rule.describe()}; uninstall one "
                    "of them, or leave plugins out with --no-plugins")
            owners.setdefault(key, (rule, kind))
        if rule.plugin is not None:
            for group in rule.groups:
                groups.setdefault(group.lower(), rule)
    for group, rule in groups.items():
        other = owners.get(group)
        if other is not None:
            raise PluginError(f"rule plugins clash: '{group}' is a group of {rule.describe()} "
                              f"and the {other[1]} of {other[0].describe()}")


@lru_cache(maxsize=1)
def plugin_rules() -> tuple[Rule, ...]:
    """The rules of every installed plugin, checked against the built-in rules and each
    other, sorted by code. Raises `PluginError`."""
    rules = []
    for entry_point in _entry_points():
        rules.extend(_plugin_rules(entry_point))
    if rules:
        _check_clashes([*built_in_rules(), *rules])
    return tuple(sorted(rules, key=lambda rule: rule.code))


def all_rules() -> tuple[Rule, ...]:
    """Every rule: the built-in ones sorted by code, then the plugins' (unless plugins are
    off, `use_plugins`). Raises `PluginError` for a plugin that cannot be used."""
    return _all_rules(plugins_enabled())


@lru_cache(maxsize=2)
def _all_rules(plugins: bool) -> tuple[Rule, ...]:
    return built_in_rules() + plugin_rules() if plugins else built_in_rules()


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


def _code_prefix(selector: str, code: str) -> bool:
    """GL1 is a prefix of GL101 and XMP of XMP101; X is not a prefix of XMP101 (ruff's rule:
    the letters name the linter whole, the digits narrow it)."""
    wanted = PREFIX_SELECTOR.match(selector)
    have = PREFIX_SELECTOR.match(code)
    return bool(wanted and have and wanted.group(1) == have.group(1)
                and have.group(2).startswith(wanted.group(2)))


def matching(selector: str) -> list[Rule]:
    """The rules a selector picks: ALL, a code, a code prefix (GL1, XMP), a name, alias or
    group."""
    wanted = selector.strip()
    if not wanted:
        raise SelectionError("empty rule selector")
    if wanted.upper() == "ALL":
        return list(all_rules())
    upper = wanted.upper()
    rules = [rule for rule in all_rules()
             if _code_prefix(upper, rule.code)
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
