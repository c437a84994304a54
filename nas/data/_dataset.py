"""The dataset record and the steps every source shares: split, subset, resize, statistics.

A source (digits, torchvision, IDX files, ...) produces :class:`RawData`: uint8 images in
``[N, C, H, W]`` and int64 labels, with an optional official test split. :func:`prepare`
turns that into a :class:`Dataset` with a seeded, stratified train / validation split, an
optional subset, images resized once, and per-channel statistics of the training split.
Nothing here knows about genotypes or training.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F

from nas.errors import ConfigError

__all__ = ["Dataset", "RawData", "check_split_options", "prepare", "select_rows", "stratified_order"]

ValSplit = Literal["holdout", "test"]

# Images are resized and measured in chunks so that a large split never needs a float copy.
_CHUNK = 4096


@dataclass(frozen=True, eq=False)
class Dataset:
    """Train and validation splits held as tensors, ready to be moved to a device.

    Attributes:
        name: The source's name, for messages and reports.
        train_images, val_images: ``uint8`` tensors of shape ``[N, C, H, W]``.
        train_labels, val_labels: ``int64`` tensors of shape ``[N]`` with values in
            ``[0, num_classes)``.
        num_classes: Number of classes.
        mean, std: Per-channel statistics of the training images on the 0..1 scale.
        flip: Whether a horizontal flip preserves the label (photographs: yes; digits: no).
            The training loop uses it as the default for flip augmentation.
        classes: The class names, ``classes[label]``; ``("0", "1", ...)`` when the source
            has none.
        val_split: Where the validation images come from: ``"holdout"``, a seeded,
            stratified part of the source's training images (what a search selects on;
            the test split is no part of the dataset), or ``"test"``, the source's test split
            (retraining and final evaluation: the training split is then whole).
    """

    name: str
    train_images: torch.Tensor
    train_labels: torch.Tensor
    val_images: torch.Tensor
    val_labels: torch.Tensor
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    flip: bool = False
    classes: tuple[str, ...] = ()
    val_split: ValSplit = "holdout"

    def __post_init__(self) -> None:
        object.__setattr__(self, "classes", _class_names(self.name, self.classes, self.num_classes))
        for split in ("train", "val"):
            images = getattr(self, f"{split}_images")
            labels = getattr(self, f"{split}_labels")
            _check_split(self.name, split, images, labels, self.num_classes)
        if self.train_images.shape[1:] != self.val_images.shape[1:]:
            raise ConfigError(
                f"train images are {tuple(self.train_images.shape[1:])} but validation images "
                f"are {tuple(self.val_images.shape[1:])}",
                path=self.name,
            )
        channels = self.train_images.shape[1]
        if len(self.mean) != channels or len(self.std) != channels:
            raise ConfigError(f"mean and std need {channels} values", path=self.name)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one image."""
        _, c, h, w = self.train_images.shape
        return (c, h, w)

    @property
    def device(self) -> torch.device:
        return self.train_images.device

    def to(self, device: torch.device | str) -> Dataset:
        """The same dataset with every tensor on ``device`` (still uint8)."""
        return dataclasses.replace(
            self,
            train_images=self.train_images.to(device),
            train_labels=self.train_labels.to(device),
            val_images=self.val_images.to(device),
            val_labels=self.val_labels.to(device),
        )

    def __repr__(self) -> str:
        c, h, w = self.input_shape
        return (
            f"Dataset({self.name!r}, train={len(self.train_labels)}, "
            f"val={len(self.val_labels)} ({self.val_split}), "
            f"shape=({c}, {h}, {w}), classes={self.num_classes}, device={self.device})"
        )


@dataclass(frozen=True, eq=False)
class RawData:
    """What a source loads before the shared steps: images, labels, optional test split,
    and the class names when the source has them."""

    images: torch.Tensor
    labels: torch.Tensor
    num_classes: int
    flip: bool = False
    test_images: torch.Tensor | None = None
    test_labels: torch.Tensor | None = None
    classes: tuple[str, ...] | None = None


#: Most classes a dataset may have (ImageNet-21k has 21,841): a label of 2**31 would
#: otherwise size the per-class counts and class names of a split.
MAX_CLASSES = 1 << 20


def _check_num_classes(name: str, num_classes: int) -> None:
    if not 1 <= num_classes <= MAX_CLASSES:
        raise ConfigError(f"{num_classes:,} classes: a dataset has 1 to {MAX_CLASSES:,} classes "
                          "(labels 0 to num_classes - 1)", path=name)


def _class_names(name: str, classes: tuple[str, ...] | None, num_classes: int) -> tuple[str, ...]:
    _check_num_classes(name, num_classes)
    if not classes:
        return tuple(str(i) for i in range(num_classes))
    if len(classes) != num_classes or not all(isinstance(c, str) for c in classes):
        raise ConfigError(f"need {num_classes} class names, got {classes!r}", path=name)
    return tuple(classes)


def _check_split(
    name: str, split: str, images: torch.Tensor, labels: torch.Tensor, num_classes: int
) -> None:
    _check_num_classes(name, num_classes)
    if images.dtype != torch.uint8 or images.dim() != 4 or 0 in images.shape[1:]:
        # an image of no pixels (a height of 0) was 'unexpected RuntimeError' in training
        raise ConfigError(
            f"{split} images must be a uint8 tensor [N, C, H, W] of at least one pixel, got "
            f"{images.dtype} with shape {tuple(images.shape)}",
            path=name,
        )
    if labels.dtype != torch.int64 or labels.shape != images.shape[:1]:
        raise ConfigError(
            f"{split} labels must be int64 with one label per image, got {labels.dtype} "
            f"with shape {tuple(labels.shape)} for {images.shape[0]} images",
            path=name,
        )
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ConfigError(
            f"{split} labels must lie in [0, {num_classes}), got "
            f"[{int(labels.min())}, {int(labels.max())}]",
            path=name,
        )


def _check_two_classes(name: str, labels: torch.Tensor) -> None:
    """Refuse training labels of one class: every model scores 1.0 on them (an npz or idx
    file whose labels are all 0 trained to a validation accuracy of 1.0).

    Raises:
        ConfigError: at ``path=name``, naming the one label.
    """
    found = torch.unique(labels)
    if found.numel() == 1:
        raise ConfigError(f"all {labels.numel():,} training images have label {int(found[0])}; a "
                          "classifier needs at least 2 classes", path=name)


def stratified_order(labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A random permutation of ``range(len(labels))`` in which every prefix is stratified.

    Each class is shuffled, then the classes are interleaved by relative rank, so the first
    ``k`` indices hold each class in (nearly) its overall proportion. Taking a prefix gives a
    stratified subset; splitting the order gives a stratified holdout split.
    """
    n = labels.numel()
    shuffled = torch.randperm(n, generator=generator)
    sorted_labels, by_class = torch.sort(labels[shuffled], stable=True)
    counts = torch.bincount(sorted_labels)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(n) - starts[sorted_labels]
    key = (rank.double() + 0.5) / counts[sorted_labels].double()
    interleaved = torch.sort(key, stable=True).indices
    return shuffled[by_class[interleaved]]


def select_rows(images: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``images[index]`` along the first dimension (``index_select`` copies whole rows: about
    twice as fast as advanced indexing on uint8 images)."""
    return torch.index_select(images, 0, index)


def resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """Resize uint8 ``[N, C, H, W]`` images to ``size x size`` (bilinear, antialiased)."""
    if images.shape[-2:] == (size, size):
        return images
    out = torch.empty((*images.shape[:2], size, size), dtype=torch.uint8)
    for start in range(0, images.shape[0], _CHUNK):
        chunk = images[start : start + _CHUNK].float()
        scaled = F.interpolate(
            chunk, size=(size, size), mode="bilinear", align_corners=False, antialias=True
        )
        out[start : start + _CHUNK] = scaled.round_().clamp_(0, 255).to(torch.uint8)
    return out


def channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and standard deviation of uint8 images, on the 0..1 scale.

    Computed exactly from each channel's histogram of the 256 pixel values (one pass,
    no float copy of the images). A constant channel gets std 1 so that normalising it never
    divides by zero.
    """
    channels = images.shape[1]
    values = torch.arange(256, dtype=torch.float64)
    mean = torch.zeros(channels, dtype=torch.float64)
    squares = torch.zeros(channels, dtype=torch.float64)
    count = images.shape[0] * images.shape[2] * images.shape[3]
    for c in range(channels):
        histogram = torch.bincount(images[:, c].reshape(-1), minlength=256).double()
        mean[c] = (histogram * values).sum() / max(count, 1)
        squares[c] = (histogram * values.square()).sum() / max(count, 1)
    std = (squares - mean.square()).clamp_min(0).sqrt()
    std = torch.where(std > 1e-6 * 255, std, torch.full_like(std, 255.0))
    return tuple((mean / 255).tolist()), tuple((std / 255).tolist())


#: Largest ``resolution`` (a 4096 x 4096 image is already 16 M pixels per channel).
MAX_RESOLUTION = 4096
#: Largest size of the resized images (uint8 bytes): a resolution that would exceed it on the
#: source's image count is an error, not an out-of-memory kill.
MAX_RESIZED_BYTES = 8 << 30
#: Largest ``subset`` and ``val_subset``.
MAX_IMAGES = 10**9


def check_split_options(*, val_split: Any = "holdout", val_fraction: Any = 0.2, subset: Any = None,
                        val_subset: Any = None, resolution: Any = None,
                        seed: Any = 0) -> dict[str, Any]:
    """Check the options :func:`prepare` shares across sources (see :func:`nas.data.load_dataset`)
    and return them normalised (an integral float such as ``1.0e3`` becomes an int).

    Raises:
        ConfigError: naming the option.
    """
    from nas import _checks

    if val_split not in ("holdout", "test"):
        raise ConfigError(f"must be 'holdout' or 'test', got {val_split!r}", path="val_split")
    out = {"val_split": val_split, "val_fraction": _checks.number(
        val_fraction, path="val_fraction", low=0.0, high=1.0, low_open=True, high_open=True)}
    for key, value, high in (("subset", subset, MAX_IMAGES), ("val_subset", val_subset, MAX_IMAGES),
                             ("resolution", resolution, MAX_RESOLUTION)):
        out[key] = None if value is None else _checks.number(value, path=key, low=1, high=high,
                                                             integer=True)
    out["seed"] = _checks.seed(seed, path="seed")
    return out


def prepare(
    raw: RawData,
    *,
    name: str,
    val_split: ValSplit = "holdout",
    val_fraction: float = 0.2,
    subset: int | None = None,
    val_subset: int | None = None,
    resolution: int | None = None,
    seed: int = 0,
) -> Dataset:
    """Split, subset, resize and measure ``raw``; see :func:`nas.data.load_dataset`.

    Raises:
        ConfigError: an option is out of range, or ``val_split="test"`` for a source
            without a test split.
    """
    checked = check_split_options(val_split=val_split, val_fraction=val_fraction, subset=subset,
                                  val_subset=val_subset, resolution=resolution, seed=seed)
    subset, val_subset, resolution = checked["subset"], checked["val_subset"], checked["resolution"]
    seed = checked["seed"]
    _check_split(name, "source", raw.images, raw.labels, raw.num_classes)
    _check_two_classes(name, raw.labels)
    generator = torch.Generator().manual_seed(seed)
    if val_split == "test":
        if raw.test_images is None or raw.test_labels is None:
            raise ConfigError(
                f"dataset {name!r} has no test split; use val_split='holdout'", path="val_split"
            )
        _check_split(name, "test", raw.test_images, raw.test_labels, raw.num_classes)
        train_x, train_y = raw.images, raw.labels
        val_x, val_y = raw.test_images, raw.test_labels
    else:
        order = stratified_order(raw.labels, generator)
        n_val = max(1, round(val_fraction * len(order)))
        if n_val >= len(order):
            raise ConfigError(f"{len(order)} images are too few to split", path=name)
        val_idx, train_idx = order[:n_val], order[n_val:]
        train_x, train_y = select_rows(raw.images, train_idx), raw.labels[train_idx]
        val_x, val_y = select_rows(raw.images, val_idx), raw.labels[val_idx]
    if subset is not None and subset < len(train_y):
        keep = stratified_order(train_y, generator)[:subset]
        train_x, train_y = select_rows(train_x, keep), train_y[keep]
    if val_subset is not None and val_subset < len(val_y):
        keep = stratified_order(val_y, generator)[:val_subset]
        val_x, val_y = select_rows(val_x, keep), val_y[keep]
    if resolution is not None:
        images = (len(train_x) + len(val_x)) * train_x.shape[1]
        if images * resolution * resolution > MAX_RESIZED_BYTES:
            raise ConfigError(
                f"{len(train_x) + len(val_x)} images at {resolution}x{resolution} would take "
                f"{images * resolution * resolution:,} bytes; at most {MAX_RESIZED_BYTES:,} "
                "(lower resolution or use subset)", path="resolution")
        train_x, val_x = resize(train_x, resolution), resize(val_x, resolution)
    mean, std = channel_stats(train_x)
    return Dataset(
        name=name,
        train_images=train_x.contiguous(),
        train_labels=train_y.contiguous(),
        val_images=val_x.contiguous(),
        val_labels=val_y.contiguous(),
        num_classes=raw.num_classes,
        mean=mean,
        std=std,
        flip=raw.flip,
        classes=tuple(raw.classes or ()),
        val_split=val_split,
    )
