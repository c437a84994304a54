"""Files read out of a folder or an archive (``.tar``, ``.tar.gz``/``.tgz``, ``.zip``), safely.

:func:`iter_members` yields every regular file of the source as a :class:`Member`
(a clean relative POSIX path and its bytes), in the source's own order, and
:func:`source_kind` says which reader a path needs. Nothing is ever extracted to disk.

The contract for hostile input:

- a member whose path is absolute, or has a ``..`` component, or a drive letter, is an
  error (:class:`~nas.errors.ConfigError` naming the archive and the member);
- in an archive, links, devices and other non-regular members are skipped (never
  followed); in a folder, links to files are read (they are the user's own files) and
  links to folders are not followed;
- at most ``limits.max_members`` members are looked at, every member header counted
  (skipped links, devices and FIFOs, and the top folder's own entry, too), and no member
  may hold more than
  ``limits.max_member_bytes`` bytes; the members of an archive may hold at most
  ``limits.max_expansion`` times the archive's size in all (or 1 GiB, when more), so a
  compression bomb is refused from its headers before its bulk is decompressed, even in
  members that are skipped unread; past any bound, an error;
- a zip member is read by :func:`nas._zip.read_member`: a chunk at a time and never beyond
  its declared size (a member that lies about it costs no more than it says), and only if
  stored or deflated.

Empty folders are reported too (``Member.data is None``), so that an empty class folder can
be told apart from a missing one. This module knows nothing of images or classes.
"""

from __future__ import annotations

import os
import stat
import tarfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal

from nas._zip import read_member
from nas.errors import ConfigError

__all__ = ["Limits", "Member", "iter_members", "progress_total", "source_kind", "walk_folder"]

SourceKind = Literal["folder", "tar", "zip"]
_Wanted = Callable[[str], bool]
_TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")


@dataclass(frozen=True)
class Limits:
    """Bounds on the work one source may cause.

    Attributes:
        max_members: Members (files, folders, links and any other entry) looked at. Default: 5,000,000.
        max_member_bytes: Bytes in one member. Default: 256 MiB.
        max_decoded_bytes: Bytes of all decoded images together (after resizing), checked
            by the decoder. Default: 16 GiB.
        max_expansion: Bytes all members of an archive hold together, as a multiple of the
            archive's size (a first :data:`EXPANSION_SLACK` is always allowed). Image
            archives hold about their own size (JPEG and PNG do not compress further); a
            compression bomb, hundreds of times it. Default: 100.
    """

    max_members: int = 5_000_000
    max_member_bytes: int = 256 << 20
    max_decoded_bytes: int = 16 << 30
    max_expansion: int = 100


#: Member bytes an archive may always hold, whatever its size and ``max_expansion``.
EXPANSION_SLACK = 1 << 30


@dataclass(frozen=True)
class Member:
    """One file (``data`` its bytes) or folder (``data is None``) of a source."""

    path: str
    data: bytes | None


def source_kind(path: Path) -> SourceKind:
    """``"folder"``, ``"tar"`` or ``"zip"`` for an existing folder or archive.

    Raises:
        ConfigError: the path does not exist, cannot be looked at (a symlink loop), is neither
            a folder nor a regular file, or is a file of another kind.
    """
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise ConfigError("image folder or archive not found", file=str(path)) from None
    except OSError as error:  # a symlink loop, a permission: not 'not found'
        raise ConfigError(f"cannot read: {error.strerror or error}", file=str(path)) from None
    if stat.S_ISDIR(mode):
        return "folder"
    if not stat.S_ISREG(mode):  # read, a FIFO would block and /dev/zero never end
        raise ConfigError("not a folder or a regular file (a FIFO, a device or a socket)",
                          file=str(path))
    name = path.name.lower()
    if name.endswith(".zip"):
        return "zip"
    if name.endswith(_TAR_SUFFIXES):
        return "tar"
    raise ConfigError(
        "not a folder or an archive (expected .tar, .tar.gz, .tgz or .zip)", file=str(path)
    )


def _clean(name: str, source: Path) -> str | None:
    """The member's path relative to the source's top, or ``None`` for the top itself.

    Raises:
        ConfigError: an absolute path, a drive letter or a ``..`` component.
    """
    text = name.replace("\\", "/")
    parts = PurePosixPath(text).parts
    if text.startswith("/") or ".." in parts or (parts and parts[0].endswith(":")):
        raise ConfigError(
            f"unsafe member path {name!r} (absolute or with '..'); refusing the archive",
            file=str(source),
        )
    kept = [p for p in parts if p not in (".", "")]
    return "/".join(kept) if kept else None


def too_many_members(source: Path, max_members: int) -> ConfigError:
    """The error for a source of more than ``max_members`` members."""
    return ConfigError(
        f"more than {max_members:,} members; raise max_members if this is intended",
        file=str(source),
    )


class _Counter:
    def __init__(self, source: Path, limits: Limits, archive_bytes: int | None = None):
        self.source, self.limits, self.count, self.total = source, limits, 0, 0
        self.max_total = (None if archive_bytes is None
                          else max(EXPANSION_SLACK, limits.max_expansion * archive_bytes))

    def member(self, name: str, size: int) -> None:
        self.count += 1
        self.total += size
        if self.max_total is not None and self.total > self.max_total:
            raise ConfigError(
                f"members up to {name!r} hold {self.total:,} bytes, more than max_expansion "
                f"({self.limits.max_expansion}) times the archive's size (a compression bomb?); "
                "raise max_expansion if this is intended",
                file=str(self.source),
            )
        if self.count > self.limits.max_members:
            raise too_many_members(self.source, self.limits.max_members)
        if size > self.limits.max_member_bytes:
            raise ConfigError(
                f"member {name!r} holds {size:,} bytes, more than max_member_bytes "
                f"({self.limits.max_member_bytes:,})",
                file=str(self.source),
            )


def walk_folder(
    root: Path, max_entries: int, onerror: Callable[[OSError], None] | None = None
) -> Iterator[tuple[Path, list[str]]]:
    """``(folder, names)`` for ``root`` and every folder below it, ``names`` (sorted) being
    the folder's entries that are not folders: files, links (links to folders too: they are
    never followed), FIFOs, devices.

    Folders come in :func:`os.walk`'s top-down order with sorted names, but from a loop, not
    recursion: a tree nested thousands deep is walked (``os.walk`` raised RecursionError).
    A folder that cannot be listed is passed to ``onerror`` and skipped (``None``: skipped
    silently, as ``os.walk`` does).

    Raises:
        ConfigError: more than ``max_entries`` entries below ``root``, as they are listed (a
            folder of ten million files is neither listed whole nor walked to its end).
    """
    entries_seen = 0
    stack = [root]
    while stack:
        folder = stack.pop()
        subfolders, names = [], []
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    entries_seen += 1
                    if entries_seen > max_entries:
                        raise too_many_members(root, max_entries)
                    try:
                        is_folder = entry.is_dir(follow_symlinks=False)
                    except OSError:
                        is_folder = False
                    (subfolders if is_folder else names).append(entry.name)
        except OSError as error:
            if onerror is not None:
                onerror(error)
            continue
        yield folder, sorted(names)
        stack.extend(folder / name for name in sorted(subfolders, reverse=True))


def _iter_folder(
    root: Path, counter: _Counter, progress: Callable[[int], None] | None, wanted: _Wanted
) -> Iterator[Member]:
    def unreadable(error: OSError) -> None:
        raise ConfigError(f"cannot read: {error.strerror or error}", file=str(error.filename))

    for folder, files in walk_folder(root, counter.limits.max_members, unreadable):
        relative = folder.relative_to(root).as_posix()
        prefix = "" if relative == "." else relative + "/"
        if prefix:
            counter.member(prefix, 0)
            yield Member(prefix.rstrip("/"), None)
        for name in files:
            file = Path(folder) / name
            try:
                info = file.stat()
                regular = stat.S_ISREG(info.st_mode)
                counter.member(prefix + name, info.st_size if regular else 0)
                if not regular:
                    continue
                if not wanted(prefix + name):
                    continue
                data = file.read_bytes()
            except OSError as error:
                raise ConfigError(f"cannot read: {error.strerror or error}", file=str(file)) from None
            if progress is not None:
                progress(counter.count)
            yield Member(prefix + name, data)


def _iter_tar(
    path: Path, counter: _Counter, progress: Callable[[int], None] | None, wanted: _Wanted
) -> Iterator[Member]:
    with open(path, "rb") as raw:
        try:
            # Streaming mode: one pass, no seeks, whatever the compression.
            with tarfile.open(fileobj=raw, mode="r|*") as archive:
                for info in archive:
                    name = _clean(info.name, path)
                    if progress is not None:
                        progress(raw.tell())
                    # Every header counts, before it is skipped: a tar of 300,000 FIFOs
                    # is as much work as one of 300,000 files.
                    counter.member(name or ".", info.size)
                    if name is None:
                        continue
                    if info.isdir():
                        yield Member(name, None)
                    elif info.isreg():
                        if not wanted(name):
                            continue
                        file = archive.extractfile(info)
                        yield Member(name, file.read() if file is not None else b"")
        except (tarfile.TarError, EOFError, OSError, ValueError) as error:
            raise ConfigError(f"cannot read the tar archive: {error}", file=str(path)) from None


def _iter_zip(
    path: Path, counter: _Counter, progress: Callable[[int], None] | None, wanted: _Wanted
) -> Iterator[Member]:
    try:
        with zipfile.ZipFile(path) as archive:
            for index, info in enumerate(archive.infolist()):
                name = _clean(info.filename, path)
                if progress is not None:
                    progress(index + 1)
                counter.member(name or ".", info.file_size)  # every entry, even skipped
                if name is None:
                    continue
                mode = info.external_attr >> 16
                if info.is_dir():
                    yield Member(name, None)
                elif stat.S_IFMT(mode) in (0, stat.S_IFREG):  # no type bits, or a file
                    if not wanted(name):
                        continue
                    yield Member(name, read_member(archive, info))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError,
            RuntimeError, NotImplementedError) as error:  # the last two: encrypted, unknown compression
        raise ConfigError(f"cannot read the zip archive: {error}", file=str(path)) from None


def progress_total(path: Path) -> tuple[int, str]:
    """The progress bar's total for :func:`iter_members` and its unit."""
    kind = source_kind(path)
    if kind == "tar":
        return path.stat().st_size, "B"
    if kind == "zip":
        try:
            with zipfile.ZipFile(path) as archive:
                return len(archive.infolist()), "file"
        except (zipfile.BadZipFile, OSError) as error:
            raise ConfigError(f"cannot read the zip archive: {error}", file=str(path)) from None
    return 0, "file"  # a folder: unknown until walked


def iter_members(
    path: Path,
    *,
    limits: Limits = Limits(),
    progress: Callable[[int], None] | None = None,
    wanted: _Wanted = lambda name: True,
) -> Iterator[Member]:
    """Every regular file and folder under ``path`` (a folder or an archive).

    Args:
        path: A folder, or a ``.tar``/``.tar.gz``/``.tgz``/``.zip`` file.
        limits: Bounds on members (see :class:`Limits`).
        progress: Called with the position so far, in the unit of :func:`progress_total`
            (compressed bytes for a tar, members for a zip or a folder).
        wanted: Which files to read (by path); the others are counted but neither read
            nor yielded.

    Raises:
        ConfigError: a missing or unreadable source, an unsafe member path, a bound passed.
    """
    kind = source_kind(path)
    if kind == "folder":
        return _iter_folder(path, _Counter(path, limits), progress, wanted)
    counter = _Counter(path, limits, archive_bytes=path.stat().st_size)
    if kind == "tar":
        return _iter_tar(path, counter, progress, wanted)
    return _iter_zip(path, counter, progress, wanted)

