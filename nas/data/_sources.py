"""Built-in sources: scikit-learn digits, torchvision datasets and a synthetic generator.

Each loader returns :class:`~nas.data._dataset.RawData` on the CPU. torchvision and
scikit-learn are imported inside the loaders, so importing :mod:`nas.data` stays cheap.
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from nas import _checks
from nas._checks import user_path
from nas.data._dataset import MAX_CLASSES, RawData
from nas.data._registry import register_dataset
from nas.errors import ConfigError

__all__ = ["default_root"]


def default_root() -> Path:
    """Where torchvision datasets live unless ``root`` is given: ``$NAS_DATA`` or
    ``~/.cache/nas/datasets``."""
    env = os.environ.get("NAS_DATA")
    return Path(env) if env else Path.home() / ".cache" / "nas" / "datasets"


@register_dataset("digits")
def load_digits() -> RawData:
    """scikit-learn's 1,797 handwritten digits, 1x8x8, scaled from 0..16 to 0..255.

    Bundled with scikit-learn, so it loads offline. No official test split.
    """
    images, target = _digits_arrays()
    pixels = np.rint(images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)
    return RawData(images=torch.from_numpy(pixels).unsqueeze(1),
                   labels=torch.from_numpy(target.astype(np.int64)), num_classes=10, flip=False)


def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The digits' images (N x 8 x 8, 0..16, float) and labels, as ``sklearn.datasets.load_digits``
    gives them. Read from scikit-learn's bundled ``datasets/data/digits.csv.gz`` (64 pixels and
    the label per line) without importing scikit-learn, whose import costs seconds in every
    search process; through scikit-learn's loader when that file is not where it has been
    since scikit-learn 0.x."""
    import importlib.util

    spec = importlib.util.find_spec("sklearn")  # locates the package without importing it
    folders = spec.submodule_search_locations if spec is not None else None
    for folder in folders or []:
        path = Path(folder) / "datasets" / "data" / "digits.csv.gz"
        if path.is_file():
            import gzip

            with gzip.open(path, mode="rt", encoding="utf-8") as file:
                data = np.loadtxt(file, delimiter=",")
            return data[:, :-1].reshape(-1, 8, 8), data[:, -1].astype(int)
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    return bunch.images, bunch.target


@dataclass(frozen=True)
class _TorchvisionSource:
    cls: str
    num_classes: int
    flip: bool
    files: str  # where the files go, relative to root, for the error message


_TORCHVISION = {
    "mnist": _TorchvisionSource(
        "MNIST", 10, False, "MNIST/raw/ (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
        "t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz)"
    ),
    "fashion_mnist": _TorchvisionSource(
        "FashionMNIST", 10, False, "FashionMNIST/raw/ (train-images-idx3-ubyte.gz, "
        "train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz)"
    ),
    "cifar10": _TorchvisionSource(
        "CIFAR10", 10, True, "cifar-10-python.tar.gz or its extracted cifar-10-batches-py/"
    ),
    "cifar100": _TorchvisionSource(
        "CIFAR100", 100, True, "cifar-100-python.tar.gz or its extracted cifar-100-python/"
    ),
}


def _as_tensors(dataset: object) -> tuple[torch.Tensor, torch.Tensor]:
    data = dataset.data  # type: ignore[attr-defined]
    images = torch.as_tensor(np.asarray(data))
    images = images.unsqueeze(1) if images.dim() == 3 else images.permute(0, 3, 1, 2)
    targets = dataset.targets  # type: ignore[attr-defined]
    labels = torch.as_tensor(np.asarray(targets), dtype=torch.int64)
    return images.contiguous(), labels


def _torchvision_split(
    source: _TorchvisionSource, name: str, root: Path, train: bool, download: bool
) -> object:
    import torchvision.datasets

    cls = getattr(torchvision.datasets, source.cls)
    try:
        return cls(str(root), train=train, download=False)
    except RuntimeError:
        if not download:
            raise ConfigError(
                f"{name}: files not found under {root}; put {source.files} there "
                f"(or allow download when online)",
                path="dataset.root",
            ) from None
    try:
        return cls(str(root), train=train, download=True)
    except (OSError, RuntimeError) as error:  # URLError is an OSError
        raise ConfigError(
            f"{name}: files not found under {root} and could not be downloaded "
            f"({type(error).__name__}; offline?); put {source.files} there",
            path="dataset.root",
        ) from None


def _load_torchvision(name: str, root: str | Path | None, download: bool) -> RawData:
    source = _TORCHVISION[name]
    folder = user_path(root, path="root") if root is not None else default_root()
    train = _torchvision_split(source, name, folder, True, download)
    test = _torchvision_split(source, name, folder, False, download)
    images, labels = _as_tensors(train)
    test_images, test_labels = _as_tensors(test)
    names = tuple(str(c) for c in getattr(train, "classes", ()))
    return RawData(
        images=images,
        labels=labels,
        num_classes=source.num_classes,
        flip=source.flip,
        test_images=test_images,
        test_labels=test_labels,
        classes=names if len(names) == source.num_classes else None,
    )


def offline() -> bool:
    """Whether ``NAS_OFFLINE`` is set (to anything but ``""`` or ``"0"``): no download is tried."""
    return os.environ.get("NAS_OFFLINE", "") not in ("", "0")


@functools.lru_cache(maxsize=None)
def _reachable(url: str, timeout: float = 3.0) -> bool:
    """Whether a TCP connection to ``url``'s host opens within ``timeout`` seconds, the name
    lookup included (the socket's timeout does not cover it, and a resolver that does not
    answer holds the lookup for as long as its own settings say: it is left to finish in a
    daemon thread)."""
    import threading

    opened: list[bool] = []
    thread = threading.Thread(target=lambda: opened.append(_connects(url, timeout)), daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(opened) and opened[0]


def _connects(url: str, timeout: float) -> bool:
    import socket
    from urllib.parse import urlparse

    parts = urlparse(url)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        with socket.create_connection((parts.hostname or "", port), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


def _torchvision_files(source: _TorchvisionSource, root: Path) -> tuple[list[Path], list[Path], str]:
    """``(extracted files, archives, download URL)`` torchvision's class reads under ``root``."""
    import torchvision.datasets

    cls = getattr(torchvision.datasets, source.cls)
    if hasattr(cls, "train_list"):  # CIFAR-10 and CIFAR-100
        folder = root / cls.base_folder
        files = [folder / name for name, _ in (*cls.train_list, *cls.test_list)]
        return files, [root / cls.filename], cls.url
    raw = root / source.cls / "raw"  # MNIST and Fashion-MNIST
    archives = [raw / name for name, _ in cls.resources]
    return [a.with_suffix("") for a in archives], archives, cls.mirrors[0]


def _check_torchvision(name: str, root: str | Path | None, download: bool) -> None:
    """The files are under ``root``, or can be downloaded there; reads and writes nothing."""
    source = _TORCHVISION[name]
    folder = user_path(root, path="root") if root is not None else default_root()
    files, archives, url = _torchvision_files(source, folder)
    if all(f.is_file() for f in files) or (download and all(a.is_file() for a in archives)):
        return
    if not download:
        raise ConfigError(f"{name}: files not found under {folder}; put {source.files} there "
                          "(or allow download when online)", path="root")
    if offline() or not _reachable(url):
        why = "NAS_OFFLINE is set" if offline() else f"{url.split('/')[2]} cannot be reached; offline?"
        raise ConfigError(f"{name}: files not found under {folder} and cannot be downloaded ({why}); "
                          f"put {source.files} there", path="root")


def _register_torchvision(name: str) -> None:
    def loader(*, root: str | Path | None = None, download: bool = True) -> RawData:
        return _load_torchvision(name, root, download)

    def check(*, root: str | Path | None = None, download: bool = True) -> None:
        _check_torchvision(name, root, download)

    loader.__name__ = f"load_{name}"
    loader.__doc__ = (
        f"torchvision's {_TORCHVISION[name].cls} read from ``root`` (default "
        f":func:`default_root`), downloaded there when missing and ``download`` is true."
    )
    register_dataset(name, check=check)(loader)


for _name in _TORCHVISION:
    _register_torchvision(_name)


#: The most bytes the synthetic source makes (4 GiB) of images (uint8), and apart of class
#: templates (one float32 image a class).
MAX_SYNTHETIC_BYTES = 4 << 30
_SYNTHETIC_CHUNK = 1 << 22  # pixel values made at a time (16 MiB a float32 copy)


def _check_synthetic(*, num_images: int = 4096, num_classes: int = 10,
                     shape: tuple[int, int, int] | list[int] = (3, 32, 32), test_images: int = 0,
                     noise: float = 48.0, data_seed: int = 0) -> None:
    if len(shape) != 3 or any(not isinstance(s, int) or s < 1 for s in shape):
        raise ConfigError(f"must be three positive integers (C, H, W), got {shape!r}", path="shape")
    for key, value in (("num_images", num_images), ("num_classes", num_classes)):
        if value < 1:
            raise ConfigError(f"must be a positive integer, got {value!r}", path=key)
    _checks.seed(data_seed, path="data_seed")
    pixels = shape[0] * shape[1] * shape[2]
    size = (num_images + test_images) * pixels
    if size > MAX_SYNTHETIC_BYTES:
        raise ConfigError(f"{num_images + test_images} images of {list(shape)} are {size:,} bytes; "
                          f"at most {MAX_SYNTHETIC_BYTES:,}", path="num_images")
    templates = num_classes * pixels * 4  # one float32 template a class
    if num_classes > MAX_CLASSES or templates > MAX_SYNTHETIC_BYTES:
        raise ConfigError(f"{num_classes:,} class templates of {list(shape)} are {templates:,} bytes; "
                          f"at most {MAX_CLASSES:,} classes and {MAX_SYNTHETIC_BYTES:,} bytes",
                          path="num_classes")


@register_dataset("synthetic", check=_check_synthetic)
def load_synthetic(
    *,
    num_images: int = 4096,
    num_classes: int = 10,
    shape: tuple[int, int, int] | list[int] = (3, 32, 32),
    test_images: int = 0,
    noise: float = 48.0,
    data_seed: int = 0,
) -> RawData:
    """Seeded, learnable random images for benchmarks and tests.

    Every class has a smooth random template; an image is its class template shifted by up
    to an eighth of the image and plus Gaussian pixel noise of standard deviation ``noise``
    (0..255 scale). ``test_images`` more images form an official test split. The images and
    the templates are each bounded by :data:`MAX_SYNTHETIC_BYTES`, the classes by
    :data:`~nas.data._dataset.MAX_CLASSES`; ``data_seed`` is a 32-bit seed.
    """
    _check_synthetic(num_images=num_images, num_classes=num_classes, shape=shape,
                     test_images=test_images, noise=noise, data_seed=data_seed)
    c, h, w = shape
    generator = torch.Generator().manual_seed(data_seed)
    coarse = torch.rand(num_classes, c, max(2, h // 8), max(2, w // 8), generator=generator)
    templates = F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=False) * 255
    total = num_images + test_images
    labels = torch.randint(0, num_classes, (total,), generator=generator)
    shifts = torch.randint(-(h // 8), h // 8 + 1, (total, 2), generator=generator)
    pixels = torch.empty((total, c, h, w), dtype=torch.uint8)
    # in chunks of images, so the float32 work (a few copies) is bounded by a chunk, not by the
    # data set: one draw over all images needed ~16 bytes a pixel beside the 1 kept. Chunks
    # of a multiple of 16 values, the last of at least 16, draw the noise one call draws.
    unit = 16 // math.gcd(c * h * w, 16)  # the fewest images of a multiple of 16 values
    step = max(unit, _SYNTHETIC_CHUNK // (c * h * w) // unit * unit)
    bounds = [*range(0, total, step), total]
    if len(bounds) > 2 and (total - bounds[-2]) * c * h * w < 16:
        del bounds[-2]
    for start, end in zip(bounds, bounds[1:]):
        part = slice(start, end)
        rows = (torch.arange(h) + shifts[part, :1]).clamp(0, h - 1)
        cols = (torch.arange(w) + shifts[part, 1:]).clamp(0, w - 1)
        index = torch.arange(len(rows))[:, None, None]
        shifted = templates[labels[part]].permute(0, 2, 3, 1)[index, rows[:, :, None], cols[:, None, :]]
        images = torch.randn((len(rows), c, h, w), generator=generator).mul_(noise)
        images += shifted.permute(0, 3, 1, 2)
        pixels[part] = images.round_().clamp_(0, 255)
    return RawData(
        images=pixels[:num_images],
        labels=labels[:num_images],
        num_classes=num_classes,
        flip=True,
        test_images=pixels[num_images:] if test_images else None,
        test_labels=labels[num_images:] if test_images else None,
    )
