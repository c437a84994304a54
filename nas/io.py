"""Atomic file writes: a temporary file in the same folder, flushed, then ``os.replace``.

A killed process leaves either the previous file or the new one, never half of one; the data
is forced to disk first (``fsync``) unless the caller says the file is a copy it can lose in a
power cut (``sync=False``). A full
disk (``ENOSPC``, or a full quota) is an ``OSError`` whose ``filename`` is the file being
written (:func:`disk_full`), so the command line can say which file in one line.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_write_bytes", "atomic_write_text", "disk_full", "is_disk_full", "try_file_lock"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | Path, data: bytes, *, sync: bool = True) -> None:
    """Write ``data`` to ``path`` atomically, creating parent folders; ``sync``: fsync the
    data before the rename (without it a power cut may leave an empty file, not a torn one).

    Raises:
        OSError: as the system raised it; for a full disk, :func:`disk_full` of ``path``.
    """
    path = Path(path)
    try:
        _write(path, data, sync)
    except OSError as error:
        if is_disk_full(error):
            raise disk_full(path) from None
        raise


def _write(path: Path, data: bytes, sync: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            if sync:
                os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str, *, sync: bool = True) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically (``sync``: see :func:`atomic_write_bytes`)."""
    atomic_write_bytes(path, text.encode("utf-8"), sync=sync)


def is_disk_full(error: BaseException) -> bool:
    """Whether ``error`` says the disk (or the user's quota) is full."""
    return isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT)


def disk_full(path: str | Path) -> OSError:
    """The error to raise when writing ``path`` found the disk full: an ``OSError`` with
    ``errno.ENOSPC`` whose ``filename`` is ``path`` (the command line prints it as one line)."""
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))


@contextlib.contextmanager
def try_file_lock(path: str | Path) -> Iterator[bool]:
    """An exclusive ``flock`` on ``path`` (created if absent) without waiting: yields True
    holding the lock, or False when another process holds it."""
    import fcntl

    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
