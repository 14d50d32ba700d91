"""The command line: `gradlint PATH...` lints (the `check` command is the default),
`gradlint rule GL101` explains a rule, `gradlint rules` lists them.

Exit status: 0 when nothing is at or above the fail level, 1 when something is, 2 for a usage
or configuration error, a file that could not be read, or a file the probe was asked for and
could not run on (2 wins; `--exit-zero` turns 1 into 0 but never hides 2).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time

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
            first = args[0]
            if not first.startswith("-") and not os.path.exists(first) and \
                    os.sep not in first and "." not in first:
                from gradlint.suggestions import did_you_mean

                hint = did_you_mean(first, self.commands, cutoff=0.6)
                if hint:  # `gradlint chek models`: a mistyped command, not a missing file
                    raise click.UsageError(f"no command and no file named '{first}'{hint}",
                                           ctx)
            args = ["check", *args]
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context):
        from gradlint.rule_registry import PluginError

        try:
            return super().invoke(ctx)
        except PluginError as error:  # any command: a plugin that cannot be used is exit 2
            _fail(str(error))


class OutputSpec(click.ParamType):
    """`FORMAT` or `FORMAT:FILE` (the first colon separates them)."""

    name = "FORMAT[:FILE]"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        format, colon, file = value.partition(":")
        if format not in FORMATS:
            from gradlint.suggestions import did_you_mean

            self.fail(f"'{format}' is not an output format{did_you_mean(format, FORMATS)} "
                      f"(formats: {', '.join(FORMATS)})", param, ctx)
        if colon and not file:
            self.fail(f"'{value}': FORMAT:FILE needs a file name", param, ctx)
        return format, file or None


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


def _echo(text: str, err: bool = False, color: bool | None = None) -> None:
    """click.echo, but text that the stream cannot encode (a lone surrogate from a file
    name, say) is written with backslash escapes instead of failing."""
    try:
        click.echo(text, nl=False, err=err, color=color)
    except UnicodeEncodeError:
        stream = sys.stderr if err else sys.stdout
        encoding = getattr(stream, "encoding", None) or "utf-8"
        data = text.encode(encoding, "backslashreplace")
        buffer = getattr(stream, "buffer", None)
        if buffer is not None:
            stream.flush()
            buffer.write(data)
            buffer.flush()
        else:
            stream.write(data.decode(encoding))


def _fail(message: str) -> None:
    from gradlint.safe_text import printable

    # Messages quote paths and configuration values, which a repository controls.
    _echo(f"gradlint: error: {printable(message)}\n", err=True)
    sys.exit(EXIT_USAGE)


class Progress:
    """A one-line counter on a terminal's standard error ("gradlint: linted 12/34 files"),
    shown once a run has taken more than `DELAY` seconds and cleared before anything else
    is printed; never on a non-terminal."""

    DELAY = 1.0

    def __init__(self, verb: str, stream=None):
        self.stream = stream or sys.stderr
        self.enabled = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.verb = verb
        self.started = time.monotonic()
        self.shown = False

    def update(self, done: int, total: int, path: str) -> None:
        if not self.enabled or total < 2:
            return
        if done >= total:  # the findings follow: leave no half line behind
            self.clear()
            return
        if not self.shown and time.monotonic() - self.started < self.DELAY:
            return
        from gradlint.safe_text import printable

        name = printable(path)
        name = name if len(name) <= 50 else "…" + name[-49:]
        self.stream.write(f"\r\033[Kgradlint: {self.verb} {done}/{total} files (last: "
                          f"{name})")
        self.stream.flush()
        self.shown = True

    def clear(self) -> None:
        if self.shown:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self.shown = False


@click.group(cls=DefaultCommandGroup, no_args_is_help=True,
             context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="gradlint")
def main() -> None:
    """Find vanishing- and exploding-gradient risks in saved Keras models, before training.

    `gradlint PATH...` is short for `gradlint check PATH...`.
    """




@main.command()
@click.argument("paths", nargs=-1, type=click.Path())
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
@click.option("--output-format", "outputs", type=OutputSpec(), multiple=True,
              help="How to print the findings (default: text): "
                   f"{', '.join(FORMATS)}. FORMAT:FILE also writes that format to FILE, "
                   "from the same run; repeatable.")
@click.option("-o", "--output-file", type=click.Path(dir_okay=False, writable=True),
              help="Write the output to FILE instead of standard output.")
@click.option("--report", "report_files", type=click.Path(dir_okay=False), multiple=True,
              help="Also write an HTML (FILE.html) or Markdown (FILE.md) report; repeatable.")
@click.option("--baseline", "baseline_file", type=click.Path(dir_okay=False),
              help="Leave out the findings recorded in this baseline file; fail only on new ones.")
@click.option("--create-baseline", "create_baseline", type=click.Path(dir_okay=False),
              help="Record today's findings in FILE, for --baseline.")
@click.option("--fail-on", type=click.Choice(["error", "warning", "info", "never"]),
              default=None, help="Lowest severity that makes the exit status 1 (default: error).")
@click.option("--exit-zero", is_flag=True,
              help="Exit 0 even when findings are at or above the fail level (never hides "
                   "an unreadable file or a probe that could not run).")
@click.option("--statistics", is_flag=True, help="Print how often each rule fired instead of "
                                                 "the findings.")
@click.option("--no-weights", is_flag=True,
              help="Do not read stored weights: fastest, estimates from initializers only.")
@click.option("--probe/--no-probe", "probe", default=None,
              help="Also measure the gradients: a few forward and backward passes on a "
                   "synthetic batch (needs the probe extra: TensorFlow and Keras).")
@click.option("--unsafe-load", is_flag=True,
              help="Let the probe load models with Lambda layers, whose stored code runs.")
@click.option("--custom-objects", multiple=True, metavar="MODULE",
              help="Module (package.module) that defines or registers the model's custom "
                   "layers, imported before the probe loads the model; repeatable.")
@click.option("--probe-batch", type=click.IntRange(min=1), default=None,
              help="Samples per synthetic batch (default: 4, down to 2 for large models).")
@click.option("--probe-seeds", type=click.IntRange(min=1), default=None,
              help="Batches measured; the report gives medians (default: 3, fewer for large "
                   "models).")
@click.option("--probe-backend", type=click.Choice(["tensorflow", "jax"]), default=None,
              help="Keras backend whose gradients the probe measures (default: tensorflow; "
                   "jax runs in a process of its own and needs JAX; tf-keras files: "
                   "tensorflow only).")
@click.option("--batch-size", type=click.IntRange(min=1), default=None,
              help="Samples per training batch, for BatchNormalization's batch statistics in "
                   "the estimate and the probe (default: 32).")
@click.option("--estimate-mode", type=click.Choice(["training", "inference"]), default=None,
              help="Estimate how training starts (batch statistics, the default) or how the "
                   "model runs in inference (moving statistics).")
@click.option("--verbose", is_flag=True, help="Show TensorFlow's and Keras's own messages.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=None,
              metavar="SECONDS",
              help="Time limit for reading and analysing one file (default: 300).")
@click.option("--max-memory", type=click.IntRange(min=1), default=None, metavar="MB",
              help="Memory limit for reading and analysing one file (default: 1024).")
@click.option("--allow-ambiguous-format", is_flag=True, default=None,
              help="Read a file whose name's extension disagrees with its bytes, or that is "
                   "both a zip and an HDF5 file (read as the zip).")
@click.option("--fail-on-no-models", is_flag=True,
              help="A searched directory without models is an error (exit 2), not a warning.")
@click.option("--debug", is_flag=True,
              help="Show the traceback of any internal error on standard error.")
@click.option("--config", "config_file", type=click.Path(dir_okay=False),
              help="Configuration file (gradlint.toml, or pyproject.toml with [tool.gradlint]).")
@click.option("--isolated", is_flag=True, help="Ignore all configuration files.")
@click.option("--plugins/--no-plugins", "plugins", default=None,
              help="Load the installed rule plugins (default: on, unless GRADLINT_NO_PLUGINS "
                   "is set or the configuration says plugins = false).")
@click.option("--show-settings", is_flag=True,
              help="Print the resolved settings under the keys a configuration file takes, "
                   "with every rule option's value, and exit.")
@click.option("-q", "--quiet", is_flag=True, help="Print findings only: no notes, no summary.")
def check(paths, select, extend_select, ignore, exclude, extend_exclude, respect_gitignore, jobs,
          outputs, output_file, fail_on, exit_zero, statistics, no_weights, config_file,
          isolated, show_settings, quiet, report_files=(), baseline_file=None,
          create_baseline=None, probe=None, unsafe_load=False, custom_objects=(),
          probe_batch=None, probe_seeds=None, batch_size=None, estimate_mode=None,
          verbose=False, probe_backend=None, timeout=None, max_memory=None,
          allow_ambiguous_format=None, debug=False, fail_on_no_models=False, plugins=None):
    """Lint model files and directories (*.keras, *.h5, *.hdf5)."""
    from gradlint.config import CommandLine, ConfigError, Resolver
    from gradlint.rule_registry import PluginError, all_rules
    from gradlint.rule_registry import select as select_rules

    command_line = CommandLine(
        select=tuple(_split(select)), extend_select=tuple(_split(extend_select)),
        ignore=tuple(_split(ignore)), exclude=tuple(_split(exclude)),
        extend_exclude=tuple(_split(extend_exclude)), respect_gitignore=respect_gitignore,
        fail_on=fail_on, no_weights=no_weights, baseline=baseline_file, probe=probe,
        unsafe_load=unsafe_load, custom_objects=tuple(_split(custom_objects)),
        probe_batch=probe_batch, probe_seeds=probe_seeds, probe_backend=probe_backend,
        batch_size=batch_size,
        estimate_mode=estimate_mode, verbose=verbose, timeout=timeout,
        max_memory_mb=max_memory, allow_ambiguous_format=bool(allow_ambiguous_format),
        debug=debug, fail_on_no_models=fail_on_no_models, plugins=plugins)
    try:
        resolver = Resolver(config_file, isolated, command_line)
        all_rules()  # a plugin that cannot be used stops the run here, before any file
    except (ConfigError, PluginError) as error:
        _fail(str(error))
    settings = resolver.run
    from gradlint.renderers import report_format

    for report_file in report_files:
        if report_format(report_file) is None:
            _fail(f"--report {report_file}: the name must end in .html or .md")
    to_stdout = [format for format, file in outputs if file is None]
    if len(to_stdout) > 1:
        _fail(f"--output-format {' and '.join(to_stdout)}: only one output can go to standard "
              "output; give the others a file (FORMAT:FILE)")
    output_format = to_stdout[0] if to_stdout else "text"
    to_files = [(format, file) for format, file in outputs if file is not None] + \
        [(report_format(file), file) for file in report_files]

    if not paths and not show_settings:
        raise click.UsageError("Missing argument 'PATHS...': name model files or directories.")
    if show_settings:
        # "settings" holds exactly what a configuration file may set, under its keys.
        data = {"config-file": settings.config_path,
                "selected-rules": [rule.code for rule in select_rules(
                    settings.select, settings.ignore, settings.extend_select)],
                "settings": settings.as_configuration()}
        _echo(json.dumps(data, indent=2, default=str) + "\n")
        return

    from gradlint.engine import lint_paths
    from gradlint.renderers import RenderOptions

    stream = sys.stdout
    options = RenderOptions(color=output_file is None and _use_color(stream), quiet=quiet,
                            statistics=statistics, fail_on=settings.fail_on,
                            rules=[rule.code for rule in select_rules(
                                settings.select, settings.ignore, settings.extend_select)])
    progress = Progress("probed" if settings.probe else "linted")
    # Text on standard output prints each file's findings as soon as it and the files
    # before it are done; a baseline needs the whole report first.
    streaming = output_format == "text" and not statistics and output_file is None and \
        settings.baseline is None and not create_baseline

    def print_result(result) -> None:
        from gradlint.renderers.text import file_lines

        progress.clear()
        try:
            text = file_lines(result, options)
        except Exception:
            from gradlint.engine import internal_error_result

            failed = internal_error_result(result.path, "rendering the text output",
                                           settings, result.format)
            result.findings, result.error = failed.findings, failed.error
            text = file_lines(result, options)
        _echo(text, color=options.color)

    workers = jobs or (os.cpu_count() or 1)
    try:
        report = lint_paths(list(paths), settings, jobs=workers, on_file=progress.update,
                            on_result=print_result if streaming else None,
                            settings_for=resolver.for_file)
    except ConfigError as error:  # a configuration file found beside a linted file
        progress.clear()
        _fail(str(error))
    progress.clear()
    from gradlint.baseline import BaselineError, gate

    try:
        exit_zero = gate(report, settings, create_baseline) or exit_zero
    except BaselineError as error:
        _fail(str(error))
    if not quiet:
        from gradlint.safe_text import printable

        for warning in report.warnings:
            _echo(f"gradlint: warning: {printable(warning)}\n", err=True)
    if statistics and output_format != "json":
        output_format = "text"  # a table of counts: JSON keeps its own form
    if streaming:
        from gradlint.renderers.text import closing_lines

        output = closing_lines(report, options)
    else:
        output = _render_guarded(output_format, report, options, settings)
    files = [(file, _render_guarded(format, report, dataclasses.replace(
        options, color=False, statistics=False, quiet=False), settings))
             for format, file in to_files]
    if settings.debug:
        for result in report.files:
            if result.traceback:
                _echo(f"gradlint: debug: internal error on {result.path}:\n{result.traceback}"
                      f"{'' if result.traceback.endswith(chr(10)) else chr(10)}", err=True)
    if output_file:
        files.insert(0, (output_file, output))
    else:
        _echo(output, color=options.color)
    for file, text in files:
        try:
            with open(file, "w", encoding="utf-8") as handle:
                handle.write(text)
        except OSError as error:
            _fail(f"cannot write {file}: {error.strerror or error}")
    sys.exit(report.exit_code(settings.fail_on, exit_zero))


def _render_guarded(output_format: str, report, options, settings) -> str:
    """The rendered report. A file whose result a renderer fails on is replaced by an
    internal-error GL001 result, so the other files are still reported."""
    from gradlint.engine import internal_error_result
    from gradlint.renderers import render
    from gradlint.report import Report

    try:
        return render(output_format, report, options)
    except Exception:
        pass
    files = []
    for result in report.files:
        try:
            render(output_format, Report(files=[result]), options)
            files.append(result)
        except Exception:
            files.append(internal_error_result(result.path, f"rendering the {output_format} "
                                                            "output", settings, result.format))
    report.files[:] = files
    try:
        return render(output_format, report, options)
    except Exception as error:  # not one file's fault: the format itself fails
        if settings.debug:
            import traceback

            traceback.print_exc()
        _fail(f"internal error while rendering the {output_format} output "
              f"({type(error).__name__}: {error}); this is a bug in gradlint: please report it")


def _plugins_option(function):
    return click.option("--plugins/--no-plugins", "plugins", default=None,
                        help="Include the installed rule plugins (default: on, unless "
                             "GRADLINT_NO_PLUGINS is set or the configuration found from "
                             "here says plugins = false).")(function)


def _load_rules(plugins: bool | None) -> tuple:
    """Every rule, with or without the plugins as the command line, GRADLINT_NO_PLUGINS and
    the configuration say; a plugin that cannot be used is a usage error (exit 2)."""
    from gradlint.config import ConfigError, plugins_wanted
    from gradlint.rule_registry import PluginError, all_rules, use_plugins

    try:
        use_plugins(plugins_wanted(None, False, plugins))
        return all_rules()
    except (ConfigError, PluginError) as error:
        _fail(str(error))


@main.command(name="fix")
@click.argument("model", type=click.Path())
@click.option("-o", "--output", "output", type=click.Path(dir_okay=False),
              help="The fixed file to write (same format as MODEL; never MODEL itself).")
@click.option("--dry-run", is_flag=True, help="Print the settings each fix would change; "
                                              "write nothing.")
@click.option("--select", multiple=True, metavar="RULES",
              help="Apply only these rules' fixes (also those not applied by default, such "
                   "as GL101's activation swap).")
@click.option("--ignore", multiple=True, metavar="RULES", help="Leave these rules' fixes out.")
@click.option("--reinitialize-trained", is_flag=True,
              help="Re-draw kernels of a trained checkpoint too (this discards training).")
@click.option("--calibrate", is_flag=True,
              help="Also scale every weighted layer's kernel so the estimated pre-activation "
                   "second moment is 1 through the whole graph (data-free).")
@click.option("--probe", is_flag=True,
              help="Measure the input and the fixed model with the gradient probe and report "
                   "the measured change per fix (needs the probe extra).")
@click.option("--force", is_flag=True,
              help="Apply fixes the estimate (or, with --probe, the measurement) does not "
                   "confirm.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the re-drawn kernels.")
@click.option("--output-format", "output_format", type=click.Choice(["text", "json"]),
              default="text", show_default=True)
@click.option("--config", "config_file", type=click.Path(dir_okay=False),
              help="Configuration file (rule options for the lint before and after).")
@click.option("--isolated", is_flag=True, help="Ignore all configuration files.")
@click.option("--debug", is_flag=True, help="Show the traceback of an internal error.")
def fix_command(model, output, dry_run, select, ignore, reinitialize_trained, calibrate, probe,
                force, seed, output_format, config_file, isolated, debug):
    """Write a copy of MODEL with its findings' automatic fixes applied.

    Exit status: 0 the fixes were applied and the fixed file lints clean of every finding
    they fixed (or there was nothing to fix, or --dry-run); 1 a fix did not remove its
    finding, or --probe did not confirm it; 2 bad input, a trained checkpoint without
    --reinitialize-trained, or an output that would overwrite MODEL.
    """
    from gradlint.config import CommandLine, ConfigError, Resolver
    from gradlint.fix.config_edits import FixError
    from gradlint.rule_registry import SelectionError

    try:
        settings = Resolver(config_file, isolated, CommandLine(debug=debug)).for_file(model)
    except ConfigError as error:
        _fail(str(error))
    if not os.path.exists(model):
        _fail(f"{model}: no such file")
    from gradlint.fix.apply import fix_file

    try:
        result = fix_file(model, output, settings, select=_split(select) or None,
                          ignore=_split(ignore), dry_run=dry_run,
                          reinitialize_trained=reinitialize_trained, seed=seed,
                          calibrate=calibrate, probe=probe, force=force)
    except (FixError, SelectionError) as error:
        _fail(str(error))
    except OSError as error:  # the file system: a full disk, a read-only directory
        _fail(f"{error.filename or output or model}: {error.strerror or error}")
    except Exception as error:  # never a traceback: say what failed
        if debug:
            import traceback

            traceback.print_exc()
        _fail(f"internal error while fixing {model} ({type(error).__name__}: {error}); this "
              "is a bug in gradlint: please report it with the file")
    from gradlint.fix.report import render_text

    if output_format == "json":
        _echo(json.dumps(result.to_dict(), indent=2, default=str) + "\n")
    else:
        _echo(render_text(result, dry_run))
    failed = [code for code, gone in result.verified.items() if not gone]
    if result.probe and result.probe.get("unconfirmed"):
        failed += result.probe["unconfirmed"]
    sys.exit(1 if failed else 0)


@main.command()
@click.argument("selector")
@click.option("--output-format", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
@_plugins_option
def rule(selector, output_format, plugins=None):
    """Explain one rule: its documentation, severity, options and origin."""
    from gradlint.renderers.rule_catalog import render_rule
    from gradlint.rule_registry import find_rule, suggestion

    _load_rules(plugins)
    found = find_rule(selector)
    if found is None:
        _fail(f"no rule has the code or name '{selector}'{suggestion(selector)} "
              "(see 'gradlint rules')")
    _echo(render_rule(found, output_format))


@main.command(name="rules")
@click.option("--output-format", type=click.Choice(["text", "json", "markdown"]), default="text",
              show_default=True)
@_plugins_option
def list_rules(output_format, plugins=None):
    """List every rule with its code, name, default severity, origin and summary."""
    from gradlint.renderers.rule_catalog import render_rules

    _echo(render_rules(_load_rules(plugins), output_format))


def run() -> None:
    """The `gradlint` command: the console script and `python -m gradlint` (`main` is the
    click group, which tests and other programs call in-process).

    A command line is a short-lived process, so it skips two costs that only a long-lived
    one needs (measured on ResNet50 `--no-weights`, bench/bench_static.py):
    - the cyclic garbage collector's first generation is collected every 50,000 new
      container objects instead of 700: reading a model configuration and building its
      graph allocate many small containers and few cycles, and the default scans cost
      4 ms of ResNet50's 0.1 s and 0.23 s of a 10,000-layer chain's 1.1 s (0.05 s now),
      for 40 MB more peak memory on that chain with weight statistics (295 MB);
    - at the end the interpreter would free every object and module one by one (about
      15 ms); instead the exit handlers run (the probe's processes close there), the
      streams are flushed and the process ends (`os._exit`), as mypy does.
    """
    import atexit
    import gc

    gc.set_threshold(50_000, *gc.get_threshold()[1:])
    try:
        main()
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    if code is None:
        code = 0
    elif not isinstance(code, int):  # `sys.exit("message")`, as Python reports it
        sys.stderr.write(f"{code}\n")
        code = 1
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (`gradlint ... | head`) or stream
            pass
    os._exit(code)


if __name__ == "__main__":  # pragma: no cover
    run()
