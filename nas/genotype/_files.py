"""Parsed genotype files kept across ``load_genotype`` calls, re-read when a file changes.

Loading a file reads it and its imports, looks up names in two folders (next to the importing
file, then the zoo) and resolves paths. A :class:`FileLog` does those reads and checks for
the loader and remembers each answer: the existence of every path looked up, where every path
resolved to, and the SHA-256 of every file read. A parsed genotype is valid as long as each
of those answers is still the same, so :class:`LoadCache` keeps the genotype with its log and,
on a hit, asks the file system the same questions again (a few ``stat`` calls and small reads,
no YAML parsing). Any difference (an edited library, a new file that now shadows a zoo
import, a symlink moved) is a miss and the file is parsed again.

A cache entry is keyed on what the loader started from (the source as given, the working
folder, the zoo folder and the op registry's :func:`nas.ops.generation`); the cache holds at
most :data:`MAX_ENTRIES` genotypes, the least recently used leaving first. Errors are never
cached. Thread-safe.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any

from nas._yaml import MAX_FILE_BYTES, load_yaml_bytes, read_bounded
from nas.errors import GenotypeError

__all__ = ["FileLog", "LoadCache", "MAX_ENTRIES", "MAX_LOAD_BYTES"]

MAX_ENTRIES = 16
"""Most parsed genotypes kept (each with its expansion memo: up to nas.genotype._memo.MAX_NODES
recorded nodes, a few MB)."""


MAX_LOAD_BYTES = 4 * MAX_FILE_BYTES
"""Most bytes one load reads, the genotype and all its imports together: each file may hold
MAX_FILE_BYTES and a genotype may import 64 of them, which took minutes and GBs to parse."""


def exists(path: Path) -> bool:
    """``path.exists()``, false for names the OS cannot take (too long, NUL bytes)."""
    try:
        return path.exists()
    except (OSError, ValueError):
        return False


def resolve(path: Path) -> Path:
    """``path.resolve()``, or ``path`` made absolute when the name cannot be resolved (a NUL
    byte, a name too long, a symlink loop: pathlib's ``RuntimeError`` before Python 3.13):
    reading it then fails with a one-line error."""
    try:
        return path.resolve()
    except (OSError, ValueError, RuntimeError):
        return path.absolute()


def _digest(raw: bytes) -> bytes:
    return hashlib.sha256(raw).digest()


class FileLog:
    """The file-system questions a load asked, with their answers (in order)."""

    __slots__ = ("answers", "bytes_read")

    def __init__(self) -> None:
        self.answers: list[tuple[str, Path, Any]] = []
        self.bytes_read = 0

    def exists(self, path: Path) -> bool:
        answer = exists(path)
        self.answers.append(("exists", path, answer))
        return answer

    def resolve(self, path: Path) -> Path:
        answer = resolve(path)
        self.answers.append(("resolve", path, answer))
        return answer

    def read_yaml(self, path: Path) -> Any:
        """The parsed YAML of ``path`` (:func:`nas._yaml.load_yaml_bytes`); errors name it.
        Refused before parsing when the files this log has read hold more than
        :data:`MAX_LOAD_BYTES` in all."""
        raw = read_bounded(path, error=GenotypeError)
        self.bytes_read += len(raw)
        if self.bytes_read > MAX_LOAD_BYTES:
            raise GenotypeError(f"the genotype and its imports hold more than {MAX_LOAD_BYTES >> 20} MiB in all",
                                file=str(path))
        self.answers.append(("read", path, _digest(raw)))
        return load_yaml_bytes(raw, file=str(path), error=GenotypeError)

    def still_valid(self) -> bool:
        """True when every question asked gets the same answer now."""
        for question, path, answer in self.answers:
            if question == "exists":
                now: Any = exists(path)
            elif question == "resolve":
                now = resolve(path)
            else:
                try:
                    now = _digest(read_bounded(path, error=GenotypeError))
                except GenotypeError:
                    return False
            if now != answer:
                return False
        return True


class LoadCache:
    """A bounded map from a load's starting point to the genotype parsed and its :class:`FileLog`."""

    def __init__(self, max_entries: int = MAX_ENTRIES):
        self.max_entries = max_entries
        self._entries: OrderedDict[Hashable, tuple[Any, FileLog]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, parse: Callable[[FileLog], Any]) -> Any:
        """The value cached under ``key`` while its files are unchanged, else ``parse(log)``
        (which does its file-system reads through ``log``), cached when it returns."""
        with self._lock:
            entry = self._entries.get(key)
        if entry is not None and entry[1].still_valid():
            with self._lock:
                if key in self._entries:
                    self._entries.move_to_end(key)
            return entry[0]
        log = FileLog()
        value = parse(log)
        with self._lock:
            self._entries[key] = (value, log)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
