"""A cache of decoded image folders: one folder of ``.npy`` arrays per source and settings.

The key of an entry is a fingerprint of the source's content plus the decoding settings
(resolution, gray or colour, format version), so a moved or copied archive still hits and
an edited one misses:

- an archive of at most :data:`FULL_HASH_BYTES` (256 MiB) is hashed whole: BLAKE2b reads
  about 0.3-0.5 GB/s, so CIFAR-10's 20 MB costs ~0.07 s of a cached load and the largest
  fully hashed archive well under a second; a copy hits, any edit misses;
- a larger archive is keyed by its size, modification time and a hash of
  :data:`SAMPLES` evenly spaced 1 MiB blocks (first and last included), so a cached load
  of a large archive never reads it all; an edit that keeps the size and the time and
  misses every sampled block would go unnoticed;
- a folder is keyed by every regular file's relative path, size and modification time, and
  every folder's path (an empty class folder changes the layout); entries that cannot be
  read, such as a dangling link or a link loop, are left out here and reported by the read.

An entry is a folder holding ``meta.json`` and one ``.npy`` per array, written into a
temporary folder next to it and renamed into place in one step, so a reader sees a whole
entry or none; concurrent writers (search workers racing on a first load) serialise on a
lock file, and the later ones find the entry written. Arrays are read with
``allow_pickle=False`` as copy-on-write memory maps, and an entry is checked whole when
read (meta types; array dtypes, shapes and label ranges): a damaged entry is a miss,
decoded and written again, never used.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import stat
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from nas.data._members import Limits, walk_folder
from nas.io import read_json_object

__all__ = ["FORMAT", "entry_dir", "fingerprint", "locked", "read_entry", "write_entry"]

#: Version of the entry format, the layout rules (nas.data._layout) and the decoding
#: (nas.data._decode); part of every key.
#: 2: an empty train/ or a test/ alone is an error (1 took them for class folders).
#: 3: 16-bit gray images are scaled to 8 bits (2 clipped them at 255: entries of such images
#: decoded by 2 are white).
#: 4: 16-bit PGM images are scaled like 16-bit PNG (3 clipped them: white), float images are
#: read from [0, 1] (3 truncated them: black), 32-bit integer images are refused.
FORMAT = 4
FULL_HASH_BYTES = 256 << 20
SAMPLES = 16
_BLOCK = 1 << 20


def fingerprint(path: Path, max_members: int = Limits.max_members) -> str:
    """A hex digest of ``path``'s content (see the module docstring for what is read).

    Raises:
        ConfigError: a folder of more than ``max_members`` entries (before they are listed
            or looked at: the read would refuse it too).
    """
    digest = hashlib.blake2b(digest_size=20)
    if path.is_dir():
        # An unlistable folder is left out: the read reports it.
        for folder, files in walk_folder(path, max_members):
            # Names as bytes, as the file system holds them: a name that is not UTF-8 (a
            # Latin-1 or Shift-JIS folder name) decodes to surrogates, which .encode() refuses.
            digest.update(os.fsencode(f"{Path(folder).relative_to(path).as_posix()}/\n"))  # empty ones too
            for name in files:
                file = Path(folder) / name
                try:
                    info = file.stat()
                except OSError:  # a dangling link, a link loop: reading the folder reports it
                    continue
                if not stat.S_ISREG(info.st_mode):  # never read: FIFOs, devices
                    continue
                relative = file.relative_to(path).as_posix()
                digest.update(os.fsencode(f"{relative}\0{info.st_size}\0{info.st_mtime_ns}\n"))
        return "d" + digest.hexdigest()
    size = path.stat().st_size
    with open(path, "rb") as file:
        if size <= FULL_HASH_BYTES:
            while block := file.read(_BLOCK):
                digest.update(block)
            return "f" + digest.hexdigest()
        digest.update(f"{size}\0{path.stat().st_mtime_ns}\n".encode())
        for i in range(SAMPLES):
            file.seek((size - _BLOCK) * i // (SAMPLES - 1))
            digest.update(file.read(_BLOCK))
    return "s" + digest.hexdigest()


def entry_dir(root: Path, source: str, settings: Mapping[str, Any]) -> Path:
    """The entry folder for the source of :func:`fingerprint` ``source`` decoded with
    ``settings`` (JSON-able values)."""
    key = json.dumps({"format": FORMAT, "source": source, **settings}, sort_keys=True)
    # Named by content alone, so a copy of the source elsewhere finds it; its meta.json
    # names the source it was made from.
    return root / hashlib.blake2b(key.encode(), digest_size=16).hexdigest()


_IMAGES = ("train_images", "test_images")
_LABELS = ("train_labels", "test_labels")


def read_entry(
    folder: Path, *, channels: int | None = None, side: int | None = None
) -> tuple[dict[str, Any], dict[str, np.ndarray]] | None:
    """``(meta, arrays)`` of a complete, well-formed entry, or ``None`` when there is none.

    ``None`` too (a miss: the caller decodes again and rewrites the entry) for an entry that
    is unreadable, of another format version, or damaged in any way :func:`_valid_meta` and
    :func:`_valid_arrays` check: nothing read from a cache entry is trusted. ``channels`` and
    ``side``, when given, are what the images must have (``side``: height and width).
    """
    try:
        meta, _ = read_json_object(folder / "meta.json")  # bounded, never blocking
        if meta is None or meta.get("format") != FORMAT or not _valid_meta(meta):
            return None
        # Copy-on-write maps: nothing is read until used, the page cache is shared by every
        # worker of a search, and the arrays are writable (as torch wants them). Regular files
        # only: opening a FIFO waits for a writer forever.
        files = {name: folder / f"{name}.npy" for name in meta["arrays"]}
        if not all(stat.S_ISREG(os.stat(path).st_mode) for path in files.values()):
            return None
        arrays = {name: np.load(path, mmap_mode="c", allow_pickle=False) for name, path in files.items()}
        if not _valid_arrays(meta, arrays, channels=channels, side=side):
            return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return meta, arrays


def _valid_meta(meta: dict[str, Any]) -> bool:
    """Whether ``meta`` has what readers use, of the types :func:`write_entry` writes:
    ``classes`` a list of distinct non-empty strings, ``test_folder`` a string or null,
    ``arrays`` the names of the four arrays."""
    classes, test_folder, names = meta.get("classes"), meta.get("test_folder"), meta.get("arrays")
    return (isinstance(classes, list) and len(classes) >= 1
            and all(isinstance(c, str) and c for c in classes) and len(set(classes)) == len(classes)
            and (test_folder is None or isinstance(test_folder, str))
            and isinstance(names, list) and sorted(names) == sorted(_IMAGES + _LABELS))


def _valid_arrays(
    meta: dict[str, Any], arrays: dict[str, Any], *, channels: int | None, side: int | None
) -> bool:
    """Whether the arrays are as :func:`nas.data._folder.decode_source` makes them: images
    C-contiguous uint8 ``[N, C, H, W]`` (``C`` 1 or 3, or ``channels``; ``H = W = side``
    when given; train and test of one ``C, H, W``; at least one train image, and no test
    images without a ``test_folder``), labels int64 ``[N]`` within ``[0, classes)``.
    Reads the labels (8 bytes an image), never the images."""
    for name in _IMAGES + _LABELS:
        array = arrays[name]
        if not isinstance(array, np.ndarray) or not array.flags.c_contiguous:
            return False
    train, test = arrays["train_images"], arrays["test_images"]
    for images in (train, test):
        if images.dtype != np.uint8 or images.ndim != 4 or min(images.shape[2:]) < 1:
            return False
    shape = train.shape[1:]
    if shape != test.shape[1:] or shape[0] not in ((1, 3) if channels is None else (channels,)):
        return False
    if (side is not None and shape[1:] != (side, side)) or len(train) == 0:
        return False
    if meta["test_folder"] is None and len(test) != 0:
        return False
    for images, name in zip((train, test), _LABELS):
        labels = arrays[name]
        if labels.dtype != np.int64 or labels.shape != (len(images),):
            return False
        if labels.size and not (0 <= labels.min() and labels.max() < len(meta["classes"])):
            return False
    return True


def write_entry(
    folder: Path, meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray], *,
    channels: int | None = None, side: int | None = None,
) -> None:
    """Write an entry atomically: into a temporary sibling, then one rename.

    An existing entry at ``folder`` (a concurrent writer's, or a damaged one) is replaced
    only when :func:`read_entry` with ``channels`` and ``side`` does not take it.
    """
    folder.parent.mkdir(parents=True, exist_ok=True)
    temporary = folder.parent / f".tmp-{folder.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    temporary.mkdir()
    try:
        for name, array in arrays.items():
            with open(temporary / f"{name}.npy", "wb") as file:
                np.save(file, np.ascontiguousarray(array), allow_pickle=False)
                file.flush()
                os.fsync(file.fileno())
        content = {**meta, "format": FORMAT, "arrays": sorted(arrays)}
        (temporary / "meta.json").write_text(json.dumps(content, indent=1) + "\n")
        if folder.exists() and read_entry(folder, channels=channels, side=side) is None:
            trash = folder.parent / f".old-{folder.name}-{uuid.uuid4().hex[:8]}"
            with contextlib.suppress(OSError):
                folder.rename(trash)
                shutil.rmtree(trash, ignore_errors=True)
        try:
            temporary.rename(folder)
        except OSError:
            if read_entry(folder, channels=channels, side=side) is None:  # nobody else's
                raise
    finally:
        shutil.rmtree(temporary, ignore_errors=True)


@contextlib.contextmanager
def locked(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock for ``folder``'s entry (released when the process dies), waited
    for (:func:`nas.io.try_file_lock`: an ``OSError`` naming the lock file when it is not a
    regular file; a FIFO there hung the dataset's load)."""
    from nas.io import try_file_lock

    folder.parent.mkdir(parents=True, exist_ok=True)
    with try_file_lock(folder.parent / f".{folder.name}.lock", wait=True):
        yield
