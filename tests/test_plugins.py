"""Rule plugins (docs/plugins.md), end to end: the example plugin package in
tests/data/plugin_example is installed with pip into a fresh virtual environment, beside this
checkout's gradlint, and the command line and `GradientCheck` run there as a user runs them.

The environment is built once per session (and, under pytest-xdist, once for all workers:
the first takes a lock and builds it, the others wait and reuse it). It is created without
pip and sees this interpreter's site-packages through a `.pth` file, so TensorFlow, pip and
setuptools come from the development environment and nothing is downloaded; gradlint itself
is installed there in editable mode from this checkout (found from this file's location), and
the fixture checks that it is this checkout that gets imported.

The clashing and broken plugins beside it are distributions written directly in a temporary
directory (a `.dist-info` with `METADATA` and `entry_points.txt`, and the module) and put on
PYTHONPATH: that is all importlib.metadata, and gradlint, see of an installed distribution.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import site
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import keras3

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "tests" / "data" / "plugin_example"
PREFIX = "test_plugins"
ORIGIN = "gradlint-example-rules 0.1.0"


# -- the environment -------------------------------------------------------------------------

@contextlib.contextmanager
def _exclusive(lock: Path):
    """One xdist worker at a time (POSIX file lock; elsewhere each builds its own)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(lock, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _clean_environment(**extra: str) -> dict[str, str]:
    environment = {key: value for key, value in os.environ.items()
                   if key not in ("PYTHONPATH", "PYTHONHOME", "GRADLINT_NO_PLUGINS",
                                  "PYTHONSTARTUP") and not key.startswith("PIP_")}
    environment.update(NO_COLOR="1", TF_CPP_MIN_LOG_LEVEL="2", KERAS_BACKEND="tensorflow",
                       PIP_CONFIG_FILE=os.devnull, PIP_NO_INPUT="1",
                       PIP_DISABLE_PIP_VERSION_CHECK="1")
    environment.update(extra)
    return environment


def _run(command: list[str], **options) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, timeout=300,
                          env=_clean_environment(), **options)


def _build(where: Path) -> Path:
    """A fresh virtual environment with this checkout's gradlint and the example plugin."""
    if importlib.util.find_spec("pip") is None or importlib.util.find_spec("setuptools") is None:
        pytest.skip("installing the example plugin offline needs pip and setuptools in the "
                    "test environment")
    shutil.rmtree(where, ignore_errors=True)
    where.mkdir(parents=True)
    venv = where / "venv"
    # Without pip: it comes, with everything else, from this interpreter's site-packages.
    made = _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    assert made.returncode == 0, made.stderr
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    purelib = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"])
    assert purelib.returncode == 0, purelib.stderr
    parents = [path for path in site.getsitepackages()
               + ([site.getusersitepackages()] if site.ENABLE_USER_SITE else [])
               if os.path.isdir(path)]
    # Plain lines: these directories are searched, but their own .pth files (an editable
    # gradlint of some other checkout among them) are not run.
    (Path(purelib.stdout.strip()) / "_gradlint_test_parent.pth").write_text(
        "".join(f"{path}\n" for path in parents), encoding="utf-8")
    # The plugin is built from a copy: setuptools writes build/ and *.egg-info beside it.
    source = where / "plugin_example"
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns(
        "build", "*.egg-info", "__pycache__"))
    for target in (["-e", str(ROOT)], [str(source)]):
        installed = _run([str(python), "-m", "pip", "install", "--no-deps",
                          "--no-build-isolation", "--no-index", "-q", *target])
        assert installed.returncode == 0, installed.stdout + installed.stderr
    where_from = _run([str(python), "-c", "import json, gradlint, gradlint.rules, "
                       "gradlint_example_rules as p; print(json.dumps([gradlint.__file__, "
                       "gradlint.rules.__file__, p.__file__]))"], cwd=where)
    assert where_from.returncode == 0, where_from.stderr
    package, rules, plugin = map(Path, json.loads(where_from.stdout))
    assert package.resolve() == ROOT / "gradlint" / "__init__.py", package
    assert rules.resolve() == ROOT / "rules" / "__init__.py", rules
    assert venv.resolve() in plugin.resolve().parents, plugin
    return python


@pytest.fixture(scope="session")
def plugin_python(tmp_path_factory) -> Path:
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    where = shared / "gradlint-plugin-venv"
    ready = shared / "gradlint-plugin-venv.ready"
    with _exclusive(shared / "gradlint-plugin-venv.lock"):
        if ready.exists():
            return Path(ready.read_text(encoding="utf-8"))
        python = _build(where)
        ready.write_text(str(python), encoding="utf-8")
        return python


@pytest.fixture
def gradlint_in(plugin_python, tmp_path):
    """Run the command line in the plugin environment, from an empty project directory;
    `pythonpath` adds distributions (the clashing and broken plugins)."""
    project = tmp_path / "project"
    project.mkdir()

    def run(*args, pythonpath: list[Path] = (), cwd: Path | None = None,
            **environment) -> subprocess.CompletedProcess:
        extra = dict(environment)
        if pythonpath:
            extra["PYTHONPATH"] = os.pathsep.join(map(str, pythonpath))
        return subprocess.run([str(plugin_python), "-m", "gradlint", *map(str, args)],
                              cwd=cwd or project, capture_output=True, text=True, timeout=300,
                              env=_clean_environment(**extra))

    run.project = project
    return run


# -- models ----------------------------------------------------------------------------------

def _mlp(name: str, hidden: int):
    keras = keras3()
    return keras.Sequential([keras.Input((16,), name="features"),
                             keras.layers.Dense(16, activation="relu",
                                                kernel_initializer="he_normal", name="wide"),
                             keras.layers.Dense(hidden, activation="relu",
                                                kernel_initializer="he_normal", name="squeeze"),
                             keras.layers.Dense(1, name="out")], name=name)


def build_narrow():
    """A two-unit hidden layer: XMP101 flags 'squeeze'."""
    return _mlp("narrow", 2)


def build_roomy():
    """The near miss: four units, exactly `min-units`; the one-unit output is not flagged."""
    return _mlp("roomy", 4)


@pytest.fixture(scope="module")
def models(save_model):
    return {"narrow": save_model(f"{PREFIX}-narrow", build_narrow),
            "roomy": save_model(f"{PREFIX}-roomy", build_roomy)}


def findings(result: subprocess.CompletedProcess, code: str) -> dict[str, list]:
    """{model file name: [(layer, severity), ...]} of one rule's findings in a JSON run."""
    assert result.returncode in (0, 1), result.stderr
    report = json.loads(result.stdout)
    return {Path(file["path"]).name.split("-")[1]:
            [(f["layer"], f["severity"]) for f in file["findings"] if f["code"] == code]
            for file in report["files"]}


LINT = ("--isolated", "-j", "1", "--no-weights", "--output-format", "json")


# -- the plugin rule in the command line -----------------------------------------------------

def test_the_plugin_rule_fires_on_a_saved_model_and_not_on_the_near_miss(gradlint_in, models):
    result = gradlint_in(*LINT, models["narrow"], models["roomy"])
    assert findings(result, "XMP101") == {"narrow": [("squeeze", "warning")], "roomy": []}
    finding = next(f for file in json.loads(result.stdout)["files"]
                   for f in file["findings"] if f["code"] == "XMP101")
    assert finding["name"] == "narrow-bottleneck"
    assert finding["evidence"] == {"units": 2}
    # The text output, as a user reads it.
    text = gradlint_in("--isolated", "-j", "1", "--no-weights", models["narrow"])
    assert "::squeeze: XMP101 [warning] 'squeeze' has 2 units" in text.stdout, text.stdout


@pytest.mark.parametrize("options, fires", [
    (("--select", "XMP"), True),
    (("--select", "xmp1"), True),
    (("--select", "XMP101"), True),
    (("--select", "narrow-bottleneck"), True),
    (("--select", "bottleneck"), True),  # its alias
    (("--select", "example"), True),  # its own group
    (("--select", "architecture"), True),  # a built-in group it joins
    (("--select", "GL1", "--extend-select", "XMP1"), True),
    (("--ignore", "XMP"), False),
    (("--ignore", "narrow-bottleneck"), False),
    (("--select", "GL"), False),
])
def test_plugin_rules_are_selected_like_built_in_ones(gradlint_in, models, options, fires):
    result = gradlint_in(*LINT, *options, models["narrow"])
    assert bool(findings(result, "XMP101")["narrow"]) == fires


def test_selection_by_prefix_takes_the_letters_whole(gradlint_in):
    shown = gradlint_in("--isolated", "--show-settings", "--select", "XMP9,GL901")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["selected-rules"] == ["GL901", "XMP901"]
    partial = gradlint_in("--isolated", "--show-settings", "--select", "XM")
    assert partial.returncode == 2
    assert "'XM' names no rule, code prefix, alias or group" in partial.stderr


def test_the_plugin_rule_options_and_severity_are_configurable(gradlint_in, models):
    project = gradlint_in.project
    (project / "pyproject.toml").write_text(textwrap.dedent("""\
        [tool.gradlint]
        select = ["XMP"]

        [tool.gradlint.rules.narrow-bottleneck]
        severity = "error"
        """), encoding="utf-8")
    lint = ("-j", "1", "--no-weights", "--output-format", "json")
    assert findings(gradlint_in(*lint, models["narrow"], models["roomy"]), "XMP101") == \
        {"narrow": [("squeeze", "error")], "roomy": []}
    (project / "pyproject.toml").write_text(textwrap.dedent("""\
        [tool.gradlint.rules.XMP101]
        min-units = 5
        """), encoding="utf-8")
    assert findings(gradlint_in(*lint, models["narrow"], models["roomy"]), "XMP101") == \
        {"narrow": [("squeeze", "warning")], "roomy": [("squeeze", "warning")]}
    shown = json.loads(gradlint_in("--show-settings").stdout)["settings"]
    assert shown["rules"]["XMP101"] == {"severity": "warning", "min-units": 5}
    assert shown["plugins"] is True
    (project / "pyproject.toml").write_text("[tool.gradlint.rules.XMP101]\nmin-unit = 5\n",
                                            encoding="utf-8")
    wrong = gradlint_in(*lint, models["narrow"])
    assert wrong.returncode == 2
    assert "XMP101 has no option 'min-unit'; did you mean 'min-units'?" in wrong.stderr


# -- listed with its origin ------------------------------------------------------------------

def test_rules_lists_every_rule_with_its_origin_in_every_format(gradlint_in):
    text = gradlint_in("rules")
    assert text.returncode == 0, text.stderr
    lines = {line.split()[0]: line for line in text.stdout.splitlines()}
    assert lines["XMP101"].split()[1:5] == ["narrow-bottleneck", "warning",
                                             "gradlint-example-rules", "0.1.0"]
    assert lines["GL101"].split()[1:4] == ["saturating-activation-chain", "error", "built-in"]
    assert list(lines)[-2:] == ["XMP101", "XMP901"]  # the built-in rules first
    listed = json.loads(gradlint_in("rules", "--output-format", "json").stdout)
    by_code = {rule["code"]: rule for rule in listed}
    assert by_code["XMP901"]["origin"] == ORIGIN and by_code["XMP901"]["probe"] is True
    assert by_code["XMP901"]["plugin"] == {"distribution": "gradlint-example-rules",
                                           "version": "0.1.0", "prefix": "XMP",
                                           "entry-point": "gradlint_example_rules"}
    assert by_code["GL101"]["origin"] == "built-in" and by_code["GL101"]["plugin"] is None
    markdown = gradlint_in("rules", "--output-format", "markdown").stdout
    assert "| code | name | default severity | groups | origin | summary |" in markdown
    assert "## XMP101 narrow-bottleneck" in markdown
    assert f"From the plugin {ORIGIN} (entry point `XMP = gradlint_example_rules`)." in markdown


def test_rule_explains_a_plugin_rule_with_its_origin(gradlint_in):
    text = gradlint_in("rule", "bottleneck")
    assert text.returncode == 0, text.stderr
    assert text.stdout.startswith("XMP101 narrow-bottleneck (warning)")
    assert "## Why it hurts gradient flow" in text.stdout
    assert f"Origin: {ORIGIN} (plugin; entry point 'XMP = gradlint_example_rules')" in text.stdout
    data = json.loads(gradlint_in("rule", "xmp901", "--output-format", "json").stdout)
    assert (data["code"], data["origin"], data["options"]) == ("XMP901", ORIGIN,
                                                               {"ratio-below": 0.1})
    assert "Origin: built-in" in gradlint_in("rule", "GL101").stdout


# -- switched off ----------------------------------------------------------------------------

def test_no_plugins_leaves_them_out(gradlint_in, models):
    off = gradlint_in(*LINT, "--no-plugins", models["narrow"])
    assert findings(off, "XMP101") == {"narrow": []}
    assert "XMP" not in gradlint_in("rules", "--no-plugins").stdout
    selected = gradlint_in(*LINT, "--no-plugins", "--select", "XMP", models["narrow"])
    assert selected.returncode == 2
    assert "'XMP' names no rule, code prefix, alias or group" in selected.stderr
    by_environment = gradlint_in(*LINT, models["narrow"], GRADLINT_NO_PLUGINS="1")
    assert findings(by_environment, "XMP101") == {"narrow": []}


def test_the_configuration_can_switch_plugins_off_and_the_command_line_back_on(gradlint_in,
                                                                            models):
    (gradlint_in.project / "gradlint.toml").write_text("plugins = false\n", encoding="utf-8")
    lint = ("-j", "1", "--no-weights", "--output-format", "json")
    assert findings(gradlint_in(*lint, models["narrow"]), "XMP101") == {"narrow": []}
    assert "XMP101" not in gradlint_in("rules").stdout
    assert findings(gradlint_in(*lint, "--plugins", models["narrow"]), "XMP101") == \
        {"narrow": [("squeeze", "warning")]}
    (gradlint_in.project / "gradlint.toml").write_text('plugins = "no"\n', encoding="utf-8")
    wrong = gradlint_in("rules")
    assert wrong.returncode == 2 and "'plugins' must be true or false" in wrong.stderr


# -- clashes and broken plugins --------------------------------------------------------------

RULE_MODULE = '''\
"""{summary}

## What it flags
Nothing: a test plugin's rule.
"""

CODE = {code!r}
NAME = {name!r}
SEVERITY = {severity!r}
PRECISION = "medium"
GROUPS = ("architecture",)
ALIASES = ()
OPTIONS = {{}}


def check(analysis, options):
    return []
'''


def distribution(root: Path, name: str, version: str, entry_points: dict[str, str],
                 modules: dict[str, str]) -> Path:
    """An installed distribution as importlib.metadata finds one: `<name>-<version>.dist-info`
    with METADATA and entry_points.txt, beside its modules, in `root` (for PYTHONPATH)."""
    root.mkdir(parents=True, exist_ok=True)
    info = root / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
                                   encoding="utf-8")
    (info / "entry_points.txt").write_text(
        "[gradlint.rules]\n" + "".join(f"{k} = {v}\n" for k, v in entry_points.items()),
        encoding="utf-8")
    for module, source in modules.items():
        (root / f"{module}.py").write_text(source, encoding="utf-8")
    return root


def rule_source(code: str, name: str, severity: str = "warning", before: str = "") -> str:
    return before + RULE_MODULE.format(summary="A test plugin's rule.", code=code, name=name,
                                       severity=severity)


def assert_usage_error(result: subprocess.CompletedProcess, *expected: str) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith("gradlint: error: "), result.stderr
    for text in expected:
        assert text in result.stderr, result.stderr


@pytest.mark.parametrize("name, entry_points, modules, expected", [
    ("gradlint-clash-rules", {"XCL": "clash_rules"},
     {"clash_rules": rule_source("XCL101", "deep-plain-network")},
     ["rule plugins clash: 'deep-plain-network' is the name of built-in rule GL301 "
      "(deep-plain-network) and the name of rule XCL101 (deep-plain-network) of plugin "
      "gradlint-clash-rules 0.2.0 (module clash_rules)"]),
    ("gradlint-copycat", {"XMP": "copycat_rules"},
     {"copycat_rules": rule_source("XMP101", "copycat")},
     ["rule plugins clash: 'XMP101' is the code of", f"plugin {ORIGIN}",
      "plugin gradlint-copycat 0.2.0 (module copycat_rules)", "--no-plugins"]),
    ("gradlint-gl-rules", {"GL": "gl_rules"}, {"gl_rules": rule_source("GL999", "gl-rule")},
     ["plugin gradlint-gl-rules 0.2.0 (entry point 'GL = gl_rules' in group gradlint.rules): ",
      "GL is the prefix of gradlint's built-in rules"]),
])
def test_a_clash_is_a_clear_error_naming_both_origins(gradlint_in, models, tmp_path, name,
                                                      entry_points, modules, expected):
    extra = distribution(tmp_path / "extra", name, "0.2.0", entry_points, modules)
    assert_usage_error(gradlint_in(*LINT, models["narrow"], pythonpath=[extra]), *expected)
    assert_usage_error(gradlint_in("rules", pythonpath=[extra]), *expected)
    # CI's way out: the run goes on without any plugin.
    off = gradlint_in(*LINT, "--no-plugins", models["narrow"], pythonpath=[extra])
    assert off.returncode in (0, 1) and json.loads(off.stdout)["files"], off.stderr


@pytest.mark.parametrize("entry_points, modules, expected", [
    ({"XBR": "broken_rules"},
     {"broken_rules": rule_source("XBR101", "broken", before="import not_installed_anywhere\n")},
     ["plugin gradlint-broken-rules 0.3.0 (entry point 'XBR = broken_rules' in group "
      "gradlint.rules): importing broken_rules failed: ModuleNotFoundError: No module named "
      "'not_installed_anywhere' (at ", "broken_rules.py:1)"]),
    ({"XBR": "broken_rules"}, {"broken_rules": rule_source("XBR101", "broken", "fatal")},
     ["plugin gradlint-broken-rules 0.3.0", "rule module broken_rules: SEVERITY must be one "
      "of error, warning, info"]),
    ({"XBR": "broken_rules"}, {"broken_rules": rule_source("XMP102", "broken")},
     ["rule module broken_rules: CODE must be the plugin's prefix XBR (its entry point's "
      "name) and three digits, like XBR101 (got 'XMP102')"]),
    ({"XBR": "broken_rules"}, {"broken_rules": rule_source("XBR101", "broken").replace(
        'GROUPS = ("architecture",)', 'GROUPS = ("vanishing",)')},
     ["rule module broken_rules: a rule about gradient flow must say how the probe judges it"]),
    ({"XBR": "broken_rules:check"}, {"broken_rules": rule_source("XBR101", "broken")},
     ["must name a module or a package of rule modules, not an object inside one"]),
    ({"XBR": "broken_rules"}, {"broken_rules": '"""Not a rule."""\n'},
     ["broken_rules defines no CODE and is not a package of rule modules"]),
    ({"XBR": "broken_rules"}, {"broken_rules": "def check(:\n"},
     ["plugin gradlint-broken-rules 0.3.0", "importing broken_rules failed: SyntaxError"]),
])
def test_a_broken_plugin_is_a_clear_error_naming_it(gradlint_in, models, tmp_path, entry_points,
                                                    modules, expected):
    extra = distribution(tmp_path / "extra", "gradlint-broken-rules", "0.3.0", entry_points,
                         modules)
    assert_usage_error(gradlint_in(*LINT, models["narrow"], pythonpath=[extra]), *expected)
    assert_usage_error(gradlint_in("rule", "GL101", pythonpath=[extra]), *expected)
    assert_usage_error(gradlint_in("fix", "--dry-run", models["narrow"], pythonpath=[extra]),
                       *expected)
    off = gradlint_in("rules", pythonpath=[extra], GRADLINT_NO_PLUGINS="1")
    assert off.returncode == 0 and "XBR" not in off.stdout


# -- what is loaded, and what it costs -------------------------------------------------------

DISCOVERY = """
import importlib.metadata, json, sys
from gradlint import rule_registry
mine = rule_registry._entry_points()
through_importlib = rule_registry._scan_with_importlib(rule_registry._search_path())
standard = sorted((e.name, e.value, e.dist.metadata["Name"], e.dist.version)
                  for e in importlib.metadata.entry_points(group="gradlint.rules"))
print(json.dumps({"mine": [[e.name, e.value, e.distribution, e.version] for e in mine],
                  "importlib": sorted([e.name, e.value, e.distribution, e.version]
                                      for e in through_importlib),
                  "standard": standard}))
"""


def test_discovery_reads_what_importlib_metadata_reads(plugin_python, tmp_path):
    result = subprocess.run([str(plugin_python), "-c", DISCOVERY], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120,
                            env=_clean_environment())
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    expected = [["XMP", "gradlint_example_rules", "gradlint-example-rules", "0.1.0"]]
    assert found["mine"] == found["importlib"] == expected
    assert [list(entry) for entry in found["standard"]] == expected


def test_metadata_in_the_working_directory_is_never_loaded(plugin_python, tmp_path):
    """A linted repository cannot plant a plugin: `python -c` and notebooks put the working
    directory on sys.path, but distributions are only looked for where packages are
    installed."""
    planted = distribution(tmp_path / "repository", "planted", "1.0", {"XEV": "planted_rules"},
                           {"planted_rules": "open('IMPORTED', 'w').close()\n"
                            + rule_source("XEV101", "planted")})
    script = ("from gradlint.rule_registry import all_rules; "
              "print(' '.join(rule.code for rule in all_rules()))")
    result = subprocess.run([str(plugin_python), "-c", script], cwd=planted,
                            capture_output=True, text=True, timeout=120,
                            env=_clean_environment())
    assert result.returncode == 0, result.stderr
    assert "XMP101" in result.stdout.split() and "XEV101" not in result.stdout
    assert not (planted / "IMPORTED").exists()


STATIC = """
import json, sys
from gradlint.cli import main
try:
    main(sys.argv[1:], standalone_mode=False)
except SystemExit:
    pass
print("MODULES=" + json.dumps(sorted({name.split(".")[0] for name in sys.modules}
                                     & {"tensorflow", "keras", "tf_keras",
                                        "gradlint_example_rules"})))
"""


def test_the_static_path_loads_the_plugin_but_no_tensorflow(plugin_python, models, tmp_path):
    result = subprocess.run([str(plugin_python), "-c", STATIC, "--isolated", "-j", "1",
                             "--output-format", "json", str(models["narrow"])], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120,
                            env=_clean_environment())
    output, _, modules = result.stdout.rpartition("MODULES=")
    assert "XMP101" in output, result.stderr
    loaded = set(json.loads(modules))
    assert "gradlint_example_rules" in loaded
    assert not loaded & {"tensorflow", "keras", "tf_keras"}, loaded


# -- inside GradientCheck --------------------------------------------------------------------

TRAINING = """
import json
import numpy as np
import keras
from gradlint.keras import GradientCheck


def model(depth, activation, initializer):
    keras.utils.set_random_seed(0)
    layers = [keras.Input((16,))]
    layers += [keras.layers.Dense(16, activation=activation, kernel_initializer=initializer,
                                  name=f"hidden_{i}") for i in range(depth)]
    return keras.Sequential(layers + [keras.layers.Dense(2, activation="softmax", name="out")])


rng = np.random.default_rng(0)
x = rng.standard_normal((64, 16)).astype("float32")
y = (x[:, 0] > 0).astype("int32")
found = {}
for name, built in [("deep_sigmoid", model(8, "sigmoid", "glorot_uniform")),
                    ("shallow_relu", model(1, "relu", "he_normal"))]:
    built.compile(keras.optimizers.SGD(0.01), "sparse_categorical_crossentropy")
    check = GradientCheck(static=False, verbose=False, first_steps=2, every=1000, window=2,
                          rules={"weak-first-layer-gradient": {"ratio-below": 0.1}})
    built.fit(x, y, batch_size=32, epochs=1, verbose=0, callbacks=[check])
    found[name] = [[f.code, f.layer, f.evidence] for f in check.findings
                   if f.code.startswith("XMP")]
print("FOUND=" + json.dumps(found))
"""


def test_a_plugin_probe_rule_fires_in_gradient_check_during_fit(plugin_python, tmp_path):
    result = subprocess.run([str(plugin_python), "-c", TRAINING], cwd=tmp_path,
                            capture_output=True, text=True, timeout=300,
                            env=_clean_environment())
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.rpartition("FOUND=")[2])
    assert [(code, layer) for code, layer, _ in found["deep_sigmoid"]] == \
        [("XMP901", "hidden_0")]
    evidence = found["deep_sigmoid"][0][2]
    assert evidence["first_last_ratio"] < 0.1 and evidence["step"] >= 1
    assert found["shallow_relu"] == []  # the near miss


# -- the registry's pieces, in this process (no plugin environment needed) -------------------

@pytest.fixture
def registry():
    from gradlint import rule_registry

    yield rule_registry
    rule_registry.use_plugins(None)


@pytest.mark.parametrize("selector, code, expected", [
    ("GL", "GL101", True), ("GL1", "GL101", True), ("GL10", "GL101", True),
    ("GL101", "GL101", True), ("GL2", "GL101", False), ("G", "GL101", False),
    ("XMP", "XMP101", True), ("XMP9", "XMP901", True), ("XMP1", "XMP901", False),
    ("XM", "XMP101", False), ("X", "XMP101", False), ("GL", "GLX101", False),
    ("XMP1011", "XMP101", False),
])
def test_a_code_prefix_is_whole_letters_then_digits(registry, selector, code, expected):
    assert registry._code_prefix(selector, code) is expected


def test_entry_points_are_read_as_importlib_metadata_reads_them(registry):
    text = ("[console_scripts]\nxmp = xmp:main\n\n# a comment\n[ gradlint.rules ]\n"
            "XMP = xmp_rules\n  XMQ=xmq_rules:rules [extra]  \nno equals sign\n[other]\nY = y\n")
    assert registry._group_entries(text) == [("XMP", "xmp_rules"),
                                             ("XMQ", "xmq_rules:rules [extra]")]
    point = registry._EntryPoint("XMQ", "xmq_rules:rules [extra]", "xmq", "1.0")
    assert (point.module, point.attr) == ("xmq_rules", "rules")


def test_discovery_here_agrees_with_importlib_metadata(registry):
    path = registry._search_path()
    mine = registry._scan(path)
    if mine is None:  # something on this path only importlib.metadata can read
        pytest.skip("the fast scan defers to importlib.metadata here")
    assert sorted(mine, key=repr) == sorted(registry._scan_with_importlib(path), key=repr)


def _plugin_rule(registry, code, name, aliases=(), groups=()):
    plugin = registry.Plugin("dist", "1.0", code[:3], "mod")
    return registry.Rule(code=code, name=name, severity="warning", groups=tuple(groups),
                         aliases=tuple(aliases), options={}, doc="x", check=None,
                         plugin=plugin, module=f"mod.{name}")


@pytest.mark.parametrize("rule, message", [
    (("XMP101", "x-rule", ("no-shortcut",)), "'no-shortcut' is the alias of built-in rule GL301"),
    (("XMP101", "x-rule", ("gl101",)), "'gl101' is the code of built-in rule GL101"),
    (("XMP101", "x-rule", (), ("deep-plain-network",)), "'deep-plain-network' is a group of"),
    (("XMP101", "all"), "'all' is the selector ALL"),
])
def test_aliases_groups_and_all_clash_too(registry, rule, message):
    rules = [*registry.built_in_rules(), _plugin_rule(registry, *rule)]
    with pytest.raises(registry.PluginError, match=message.replace("(", r"\(")):
        registry._check_clashes(rules)


def test_a_plugin_rule_joining_built_in_groups_is_no_clash(registry):
    rules = [*registry.built_in_rules(),
             _plugin_rule(registry, "XMP101", "x-rule", ("x-alias",), ("architecture", "mine"))]
    registry._check_clashes(rules)


def test_the_plugin_switch_command_line_then_environment_then_configuration(registry, tmp_path,
                                                                           monkeypatch):
    from gradlint.config import CommandLine, resolve

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GRADLINT_NO_PLUGINS", raising=False)
    assert resolve(None, False, CommandLine()).plugins is True
    assert registry.plugins_enabled() is True
    (tmp_path / "gradlint.toml").write_text("plugins = false\n", encoding="utf-8")
    assert resolve(None, False, CommandLine()).plugins is False
    assert registry.plugins_enabled() is False
    assert resolve(None, False, CommandLine(plugins=True)).plugins is True
    assert resolve(None, True, CommandLine()).plugins is True  # --isolated: no file
    monkeypatch.setenv("GRADLINT_NO_PLUGINS", "1")
    assert resolve(None, True, CommandLine()).plugins is False
    assert resolve(None, True, CommandLine(plugins=True)).plugins is True
    monkeypatch.setenv("GRADLINT_NO_PLUGINS", "0")
    assert resolve(None, True, CommandLine()).plugins is True
    registry.use_plugins(None)
    monkeypatch.setenv("GRADLINT_NO_PLUGINS", "yes")
    assert registry.plugins_enabled() is False  # the Python API's default
