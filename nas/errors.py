"""Exceptions for bad user input.

Every error a user can cause by writing a file or passing an option derives from
:class:`NasError`. Its string form is a single line, ``FILE: PATH: MESSAGE``, where FILE and
PATH are left out when unknown. The command line prints that line and exits with status 2;
nothing else is printed, so messages must stand on their own.
"""

from __future__ import annotations

__all__ = ["NasError", "GenotypeError", "ConfigError"]


class NasError(Exception):
    """A problem with user input, located by file and by path inside it."""

    def __init__(self, message: str, *, file: str | None = None, path: str | None = None):
        super().__init__(message)
        self.message = message
        self.file = file
        self.path = path

    def located(self, *, file: str | None = None, path: str | None = None) -> NasError:
        """Fill in the location where it is still unknown and return ``self``."""
        if self.file is None and file is not None:
            self.file = file
        if self.path is None and path is not None:
            self.path = path
        return self

    def __str__(self) -> str:
        parts = [p for p in (self.file, self.path) if p]
        return ": ".join(_printable(part) for part in [*parts, " ".join(self.message.split())])


def _printable(text: str, limit: int = 1000) -> str:
    """``text`` with control characters escaped (``\\n``, ``\\x00``), so it stays one line,
    and cut to ``limit`` characters (a hostile name or path could be a megabyte long)."""
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class GenotypeError(NasError):
    """A genotype that cannot be parsed, expanded, analysed or built."""


class ConfigError(NasError):
    """A search space, run configuration or command-line option that is invalid."""
