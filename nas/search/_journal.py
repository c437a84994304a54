"""The journal file (``runs/NAME/journal.log``) kept whole: repaired before its first append,
never appended to after a torn record, and a full disk reported by path.

A crash or a full disk in the middle of Optuna's append can leave a last record that is cut
short (no final newline) or padded with NUL bytes (a file system that extended the file before
the data reached it). Optuna's reader skips such a tail, but its next append would glue a new
record onto it, and from then on the journal no longer parses: every finished result in it is
lost. So:

- :func:`repair_journal` cuts the file back to the end of its last complete record (a line
  ending in a newline that parses as a JSON object with an ``op_code``) and says how many
  bytes it dropped, in one line on stderr; a file with no record that does not begin like one
  is another program's, refused and never cut;
- the repair waits for the first append (:func:`open_journal`): a command that refuses to run
  after opening the storage (a resumed run whose trial folders the journal lost) leaves the
  journal as it was and prints only its refusal. Only a tail Optuna cannot read past (torn
  lines that end with a newline) is cut when the storage is opened, and said at the first
  append;
- :class:`SafeJournalBackend` checks, under the journal's lock, that the file ends with a
  newline before every append (and repairs it if not), and when an append fails (``ENOSPC``)
  it cuts off what it half wrote and raises :func:`nas.io.disk_full` naming the file.

Damage before the last complete record (a record in the middle that does not parse) is not
touched here: Optuna refuses such a journal when it replays it, and the storage opener turns
that into a one-line error.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock
from optuna.storages.journal._file import get_lock_file

from nas.errors import ConfigError
from nas.io import MAX_RECORD_BYTES, disk_full, is_disk_full
from nas.search._index import AttrIndex

__all__ = ["SafeJournalBackend", "check_record_lengths", "complete_length", "damage", "open_journal",
           "repair_journal"]

# How much of the file's end is read at a time while looking for the last complete record.
_CHUNK = 1 << 16


def check_record_lengths(path: str | Path, *, limit: int = MAX_RECORD_BYTES) -> None:
    """Raise :class:`~nas.errors.ConfigError` naming ``path`` when one of its lines is longer
    than ``limit`` bytes. Optuna replays a journal a whole line at a time (a 1 GB line of
    garbage took 3.2 GB and 20 s to be skipped), so lines are measured first, reading at most
    ``limit + 1`` bytes at a time (a real record is a few kilobytes). A path that exists and
    is not a regular file is refused the same way: opening a FIFO to read waits for a writer
    (a FIFO journal.log hung nas analyze, so nas retrain's report step, forever)."""
    if Path(path).exists() and not Path(path).is_file():
        raise ConfigError("not a regular file (a journal is one)", file=str(path))
    with open(path, "rb") as handle:
        offset = 0
        while line := handle.readline(limit + 1):
            if len(line) > limit:
                raise ConfigError(f"the journal line at byte {offset:,} is longer than {limit:,} "
                                  "bytes: not a record of this program (damaged?)", file=str(path))
            offset += len(line)


def damage(path: str | Path, error: BaseException) -> ConfigError:
    """The error for a journal Optuna failed to replay with ``error``: naming ``path`` and,
    where one is, the first complete line that is not a record (``line 6 (byte 1,234)``), as
    Optuna's own message locates the fault inside that line (``line 1 column 30``).

    Call after :func:`check_record_lengths`, which bounds the lines read here."""
    where = ""
    with open(path, "rb") as handle:
        offset = 0
        for number, line in enumerate(handle, 1):
            if line.endswith(b"\n") and not _is_record(line):  # a torn last line is skipped
                where = f"line {number} (byte {offset:,}) is not a record; "
                break
            offset += len(line)
    message = " ".join(str(error).split())[:200]
    return ConfigError(f"damaged journal: {where}Optuna cannot replay its records "
                       f"({type(error).__name__}: {message}); the trials' own files (trials/NNNN) "
                       "are untouched", file=str(path))


def _is_record(line: bytes) -> bool:
    """Whether ``line`` is an Optuna journal record: a JSON object with an integer op_code."""
    try:
        record = json.loads(line)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError
        return False
    return isinstance(record, dict) and isinstance(record.get("op_code"), int)


#: How every record Optuna (and :class:`SafeJournalBackend`) appends begins.
_RECORD_START = b'{"op_code"'


def _check_torn_first_record(path: Path) -> None:
    """Raise unless ``path``, which holds no complete record, can be a journal whose first
    append was cut: a prefix of a record (``{"op_code"...``), or nothing, in NUL padding.

    Raises:
        ConfigError: naming ``path``: another program's file (a CSV, notes, a model given as
            ``--storage``), which cutting back to its last complete record would empty.
    """
    with open(path, "rb") as handle:
        head = handle.read(4096).lstrip(b"\x00").split(b"\x00", 1)[0][: len(_RECORD_START)]
    if not _RECORD_START.startswith(head) and not head.startswith(_RECORD_START):
        raise ConfigError(
            "not a journal: it holds no Optuna record and does not begin like one; left as it "
            "is (give this run's journal.log, or the path of a new file)",
            file=str(path),
        )


def _last_newline(handle, end: int) -> int:
    """The offset of the last newline before ``end``, or -1; reads backwards in chunks."""
    position = end
    while position > 0:
        step = min(_CHUNK, position)
        position -= step
        handle.seek(position)
        found = handle.read(step).rfind(b"\n")
        if found >= 0:
            return position + found
    return -1


def complete_length(path: str | Path) -> int:
    """The length in bytes of the longest prefix of ``path`` that ends with a complete record
    (0 for an empty file, or one with no complete record). Reads only the damaged tail and the
    last good record, not the whole file."""
    with open(path, "rb") as handle:
        end = handle.seek(0, os.SEEK_END)
        while end > 0:
            newline = _last_newline(handle, end)
            if newline < 0:
                return 0
            start = _last_newline(handle, newline) + 1
            handle.seek(start)
            if _is_record(handle.read(newline + 1 - start)):
                return newline + 1
            end = start  # this line is damaged too: look before it
        return 0


def repair_journal(path: str | Path, *, announce: bool = True) -> int:
    """Cut ``path`` back to its last complete record; returns how many bytes were dropped.

    The caller must hold the journal's lock (or know no other process writes). When bytes are
    dropped and ``announce`` is true, one line on stderr says how many and where.

    Raises:
        ConfigError: the file holds no record and does not begin like one: another
            program's file, never cut (:func:`_check_torn_first_record`).
    """
    path = Path(path)
    if not path.is_file():
        return 0
    size = path.stat().st_size
    keep = complete_length(path)
    if keep == size:
        return 0
    if keep == 0:
        _check_torn_first_record(path)
    with open(path, "r+b") as handle:
        handle.truncate(keep)
        handle.flush()
        os.fsync(handle.fileno())
    dropped = size - keep
    if announce:
        _announce(path, dropped)
    return dropped


def _announce(path: str | Path, dropped: int) -> None:
    print(f"{path}: repaired a torn last record: dropped {dropped} byte(s) after the last "
          "complete record", file=sys.stderr)


class SafeJournalBackend(JournalFileBackend):
    """Optuna's journal file backend that never appends after a torn record and reports a
    full disk by path (see the module docstring); its :attr:`index`, when set, sees every
    record the storage reads (:class:`~nas.search._index.AttrIndex`). A thread may hold its
    appends and write them later in one append, one fsync (:meth:`hold`, :meth:`release`)."""

    def __init__(self, *args: object, **kwargs: object):
        super().__init__(*args, **kwargs)
        self.index: AttrIndex | None = None
        self.dropped = 0  # bytes of a torn tail cut at open, not yet said (open_journal)
        self._held_logs: dict[int, list[dict]] = {}  # thread id -> its held records

    def hold(self) -> None:
        """Hold this thread's appends (in memory, in order) until :meth:`release`."""
        self._held_logs.setdefault(threading.get_ident(), [])

    def release(self) -> list[dict]:
        """Stop holding this thread's appends; returns those held (none when not holding):
        the caller appends them."""
        return self._held_logs.pop(threading.get_ident(), [])

    def read_logs(self, log_number_from: int) -> Iterator[dict]:
        number = log_number_from
        for log in super().read_logs(log_number_from):
            if self.index is not None:
                self.index.feed(number, log)
            number += 1
            yield log

    def append_logs(self, logs: list[dict]) -> None:
        held = self._held_logs.get(threading.get_ident())
        if held is not None:
            held.extend(logs)
            return
        data = ("\n".join(json.dumps(log, separators=(",", ":")) for log in logs) + "\n").encode()
        path = self._file_path
        with get_lock_file(self._lock):
            try:
                if not _ends_with_newline(path):
                    repair_journal(path)
                if self.dropped:
                    _announce(path, self.dropped)
                    self.dropped = 0
                _append(path, data)
            except OSError as error:
                if is_disk_full(error):
                    raise disk_full(path) from None
                raise


def _append(path: str, data: bytes) -> None:
    """Append ``data`` and fsync; on failure cut the file back to where it was, so no half
    record is left behind (unbuffered, so nothing is flushed later)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        size = os.fstat(fd).st_size
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        except BaseException:  # a full disk, or Ctrl-C in the middle of the write
            with contextlib.suppress(OSError):
                os.ftruncate(fd, size)
            raise
    finally:
        os.close(fd)


def _ends_with_newline(path: str) -> bool:
    """Whether ``path`` is empty or ends with a newline."""
    with open(path, "rb") as handle:
        size = handle.seek(0, os.SEEK_END)
        if size == 0:
            return True
        handle.seek(size - 1)
        return handle.read(1) == b"\n"


def open_journal(path: str, *, index: AttrIndex | None = None) -> JournalFileBackend:
    """The journal backend for ``path``, with ``index`` fed the records it reads. Creates an
    empty journal when there is none.

    A torn last record is left for the first append to cut (and say): Optuna's reader skips a
    tail without a newline, and a command that refuses to run after reading the storage then
    changes nothing. A torn tail holding a newline (which Optuna's reader would take for a
    record) is cut now, under the lock, and said at the first append.

    Raises:
        ConfigError: the file holds no record and does not begin like one (another
            program's, never cut).
    """
    lock = JournalFileOpenLock(path)
    try:
        backend = SafeJournalBackend(path, lock_obj=lock)
        backend.index = index
    except OSError as error:
        if is_disk_full(error):
            raise disk_full(path) from None
        raise
    with get_lock_file(lock):
        keep, size = complete_length(path), os.path.getsize(path)
        if keep == 0 and size:
            _check_torn_first_record(Path(path))
        if keep < size and _has_newline_after(path, keep):
            backend.dropped = repair_journal(path, announce=False)
    return backend


def _has_newline_after(path: str, offset: int) -> bool:
    """Whether ``path`` holds a newline at or after byte ``offset``."""
    with open(path, "rb") as handle:
        return _last_newline(handle, handle.seek(0, os.SEEK_END)) >= offset
