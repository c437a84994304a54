"""Sources read from array files: raw IDX (MNIST's format) and NumPy ``.npz``.

:func:`read_idx` is the IDX reader; the registered loaders ``idx`` and ``npz`` turn files
into :class:`~nas.data._dataset.RawData`. Every problem with a file is a
:class:`~nas.errors.ConfigError` naming that file.
"""

from __future__ import annotations

import gzip
import math
import zipfile
import zlib
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch

from nas._checks import number, user_path
from nas._zip import open_member, unpacked_bytes
from nas.data._dataset import MAX_CLASSES, RawData
from nas.data._registry import register_dataset
from nas.errors import ConfigError

__all__ = ["read_idx", "MAX_ARRAY_BYTES"]

#: Largest data an IDX or ``.npz`` file may hold (checked from its headers before reading).
MAX_ARRAY_BYTES = 16 << 30

# IDX type codes (third byte of the magic number) and their big-endian NumPy types.
_IDX_TYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path: str | Path, *, max_bytes: int = MAX_ARRAY_BYTES) -> np.ndarray:
    """Read an IDX file (gzip-compressed or not) into an array of its stored shape.

    The format: two zero bytes, a type code, the number of dimensions, one big-endian
    uint32 per dimension, then the data in C order. The header is read and checked first:
    data the header says is over ``max_bytes`` is refused before anything is allocated, and
    at most one byte past the data is read (a gzip bomb or a huge file costs no more).

    Raises:
        ConfigError: the file is missing, not a regular file, truncated, too large or not IDX;
            a ``max_bytes`` that is not a non-negative integer.
    """
    max_bytes = number(max_bytes, path="max_bytes", low=0, integer=True)
    file = Path(path)
    name = str(file)
    if not file.is_file():
        raise ConfigError("cannot read IDX file: not a regular file", file=name)
    try:
        with open(file, "rb") as handle:
            compressed = handle.read(2) == b"\x1f\x8b"
            handle.seek(0)
            stream = gzip.GzipFile(fileobj=handle) if compressed else handle
            magic = stream.read(4)
            if len(magic) < 4 or magic[:2] != b"\x00\x00" or magic[2] not in _IDX_TYPES:
                raise ConfigError("not an IDX file (bad magic number)", file=name)
            dtype, ndim = _IDX_TYPES[magic[2]], magic[3]
            dims = stream.read(4 * ndim)
            if len(dims) < 4 * ndim:
                raise ConfigError("truncated IDX header", file=name)
            shape = tuple(int(d) for d in np.frombuffer(dims, dtype=">u4"))
            size = math.prod(shape) * dtype.itemsize  # Python ints: no overflow
            if size > max_bytes:
                raise ConfigError(
                    f"IDX header says {shape} of {dtype}, {size:,} bytes: more than max_bytes "
                    f"({max_bytes:,})", file=name)
            raw = bytearray(size)  # writable, so tensors made from it may be written
            got = stream.readinto(raw) if size else 0
            while got < size and (more := stream.readinto(memoryview(raw)[got:])):
                got += more
            extra = len(stream.read(1))
    except MemoryError:
        raise ConfigError(f"IDX header says {shape} of {dtype}, {size:,} bytes: more than this "
                          "machine can allocate", file=name) from None
    except (OSError, EOFError, zlib.error) as error:
        raise ConfigError(f"cannot read IDX file: {error}", file=name) from None
    if got != size or extra:
        held = f"{got} data bytes" if got != size else "more data bytes"
        raise ConfigError(f"IDX header says {shape} of {dtype} but the file holds {held}", file=name)
    return np.frombuffer(raw, dtype=dtype).reshape(shape)


def _npy_header(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> tuple[tuple[int, ...], np.dtype]:
    """The shape and dtype of the ``.npy`` member ``info`` (its header alone is read)."""
    key = info.filename[:-4]
    with open_member(archive, info) as member:
        version = np.lib.format.read_magic(member)
        if version not in ((1, 0), (2, 0), (3, 0)):
            raise ValueError(f"array {key!r}: unknown .npy version {version}")
        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                       else np.lib.format.read_array_header_2_0)
        shape, _, dtype = read_header(member)
    return tuple(shape), dtype


def _npz_arrays(archive: zipfile.ZipFile, file: str, max_bytes: int) -> dict[str, zipfile.ZipInfo]:
    """The arrays of the ``.npz`` file ``archive`` (read from ``file``) by name: its members
    ``NAME.npy``. All its members together may hold at most ``max_bytes`` bytes uncompressed, as
    its directory declares them (a megabyte of zeros inflating to a gigabyte is refused from
    it, before anything is inflated).

    Raises:
        ConfigError: naming ``file``, for members over ``max_bytes``.
    """
    unpacked = unpacked_bytes(archive)
    if unpacked > max_bytes:
        raise ConfigError(f"its members hold {unpacked:,} bytes uncompressed: more than max_bytes "
                          f"({max_bytes:,}) (a compression bomb?)", file=file)
    return {info.filename[:-4]: info for info in archive.infolist() if info.filename.endswith(".npy")}


def _read_npy(archive: zipfile.ZipFile, info: zipfile.ZipInfo, file: str) -> np.ndarray:
    """The array in the member ``info``, checked from its header before it is allocated: no
    Python objects (never unpickled), no more data than the member declares (a header claiming
    gigabytes over a few bytes). Read through :func:`nas._zip.open_member`, which refuses bytes
    beyond the declared size.

    Raises:
        ConfigError: naming ``file``, for an array of objects or over its member's size.
        ValueError, OSError, zipfile.BadZipFile, zlib.error: for a damaged member.
    """
    key = info.filename[:-4]
    shape, dtype = _npy_header(archive, info)
    if dtype.hasobject:
        raise ConfigError(f"array {key!r} holds Python objects, which are never unpickled "
                          "(allow_pickle=False)", file=file)
    size = math.prod(shape) * dtype.itemsize  # Python ints: no overflow
    if size > info.file_size:
        raise ConfigError(f"array {key!r} says {shape} of {dtype}, {size:,} bytes, but its "
                          f"member holds {info.file_size:,}", file=file)
    with open_member(archive, info) as member:
        return np.lib.format.read_array(member, allow_pickle=False)


def _pick_npz_arrays(names: Iterable[str], file: str) -> tuple[str, ...]:
    """The arrays the loader reads of an ``.npz`` file holding ``names``: images and labels
    (the first pair of :data:`_NPZ_KEYS` it holds), then ``x_test`` and ``y_test`` if it holds
    both.

    Raises:
        ConfigError: naming ``file``, when it holds no pair of images and labels.
    """
    held = set(names)
    for pair in _NPZ_KEYS:
        if held.issuperset(pair):
            return pair + (("x_test", "y_test") if held.issuperset(("x_test", "y_test")) else ())
    raise ConfigError("expected arrays x_train/y_train or images/labels, found "
                      f"{', '.join(sorted(held)) or 'none'}", file=file)


def _images_to_uint8(array: np.ndarray, *, layout: str | None, file: str) -> torch.Tensor:
    """``[N, H, W]``, ``[N, H, W, C]`` or ``[N, C, H, W]`` array → uint8 ``[N, C, H, W]``."""
    if array.dtype != np.uint8:
        floating = np.issubdtype(array.dtype, np.floating)
        if floating and array.size and 0 <= array.min() and array.max() <= 1:
            array = np.rint(array * 255.0).astype(np.uint8)
        else:
            raise ConfigError(
                f"images must be uint8 or floats in [0, 1], got {array.dtype}", file=file
            )
    images = torch.from_numpy(np.ascontiguousarray(array))
    if images.dim() == 3:
        return images.unsqueeze(1)
    if images.dim() != 4:
        raise ConfigError(
            f"images must have 3 or 4 dimensions, got shape {tuple(images.shape)}", file=file
        )
    if layout is None:
        channels_at_end = images.shape[-1] in (1, 3, 4) and images.shape[1] not in (1, 3, 4)
        layout = "NHWC" if channels_at_end else "NCHW"
    if layout == "NHWC":
        images = images.permute(0, 3, 1, 2)
    elif layout != "NCHW":
        raise ConfigError(f"must be 'NCHW' or 'NHWC', got {layout!r}", path="layout")
    return images.contiguous()


def _labels(array: np.ndarray, count: int, file: str) -> torch.Tensor:
    if not np.issubdtype(array.dtype, np.integer) or array.shape != (count,):
        raise ConfigError(
            f"labels must be {count} integers, got {array.dtype} with shape {array.shape}",
            file=file,
        )
    if array.size and (array.min() < 0 or array.max() >= MAX_CLASSES):  # before int64 wraps a uint64
        raise ConfigError(f"labels must lie in [0, {MAX_CLASSES:,}), got [{int(array.min()):,}, "
                          f"{int(array.max()):,}]", file=file)
    return torch.from_numpy(array.astype(np.int64))


def _num_classes(given: int | None, *labels: torch.Tensor, file: str) -> int:
    """The class count: ``given``, or the largest label plus one. ``file`` (the images'
    file) is named when there are no images or a label is out of the range any dataset may
    use (negative, or beyond :data:`~nas.data._dataset.MAX_CLASSES`)."""
    if not any(t.numel() for t in labels):
        raise ConfigError("holds no images", file=file)
    low = min(int(t.min()) for t in labels if t.numel())
    found = max(int(t.max()) for t in labels if t.numel()) + 1
    if low < 0 or found > MAX_CLASSES:
        raise ConfigError(f"labels must lie in [0, {MAX_CLASSES:,}), got [{low:,}, {found - 1:,}]",
                          file=file)
    if given is None:
        return found
    if given < found:
        raise ConfigError(
            f"labels go up to {found - 1}, so {given} classes are too few", path="num_classes"
        )
    return given


def _same_image_shape(train: torch.Tensor, test: torch.Tensor, *, names: tuple[str, str],
                      file: str) -> None:
    """Refuse test images of another ``(C, H, W)`` than the train images (``names``: what
    the file calls them, train first), naming ``file`` (the test images' file); the check of
    the assembled dataset would name no file."""
    if train.shape[1:] != test.shape[1:]:
        raise ConfigError(
            f"train images ({names[0]}) are {tuple(train.shape[1:])} but test images "
            f"({names[1]}) are {tuple(test.shape[1:])}",
            file=file,
        )


def _under(root: str | Path | None, path: str | Path | None, key: str) -> str | Path | None:
    """``path`` (the option ``key``) read from the folder ``root`` (when both are given and
    ``path`` is relative). Raises ConfigError for a ``~USER`` naming no user."""
    if root is None or path is None:
        return path
    return user_path(root, path="root") / user_path(path, path=key)


def _need_files(kind: str, *paths: tuple[str, str | Path | None]) -> None:
    """Each (option, path) given must be a regular file (``kind`` names them in the message)."""
    for option, path in paths:
        if path is not None and not Path(path).is_file():
            raise ConfigError(f"no {kind} file {str(path)!r}", path=option)


def _check_idx(*, images: str | Path, labels: str | Path, test_images: str | Path | None = None,
               test_labels: str | Path | None = None, num_classes: int | None = None,
               flip: bool = False, root: str | Path | None = None,
               max_bytes: int = MAX_ARRAY_BYTES) -> None:
    if (test_images is None) != (test_labels is None):
        raise ConfigError("give both test_images and test_labels, or neither", path="test_images")
    _need_files("IDX", *((k, _under(root, v, k)) for k, v in (
        ("images", images), ("labels", labels), ("test_images", test_images),
        ("test_labels", test_labels))))


def _check_npz(*, path: str | Path, layout: str | None = None, num_classes: int | None = None,
               flip: bool = False, root: str | Path | None = None,
               max_bytes: int = MAX_ARRAY_BYTES) -> None:
    if layout not in (None, "NCHW", "NHWC"):
        raise ConfigError(f"must be 'NCHW' or 'NHWC', got {layout!r}", path="layout")
    _need_files(".npz", ("path", _under(root, path, "path")))


@register_dataset("idx", check=_check_idx)
def load_idx(
    *,
    images: str | Path,
    labels: str | Path,
    test_images: str | Path | None = None,
    test_labels: str | Path | None = None,
    num_classes: int | None = None,
    flip: bool = False,
    root: str | Path | None = None,
    max_bytes: int = MAX_ARRAY_BYTES,
) -> RawData:
    """Images and labels from IDX files (MNIST's format), optionally with a test split.

    ``num_classes`` defaults to the largest label plus one. Relative file names are read from
    the folder ``root`` when it is given. A file whose header claims more than ``max_bytes``
    of data is refused before it is read.
    """
    images, labels = _under(root, images, "images"), _under(root, labels, "labels")
    test_images = _under(root, test_images, "test_images")
    test_labels = _under(root, test_labels, "test_labels")
    x = _images_to_uint8(read_idx(images, max_bytes=max_bytes), layout=None, file=str(images))
    y = _labels(read_idx(labels, max_bytes=max_bytes), x.shape[0], str(labels))
    tx = ty = None
    if (test_images is None) != (test_labels is None):
        raise ConfigError("give both test_images and test_labels, or neither", path="test_images")
    if test_images is not None and test_labels is not None:
        tx = _images_to_uint8(read_idx(test_images, max_bytes=max_bytes), layout=None,
                              file=str(test_images))
        ty = _labels(read_idx(test_labels, max_bytes=max_bytes), tx.shape[0], str(test_labels))
        _same_image_shape(x, tx, names=("images", "test_images"), file=str(test_images))
    classes = _num_classes(num_classes, y, *([ty] if ty is not None else []), file=str(labels))
    return RawData(x, y, classes, flip=flip, test_images=tx, test_labels=ty)


# Accepted key pairs in an .npz file: Keras' names, then plain ones.
_NPZ_KEYS = (("x_train", "y_train"), ("images", "labels"))


@register_dataset("npz", check=_check_npz)
def load_npz(
    *,
    path: str | Path,
    layout: str | None = None,
    num_classes: int | None = None,
    flip: bool = False,
    root: str | Path | None = None,
    max_bytes: int = MAX_ARRAY_BYTES,
) -> RawData:
    """Arrays from a NumPy ``.npz`` file (a relative ``path`` is read from the folder ``root``
    when it is given). Members over ``max_bytes`` in all (uncompressed, as the file declares
    them), an array over its member's declared size (by its header) or holding Python objects
    are refused before any array is read; members the loader does not use are never read.

    The file holds ``x_train``/``y_train`` (and optionally ``x_test``/``y_test``), or
    ``images``/``labels``. Images are uint8 (or floats in [0, 1]) shaped ``[N, H, W]``,
    ``[N, H, W, C]`` or ``[N, C, H, W]``; ``layout`` ("NHWC" or "NCHW") settles a 4-d
    array whose layout cannot be told from its shape.
    """
    file = str(_under(root, path, "path"))
    try:
        with zipfile.ZipFile(file) as archive:
            members = _npz_arrays(archive, file, max_bytes)
            arrays = {key: _read_npy(archive, members[key], file)
                      for key in _pick_npz_arrays(members, file)}
    except MemoryError:
        raise ConfigError("cannot read .npz file: its arrays take more memory than this machine "
                          "can allocate", file=file) from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        raise ConfigError(f"cannot read .npz file: {error}", file=file) from None
    image_key, label_key = next(pair for pair in _NPZ_KEYS if pair[0] in arrays)
    x = _images_to_uint8(arrays[image_key], layout=layout, file=file)
    y = _labels(arrays[label_key], x.shape[0], file)
    tx = ty = None
    if "x_test" in arrays and "y_test" in arrays:
        tx = _images_to_uint8(arrays["x_test"], layout=layout, file=file)
        ty = _labels(arrays["y_test"], tx.shape[0], file)
        _same_image_shape(x, tx, names=(image_key, "x_test"), file=file)
    classes = _num_classes(num_classes, y, *([ty] if ty is not None else []), file=file)
    return RawData(x, y, classes, flip=flip, test_images=tx, test_labels=ty)
