"""The version of nas: the installed distribution's, or the checkout's when run from source.

From a source checkout (``PYTHONPATH=.``, or an editable install) ``pyproject.toml`` next to
the package is the truth: an unrelated ``nas`` installed in the same environment must not
lend its version. Otherwise the installed distribution's metadata says it.
"""

from __future__ import annotations

import tomllib
from functools import cache
from importlib import metadata
from pathlib import Path

__all__ = ["version"]

UNKNOWN = "0+unknown"


@cache
def version() -> str:
    """``X.Y.Z`` of the running nas; ``0+unknown`` when neither source gives one."""
    pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
    try:
        project = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("project", {})
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        project = {}
    if project.get("name") == "nas" and isinstance(project.get("version"), str):
        return project["version"]
    try:
        return metadata.version("nas")
    except metadata.PackageNotFoundError:
        return UNKNOWN
