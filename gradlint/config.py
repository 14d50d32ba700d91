"""Settings: defaults, then the configuration file, then the command line, merged here and
nowhere else, once, into one immutable `Settings` (`resolve`).

The file is the nearest ``gradlint.toml`` (keys at the top level) or ``pyproject.toml`` with
a ``[tool.gradlint]`` table, searching from the working directory upwards; ``--config``
names one explicitly and ``--isolated`` ignores them all. Unknown keys and bad values raise
`ConfigError`, which the command line reports with exit status 2.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field, fields, replace
from typing import Any

from gradlint.findings import FAIL_LEVELS, SEVERITIES

ESTIMATE_MODES = ("training", "inference")
PROBE_BACKENDS = ("tensorflow", "jax")  # as gradlint.probe.environment.BACKENDS
from gradlint.limits import DEFAULT_LIMITS, LIMIT_KEYS, Limits
from gradlint.suggestions import did_you_mean

CONFIG_FILES = ("gradlint.toml", "pyproject.toml")
DEFAULT_EXCLUDE = (".git", ".hg", ".svn", ".venv", "venv", ".tox", ".nox", "__pycache__",
                   "node_modules", "site-packages", ".mypy_cache", ".pytest_cache")


class ConfigError(ValueError):
    """A configuration value that gradlint cannot use."""


@dataclass(frozen=True)
class Settings:
    """Everything that steers a lint run, after merging file and command line. Frozen: a
    stage that needs other settings makes a changed copy (`dataclasses.replace`)."""

    select: list[str] | None = None
    ignore: list[str] = field(default_factory=list)
    extend_select: list[str] = field(default_factory=list)
    fail_on: str = "error"
    per_file_ignores: dict[str, list[str]] = field(default_factory=dict)
    per_layer_ignores: dict[str, list[str]] = field(default_factory=dict)
    exclude: list[str] = field(default_factory=lambda: list(DEFAULT_EXCLUDE))
    extend_exclude: list[str] = field(default_factory=list)
    respect_gitignore: bool = True
    read_weights: bool = True
    rules: dict[str, dict[str, Any]] = field(default_factory=dict)
    config_path: str | None = None
    root: str = field(default_factory=os.getcwd)
    baseline: str | None = None  # a file's value is relative to `root` (see gradlint.baseline)
    # The gradient probe (gradlint.probe); None for seeds and batch: sized to the model.
    probe: bool = False
    probe_seeds: int | None = None
    probe_batch: int | None = None
    # The Keras backend whose gradients the probe measures: "tensorflow", or "jax" (in a
    # process of its own: gradlint.probe.worker).
    probe_backend: str = "tensorflow"
    # How training runs, for the estimate: BatchNormalization in training mode normalizes by
    # the statistics of a batch of `batch_size` samples; "inference" uses the moving ones.
    # The probe measures at the same batch size for models with batch statistics.
    batch_size: int = 32
    estimate_mode: str = "training"
    custom_objects: list[str] = field(default_factory=list)
    unsafe_load: bool = False
    verbose: bool = False
    # Reading hostile files: resource limits per file, and whether a file whose bytes and
    # name disagree (or that is both a zip and an HDF5 file) may be read at all.
    limits: Limits = DEFAULT_LIMITS
    allow_ambiguous_format: bool = False
    debug: bool = False
    # A searched directory without models: a warning (as ruff does), or GL001 and exit 2.
    fail_on_no_models: bool = False
    # Whether the installed rule plugins were loaded for this run. What decides it is the
    # registry's switch (`rule_registry.use_plugins`), which `resolve` sets from this key,
    # GRADLINT_NO_PLUGINS and --plugins/--no-plugins (`plugins_wanted`).
    plugins: bool = True

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["limits"] = self.limits.to_dict()
        return data

    def as_configuration(self) -> dict[str, Any]:
        """These settings under exactly the keys a configuration file takes, every rule's
        options with their values (defaults included) and every limit."""
        from gradlint.rule_registry import all_rules

        data: dict[str, Any] = {}
        for key, (attribute, _) in FILE_KEYS.items():
            value = getattr(self, attribute)
            if key == "rules":
                value = {rule.code: {"severity": rule.severity, **rule.options,
                                     **self.rules.get(rule.code, {})} for rule in all_rules()}
            elif key == "limits":
                value = {name: getattr(value, field_name)
                         for name, field_name in LIMIT_KEYS.items()}
            data[key] = value
        return data


def _load_toml(path: str) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except OSError as error:
        raise ConfigError(f"cannot read {path}: {error.strerror or error}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path} is not valid TOML: {error}") from None


def table_of(path: str) -> dict[str, Any] | None:
    """The gradlint table of a configuration file, or None if it has none."""
    data = _load_toml(path)
    if os.path.basename(path) == "pyproject.toml":
        table = data.get("tool", {}).get("gradlint")
        return table if isinstance(table, dict) else None
    if "tool" in data and isinstance(data["tool"], dict) and "gradlint" in data["tool"]:
        return data["tool"]["gradlint"]
    return data


def find_config(start: str) -> str | None:
    """The nearest configuration file at or above `start`."""
    directory = os.path.abspath(start)
    while True:
        for name in CONFIG_FILES:
            candidate = os.path.join(directory, name)
            if os.path.isfile(candidate):
                if name == "gradlint.toml" or table_of(candidate) is not None:
                    return candidate
        parent = os.path.dirname(directory)
        if parent == directory:
            return None
        directory = parent


def _string_list(key: str, value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return list(value)
    raise ConfigError(f"'{key}' must be a list of strings")


def _glob_table(key: str, value: Any) -> dict[str, list[str]]:
    if not isinstance(value, dict):
        raise ConfigError(f"'{key}' must be a table of glob = [codes]")
    return {pattern: _string_list(f"{key}.{pattern}", codes) for pattern, codes in value.items()}


def _choice(key: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ConfigError(f"'{key}' must be one of {', '.join(choices)} (got {value!r})")
    return value


def _boolean(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"'{key}' must be true or false")
    return value


def _positive_int(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"'{key}' must be a whole number of at least 1")
    return value


def _file_name(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"'{key}' must be a file name")
    return value


def _limits_table(value: Any) -> Limits:
    if not isinstance(value, dict):
        raise ConfigError("'limits' must be a table of limit = number")
    values: dict[str, Any] = {}
    for key, number in value.items():
        attribute = LIMIT_KEYS.get(key)
        if attribute is None:
            raise ConfigError(f"'limits.{key}': no such limit{did_you_mean(key, LIMIT_KEYS)} "
                              f"(limits: {', '.join(LIMIT_KEYS)})")
        values[attribute] = limit_value(f"limits.{key}", attribute, number)
    return DEFAULT_LIMITS.with_values(values)


def limit_value(key: str, attribute: str, value: Any) -> float | int:
    """A limit as its field's type: a positive number (seconds may be fractional)."""
    default = getattr(DEFAULT_LIMITS, attribute)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 \
            or value != value or value == float("inf"):
        raise ConfigError(f"'{key}' must be a positive number")
    if isinstance(default, int):
        if value != int(value):
            raise ConfigError(f"'{key}' must be a whole number")
        return int(value)
    return float(value)


def validate_selectors(key: str, selectors: list[str]) -> None:
    from gradlint.rule_registry import SelectionError, matching

    for selector in selectors:
        try:
            matching(selector)
        except SelectionError as error:
            raise ConfigError(f"'{key}': {error}") from None


def _rule_table(value: Any) -> dict[str, dict[str, Any]]:
    from gradlint.rule_registry import find_rule

    if not isinstance(value, dict):
        raise ConfigError("'rules' must be a table of rule code or name = {options}")
    result: dict[str, dict[str, Any]] = {}
    for selector, options in value.items():
        rule = find_rule(selector)
        if rule is None:
            from gradlint.rule_registry import suggestion

            raise ConfigError(f"'rules.{selector}': no rule has that code or name"
                              f"{suggestion(selector)}")
        if not isinstance(options, dict):
            raise ConfigError(f"'rules.{selector}' must be a table of options")
        checked: dict[str, Any] = {}
        for name, option in options.items():
            where = f"rules.{selector}.{name}"
            if name == "severity":
                checked[name] = _choice(where, option, SEVERITIES)
                continue
            if name not in rule.options:
                known = ", ".join(["severity", *rule.options]) or "severity"
                raise ConfigError(f"'{where}': {rule.code} has no option '{name}'"
                                  f"{did_you_mean(name, ['severity', *rule.options])} "
                                  f"(options: {known})")
            default = rule.options[name]
            if isinstance(default, bool):
                checked[name] = _boolean(where, option)
            elif isinstance(default, (int, float)):
                if isinstance(option, bool) or not isinstance(option, (int, float)):
                    raise ConfigError(f"'{where}' must be a number")
                checked[name] = type(default)(option) if isinstance(default, float) else option
                if isinstance(default, int) and not isinstance(option, int):
                    raise ConfigError(f"'{where}' must be a whole number")
            elif not isinstance(option, type(default)):
                raise ConfigError(f"'{where}' must be a {type(default).__name__}")
            else:
                checked[name] = option
        result.setdefault(rule.code, {}).update(checked)
    return result


# Every key the file accepts: the Settings field it sets, and how its value is checked.
FILE_KEYS: dict[str, tuple[str, Any]] = {
    "select": ("select", _string_list),
    "ignore": ("ignore", _string_list),
    "extend-select": ("extend_select", _string_list),
    "fail-on": ("fail_on", lambda key, v: _choice(key, v, FAIL_LEVELS)),
    "per-file-ignores": ("per_file_ignores", _glob_table),
    "per-layer-ignores": ("per_layer_ignores", _glob_table),
    "exclude": ("exclude", _string_list),
    "extend-exclude": ("extend_exclude", _string_list),
    "respect-gitignore": ("respect_gitignore", _boolean),
    "weights": ("read_weights", _boolean),
    "rules": ("rules", lambda key, v: _rule_table(v)),
    "baseline": ("baseline", _file_name),
    "probe": ("probe", _boolean),
    "probe-seeds": ("probe_seeds", _positive_int),
    "probe-batch": ("probe_batch", _positive_int),
    "probe-backend": ("probe_backend", lambda key, v: _choice(key, v, PROBE_BACKENDS)),
    "batch-size": ("batch_size", _positive_int),
    "estimate-mode": ("estimate_mode", lambda key, v: _choice(key, v, ESTIMATE_MODES)),
    "custom-objects": ("custom_objects", _string_list),
    "unsafe-load": ("unsafe_load", _boolean),
    "limits": ("limits", lambda key, v: _limits_table(v)),
    "allow-ambiguous-format": ("allow_ambiguous_format", _boolean),
    "fail-on-no-models": ("fail_on_no_models", _boolean),
    "plugins": ("plugins", _boolean),
}


def table_values(table: dict[str, Any], source: str) -> dict[str, Any]:
    """The Settings fields a configuration table sets, checked."""
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key not in FILE_KEYS:
            raise ConfigError(f"{source}: unknown key '{key}'{did_you_mean(key, FILE_KEYS)} "
                              f"(known keys: {', '.join(sorted(FILE_KEYS))})")
        attribute, parse = FILE_KEYS[key]
        try:
            values[attribute] = parse(key, value)
        except ConfigError as error:
            raise ConfigError(f"{source}: {error}") from None
    for key in ("select", "ignore", "extend_select"):
        validate_selectors(f"{source}: {key.replace('_', '-')}", values.get(key) or [])
    for key in ("per_file_ignores", "per_layer_ignores"):
        for codes in values.get(key, {}).values():
            validate_selectors(f"{source}: {key.replace('_', '-')}", codes)
    return values


def load_settings(config: str | None = None, isolated: bool = False,
                  start: str | None = None) -> Settings:
    """Defaults, then the configuration file (unless isolated)."""
    if isolated:
        return Settings()
    path = config or find_config(start or os.getcwd())
    if path is None:
        return Settings()
    if config is not None and not os.path.isfile(config):
        raise ConfigError(f"configuration file {config} does not exist")
    table = table_of(path)
    if table is None:
        raise ConfigError(f"{path} has no [tool.gradlint] table")
    config_path = os.path.abspath(path)
    return Settings(config_path=config_path, root=os.path.dirname(config_path),
                    **table_values(table, os.path.relpath(path)))


@dataclass(frozen=True)
class CommandLine:
    """What the command line said about settings; None (or empty) where it said nothing."""

    select: tuple[str, ...] = ()
    extend_select: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    extend_exclude: tuple[str, ...] = ()
    respect_gitignore: bool | None = None
    fail_on: str | None = None
    no_weights: bool = False
    baseline: str | None = None
    probe: bool | None = None
    unsafe_load: bool = False
    custom_objects: tuple[str, ...] = ()
    probe_batch: int | None = None
    probe_seeds: int | None = None
    probe_backend: str | None = None
    batch_size: int | None = None
    estimate_mode: str | None = None
    verbose: bool = False
    timeout: float | None = None
    max_memory_mb: int | None = None
    allow_ambiguous_format: bool = False
    debug: bool = False
    fail_on_no_models: bool = False
    plugins: bool | None = None  # --plugins / --no-plugins


def plugins_wanted(config: str | None, isolated: bool, command_line: bool | None) -> bool:
    """Whether this run loads the installed rule plugins: --plugins / --no-plugins, else
    off when GRADLINT_NO_PLUGINS is set, else the `plugins` key of the run's configuration
    file (the one `load_settings` reads), else on. Decided before any selector is checked,
    since a plugin's codes are only selectable while it is loaded."""
    from gradlint.rule_registry import disabled_by_environment

    if command_line is not None:
        return command_line
    if disabled_by_environment():
        return False
    if isolated:
        return True
    path = config or find_config(os.getcwd())
    if path is None or not os.path.isfile(path):
        return True  # a missing --config is load_settings' error to report
    table = table_of(path) or {}
    if "plugins" not in table:
        return True
    try:
        return _boolean("plugins", table["plugins"])
    except ConfigError as error:
        raise ConfigError(f"{os.path.relpath(path)}: {error}") from None


def resolve(config: str | None, isolated: bool, command_line: CommandLine) -> Settings:
    """The settings of a run: defaults, the configuration file, then the command line, which
    wins. Lists on the command line extend the file's (`--extend-select`, `--ignore`,
    `--extend-exclude`, `--custom-objects`); `--select` and `--exclude` replace them, and, as
    in ruff, a `--select` starts the selection afresh, so the file's ignore and
    extend-select no longer apply. Whether rule plugins load is decided first
    (`plugins_wanted`) and set on the registry for the process."""
    from gradlint.rule_registry import use_plugins

    plugins = plugins_wanted(config, isolated, command_line.plugins)
    use_plugins(plugins)
    settings = load_settings(config, isolated)
    line = command_line
    changes = _selection_changes(settings, line)
    changes["plugins"] = plugins
    if line.exclude:
        changes["exclude"] = list(line.exclude)
    if line.extend_exclude:
        changes["extend_exclude"] = settings.extend_exclude + list(line.extend_exclude)
    if line.custom_objects:
        changes["custom_objects"] = settings.custom_objects + list(line.custom_objects)
    for name in ("respect_gitignore", "fail_on", "probe", "probe_batch", "probe_seeds",
                 "probe_backend", "batch_size", "estimate_mode"):
        if getattr(line, name) is not None:
            changes[name] = getattr(line, name)
    for name in ("unsafe_load", "verbose", "allow_ambiguous_format", "debug",
                 "fail_on_no_models"):
        if getattr(line, name):
            changes[name] = True
    if line.no_weights:
        changes["read_weights"] = False
    if line.baseline:
        changes["baseline"] = os.path.abspath(line.baseline)
    limits = {name: getattr(line, name) for name in ("timeout", "max_memory_mb")
              if getattr(line, name) is not None}
    if limits:
        changes["limits"] = settings.limits.with_values(limits)
    return replace(settings, **changes)


def _selection_changes(settings: Settings, line: CommandLine) -> dict[str, Any]:
    """What the command line's `--select`, `--extend-select` and `--ignore` make of a
    file's selection."""
    changes: dict[str, Any] = {}
    if line.select:
        changes.update(select=list(line.select), ignore=[], extend_select=[])
    if line.extend_select:
        changes["extend_select"] = changes.get("extend_select", settings.extend_select) + \
            list(line.extend_select)
    if line.ignore:
        changes["ignore"] = changes.get("ignore", settings.ignore) + list(line.ignore)
    for key in ("select", "extend_select", "ignore"):
        validate_selectors(f"--{key.replace('_', '-')}", changes.get(key) or [])
    return changes


# The keys a configuration file sets for the files below it; every other key applies to
# the whole run and is read from the configuration found from the working directory (or
# named by --config).
PER_FILE_KEYS = ("select", "ignore", "extend-select", "rules", "per-file-ignores",
                 "per-layer-ignores")


class Resolver:
    """Each linted file's settings, as ruff resolves them: the configuration file nearest
    the file (searching up from its directory) sets its `PER_FILE_KEYS`, the command line
    wins over it, and the run's settings (`run`) give everything else. `--config` and
    `--isolated` give every file the run's settings."""

    def __init__(self, config: str | None, isolated: bool, command_line: CommandLine):
        self.command_line = command_line
        self.run = resolve(config, isolated, command_line)
        self._fixed = config is not None or isolated
        self._by_directory: dict[str, Settings] = {}
        self._by_config: dict[str, Settings] = {}

    def for_file(self, path: str) -> Settings:
        if self._fixed:
            return self.run
        directory = os.path.dirname(os.path.abspath(path))
        if directory not in self._by_directory:
            self._by_directory[directory] = self._of_config(find_config(directory))
        return self._by_directory[directory]

    def _of_config(self, path: str | None) -> Settings:
        if path is None or os.path.abspath(path) == self.run.config_path:
            return self.run
        key = os.path.abspath(path)
        if key not in self._by_config:
            own = load_settings(key)
            attributes = [FILE_KEYS[name][0] for name in PER_FILE_KEYS]
            settings = replace(self.run, config_path=own.config_path, root=own.root,
                               **{attribute: getattr(own, attribute) for attribute in attributes})
            self._by_config[key] = replace(settings,
                                           **_selection_changes(settings, self.command_line))
        return self._by_config[key]
