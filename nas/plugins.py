"""Plugins: users' own ops, block libraries, datasets and samplers, without forking nas.

A plugin is a Python module that registers what it adds when it is imported::

    from nas.ops import Op, register            # an op (`nas check-op NAME` checks its contract)
    from nas.data import register_dataset       # a dataset (a source loader)
    from nas.samplers import register_sampler   # a sampler (Optuna's interface)
    from nas.genotype import register_library   # a folder of block libraries for `imports:`

It is named either by a file path (a ``.py`` file, or a package folder holding
``__init__.py``), or by an importable module name (``my_package.nas_ops``):

- in a run config, ``plugins: [ghost.py, my_package.nas_ops]``, paths relative to the config;
- on the command line, ``nas COMMAND ... --plugin ghost.py`` (repeatable), paths relative to
  the working folder.

A run config's plugins, and ``nas search``'s ``--plugin`` ones, are frozen into the run folder
as absolute paths (module names as they are), and every worker process loads them before it
reads the space, so a worker finds the same ops as the process that started it; readers of a
run folder (``nas best``, ``nas analyze``, ``nas retrain``) load them from ``run.json``.

Installed packages register through the entry-point group ``nas.plugins``
(:data:`ENTRY_POINT_GROUP`): each entry point names a module, or a function called once with no
arguments. They are loaded lazily, once per process: the first time a registry lookup misses
(an unknown op, dataset, sampler or library file) or a command lists the registry.

What a plugin prints while it loads goes to stderr (stdout is the command's output).

Loading is idempotent: a file is executed once per process, whether named by its path, by its
module name, or both (or imported by the user's own script first). Any
problem (a missing file, an import error, a name already registered, an exception in the
plugin's code) is a :class:`~nas.errors.ConfigError` whose one line names the plugin, the
problem and, for an exception in the plugin's own code, its file and line.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import re
import sys
import traceback
from collections.abc import Container, Iterable
from pathlib import Path
from types import ModuleType
from typing import Any

from nas._checks import name_list
from nas.errors import ConfigError

__all__ = [
    "ENTRY_POINT_GROUP",
    "check_registration",
    "load_installed",
    "load_plugin",
    "load_plugins",
    "loaded_plugins",
    "resolve_plugin",
]

#: The entry-point group installed packages register plugins under.
ENTRY_POINT_GROUP = "nas.plugins"

_MODULE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*\Z")

_LOADED: dict[str, ModuleType] = {}  # resolved reference -> module
_INSTALLED: list[str] | None = None  # entry points loaded, once per process


def check_registration(kind: str, name: Any, entry: Any, taken: Container[str], *,
                       what: str = "function") -> None:
    """The rule every registry's decorator applies (samplers, proxies, datasets): ``name`` is a
    non-empty string not in ``taken``, and ``entry`` is callable.

    Raises:
        ValueError: naming the ``kind`` and the problem (a programming error in a plugin).
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"a {kind}'s name is a non-empty string, got {name!r}")
    if name in taken:
        raise ValueError(f"{kind} {name!r} is already registered")
    if not callable(entry):
        raise ValueError(f"{kind} {name!r}: {entry!r} is not a {what}")


def _is_path(ref: str) -> bool:
    return ref.endswith(".py") or "/" in ref or "\\" in ref or not _MODULE_NAME.match(ref)


def resolve_plugin(ref: str, *, base: Path | None = None, path: str | None = None,
                   file: str | None = None) -> str:
    """The reference every process can load: a file path made absolute (relative to ``base``,
    default the working folder) and checked to exist; a module name as it is.

    Raises:
        ConfigError: not a string, or a path with no file or package folder there.
    """
    if not isinstance(ref, str) or not ref.strip():
        raise ConfigError(f"a plugin is a file path or a module name, got {ref!r}", file=file,
                          path=path)
    if not _is_path(ref):
        return ref
    try:
        target = ((base or Path.cwd()) / Path(ref).expanduser()).resolve()
        folder, is_file = target.is_dir(), target.is_file()
        package = folder and (target / "__init__.py").is_file()
    except (OSError, ValueError, RuntimeError) as error:  # NUL byte, name too long, link loop
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        raise ConfigError(f"plugin {_name(ref)}: not a usable path ({reason})", file=file,
                          path=path) from None
    if folder and not package:
        raise ConfigError(f"plugin {_name(ref)}: the folder {target} has no __init__.py", file=file,
                          path=path)
    if not folder and not is_file:
        what = "not a regular file" if target.exists() else "no such file"
        raise ConfigError(f"plugin {_name(ref)}: {what} ({target})", file=file, path=path)
    return str(target)


def load_plugin(ref: str, *, base: Path | None = None, path: str | None = None,
                file: str | None = None) -> str:
    """Import the plugin ``ref`` (see the module docstring) unless it is loaded; return its
    resolved reference (what a frozen config records).

    Raises:
        ConfigError: one line naming the plugin and the problem (located at ``file``/``path``).
    """
    resolved = resolve_plugin(ref, base=base, path=path, file=file)
    if resolved in _LOADED:
        return resolved
    # What a plugin prints when imported goes to stderr: stdout is the command's output (a
    # table, DOT text, JSON) and may be piped. Finding a dotted module runs its parents.
    with contextlib.redirect_stdout(sys.stderr):
        if not Path(resolved).is_absolute() and not _module_exists(resolved):
            raise ConfigError(f"plugin {_name(ref)}: no module of that name (and no such file)", file=file,
                              path=path)
        try:
            module = _imported(resolved) or _import(resolved)
        except BaseException as error:  # noqa: BLE001 - a plugin's code may raise anything
            if isinstance(error, KeyboardInterrupt):
                raise
            raise ConfigError(f"plugin {_name(ref)}: {_where(error, resolved)}{_describe(error)}",
                              file=file, path=path) from None
    _LOADED[resolved] = module
    return resolved


def load_plugins(refs: Iterable[str], *, base: Path | None = None, path: str = "plugins",
                 file: str | None = None) -> list[str]:
    """:func:`load_plugin` for each of ``refs`` in order (errors located at ``path[i]``);
    returns the resolved references, duplicates dropped. ``refs`` given as one string is a
    :class:`ConfigError` (its letters are no plugins)."""
    name_list(refs, path=path)
    out: list[str] = []
    for i, ref in enumerate(refs):
        resolved = load_plugin(ref, base=base, path=f"{path}[{i}]", file=file)
        if resolved not in out:
            out.append(resolved)
    return out


def loaded_plugins() -> list[str]:
    """The resolved references of the plugins loaded in this process, in loading order
    (entry points as ``entry-point:NAME``)."""
    return [*_LOADED, *(f"entry-point:{name}" for name in _INSTALLED or ())]


def load_installed() -> bool:
    """Load every plugin installed under :data:`ENTRY_POINT_GROUP`, once per process.

    Returns:
        True when this call loaded at least one (a lookup that missed is worth retrying).

    Raises:
        ConfigError: naming the entry point and its problem.
    """
    global _INSTALLED
    if _INSTALLED is not None:
        return False
    _INSTALLED = []
    from importlib.metadata import entry_points

    for point in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda p: p.name):
        where = f"entry point {point.name!r} ({point.value})"
        try:
            with contextlib.redirect_stdout(sys.stderr):  # as in load_plugin
                loaded = point.load()
                if callable(loaded) and not isinstance(loaded, ModuleType):
                    loaded()
        except BaseException as error:  # noqa: BLE001
            if isinstance(error, KeyboardInterrupt):
                raise
            raise ConfigError(f"plugin {where}: {_describe(error)}") from None
        _INSTALLED.append(point.name)
    return bool(_INSTALLED)


def _module_exists(name: str) -> bool:
    """Whether ``name`` can be imported, without running it (its parent packages do run)."""
    if name in sys.modules:
        return True
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _source(resolved: str) -> Path | None:
    """The file a plugin reference executes (a package's ``__init__.py``), or ``None``."""
    if Path(resolved).is_absolute():
        target = Path(resolved)
        return target / "__init__.py" if target.is_dir() else target
    try:
        spec = importlib.util.find_spec(resolved)
    except (ImportError, ValueError):
        return None
    return Path(spec.origin).resolve() if spec is not None and spec.origin else None


def _imported(resolved: str) -> ModuleType | None:
    """The module already imported from the file ``resolved`` executes (a plugin named once by
    path and once by module name, or a module the user's script imported): run it twice and
    it would register everything twice."""
    source = _source(resolved)
    if source is None:
        return None
    for module in list(sys.modules.values()):
        name = getattr(module, "__file__", None)
        if isinstance(name, str):
            try:
                if Path(name).resolve() == source:
                    return module
            except (OSError, ValueError):  # pragma: no cover - an unresolvable module path
                continue
    return None


def _import(resolved: str) -> ModuleType:
    """Import a module name, or execute a file or package folder as a fresh module."""
    if not Path(resolved).is_absolute():
        return importlib.import_module(resolved)
    target = Path(resolved)
    package = target.is_dir()
    source = target / "__init__.py" if package else target
    digest = hashlib.sha256(resolved.encode()).hexdigest()[:10]
    stem = re.sub(r"\W", "_", target.stem if not package else target.name)
    name = f"nas_plugin_{stem}_{digest}"
    spec = importlib.util.spec_from_file_location(
        name, source, submodule_search_locations=[str(target)] if package else None)
    if spec is None or spec.loader is None:  # pragma: no cover - a .py file always has one
        raise ImportError("not a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and relative imports look the module up
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def _where(error: BaseException, resolved: str) -> str:
    """``FILE:LINE: `` of the innermost frame in the plugin's own files, or nothing."""
    source = _source(resolved)
    if source is None:
        return ""
    root = source.parent if source.name == "__init__.py" else source
    frames = [f for f in traceback.extract_tb(error.__traceback__)
              if Path(f.filename) == root or root in Path(f.filename).parents]
    if isinstance(error, SyntaxError) and error.filename and error.lineno:
        return f"{error.filename}:{error.lineno}: "
    return f"{frames[-1].filename}:{frames[-1].lineno}: " if frames else ""


def _name(ref: str) -> str:
    """``ref`` quoted, cut to 120 characters (a hostile name must not hide the problem)."""
    return repr(ref if len(ref) <= 120 else ref[:117] + "...")


def _describe(error: BaseException) -> str:
    text = " ".join(str(error).split())
    if isinstance(error, SyntaxError):
        text = error.msg
    if len(text) > 300:
        text = text[:297] + "..."
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
