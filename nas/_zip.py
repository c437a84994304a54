"""Bounds on what a zip archive inflates to, for every reader of zips (``.npz`` datasets, image
archives, ``torch.save`` files).

A zip's central directory declares each member's uncompressed size: :func:`unpacked_bytes`
sums them, so a compression bomb is refused before anything is inflated. :func:`open_member`
then reads a member in chunks of at most :data:`CHUNK` bytes and never more than it declares,
so a directory that lies costs no more than it says: ``zipfile`` alone inflates everything a
``read()`` asks for in one call (a deflated megabyte declared as a kilobyte became a gigabyte
in memory before it was cut to a kilobyte). Only stored and deflated members are read: bzip2
and LZMA inflate each chunk whole, with no bound on its output.

Errors are :class:`ValueError` naming the member; callers say which file in their own words.
Imports neither torch nor NumPy.
"""

from __future__ import annotations

import zipfile
from typing import IO

__all__ = ["CHUNK", "open_member", "read_member", "unpacked_bytes"]

#: Most bytes asked of a member in one read (so inflated in one call).
CHUNK = 1 << 20
_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED}
_METHOD_NAMES = {zipfile.ZIP_BZIP2: "bzip2", zipfile.ZIP_LZMA: "LZMA"}


def unpacked_bytes(archive: zipfile.ZipFile) -> int:
    """The bytes all members of ``archive`` hold uncompressed, as its central directory
    declares them (nothing is inflated)."""
    return sum(info.file_size for info in archive.infolist())


class _Member:
    """A member's bytes, read in chunks of at most :data:`CHUNK` and at most ``limit`` in all."""

    def __init__(self, stream: IO[bytes], name: str, limit: int):
        self._stream, self._name, self._left = stream, name, limit

    def read(self, size: int | None = -1) -> bytes:
        wanted = self._left + 1 if size is None or size < 0 else min(size, self._left + 1)
        parts = []
        while wanted > 0 and (part := self._stream.read(min(wanted, CHUNK))):
            parts.append(part)
            wanted -= len(part)
            self._left -= len(part)
            if self._left < 0:
                raise ValueError(f"member {self._name!r} inflates to more bytes than its "
                                 "header declares (a compression bomb?)")
        return b"".join(parts)

    def close(self) -> None:
        self._stream.close()

    def __enter__(self) -> _Member:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> _Member:
    """A reader of ``info``'s bytes (``read(size)``, ``close()``, a context manager) that asks
    ``zipfile`` for at most :data:`CHUNK` bytes at a time and refuses more than the member's
    declared size.

    Raises:
        ValueError: the member is compressed otherwise than stored or deflated; (while
            reading) it inflates beyond its declared size.
    """
    if info.compress_type not in _METHODS:
        method = _METHOD_NAMES.get(info.compress_type, f"method {info.compress_type}")
        raise ValueError(f"member {info.filename!r} is compressed with {method}, which is not read "
                         "(only stored or deflated members: its inflation cannot be bounded)")
    return _Member(archive.open(info), info.filename, info.file_size)


def read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    """All bytes of ``info``, read by :func:`open_member` (same bounds, same errors)."""
    with open_member(archive, info) as member:
        return member.read()
