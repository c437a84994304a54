"""The image-folder layout: which split and which class each image path belongs to.

Two layouts are understood, after stripping folders that wrap everything (``cifar10/...``):

- **split layout**: ``train/CLASS/...`` and ``test/CLASS/...`` (or ``val/CLASS/...`` when
  there is no ``test/``; with both, ``val/`` is left out: the protocol carves validation
  images from ``train/``, and ``test/`` is the held-out split);
- **class layout**: ``CLASS/...`` only; every image is a training image, and the caller
  splits off a test part.

Classes are the class folder names, sorted; label ``i`` is ``classes[i]``. Images may sit
deeper inside a class folder. Images are ordered by split, class, then path, so the order
never depends on the order of an archive's members.

Every departure is a :class:`~nas.errors.ConfigError` of one line: an image outside a class
folder, a class folder without images, a ``train/`` without images (an empty ``train/`` folder
still makes the split layout), a ``test/`` or ``val/`` without ``train/``, different class sets
in the two splits, a folder next to ``train/`` that is neither ``test/`` nor ``val/``, or no
image at all.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from nas.errors import ConfigError

__all__ = ["Layout", "resolve_layout"]

_SPLITS = ("train", "test", "val")
_EXPECTED = "expected CLASS/IMAGE, or train/CLASS/IMAGE with test/CLASS/IMAGE (or val/)"


@dataclass(frozen=True, eq=False)
class Layout:
    """Where each image goes.

    Attributes:
        classes: Class names, sorted; label ``i`` names ``classes[i]``.
        test_folder: ``"test"`` or ``"val"`` for the split layout, ``None`` for the class
            layout.
        positions: For the ``k``-th image path given, its index in the train-then-test
            order, or ``-1`` when it is left out.
        train_labels, test_labels: int64 labels in that order (``test_labels`` is empty
            for the class layout).
    """

    classes: tuple[str, ...]
    test_folder: str | None
    positions: np.ndarray
    train_labels: np.ndarray
    test_labels: np.ndarray


def _hidden(parts: Iterable[str]) -> bool:
    return any(p.startswith(".") or p == "__MACOSX" for p in parts)


def _strip_wrappers(paths: list[tuple[str, ...]]) -> int:
    """How many leading folders every path shares and that only wrap the dataset."""
    depth = 0
    while paths and all(len(p) > depth + 2 for p in paths):
        first = paths[0][depth]
        if first in _SPLITS or any(p[depth] != first for p in paths):
            break
        depth += 1
    return depth


def resolve_layout(paths: list[str], folders: Iterable[str], *, source: str) -> Layout:
    """Assign every image path to a split and a class.

    Args:
        paths: Image member paths (POSIX, relative to the source's top), in any order.
        folders: Folder member paths, used to find class folders without images.
        source: The folder or archive, for error messages.

    Raises:
        ConfigError: see the module docstring.
    """
    if not paths:
        raise ConfigError(f"no images found ({_EXPECTED})", file=source)
    split_paths = [tuple(p.split("/")) for p in paths]
    depth = _strip_wrappers(split_paths)
    parts = [p[depth:] for p in split_paths]
    wrapper = split_paths[0][:depth]
    tops = {p[0] for p in parts}
    folders = list(folders)
    # a train/ folder makes the split layout even when it holds no image (an error below)
    layout_split = "train" in tops or "train" in _top_folders(folders, wrapper)
    if not layout_split and tops <= {"test", "val"}:
        raise ConfigError(f"has {'/ and '.join(sorted(tops))}/ but no train/ ({_EXPECTED})", file=source)
    if layout_split:
        test_folder = "test" if "test" in tops else "val" if "val" in tops else None
        if test_folder is None:
            raise ConfigError("has train/ but neither test/ nor val/", file=source)
        others = sorted(tops - set(_SPLITS))
        if others:
            raise ConfigError(
                f"unexpected {others[0]!r} next to train/ and {test_folder}/ ({_EXPECTED})",
                file=source,
            )
        used = ("train", test_folder)
        class_depth = 1
    else:
        test_folder, used, class_depth = None, ("train",), 0
    # split index (0 train, 1 test, -1 left out) and class name of every path
    split = np.full(len(parts), -1, dtype=np.int64)
    names: list[str] = [""] * len(parts)
    seen: tuple[set[str], set[str]] = (set(), set())
    for k, p in enumerate(parts):
        s = (0 if p[0] == "train" else 1 if p[0] == test_folder else -1) if layout_split else 0
        if s < 0:
            continue
        if len(p) < class_depth + 2:
            raise ConfigError(
                f"image {'/'.join((*wrapper, *p))!r} is not inside a class folder ({_EXPECTED})",
                file=source,
            )
        split[k], names[k] = s, p[class_depth]
        seen[s].add(p[class_depth])
    classes = tuple(sorted(seen[0]))
    with_images = dict(zip(used, seen)) if layout_split else {"": seen[0]}
    _check_empty_classes(folders, wrapper, with_images, source)
    if layout_split and not seen[0]:
        raise ConfigError(f"train/ holds no images ({_EXPECTED})", file=source)
    if layout_split and seen[0] != seen[1]:
        only_train = ", ".join(sorted(seen[0] - seen[1])) or "none"
        only_test = ", ".join(sorted(seen[1] - seen[0])) or "none"
        raise ConfigError(
            f"class folders differ between train/ and {test_folder}/: only in train/: "
            f"{only_train}; only in {test_folder}/: {only_test}",
            file=source,
        )
    label_of = {name: i for i, name in enumerate(classes)}
    labels = np.array([label_of.get(n, -1) for n in names], dtype=np.int64)
    kept = np.flatnonzero(split >= 0)
    order = sorted(kept.tolist(), key=lambda k: (split[k], labels[k], paths[k]))
    positions = np.full(len(parts), -1, dtype=np.int64)
    positions[order] = np.arange(len(order))
    ordered_split, ordered_labels = split[order], labels[order]
    return Layout(
        classes=classes,
        test_folder=test_folder,
        positions=positions,
        train_labels=ordered_labels[ordered_split == 0],
        test_labels=ordered_labels[ordered_split == 1],
    )


def _top_folders(folders: Iterable[str], wrapper: tuple[str, ...]) -> set[str]:
    """The first folder names inside ``wrapper`` (the dataset's top)."""
    tops = set()
    for folder in folders:
        parts = tuple(folder.split("/"))
        if len(parts) > len(wrapper) and parts[: len(wrapper)] == wrapper:
            tops.add(parts[len(wrapper)])
    return tops


def _check_empty_classes(
    folders: Iterable[str], wrapper: tuple[str, ...], with_images: dict[str, set[str]],
    source: str,
) -> None:
    """Raise for a class folder holding no image. ``with_images`` maps each split folder
    (``""`` for the class layout) to the classes that have images there."""
    for folder in sorted(folders):
        parts = tuple(folder.split("/"))
        if parts[: len(wrapper)] != wrapper or len(parts) <= len(wrapper) or _hidden(parts):
            continue
        parts = parts[len(wrapper) :]
        split, rest = ("", parts) if "" in with_images else (parts[0], parts[1:])
        if len(rest) == 1 and split in with_images and rest[0] not in with_images[split]:
            raise ConfigError(f"class folder {folder!r} holds no images", file=source)
