"""Where the data shipped with nas lives: the zoo (``genotypes/``) and the run configs
(``search_spaces/``).

In the repository both folders sit at the top level. An installed wheel holds them as package
data, ``nas/_data/genotypes`` and ``nas/_data/search_spaces`` (``setup.py`` copies them there
when the wheel is built), read through :mod:`importlib.resources`. A source checkout
(``PYTHONPATH=.`` or an editable install) has no ``nas/_data`` and reads the top-level folders.
``$NAS_GENOTYPES`` overrides the zoo's folder.

Both folders keep their layout in the wheel, so a path relative to one file (the quickstart's
``../genotypes/search/resnet_cifar.yaml``) resolves the same installed or not.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
from functools import cache
from importlib import resources
from pathlib import Path

from nas.errors import ConfigError

__all__ = ["configs_dir", "find_config", "shipped_configs", "zoo_dir"]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*\Z")


@cache
def _shipped(folder: str) -> Path:
    """The installed ``nas/_data/FOLDER`` if there is one, else the checkout's ``FOLDER``."""
    packaged = resources.files("nas") / "_data" / folder
    if packaged.is_dir():
        if isinstance(packaged, Path):
            return packaged
        # nas imported from an archive (a zip): extract the folder for the process's lifetime
        # (directories need Python 3.12's as_file).
        stack = contextlib.ExitStack()
        atexit.register(stack.close)
        return Path(stack.enter_context(resources.as_file(packaged)))
    return Path(__file__).resolve().parent.parent / folder


def zoo_dir() -> Path:
    """The folder of hand-designed genotypes shipped with nas (``genotypes/``), or
    ``$NAS_GENOTYPES`` when set (and not empty).

    Raises:
        ConfigError: ``$NAS_GENOTYPES`` is set to something that is not a folder (a missing
            path, a file): ``$NAS_GENOTYPES: VALUE: not a folder``.
    """
    override = os.environ.get("NAS_GENOTYPES")
    if not override:
        return _shipped("genotypes")
    if not Path(override).is_dir():
        raise ConfigError("not a folder", file="$NAS_GENOTYPES", path=override)
    return Path(override)


def configs_dir() -> Path:
    """The folder of run configs shipped with nas (``search_spaces/``)."""
    return _shipped("search_spaces")


def shipped_configs() -> list[Path]:
    """Every shipped config file, sorted by name."""
    return sorted(configs_dir().glob("*.yaml"))


def find_config(ref: str | Path) -> Path:
    """The config file ``ref`` names: an existing file as it is, else a bare name (``quickstart``)
    as the shipped ``search_spaces/NAME.yaml``. Any other path is returned unchanged, so reading
    it reports the missing file.

    Raises:
        ConfigError: ``ref`` is a bare name that is neither a file nor a shipped config.
    """
    path = Path(ref)
    if path.exists() or not _NAME.match(str(ref)) or str(ref).endswith((".yaml", ".yml")):
        return path
    shipped = configs_dir() / f"{ref}.yaml"
    if shipped.is_file():
        return shipped
    names = ", ".join(p.stem for p in shipped_configs()) or "none"
    raise ConfigError(f"no file {str(ref)!r} and no shipped config of that name (shipped: {names}; "
                      f"`nas configs` lists them)")
