"""The command line: `gradlint PATH...` lints (the `check` command is the default),
`gradlint rule GL101` explains a rule, `gradlint rules` lists them.

Exit status: 0 when nothing is at or above the fail level, 1 when something is, 2 for a usage
or configuration error or a file that could not be read (2 wins; `--exit-zero` turns 1 into
0 but never hides 2).
"""

from __future__ import annotations

import json
import os
import sys

import click

from gradlint import __version__
from gradlint.renderers import FORMATS

EXIT_USAGE = 2


class DefaultCommandGroup(click.Group):
    """A group whose first argument, when it is not a sub-command, goes to `check`, so that
    `gradlint model.keras` and `gradlint --select GL1 models/` lint."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h",
                                                                    "--version"):
            args = ["check", *args]
        return super().parse_args(ctx, args)


def _split(values: tuple[str, ...]) -> list[str]:
    """Comma-separated and repeated option values, as one list."""
    result = []
    for value in values:
        result.extend(part.strip() for part in value.split(",") if part.strip())
    return result


def _use_color(stream) -> bool:
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    return hasattr(stream, "isatty") and stream.isatty()


def _fail(message: str) -> None:
    click.echo(f"gradlint: error: {message}", err=True)
    sys.exit(EXIT_USAGE)


@click.group(cls=DefaultCommandGroup, no_args_is_help=True,
             context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="gradlint")
def main() -> None:
    """Find vanishing- and exploding-gradient risks in saved Keras models, before training.

    `gradlint PATH...` is short for `gradlint check PATH...`.
    """




@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--select", multiple=True, metavar="RULES",
              help="Rules to run (codes, prefixes like GL1, names or groups; comma-separated). "
                   "Replaces the default set, which is every rule.")
@click.option("--extend-select", multiple=True, metavar="RULES", help="Rules to add.")
@click.option("--ignore", multiple=True, metavar="RULES", help="Rules to leave out.")
@click.option("--exclude", multiple=True, metavar="GLOBS",
              help="Globs to skip when searching directories (replaces the defaults).")
@click.option("--extend-exclude", multiple=True, metavar="GLOBS", help="More globs to skip.")
@click.option("--respect-gitignore/--no-respect-gitignore", default=None,
              help="Skip files that .gitignore ignores when searching directories (default: on).")
@click.option("-j", "--jobs", type=click.IntRange(min=0), default=0, show_default="0: one per core",
              help="Lint files in parallel processes.")
@click.option("--output-format", type=click.Choice(list(FORMATS)), default="text",
              show_default=True, help="How to print the findings.")
@click.option("-o", "--output-file", type=click.Path(dir_okay=False, writable=True),
              help="Write the output to FILE instead of standard output.")
@click.option("--fail-on", type=click.Choice(["error", "warning", "info", "never"]),
              default=None, help="Lowest severity that makes the exit status 1 (default: error).")
@click.option("--exit-zero", is_flag=True,
              help="Exit 0 even when findings are at or above the fail level (never hides "
                   "an unreadable file).")
@click.option("--statistics", is_flag=True, help="Print how often each rule fired instead of "
                                                 "the findings.")
@click.option("--no-weights", is_flag=True,
              help="Do not read stored weights: fastest, estimates from initializers only.")
@click.option("--config", "config_file", type=click.Path(dir_okay=False),
              help="Configuration file (gradlint.toml, or pyproject.toml with [tool.gradlint]).")
@click.option("--isolated", is_flag=True, help="Ignore all configuration files.")
@click.option("--show-settings", is_flag=True, help="Print the resolved settings and exit.")
@click.option("-q", "--quiet", is_flag=True, help="Print findings only: no notes, no summary.")
def check(paths, select, extend_select, ignore, exclude, extend_exclude, respect_gitignore, jobs,
          output_format, output_file, fail_on, exit_zero, statistics, no_weights, config_file,
          isolated, show_settings, quiet):
    """Lint model files and directories (*.keras, *.h5, *.hdf5)."""
    from gradlint.config import ConfigError, load_settings, validate_selectors
    from gradlint.rule_registry import select as select_rules

    try:
        settings = load_settings(config_file, isolated)
        if select:
            settings.select = _split(select)
        if extend_select:
            settings.extend_select = settings.extend_select + _split(extend_select)
        if ignore:
            settings.ignore = settings.ignore + _split(ignore)
        if exclude:
            settings.exclude = _split(exclude)
        if extend_exclude:
            settings.extend_exclude = settings.extend_exclude + _split(extend_exclude)
        if respect_gitignore is not None:
            settings.respect_gitignore = respect_gitignore
        if fail_on is not None:
            settings.fail_on = fail_on
        if no_weights:
            settings.read_weights = False
        for key in ("select", "extend_select", "ignore"):
            validate_selectors(f"--{key.replace('_', '-')}", getattr(settings, key) or [])
    except ConfigError as error:
        _fail(str(error))

    if show_settings:
        data = settings.to_dict()
        data["selected_rules"] = [rule.code for rule in select_rules(
            settings.select, settings.ignore, settings.extend_select)]
        click.echo(json.dumps(data, indent=2, default=str))
        return

    from gradlint.engine import lint_paths
    from gradlint.renderers import RenderOptions, render

    workers = jobs or (os.cpu_count() or 1)
    report = lint_paths(list(paths), settings, jobs=workers)
    stream = sys.stdout
    options = RenderOptions(color=output_file is None and _use_color(stream), quiet=quiet,
                            statistics=statistics)
    output = render(output_format, report, options)
    if output_file:
        try:
            with open(output_file, "w", encoding="utf-8") as handle:
                handle.write(output)
        except OSError as error:
            _fail(f"cannot write {output_file}: {error.strerror or error}")
    else:
        click.echo(output, nl=False)
    sys.exit(report.exit_code(settings.fail_on, exit_zero))


@main.command()
@click.argument("selector")
@click.option("--output-format", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
def rule(selector, output_format):
    """Explain one rule: its documentation, severity and options."""
    from gradlint.rule_registry import find_rule

    found = find_rule(selector)
    if found is None:
        _fail(f"no rule has the code or name '{selector}' (see 'gradlint rules')")
    if output_format == "json":
        click.echo(json.dumps(rule_as_dict(found), indent=2))
        return
    title = f"{found.code} {found.name} ({found.severity})"
    lines = [title, "=" * len(title), "", found.doc.strip(), ""]
    if found.aliases:
        lines.append(f"Aliases: {', '.join(found.aliases)}")
    if found.groups:
        lines.append(f"Groups: {', '.join(found.groups)}")
    if found.options:
        lines.append("Defaults: " + ", ".join(f"{k} = {v!r}" for k, v in found.options.items()))
    click.echo("\n".join(lines).rstrip() + "\n")


def rule_as_dict(found) -> dict:
    return {"code": found.code, "name": found.name, "severity": found.severity,
            "summary": found.summary, "groups": list(found.groups),
            "aliases": list(found.aliases), "options": found.options,
            "probe": found.probe, "documentation": found.doc.strip()}


@main.command(name="rules")
@click.option("--output-format", type=click.Choice(["text", "json", "markdown"]), default="text",
              show_default=True)
def list_rules(output_format):
    """List every rule with its code, name, default severity and summary."""
    from gradlint.rule_registry import all_rules

    rules = all_rules()
    if output_format == "markdown":
        from gradlint.renderers.rule_catalog import render_catalog

        click.echo(render_catalog(rules), nl=False)
        return
    if output_format == "json":
        click.echo(json.dumps([rule_as_dict(r) for r in rules], indent=2))
        return
    width = max(len(r.name) for r in rules)
    for r in rules:
        click.echo(f"{r.code}  {r.name:<{width}}  {r.severity:<7}  {r.summary}")


if __name__ == "__main__":  # pragma: no cover
    main()
