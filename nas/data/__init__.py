"""Datasets as tensors and a device-resident, on-device-augmented batch pipeline.

``load_dataset(name, **options)`` returns a :class:`Dataset` (uint8 train / validation
splits on the CPU, with class names and channel statistics); ``dataset.to(device)`` moves it;
:class:`DeviceLoader` yields augmented, normalised batches without leaving the device.
Knows nothing about genotypes or training.

The protocol: by default (``val_split="holdout"``) the validation split is a seeded,
stratified part of the training images and the test split is not loaded, which is what a
search selects on; ``val_split="test"`` gives the whole training split and the test split
as ``val_*`` (``dataset.val_split == "test"``), for retraining and the final figures;
:func:`retrain_options` turns a search's dataset options into those.

Example:
    >>> from nas.data import load_dataset, DeviceLoader
    >>> data = load_dataset("digits", resolution=16)
    >>> loader = DeviceLoader(data.train_images, data.train_labels, batch_size=64,
    ...                       mean=data.mean, std=data.std, shuffle=True, crop_padding=2)
    >>> x, y = next(iter(loader))
    >>> tuple(x.shape), x.dtype
    ((64, 1, 16, 16), torch.float32)
"""

from __future__ import annotations

from nas.data import _files, _folder, _sources  # noqa: F401  (register the built-in sources)
from nas.data._dataset import Dataset, RawData, stratified_order
from nas.data._files import read_idx
from nas.data._pipeline import DeviceLoader
from nas.data._registry import (
    check_dataset,
    check_dataset_options,
    dataset_names,
    load_dataset,
    register_dataset,
    retrain_options,
)
from nas.data._sources import default_root

__all__ = [
    "Dataset",
    "DeviceLoader",
    "RawData",
    "check_dataset",
    "check_dataset_options",
    "dataset_names",
    "default_root",
    "load_dataset",
    "read_idx",
    "register_dataset",
    "retrain_options",
    "stratified_order",
]
