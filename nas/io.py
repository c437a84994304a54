"""Atomic file writes: a temporary file in the same folder, flushed, then ``os.replace``.

A killed process leaves either the previous file or the new one, never half of one; the data
is forced to disk first (``fsync``) unless the caller says the file is a copy it can lose in a
power cut (``sync=False``). A full
disk (``ENOSPC``, or a full quota) is an ``OSError`` whose ``filename`` is the file being
written (:func:`disk_full`), so the command line can say which file in one line. Only a
regular file (or nothing) is replaced: a folder, device, FIFO or socket at the path is an error,
never swapped for a file.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["atomic_write_bytes", "atomic_write_text", "disk_full", "is_disk_full", "make_folder",
           "open_append", "try_file_lock", "read_json_object", "LINK_REFUSED", "MAX_RECORD_BYTES"]

#: The largest JSON file of a run folder read (``metrics.json``, ``run.json``: a real one is a
#: few kilobytes).
MAX_RECORD_BYTES = 16 << 20


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | Path, data: bytes, *, sync: bool = True) -> None:
    """Write ``data`` to ``path`` atomically, creating parent folders; ``sync``: fsync the
    data before the rename (without it a power cut may leave an empty file, not a torn one).

    Raises:
        OSError: whose ``filename`` is ``path``, never the temporary file (same ``errno``, so
            the same subclass: ``IsADirectoryError`` for a folder at ``path``); for a full
            disk, :func:`disk_full` of ``path``. A parent folder that cannot be made is the
            error of ``mkdir``, naming that folder. ``path`` (or what its link points to)
            being a device, FIFO or socket (:func:`_check_replaceable`).
    """
    path = Path(path)
    _check_replaceable(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise disk_full(path) if is_disk_full(error) else error from None
    try:
        _write(path, data, sync)
    except OSError as error:
        if is_disk_full(error):
            raise disk_full(path) from None
        if error.errno is None:
            raise
        raise OSError(error.errno, error.strerror or os.strerror(error.errno), str(path)) from None


def _check_replaceable(path: Path) -> None:
    """Refuse a ``path`` that is, or links to, something other than a regular file.

    ``os.replace`` puts the new file in place of whatever the name held: run as root, ``--out
    /dev/full`` replaced the device with a regular file (and ``--out /dev/stdout`` its link);
    a folder gave ``EBUSY`` or ``EISDIR`` from the rename. A missing path, or one ``stat``
    cannot take, is left to the write to report.

    Raises:
        IsADirectoryError: ``path`` is a folder.
        OSError: ``EINVAL``, ``path`` is a device, FIFO or socket; ``filename`` is ``path``.
    """
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
    if not stat.S_ISREG(mode):
        raise OSError(errno.EINVAL, "not a regular file (a device, FIFO or socket is never replaced)", str(path))


def _write(path: Path, data: bytes, sync: bool) -> None:
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


def open_append(path: str | Path) -> int:
    """A descriptor of ``path`` (created if absent) opened to append, never following a
    symbolic link and never blocking: the way every lock and log of a run folder is opened.

    A link planted at a lock or a log (dangling or not) made the write land at its target,
    outside the run (``O_CREAT`` created the target of a dangling one); a FIFO opened for
    writing waits for a reader.

    Raises:
        OSError: ``ELOOP`` naming ``path`` when it is a symbolic link (``O_NOFOLLOW``; where
            the OS has no such flag, a link found by ``lstat`` first); ``EINVAL`` naming
            ``path`` when it is not a regular file (a FIFO, a socket, a device); the error
            of ``os.open`` otherwise (``IsADirectoryError`` for a folder).
    """
    nofollow = getattr(os, "O_NOFOLLOW", 0)
    link = _link_error(path)
    not_a_file = OSError(errno.EINVAL, "not a regular file (a lock or log file must be one)", str(path))
    if not nofollow and os.path.islink(path):
        raise link
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NONBLOCK", 0) | os.O_CLOEXEC | nofollow
    try:
        fd = os.open(path, flags, 0o666)
    except OSError as error:
        if error.errno == errno.ENXIO:  # a FIFO without a reader, a socket
            raise not_a_file from None
        if error.errno in (errno.ELOOP, errno.EMLINK) and os.path.islink(path):  # EMLINK: FreeBSD
            raise link from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise not_a_file
    return fd


#: Why a symbolic link at a file or folder of a run is refused (:func:`open_append`,
#: :func:`make_folder`, ``nas.search._folder.check_trial_folders``).
LINK_REFUSED = "a symbolic link (a run folder's files are never written through one)"


def _link_error(path: str | Path) -> OSError:
    return OSError(errno.ELOOP, LINK_REFUSED, str(path))


def make_folder(path: str | Path, *, root: str | Path) -> Path:
    """``path``, a folder inside ``root``, made where missing, never entered through a symbolic
    link below ``root`` (``root`` itself may be one: a run folder the user linked). A link
    planted at a folder of a run (a retrain job's, a trial's) made every file written there
    land at its target, outside the run.

    Raises:
        OSError: ``ELOOP`` naming the first folder below ``root`` that is a symbolic link;
            ``EEXIST`` naming one that is a file; the error of ``mkdir`` otherwise.
        ValueError: ``path`` is not inside ``root``.
    """
    root, path = Path(root), Path(path)
    parts = path.relative_to(root).parts
    root.mkdir(parents=True, exist_ok=True)
    folder = root
    for part in parts:
        folder = folder / part
        try:
            folder.mkdir()  # never follows a link at ``folder``, dangling or not
        except FileExistsError:
            if folder.is_symlink():
                raise _link_error(folder) from None
            if not folder.is_dir():
                raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(folder)) from None
    return path


@contextlib.contextmanager
def try_file_lock(path: str | Path, *, wait: bool = False) -> Iterator[bool]:
    """An exclusive ``flock`` on ``path`` (created if absent) without waiting: yields True
    holding the lock, or False when another process holds it. With ``wait``, waits until the
    other process releases it (or dies) and yields True.

    Raises:
        OSError: from :func:`open_append`, naming ``path``: ``ELOOP`` when it is a symbolic
            link (a dangling link at a retrain job's ``.lock`` created an empty file at its
            target, outside the run), ``EINVAL`` when it is not a regular file (a FIFO at a
            retrain job's ``.lock`` hung ``nas retrain`` forever).
    """
    import fcntl

    with open(open_append(path), "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def read_json_object(path: str | Path) -> tuple[dict[str, Any] | None, str | None]:
    """``(data, None)`` for a regular file holding a JSON object; ``(None, None)`` when it does
    not exist; ``(None, why)`` otherwise (not a regular file, so a FIFO never blocks; over
    :data:`MAX_RECORD_BYTES`; not UTF-8, not JSON, nested too deeply, not an object). Never
    raises for a damaged file: every JSON file of a run folder is read through it."""
    import json
    import stat

    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return None, None
    except OSError as error:
        return None, f"{type(error).__name__}: {error.strerror or error}"
    if not stat.S_ISREG(mode):
        return None, "not a regular file"
    try:
        with open(path, "rb") as handle:  # a buffer of the file's size, not of the limit
            raw = handle.read(min(os.fstat(handle.fileno()).st_size, MAX_RECORD_BYTES) + 1)
    except OSError as error:
        return None, f"{type(error).__name__}: {error.strerror or error}"
    if len(raw) > MAX_RECORD_BYTES:
        return None, f"larger than {MAX_RECORD_BYTES} bytes"
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return None, "not UTF-8 text"
    except ValueError as error:  # JSONDecodeError; also a nesting too deep for the parser
        return None, f"not JSON ({' '.join(str(error).split())[:120]})"
    except RecursionError:
        return None, "not JSON (nested too deeply)"
    if not isinstance(data, dict):
        return None, f"not a JSON object ({type(data).__name__})"
    return data, None
