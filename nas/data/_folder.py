"""The ``folder`` source: image folders and archives as users have them, decoded once.

``root`` is a folder or an archive (``.tar``, ``.tar.gz``/``.tgz``, ``.zip``) in one of
two layouts (see :mod:`nas.data._layout`): ``train/CLASS/...`` with ``test/CLASS/...``
(or ``val/``), whose test split is the held-out one; or plain ``CLASS/...``, whose test
split is a seeded, stratified ``test_fraction`` of the images (seed ``test_seed``, fixed
whatever the search's seed, so every run holds out the same images), or the images of
``val_root`` when given.

The first load streams the source once (archives are never extracted), decodes the images
with Pillow (in a few forked processes for large sources) with a progress bar on stderr
when it is a terminal, and writes the arrays to a cache entry (see
:mod:`nas.data._cache`) under ``cache`` (default ``default_root() / "folder-cache"``,
i.e. ``$NAS_DATA/folder-cache`` or ``~/.cache/nas/datasets/folder-cache``). Later loads,
including every worker of a search, read the entry.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nas._checks import check_path_given, max_processes, number, resolved_path, user_path
from nas.data import _cache
from nas.data._dataset import RawData, select_rows, stratified_order
from nas.data._decode import ChunkDecoder, is_image_name
from nas.data._layout import resolve_layout
from nas.data._members import Limits, iter_members, progress_total, source_kind
from nas.data._registry import register_dataset
from nas.data._sources import default_root
from nas.errors import ConfigError

__all__ = ["decode_source", "load_folder"]


def _progress_bar(source: Path) -> Any:
    from tqdm.auto import tqdm

    total, unit = progress_total(source)
    return tqdm(
        total=total or None, unit=unit, unit_scale=unit == "B", dynamic_ncols=True,
        desc=f"decoding {source.name}", file=sys.stderr, disable=None,  # None: only on a TTY
    )


def decode_source(
    source: Path, *, grayscale: bool, resolution: int | None, workers: int, limits: Limits
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read and decode ``source`` (no cache): ``(meta, arrays)`` as a cache entry holds them.

    ``arrays`` has ``train_images``/``test_images`` (uint8 ``[N, C, H, W]``) and
    ``train_labels``/``test_labels`` (int64); ``meta`` has ``classes`` and ``test_folder``
    (``None`` for a plain class-folder root, whose test arrays are then empty).

    Raises:
        ConfigError: any problem with the source, in one line naming it (and the member).
    """
    paths: list[str] = []
    folders: list[str] = []
    bar = _progress_bar(source)
    try:
        with ChunkDecoder(
            str(source), grayscale=grayscale, resolution=resolution, workers=workers,
            max_decoded_bytes=limits.max_decoded_bytes,
        ) as decoder:
            members = iter_members(source, limits=limits, wanted=is_image_name,
                                   progress=lambda n: bar.update(n - bar.n))
            seen: set[str] = set()
            for member in members:  # folders, and files that look like images
                if member.data is None:
                    folders.append(member.path)
                    continue
                if member.path in seen:  # a tar may append a member again
                    raise ConfigError(f"member {member.path!r} appears twice", file=str(source))
                seen.add(member.path)
                paths.append(member.path)
                decoder.add(member.path, member.data)
            layout = resolve_layout(paths, folders, source=str(source))
            images = decoder.finish(layout.positions)
    finally:
        bar.close()
    n_train = len(layout.train_labels)
    meta = {"classes": list(layout.classes), "test_folder": layout.test_folder,
            "source": str(source), "images": len(images), "resized": decoder.resized}
    arrays = {
        "train_images": images[:n_train], "train_labels": layout.train_labels,
        "test_images": images[n_train:], "test_labels": layout.test_labels,
    }
    return meta, arrays


def _cached(
    source: Path, cache_root: Path | None, **settings: Any
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The decoded source from its cache entry, decoding and writing it on a miss.

    Images that needed no resizing at ``resolution`` are stored under the entry of their
    own size (``resolution: None``), which a load at that resolution also reads: CIFAR-10
    asked for at 32 and at its own size is decoded and stored once.
    """
    limits = settings.pop("limits")
    workers = settings.pop("workers")
    if cache_root is None:
        return decode_source(source, limits=limits, workers=workers, **settings)
    fingerprint = _cache.fingerprint(source, limits.max_members)
    entry = _cache.entry_dir(cache_root, fingerprint, settings)
    native = _cache.entry_dir(cache_root, fingerprint, {**settings, "resolution": None})
    expected = {"channels": 1 if settings["grayscale"] else 3, "side": settings["resolution"]}

    def lookup() -> tuple[dict[str, Any], dict[str, np.ndarray]] | None:
        found = _cache.read_entry(entry, **expected)
        if found is None and native != entry:
            found = _cache.read_entry(native, **expected)
        return found

    found = lookup()
    if found is not None:
        return found
    try:
        with _cache.locked(entry):
            found = lookup()  # written while this process waited for the lock
            if found is not None:
                return found
            meta, arrays = decode_source(source, limits=limits, workers=workers, **settings)
            _cache.write_entry(native if not meta["resized"] else entry, meta, arrays, **expected)
    except OSError as error:  # decoding raises ConfigError: this is the cache folder
        raise ConfigError(
            f"cannot write the dataset cache: {error.strerror or error} (set $NAS_DATA, or "
            "the dataset's cache option, to a writable folder, or cache: false)",
            file=str(cache_root),
        ) from None
    return meta, arrays


def _holdout_test(
    images: torch.Tensor, labels: torch.Tensor, fraction: float, seed: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Split off a seeded, stratified test part: ``(train_x, train_y, test_x, test_y)``."""
    order = stratified_order(labels, torch.Generator().manual_seed(seed))
    n_test = round(fraction * len(order))
    if not 0 < n_test < len(order):
        raise ConfigError(
            f"{len(order)} images are too few to hold out a test fraction of {fraction}",
            path="test_fraction",
        )
    test, train = order[:n_test], order[n_test:]
    return select_rows(images, train), labels[train], select_rows(images, test), labels[test]


def _source_path(value: str | Path, key: str) -> Path:
    """The path option ``key`` (``root``, ``val_root``, ``cache``) as a :class:`Path`.

    Raises:
        ConfigError: an empty string (``Path('')`` is the working folder, which nobody
            means), or ``~USER`` naming no user; at ``path=key``.
    """
    check_path_given(value, key)
    return user_path(value, path=key)


def _positive(value: Any, key: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"must be a positive integer, got {value!r}", path=key)


@register_dataset("folder")
def load_folder(
    *,
    root: str | Path,
    val_root: str | Path | None = None,
    grayscale: bool = False,
    flip: bool = True,
    resolution: int | None = None,
    test_fraction: float = 0.2,
    test_seed: int = 0,
    cache: str | Path | bool = True,
    decode_workers: int | None = None,
    max_members: int = Limits.max_members,
    max_decoded_bytes: int = Limits.max_decoded_bytes,
    max_expansion: int = Limits.max_expansion,
) -> RawData:
    """Images in class folders, from a folder or an archive (see the module docstring).

    Args:
        root: A folder or ``.tar``/``.tar.gz``/``.tgz``/``.zip`` holding ``train/`` and
            ``test/`` (or ``val/``) class folders, or class folders only.
        val_root: For a class-folder ``root``: a source laid out the same way whose images
            form the test split (instead of ``test_fraction``).
        grayscale: Decode to one channel instead of RGB.
        flip: Whether a horizontal flip preserves the label. Default: true (photographs).
        resolution: Resize every image to ``resolution x resolution`` while decoding;
            ``None`` keeps the size, which all images must then share.
        test_fraction: For a class-folder ``root`` without ``val_root``: the fraction held
            out as the test split (``0``: no test split). Default: 0.2.
        test_seed: Seed of that split. Default: 0.
        cache: ``True`` for the default cache folder, a folder, or ``False`` to decode on
            every load.
        decode_workers: Decoding processes besides the one reading the source (``0``:
            decode while reading), at most :func:`nas._checks.max_processes`. Default: one per CPU core, at most 4 (the reading
            process mostly waits for them: on 2 busy cores, 2 decoded CIFAR-10 in 0.66-0.72
            of the time of none, 1 in 0.84-1.01; ``bench/data_load.py``).
        max_members, max_decoded_bytes, max_expansion: Bounds on the work a source may cause
            (:class:`~nas.data._members.Limits`).

    Raises:
        ConfigError: a missing, unsafe or malformed source, in one line.
    """
    if resolution is not None:
        _positive(resolution, "resolution")
    for key, value in (("max_members", max_members), ("max_decoded_bytes", max_decoded_bytes),
                       ("max_expansion", max_expansion)):
        _positive(value, key)
    if decode_workers is not None:  # forked all at once: 10**6 was a fork bomb
        decode_workers = number(decode_workers, path="decode_workers", low=0,
                                high=max_processes(), integer=True)
    if not isinstance(test_fraction, (int, float)) or not 0 <= test_fraction < 1:
        raise ConfigError(f"must lie in [0, 1), got {test_fraction!r}", path="test_fraction")
    if cache is True:
        cache_root: Path | None = default_root() / "folder-cache"
    elif cache is False or cache is None:
        cache_root = None
    else:
        cache_root = _source_path(cache, "cache")
    settings = {
        "grayscale": bool(grayscale), "resolution": resolution,
        "workers": min(4, os.cpu_count() or 1) if decode_workers is None else decode_workers,
        "limits": Limits(max_members=max_members, max_decoded_bytes=max_decoded_bytes,
                         max_expansion=max_expansion),
    }
    source = _source_path(root, "root")
    source_kind(source)  # a missing source fails here, before any cache folder is made
    val_source = None if val_root is None else _source_path(val_root, "val_root")
    if val_source is not None and (
        resolved_path(val_source, path="val_root") == resolved_path(source, path="root")
    ):
        raise ConfigError("is the same source as root", file=str(val_source), path="val_root")
    meta, arrays = _cached(source, cache_root, **settings)
    classes = tuple(meta["classes"])
    if len(classes) < 2:
        raise ConfigError(
            f"only one class folder ({classes[0]!r}); a classifier needs at least 2",
            file=str(source),
        )
    x = torch.from_numpy(arrays["train_images"])
    y = torch.from_numpy(arrays["train_labels"])
    tx: torch.Tensor | None = torch.from_numpy(arrays["test_images"])
    ty: torch.Tensor | None = torch.from_numpy(arrays["test_labels"])
    if meta["test_folder"] is None:
        if val_source is not None:
            source_kind(val_source)
            val_meta, val_arrays = _cached(val_source, cache_root, **settings)
            if val_meta["test_folder"] is not None or tuple(val_meta["classes"]) != classes:
                raise ConfigError(
                    "must hold the same class folders as root, and nothing else: root has "
                    f"{', '.join(classes)}; val_root has {', '.join(val_meta['classes'])}",
                    file=str(val_source), path="val_root",
                )
            tx = torch.from_numpy(val_arrays["train_images"])
            ty = torch.from_numpy(val_arrays["train_labels"])
        elif test_fraction > 0:
            x, y, tx, ty = _holdout_test(x, y, float(test_fraction), test_seed)
        else:
            tx = ty = None
    elif val_source is not None:
        raise ConfigError(
            f"root already has train/ and {meta['test_folder']}/; val_root is only for a "
            "root of class folders",
            path="val_root",
        )
    return RawData(x, y, len(classes), flip=flip, test_images=tx, test_labels=ty, classes=classes)
