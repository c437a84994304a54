"""What a trained model expects of its input: resolution, normalisation and class names.

A :class:`Preprocessing` travels with every set of trained weights (kept search trials,
``nas train --out``, ``nas retrain``) as a small JSON file, and goes inside exported graphs:
:class:`Normalized` wraps a model so that it takes images as users have them (float in
[0, 1], NCHW) and applies the training normalisation itself.

JSON layout (``format`` 1)::

    {"format": 1, "input": [C, H, W], "mean": [...], "std": [...],
     "classes": ["airplane", ...], "dataset": "folder", "value_range": [0, 1], "layout": "NCHW"}

Knows nothing about genotypes or search.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nas.errors import ConfigError
from nas.io import atomic_write_text

__all__ = ["FILE_NAME", "Normalized", "Preprocessing", "class_names"]

#: The file name used next to weights (``preprocessing.json``).
FILE_NAME = "preprocessing.json"
_FORMAT = 1


def class_names(data: Any) -> tuple[str, ...]:
    """The class names of a dataset, or ``"0"``, ``"1"``, ... when its source has none."""
    names = getattr(data, "classes", None)
    if names and not isinstance(names, int) and len(names) == data.num_classes:
        return tuple(str(n) for n in names)
    return tuple(str(i) for i in range(data.num_classes))


@dataclass(frozen=True)
class Preprocessing:
    """Input contract of a trained model.

    Attributes:
        input_shape: ``(C, H, W)`` the model was trained at.
        mean, std: Per-channel statistics on the 0..1 scale; the model sees
            ``(image - mean) / std``.
        classes: Class names, index = output logit.
        dataset: The dataset's name, for reports.
    """

    input_shape: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    classes: tuple[str, ...]
    dataset: str = ""

    def __post_init__(self) -> None:
        channels = self.input_shape[0]
        if len(self.mean) != channels or len(self.std) != channels:
            raise ConfigError(f"mean and std need {channels} values each", path="preprocessing")
        if any(s <= 0 for s in self.std):
            raise ConfigError("std values must be positive", path="preprocessing.std")

    @classmethod
    def from_dataset(cls, data: Any) -> Preprocessing:
        """The contract of a model trained on ``data`` (a :class:`nas.data.Dataset`)."""
        return cls(input_shape=tuple(data.input_shape), mean=tuple(data.mean),
                   std=tuple(data.std), classes=class_names(data), dataset=str(data.name))

    def to_dict(self) -> dict[str, Any]:
        return {"format": _FORMAT, "input": list(self.input_shape), "mean": list(self.mean),
                "std": list(self.std), "classes": list(self.classes), "dataset": self.dataset,
                "value_range": [0, 1], "layout": "NCHW"}

    @classmethod
    def from_dict(cls, data: Any, *, file: str | None = None) -> Preprocessing:
        """Inverse of :meth:`to_dict`. Raises :class:`ConfigError` naming the bad key."""
        if not isinstance(data, dict):
            raise ConfigError("must be a JSON object", file=file)
        for key in ("input", "mean", "std", "classes"):
            if not isinstance(data.get(key), list):
                raise ConfigError(f"missing or not a list: {key!r}", file=file, path=key)
        from nas._checks import number

        if len(data["input"]) != 3:
            raise ConfigError(f"expected [C, H, W], got {data['input']!r}", file=file, path="input")
        shape = [number(v, file=file, path=f"input[{i}]", low=1, integer=True)
                 for i, v in enumerate(data["input"])]
        mean, std = ([number(v, file=file, path=f"{key}[{i}]") for i, v in enumerate(data[key])]
                     for key in ("mean", "std"))
        for i, name in enumerate(data["classes"]):
            if not isinstance(name, str):  # str() made {'a': 1} a class name
                raise ConfigError(f"must be a class name (a string), got {type(name).__name__}",
                                  file=file, path=f"classes[{i}]")
        try:
            return cls(input_shape=tuple(shape), mean=tuple(map(float, mean)),  # type: ignore[arg-type]
                       std=tuple(map(float, std)), classes=tuple(data["classes"]),
                       dataset=str(data.get("dataset", "")))
        except ConfigError as error:
            raise error.located(file=file) from None

    def write(self, path: str | Path, **extra: Any) -> Path:
        """Write the JSON (plus ``extra`` keys) atomically; returns ``path``."""
        atomic_write_text(path, json.dumps(self.to_dict() | extra, indent=2) + "\n")
        return Path(path)

    @classmethod
    def read(cls, path: str | Path) -> Preprocessing:
        """Read a file written by :meth:`write`. Raises :class:`ConfigError`."""
        from nas.io import read_json_object

        data, why = read_json_object(path)
        if data is None:
            raise ConfigError(f"cannot read: {why or 'file not found'}", file=str(path))
        return cls.from_dict(data, file=str(path))

    def metadata(self) -> dict[str, str]:
        """String key-value pairs for ONNX ``metadata_props``."""
        return {"nas.classes": json.dumps(list(self.classes)),
                "nas.mean": json.dumps(list(self.mean)),
                "nas.std": json.dumps(list(self.std)),
                "nas.input": json.dumps(list(self.input_shape)),
                "nas.value_range": "[0, 1]", "nas.layout": "NCHW",
                "nas.dataset": self.dataset}


class Normalized(nn.Module):
    """``model`` behind its training normalisation: takes float images in [0, 1] (NCHW) and
    returns ``model``'s logits on ``(x - mean) / std``. Shares ``model``'s weights (no copy).
    """

    def __init__(self, model: nn.Module, preprocessing: Preprocessing):
        super().__init__()
        self.model = model
        shape = (1, len(preprocessing.mean), 1, 1)
        self.register_buffer("mean", torch.tensor(preprocessing.mean).view(shape))
        self.register_buffer("inv_std", 1.0 / torch.tensor(preprocessing.std).view(shape))

    def forward(self, x: torch.Tensor) -> Any:
        return self.model((x - self.mean) * self.inv_std)
