"""Plugins (nas.plugins) and the op contract check (nas.ops.check_op, `nas check-op`).

Plugins register into process-wide registries, so in-process tests run inside the
``isolated`` fixture, which restores every registry afterwards; the example plugin's search
runs in subprocesses (its two workers load the plugin from the frozen config).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

import nas.data._registry
import nas.genotype._libraries
import nas.genotype._model
import nas.ops._registry
import nas.plugins
import nas.proxies._registry
import nas.samplers._registry
from nas.cli import main
from nas.errors import ConfigError, GenotypeError
from nas.ops import Arg, Example, Op, OpInfo, check_op

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "plugin"


@pytest.fixture
def isolated():
    """Every registry a plugin can fill, restored after the test (and the plugins forgotten)."""
    saved = [
        (nas.ops._registry, "_REGISTRY"), (nas.ops._registry, "_CANONICAL"),
        (nas.ops._registry, "_ACTIVATIONS"), (nas.data._registry, "_LOADERS"),
        (nas.data._registry, "_CHECKS"), (nas.samplers._registry, "_SAMPLERS"),
        (nas.genotype._libraries, "_DIRS"), (nas.plugins, "_LOADED"),
        (nas.proxies._registry, "_REGISTRY"),
    ]
    copies = [(module, name, getattr(module, name).copy()) for module, name in saved]
    installed = nas.plugins._INSTALLED
    modules = set(sys.modules)
    yield
    nas.genotype._model._LOADED.clear()  # parsed genotypes key on registry sizes, restored below
    for module, name, copy in copies:
        current = getattr(module, name)
        current.clear()
        current.update(copy) if not isinstance(current, list) else current.extend(copy)
    nas.plugins._INSTALLED = installed
    for name in set(sys.modules) - modules:
        if name.startswith("nas_plugin_") or name.startswith("fake_nas_plugin"):
            del sys.modules[name]


def run_nas(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "nas", *args], cwd=cwd, env=env, text=True,
                          capture_output=True, timeout=timeout)


# --------------------------------------------------------------------------- the example plugin


def test_example_plugin_search_runs_with_two_workers(tmp_path, isolated, capsys):
    result = run_nas("search", str(EXAMPLE / "search.yaml"), "--runs", "runs", "--no-progress",
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    run_dir = tmp_path / "runs" / "ghost_stripes"
    frozen = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert frozen["plugins"] == [str(EXAMPLE / "ghost.py")]  # absolute: workers find it
    run = json.loads((run_dir / "run.json").read_text())
    assert run["plugins"] == frozen["plugins"] and run["sampler"] == "quick_tpe"
    records = [json.loads(p.read_text()) for p in sorted(run_dir.glob("trials/*/metrics.json"))]
    assert len(records) == 4 and {r["state"] for r in records} == {"complete"}
    # Trials ran in the spawned workers (the parent runs none with workers: 2), which had to
    # load the plugin for the ghost op, its block library, the stripes dataset and the sampler.
    assert all(r["worker"].split(":")[-1] != str(os.getpid()) for r in records)
    ghost = [r for r in records if "ghost_bottleneck" in (r["genotype"]["text"] or "")]
    assert ghost, "the ghost seed ran"
    assert "ghost(" in (run_dir / "trials" / f"{ghost[0]['trial']:04d}" / "genotype.yaml").read_text()
    # A reader of the run folder loads the plugin from run.json: no --plugin needed (read in
    # this process, which has not loaded it: the search ran in others).
    assert str(EXAMPLE / "ghost.py") not in nas.plugins.loaded_plugins()
    capsys.readouterr()
    assert main(["best", str(run_dir), "--yaml"]) == 0
    assert "trial " in capsys.readouterr().out
    assert str(EXAMPLE / "ghost.py") in nas.plugins.loaded_plugins()


def test_example_plugin_op_keeps_its_contract(isolated):
    nas.plugins.load_plugin(str(EXAMPLE / "ghost.py"))
    report = check_op("ghost")
    assert report.ok, report.lines()
    assert [s.measured.params for s in report.shapes] == [s.static.params for s in report.shapes]
    assert len([s for s in report.shapes if s.static is not None]) >= 3
    odd = check_op("ghost", example="ghost(15, k=3, s=2, ratio=3, dw=5, relu=False)")
    assert odd.ok, odd.lines()


# --------------------------------------------------------------------------- the op contract


class _Scaled(Op):
    """A 1x1 convolution (c channels) whose static rule can be made wrong in one way."""

    name = "scaled"
    args = (Arg("c", "int"),)
    example = Example({"c": 4}, ((3, 6, 6),))
    params_error = macs_error = 0
    shape_error = False

    def infer(self, args, shapes):
        if len(shapes[0]) != 3:
            raise GenotypeError("scaled needs a feature map")
        cin, h, w = shapes[0]
        weights = cin * args["c"]
        return OpInfo((args["c"], h + self.shape_error, w), weights + args["c"] + self.params_error,
                      weights * h * w + self.macs_error)

    def build(self, args, shapes, context):
        from torch import nn

        return nn.Conv2d(shapes[0][0], args["c"], 1)


class _Detached(torch.nn.Conv2d):
    """A 1x1 convolution that stops its input's gradient."""

    def forward(self, x):
        return super().forward(x.detach())


def _broken(**attributes):
    return type("Broken", (_Scaled,), attributes)()


def test_a_correct_op_passes():
    report = check_op(_Scaled())
    assert report.ok, report.lines()
    assert [s.inputs for s in report.shapes] == [((3, 6, 6),), ((6, 6, 6),), ((3, 9, 12),), ((9, 13, 8),)]
    assert report.lines()[-1] == "scaled: keeps its contract"


@pytest.mark.parametrize("attributes, problem", [
    ({"params_error": 1}, "parameters, static rule says"),
    ({"macs_error": -5}, "MACs per sample, static rule says"),
    ({"shape_error": True}, "output shape (4, 6, 6), static rule says (4, 7, 6)"),
    ({"build": lambda self, a, s, c: torch.nn.Conv2d(s[0][0], a["c"], 3)},
     "output shape (4, 4, 4)"),
    ({"build": lambda self, a, s, c: 1 / 0}, "build raised ZeroDivisionError"),
    ({"build": lambda self, a, s, c: "conv"}, "not an nn.Module"),
    ({"infer": lambda self, a, s: OpInfo(s[0]) if s[0][0] == 3 else 1 / 0},
     "static rule raised ZeroDivisionError"),
    ({"infer": lambda self, a, s: OpInfo(s[0]), "build": lambda self, a, s, c: None},
     "build returned None (identity) but the op is not an alias"),
    ({"build": lambda self, a, s, c: _Detached(s[0][0], a["c"], 1)}, "no gradient reaches an input"),
])
def test_a_broken_op_is_caught(attributes, problem):
    report = check_op(_broken(**attributes))
    assert not report.ok
    assert any(problem in p for s in report.shapes for p in s.problems), report.lines()
    assert report.lines()[-1] == "scaled: BREAKS its contract"


def test_an_in_place_build_that_computes_something_else_is_caught():
    from torch import nn

    class TwiceConv(nn.Conv2d):
        def forward(self, x):
            return super().forward(x) * 2

    class Doubling(_Scaled):
        def build(self, args, shapes, context):
            return (TwiceConv if context.inplace else nn.Conv2d)(shapes[0][0], args["c"], 1)

    report = check_op(Doubling())
    assert any("in-place build computes something else" in p for s in report.shapes for p in s.problems)

    class Cut(_Scaled):  # same values, but the in-place build stops the input's gradient
        def build(self, args, shapes, context):
            return (_Detached if context.inplace else nn.Conv2d)(shapes[0][0], args["c"], 1)

    report = check_op(Cut())
    assert any("in-place build gives other input gradients" in p for s in report.shapes for p in s.problems)


def test_an_op_refusing_every_shape_or_its_own_example_is_caught():
    report = check_op(_Scaled(), shapes=[(5,)])
    assert not report.ok and "refuses every input shape" in report.problems[0]
    report = check_op(_broken(infer=lambda self, a, s: s[0][2]), shapes=[(5,)])
    assert "static rule raised IndexError" in report.shapes[0].problems[0]
    bare = type("Bare", (_Scaled,), {"example": None})()
    report = check_op(bare)
    assert not report.ok and "missing argument 'c'" in report.problems[0]


def test_check_op_cli_catches_a_broken_plugin_op(isolated, tmp_path, monkeypatch, capsys):
    (tmp_path / "bad.py").write_text(
        "from nas.ops import Arg, Example, Op, OpInfo, register\n"
        "@register\n"
        "class Bad(Op):\n"
        "    name = 'bad_linear'\n"
        "    args = (Arg('c', 'int'),)\n"
        "    example = Example({'c': 3}, ((5,),))\n"
        "    def infer(self, args, shapes):\n"
        "        return OpInfo((args['c'],), shapes[0][0] * args['c'], shapes[0][0] * args['c'])\n"
        "    def build(self, args, shapes, context):\n"
        "        from torch import nn\n"
        "        return nn.Linear(shapes[0][0], args['c'])  # has a bias the rule forgets\n")
    monkeypatch.chdir(tmp_path)
    status = main(["check-op", "ghost", "bad_linear", "--plugin", str(EXAMPLE / "ghost.py"),
                   "--plugin", "bad.py"])
    out = capsys.readouterr().out
    assert status == 1
    assert "ghost: keeps its contract" in out
    assert "18 parameters, static rule says 15" in out
    assert out.splitlines()[-1] == "1 of 2 ops keep their contract; broken: bad_linear"


def test_check_op_bad_input_is_one_line(capsys):
    assert main(["check-op", "no_such_op"]) == 2
    assert main(["check-op", "conv", "--example", "relu(3)"]) == 2
    assert main(["check-op", "conv", "--shape", "0,3"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 3
    assert err[0].startswith("unknown op 'no_such_op'")
    assert err[1] == "conv: example 'relu(3)' does not call conv"
    assert err[2].startswith("--shape: expected C,H,W")


# --------------------------------------------------------------------------- loading


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize("source, message", [
    (None, "plugin 'missing.py': no such file"),
    ("def broken(:\n", "plugin 'p.py': {path}:1: SyntaxError: invalid syntax"),
    ("x = 1\nraise RuntimeError('no GPU here')\n", "plugin 'p.py': {path}:2: RuntimeError: no GPU here"),
    ("import no_such_module_anywhere\n", "plugin 'p.py': {path}:1: ModuleNotFoundError"),
    ("from nas.ops import register, get\nregister(type(get('relu')))\n",
     "plugin 'p.py': {path}:2: ValueError: op name 'relu' is already registered"),
    ("import sys\nsys.exit(3)\n", "plugin 'p.py': {path}:2: SystemExit: 3"),
    *((f"from nas.ops import Op, register\n@register\nclass X(Op):\n    name = {name}\n",
       f"plugin 'p.py': {{path}}:2: {error}: ") for name, error in [
        ("5", "TypeError"), ("None", "TypeError"), ("'has space!'", "ValueError"), ("''", "ValueError"),
        ("'x(y)'", "ValueError"), ("'a\\nb'", "ValueError"), ("'Relu'", "ValueError"),
        ("'if'", "ValueError")]),
])
def test_a_plugin_that_fails_to_load_is_one_line_exit_2(isolated, tmp_path, monkeypatch, capsys,
                                                        source, message):
    monkeypatch.chdir(tmp_path)
    name = "missing.py" if source is None else "p.py"
    if source is not None:
        _write(tmp_path / name, source)
    assert main(["summary", "resnet20", "--plugin", name]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("--plugin[0]: " + message.format(path=tmp_path / name)), err


def test_what_a_plugin_prints_when_imported_goes_to_stderr(isolated, tmp_path, monkeypatch, capsys):
    # stdout is the command's output (here DOT text, which may be piped to dot); a dotted
    # module name runs its parent package while it is looked for
    monkeypatch.chdir(tmp_path)
    _write(tmp_path / "loud.py", "print('hello from loud.py')\n")
    (tmp_path / "fake_nas_plugin_loud").mkdir()
    _write(tmp_path / "fake_nas_plugin_loud" / "__init__.py", "print('hello from the package')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["graph", "resnet20", "--format", "dot", "--plugin", "loud.py"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("digraph") and "hello" not in out and err == "hello from loud.py\n"
    assert main(["summary", "resnet20", "--plugin", "fake_nas_plugin_loud.missing"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.splitlines()[0] == "hello from the package"


@pytest.mark.parametrize("ref, message", [
    ("a\0b.py", "plugin 'a\\x00b.py': not a usable path (embedded null byte)"),
    ("x" * 5000 + ".py", "not a usable path (File name too long)"),
    (".", "has no __init__.py"),
    ("/dev/null", "plugin '/dev/null': not a regular file (/dev/null)"),
    (3, "a plugin is a file path or a module name, got 3"),
])
def test_a_plugin_path_that_is_not_a_file_is_one_line(isolated, tmp_path, ref, message):
    with pytest.raises(ConfigError) as error:
        nas.plugins.load_plugins([ref], base=tmp_path, file="c.yaml")
    assert str(error.value).startswith("c.yaml: plugins[0]: ") and message in str(error.value)
    assert "\n" not in str(error.value)


def test_a_module_name_plugin_and_loading_once(isolated, tmp_path, monkeypatch, capsys):
    package = tmp_path / "fake_nas_plugin_pkg"
    package.mkdir()
    _write(package / "__init__.py", "from . import ops\n")
    _write(package / "ops.py", "from nas.ops import get, register\n"
           "class Twice(type(get('identity'))):\n    name = 'twice_identity'\n    aliases = ()\n"
           "register(Twice)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert nas.plugins.load_plugin("fake_nas_plugin_pkg") == "fake_nas_plugin_pkg"
    assert nas.plugins.load_plugin("fake_nas_plugin_pkg") == "fake_nas_plugin_pkg"  # no-op
    # The same package as a folder path is loaded once too (registering it again would fail).
    folder = nas.plugins.load_plugin(str(package))
    assert nas.plugins.load_plugin(str(package)) == folder == str(package)
    assert nas.ops.get("twice_identity").name == "twice_identity"
    with pytest.raises(ConfigError, match=r"plugin 'no_such_module_x': no module of that name"):
        nas.plugins.load_plugin("no_such_module_x")
    (tmp_path / "fake_nas_plugin_bad").mkdir()
    _write(tmp_path / "fake_nas_plugin_bad" / "__init__.py", "x = 1\nraise KeyError('bad')\n")
    where = tmp_path / "fake_nas_plugin_bad" / "__init__.py"
    with pytest.raises(ConfigError, match=rf"plugin 'fake_nas_plugin_bad': {where}:2: KeyError: 'bad'"):
        nas.plugins.load_plugin("fake_nas_plugin_bad")


def _distribution(tmp_path: Path, name: str, entry_point: str) -> Path:
    """A site folder holding an installed distribution ``name`` 1.0 with one ``nas.plugins``
    entry point (``entry_point`` as entry_points.txt writes it)."""
    site = tmp_path / "site"
    info = site / f"{name.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[nas.plugins]\n{entry_point}\n")
    return site


def test_installed_plugins_load_lazily_through_entry_points(isolated, tmp_path, monkeypatch):
    site = _distribution(tmp_path, "fake-nas-plugin-dist", "shift = fake_nas_plugin_ep:setup")
    _write(site / "fake_nas_plugin_ep.py",
           "def setup():\n"
           "    from nas.ops import get, register\n"
           "    class Shifted(type(get('identity'))):\n"
           "        name = 'ep_identity'\n        aliases = ()\n"
           "    register(Shifted)\n")
    monkeypatch.syspath_prepend(str(site))
    nas.plugins._INSTALLED = None
    assert "fake_nas_plugin_ep" not in sys.modules  # nothing loaded before a lookup misses
    assert nas.ops.get("ep_identity").name == "ep_identity"
    assert "entry-point:shift" in nas.plugins.loaded_plugins()
    assert nas.plugins.load_installed() is False  # once per process


def test_a_failing_entry_point_names_itself(isolated, tmp_path, monkeypatch):
    site = _distribution(tmp_path, "broken-nas", "broken = fake_nas_plugin_missing")
    monkeypatch.syspath_prepend(str(site))
    nas.plugins._INSTALLED = None
    with pytest.raises(ConfigError, match=r"plugin entry point 'broken' \(fake_nas_plugin_missing\): "
                                          r"ModuleNotFoundError"):
        nas.ops.get("no_such_op_anywhere")


def test_plugins_given_as_one_string_are_refused_not_spelled_out(isolated):
    # run_search(config, plugins="ghost.py") loaded the letters: "plugin 'g': no module of that name".
    with pytest.raises(ConfigError, match=r"^--plugin must be a list of names, got the string 'ghost.py'"):
        nas.plugins.load_plugins("ghost.py", path="--plugin")


@pytest.mark.parametrize("kind, register", [
    ("proxy", lambda name: nas.proxies.register_proxy(name, needs_data=False)),
    ("dataset", nas.data.register_dataset),
    ("sampler", nas.samplers.register_sampler),
])
@pytest.mark.parametrize("name, entry, message", [
    (None, len, "a {kind}'s name is a non-empty string, got None"),
    ("", len, "a {kind}'s name is a non-empty string, got ''"),
    ("fresh_name", 3, "{kind} 'fresh_name': 3 is not a "),
])
def test_every_registry_refuses_a_bad_name_or_a_non_callable_alike(isolated, kind, register, name, entry,
                                                                   message):
    # register_proxy and register_dataset took all of these, to fail when the entry was used.
    with pytest.raises(ValueError, match=f"^{re.escape(message.format(kind=kind))}"):
        register(name)(entry)


def test_config_plugins_datasets_samplers_and_libraries(isolated, tmp_path):
    (tmp_path / "sub").mkdir()
    _write(tmp_path / "sub" / "extra.py",
           "import optuna\n"
           "from nas.samplers import register_sampler\n"
           "@register_sampler('coin', multi_objective=False)\n"
           "def coin(*, seed=None, flips: int = 1):\n"
           "    return optuna.samplers.RandomSampler(seed=seed)\n")
    config = {
        "name": "p", "plugins": [str(EXAMPLE / "ghost.py"), "sub/extra.py"],
        "space": {"genotype": str(EXAMPLE / "ghostnet_tiny.yaml"),
                  "choices": {"unit": {"choices": ["ghost_bottleneck", "plain_unit"]}}},
        "dataset": {"name": "stripes", "num_images": 40}, "sampler": {"name": "coin", "flips": 2},
        "trials": 2,
    }
    path = _write(tmp_path / "config.yaml", yaml.safe_dump(config))
    from nas.search import load_config
    from nas.search._study import make_sampler

    loaded = load_config(path)
    assert loaded.plugins == (str(EXAMPLE / "ghost.py"), str(tmp_path / "sub" / "extra.py"))
    assert loaded.data["plugins"] == list(loaded.plugins)
    assert type(make_sampler(loaded)).__name__ == "RandomSampler"
    # A single-objective plugin sampler refuses a Pareto search; options are checked.
    for change, message in ((({"objectives": ["val_accuracy", "params"]}), "single-objective"),
                            ({"sampler": {"name": "coin", "flip": 1}}, "flip"),
                            ({"sampler": "dice"}, "unknown sampler 'dice'; valid: .*coin"),
                            ({"plugins": "sub/extra.py"}, "plugins: must be a list"),
                            ({"plugins": ["sub/extra.py", "nope.py"]},
                             r"plugins\[1\]: plugin 'nope.py': no such file")):
        _write(path, yaml.safe_dump({**config, **change}))
        with pytest.raises(ConfigError, match=message):
            load_config(path)


def test_search_flag_plugins_are_frozen_for_workers(isolated, tmp_path, monkeypatch):
    from nas.search import load_config
    from nas.search._config import with_overrides

    monkeypatch.chdir(tmp_path)
    nas.plugins.load_plugin(str(EXAMPLE / "ghost.py"))
    config = {"name": "f", "space": {"genotype": str(EXAMPLE / "ghostnet_tiny.yaml"),
                                     "choices": {"expansion": {"choices": [2, 3]}}},
              "dataset": {"name": "stripes", "num_images": 40}, "trials": 1}
    loaded = load_config(_write(tmp_path / "c.yaml", yaml.safe_dump(config)))
    assert loaded.plugins == ()
    _write(tmp_path / "ghost_link.py", "")  # a second, empty plugin given on the command line
    changed = with_overrides(loaded, plugins=[str(EXAMPLE / "ghost.py"), "ghost_link.py"])
    assert changed.data["plugins"] == [str(EXAMPLE / "ghost.py"), str(tmp_path / "ghost_link.py")]


def test_a_worker_that_cannot_load_the_runs_plugin_says_so_in_one_line(isolated, tmp_path,
                                                                       monkeypatch, capsys):
    import nas.search._workers as workers

    _write(tmp_path / "gone.py", "raise RuntimeError('removed since the run started')\n")
    _write(tmp_path / "config.yaml", yaml.safe_dump({"plugins": [str(tmp_path / "gone.py")]}))
    monkeypatch.setattr(workers, "die_with_parent", lambda: None)
    with pytest.raises(SystemExit) as exit_:
        workers._worker_main(str(tmp_path), "journal.log", 1, None, {}, None)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"worker 1: {tmp_path / 'config.yaml'}: plugins[0]: plugin "
                          f"'{tmp_path / 'gone.py'}': {tmp_path / 'gone.py'}:1: RuntimeError: removed")
