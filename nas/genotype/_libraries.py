"""Folders of block libraries that plugins add to the places ``imports:`` looks in.

A genotype's ``imports: [ITEM]`` is read relative to the importing file's folder, then in the
zoo (:func:`nas.genotype.zoo_dir`), then in each registered folder in registration order.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["library_dirs", "library_generation", "register_library"]

_DIRS: list[Path] = []


def register_library(folder: str | Path) -> Path:
    """Add ``folder`` (made absolute) to the folders ``imports:`` searches; registering one
    twice is a no-op. Returns the absolute folder.

    Raises:
        ValueError: ``folder`` is not a folder, names no user (``~USER``) or loops through
            symlinks (a programming error in the plugin).
    """
    try:
        path = Path(folder).expanduser().resolve()
    except RuntimeError as error:  # pathlib's: no such user, a symlink loop
        raise ValueError(f"block library folder {str(folder)!r}: {error}") from None
    if not path.is_dir():
        raise ValueError(f"block library folder {str(folder)!r} is not a folder")
    if path not in _DIRS:
        _DIRS.append(path)
    return path


def library_dirs() -> list[Path]:
    """The registered folders, in registration order (installed plugins loaded first)."""
    from nas.plugins import load_installed

    load_installed()
    return list(_DIRS)


def library_generation() -> int:
    """A number that changes whenever a folder is registered (without loading plugins):
    caches of parsed genotypes key on it."""
    return len(_DIRS)
