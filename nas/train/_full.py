"""Full training into a folder: checkpoints, metrics CSV, final weights and a result file.

Layout of ``out``:

- ``checkpoint.pt``: model, optimizer, schedule and RNG states after the last finished epoch
  (``state_dict`` data only; read back with ``torch.load(weights_only=True)``);
- ``metrics.csv``: one row per finished epoch (:class:`EpochRecord` fields);
- ``model.pth``: the trained model's ``state_dict``;
- ``result.json``: the :class:`TrainResult` as JSON;
- ``train.json``: the :class:`TrainConfig` it was trained with (``TrainConfig.from_dict`` reads
  it back);
- ``preprocessing.json``: input shape, normalisation (mean, std) and class names the model
  was trained with (:class:`nas.preprocessing.Preprocessing`): a model loaded from
  ``model.pth`` expects ``(image - mean) / std``, or wrap it in
  :class:`nas.preprocessing.Normalized` to feed images in [0, 1].

Every file is written atomically, so a killed run leaves the last finished epoch behind and
``resume=True`` continues from it.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from torch import nn

from nas.data import Dataset
from nas.errors import ConfigError
from nas.io import atomic_write_text
from nas.preprocessing import FILE_NAME as PREPROCESSING
from nas.preprocessing import Preprocessing
from nas.train._config import TrainConfig
from nas.train._io import save_checkpoint, write_history_csv
from nas.train._loop import train_model
from nas.train._result import TrainResult

__all__ = ["CHECKPOINT", "CONFIG", "METRICS", "PREPROCESSING", "WEIGHTS", "RESULT", "train_to_folder"]

CHECKPOINT, METRICS, WEIGHTS, RESULT = "checkpoint.pt", "metrics.csv", "model.pth", "result.json"
CONFIG = "train.json"


def train_to_folder(
    model: nn.Module,
    data: Dataset,
    config: TrainConfig,
    out: str | Path,
    *,
    resume: bool = False,
    progress: bool = True,
) -> TrainResult:
    """Train ``model`` with :func:`train_model`, keeping everything in ``out`` (see above).

    Raises:
        ConfigError: ``out`` already holds a checkpoint and ``resume`` is false (so a finished
            run is never overwritten by accident), or the checkpoint does not match.
    """
    folder = Path(out)
    checkpoint = folder / CHECKPOINT
    if checkpoint.exists() and not resume:
        raise ConfigError(
            f"{checkpoint} exists; resume it (--resume) or choose another output folder", path="out"
        )
    folder.mkdir(parents=True, exist_ok=True)
    Preprocessing.from_dataset(data).write(folder / PREPROCESSING)
    atomic_write_text(folder / CONFIG, json.dumps(dataclasses.asdict(config), indent=2) + "\n")
    result = train_model(
        model,
        data,
        config,
        checkpoint=checkpoint,
        resume=resume,
        on_epoch=lambda history: write_history_csv(folder / METRICS, history),
        progress=progress,
    )
    save_checkpoint(folder / WEIGHTS, model.state_dict())
    atomic_write_text(folder / RESULT, json.dumps(result.to_dict(), indent=2) + "\n")
    return result
