"""Image bytes to uint8 pixels with Pillow, in chunks, optionally in a few processes.

:class:`ChunkDecoder` takes ``(member name, bytes)`` pairs as they are read, decodes them in
chunks (in ``workers`` forked processes when it is positive, so nothing is re-imported,
while this process goes on reading),  and
returns one uint8 ``[N, C, H, W]`` array, each image where the caller places it. Every image is
converted to RGB (or gray) and, when ``resolution`` is set, resized to
``resolution x resolution`` (bilinear, as Pillow antialiases when shrinking). Gray images of
more than 8 bits are read by one rule a mode (:func:`_eight_bit`): 16-bit gray is scaled to 8
bits (65,535 to 255), 32-bit float gray must lie in [0, 1] (1.0 to 255), and 32-bit integer
gray, which has no standard white level, is refused.

Contract: a file Pillow cannot read is a :class:`~nas.errors.ConfigError` naming the
member; so is an image over Pillow's decompression-bomb bound, images of different sizes
when no resolution is set, an image of a mode with no rule (32-bit integers, floats outside
[0, 1]), and decoded pixels beyond ``max_decoded_bytes`` in all (a chunk's
pixels are checked before they are allocated). Memory is bounded by bytes as well as counts:
a chunk holds at most 1,024 images and at most 64 MiB of encoded bytes (or one larger
image alone).
Knows nothing of classes, splits or archives.
"""

from __future__ import annotations

import io
import multiprocessing
import warnings
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import numpy as np

from nas.errors import ConfigError

__all__ = ["ChunkDecoder", "IMAGE_SUFFIXES", "is_image_name"]

IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
)
_CHUNK = 1024  # images per task: large enough to amortise pickling, small for a smooth bar
_CHUNK_BYTES = 64 << 20  # encoded bytes per task: a source of huge members is decoded as read


def is_image_name(path: str) -> bool:
    """Whether a member is taken for an image: an image suffix, and not hidden (``.x``,
    macOS's ``__MACOSX/`` resource forks)."""
    parts = path.split("/")
    if any(p.startswith(".") or p == "__MACOSX" for p in parts):
        return False
    name = parts[-1].lower()
    dot = name.rfind(".")
    return dot > 0 and name[dot:] in IMAGE_SUFFIXES


def _over_budget(max_decoded_bytes: int) -> str:
    return (f"decoded images exceed max_decoded_bytes ({max_decoded_bytes:,} bytes); set a "
            "smaller resolution or raise the bound")


def _decode(
    names: list[str], blobs: list[bytes], grayscale: bool, resolution: int | None, budget: int
) -> tuple[np.ndarray, bool] | tuple[str, str]:
    """Decode one chunk: ``(pixels [n, H, W, C], whether any image was resized)``, or
    ``(member, problem)`` at the first image that fails, or when the chunk's pixels (the
    first image's size times the chunk's length, checked before they are allocated) would
    exceed ``budget`` bytes."""
    from PIL import Image

    mode = "L" if grayscale else "RGB"
    out: np.ndarray | None = None
    resized = False
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        for i, (name, blob) in enumerate(zip(names, blobs)):
            try:
                with Image.open(io.BytesIO(blob)) as image:
                    if resolution is not None and image.size != (resolution, resolution):
                        # Resized, whether by draft or resize: a 32x32 JPEG drafted to 16 comes
                        # out at 16x16 with no resize, and must not count as its own size.
                        resized = True
                        # JPEG: decode at the smallest 1/2, 1/4 or 1/8 scale still at least
                        # `resolution` on each side (much faster for large photographs).
                        image.draft(mode, (resolution, resolution))
                    image = _eight_bit(image)
                    if image.mode != mode:
                        image = image.convert(mode)
                    if resolution is not None and image.size != (resolution, resolution):
                        image = image.resize((resolution, resolution), Image.BILINEAR)
                    pixels = np.asarray(image, dtype=np.uint8)
            except _NoRule as error:
                return name, str(error)
            except (OSError, ValueError, SyntaxError, Image.DecompressionBombError,
                    Image.DecompressionBombWarning) as error:
                if isinstance(error, Image.UnidentifiedImageError):  # its text: an object address
                    return name, "cannot read image: not an image file Pillow knows (empty or damaged?)"
                return name, f"cannot read image: {' '.join(str(error).split()) or type(error).__name__}"
            if pixels.ndim == 2:
                pixels = pixels[:, :, None]
            if out is None:
                if len(blobs) * pixels.nbytes > budget:
                    return name, _over_budget(budget)
                out = np.empty((len(blobs), *pixels.shape), dtype=np.uint8)
                first = name
            elif pixels.shape != out.shape[1:]:
                return name, (
                    f"is {_size(pixels.shape)} but {first} is {_size(out.shape[1:])}: images have "
                    "different sizes; set resolution to resize them"
                )
            out[i] = pixels
    assert out is not None  # chunks are never empty
    return out, resized


class _NoRule(ValueError):
    """An image of a mode with no rule to read it as 8 bits; its text is the problem."""


#: Formats that store at most 16 bits a gray value, which Pillow may open in the 32-bit mode
#: ``I`` (older Pillows: 16-bit PNG; Pillow opens a PGM of maxval over 255 as ``I``, scaled to
#: 0..65,535).
_SIXTEEN_BIT_FORMATS = frozenset({"PNG", "PPM"})


def _eight_bit(image: Any) -> Any:
    """``image`` (a Pillow image) with 8-bit values, ready for ``convert``; other modes as
    they are. Pillow's own conversion clips at 255 (a 16-bit scan or a 32-bit TIFF decoded to
    a white square) and truncates floats (an image of floats in [0, 1] decoded black), so:

    - 16-bit gray (mode ``I;16*``, or ``I`` from a format of at most 16 bits): 0..65,535 to
      0..255, rounded;
    - 32-bit float gray (mode ``F``): values in [0, 1] (the convention of float images, and
      of this project's ``.npz`` images) to 0..255, rounded;
    - 32-bit integer gray (mode ``I`` from any other format, such as TIFF): no rule, as its
      white level may be 255, 65,535 or 2**31 - 1.

    Raises:
        _NoRule: a 32-bit integer image, or a float image with a value outside [0, 1] (or
            not finite), naming the mode.
    """
    from PIL import Image

    mode = image.mode
    if mode.startswith("I;16") or (mode == "I" and image.format in _SIXTEEN_BIT_FORMATS):
        return image.convert("I").point(lambda v: v / 257 + 0.5).convert("L")
    if mode == "I":
        raise _NoRule("is a 32-bit integer image (mode I), which has no standard white level "
                      "(255? 65,535? 2**31 - 1?); save it with 8 or 16 bits a value")
    if mode == "F":
        values = np.asarray(image)
        if values.size and not (np.isfinite(values).all() and 0 <= values.min() and values.max() <= 1):
            raise _NoRule(f"is a 32-bit float image (mode F) with values from {values.min():g} to "
                          f"{values.max():g}; float images are read from [0, 1] (1.0 as 255)")
        return Image.fromarray(np.rint(values * 255.0).astype(np.uint8))
    return image


def _size(shape: tuple[int, ...]) -> str:
    """``W x H`` of an ``[H, W, C]`` shape, as image sizes are usually written."""
    return f"{shape[1]}x{shape[0]}"


def _fork_context() -> multiprocessing.context.BaseContext | None:
    """Forking, where the platform has it and this process may have children (a daemonic
    process may not); else ``None``: decode in this process."""
    if multiprocessing.current_process().daemon:
        return None
    if "fork" in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("fork")
    return None


class ChunkDecoder:
    """Decode images added one by one; :meth:`finish` returns them in one array, each at
    the index the caller gives.

    Args:
        source: The folder or archive, for error messages.
        grayscale: Decode to one channel instead of RGB.
        resolution: Resize every image to ``resolution x resolution``; ``None`` keeps the
            size (all images must then share it).
        workers: Decoding processes besides this one (which reads the source meanwhile);
            ``0`` decodes in this process.
        max_decoded_bytes: Bound on the bytes of all decoded images together.
    """

    def __init__(
        self,
        source: str,
        *,
        grayscale: bool,
        resolution: int | None,
        workers: int,
        max_decoded_bytes: int,
    ):
        import PIL.Image  # noqa: F401  (imported once here, not in every forked worker)

        self.source = source
        self.grayscale, self.resolution = grayscale, resolution
        self.max_decoded_bytes = max_decoded_bytes
        self._names: list[str] = []
        self._blobs: list[bytes] = []
        self._buffered = 0  # bytes in _blobs
        self._done: list[np.ndarray] = []
        self._pending: deque[Future] = deque()
        self._decoded_bytes = 0
        self._shape: tuple[int, ...] | None = None
        #: Whether any image so far was resized (else the result is the images' own size).
        self.resized = False
        self._pool: ProcessPoolExecutor | None = None
        self._context = _fork_context() if workers > 0 else None
        self._workers = workers

    def __enter__(self) -> ChunkDecoder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def add(self, name: str, blob: bytes) -> None:
        """Queue one image; decodes a chunk when enough are queued."""
        if self._names and self._buffered + len(blob) > _CHUNK_BYTES:
            self._flush()  # a chunk holds at most _CHUNK_BYTES, or one larger member alone
        self._names.append(name)
        self._blobs.append(blob)
        self._buffered += len(blob)
        if len(self._names) >= _CHUNK:
            self._flush()

    def _flush(self, *, last: bool = False) -> None:
        if not self._names:
            return
        budget = self.max_decoded_bytes - self._decoded_bytes
        args = (self._names, self._blobs, self.grayscale, self.resolution, budget)
        self._names, self._blobs, self._buffered = [], [], 0
        if self._pool is None and self._context is not None and not last:
            # Started on the first full chunk: a source of one chunk never pays for it.
            self._pool = ProcessPoolExecutor(self._workers, mp_context=self._context)
        if self._pool is None:
            self._accept(_decode(*args))
            return
        self._pending.append(self._pool.submit(_decode, *args))
        # Bound the memory held by undecoded chunks: wait for the oldest beyond 2 per worker.
        while len(self._pending) > 2 * self._workers:
            self._accept(self._result(self._pending.popleft()))

    def _result(self, future: Future) -> tuple[np.ndarray, bool] | tuple[str, str]:
        try:
            return future.result()
        except BrokenProcessPool:
            raise ConfigError(
                "a decoding process died (out of memory?); set decode_workers to 0 to decode "
                "in one process",
                file=self.source,
            ) from None

    def _accept(self, result: tuple[np.ndarray, bool] | tuple[str, str]) -> None:
        if isinstance(result[0], str):
            member, problem = result
            raise ConfigError(problem, file=self.source, path=member)
        result, resized = result
        self.resized = self.resized or resized
        shape = result.shape[1:]
        if self._shape is None:
            self._shape = shape
        elif shape != self._shape:
            raise ConfigError(
                f"images have different sizes ({_size(shape)} and {_size(self._shape)}); "
                "set resolution to resize them",
                file=self.source,
            )
        self._decoded_bytes += result.nbytes
        if self._decoded_bytes > self.max_decoded_bytes:
            raise ConfigError(_over_budget(self.max_decoded_bytes), file=self.source)
        self._done.append(result)

    def finish(self, positions: np.ndarray) -> np.ndarray:
        """All images as uint8 ``[N, C, H, W]``: the ``k``-th image added goes to index
        ``positions[k]``, or is dropped where that is negative; ``N = positions.max() + 1``.

        Chunks are scattered into the result and released one by one, so the peak memory is
        the decoded images plus one copy.
        """
        self._flush(last=True)
        while self._pending:
            self._accept(self._result(self._pending.popleft()))
        self.close()
        total = int(positions.max()) + 1 if positions.size else 0
        if self._shape is None:
            side = self.resolution or 0
            return np.empty((total, 1 if self.grayscale else 3, side, side), dtype=np.uint8)
        h, w, c = self._shape
        out = np.empty((total, c, h, w), dtype=np.uint8)
        start = 0
        while self._done:
            chunk = self._done.pop(0)
            where = positions[start : start + len(chunk)]
            keep = where >= 0
            out[where[keep]] = chunk[keep].transpose(0, 3, 1, 2)
            start += len(chunk)
        return out
