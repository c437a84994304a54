"""Build hook: the wheel ships the repository's top-level ``genotypes/`` and ``search_spaces/``
as package data, ``nas/_data/genotypes`` and ``nas/_data/search_spaces``.

Everything else is declared in pyproject.toml. The folders stay at the top of the repository
(the layout users know); ``nas/_shipped.py`` reads ``nas/_data`` when it is installed and the
top-level folders otherwise (``PYTHONPATH=.`` runs and editable installs, for which nothing is
copied). An sdist carries both folders (MANIFEST.in), so a wheel built from it has them too.
"""

from __future__ import annotations

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
DATA_FOLDERS = ("genotypes", "search_spaces")
DATA_SUFFIXES = (".yaml", ".md")


class BuildPyWithData(build_py):
    """``build_py`` that also copies the data folders under ``nas/_data/`` in the build tree."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        for folder in DATA_FOLDERS:
            source_root = ROOT / folder
            if not source_root.is_dir():
                raise FileNotFoundError(f"{source_root}: the wheel's data folder is missing")
            for source in sorted(source_root.rglob("*")):
                if source.is_file() and source.suffix in DATA_SUFFIXES:
                    target = Path(self.build_lib, "nas", "_data", folder, source.relative_to(source_root))
                    self.mkpath(str(target.parent))
                    self.copy_file(str(source), str(target))


setup(cmdclass={"build_py": BuildPyWithData})
