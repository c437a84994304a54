"""The package's face: ``nas --version``, ``nas.__version__``, ``dir(nas)``, ``py.typed``."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

import nas
from nas.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_version_from_the_checkout(capsys):
    expected = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert nas.__version__ == expected
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"nas {expected}"


def test_dir_shows_the_lazily_imported_names():
    names = dir(nas)
    for name in (*nas.__all__, "build_model", "analyze", "scale", "Stats", "__version__"):
        assert name in names
    assert (Path(nas.__file__).parent / "py.typed").is_file()
