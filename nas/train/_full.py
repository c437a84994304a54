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
  :class:`nas.preprocessing.Normalized` to feed images in [0, 1];
- the caller's own ``files`` (``nas train``: ``genotype.yaml``).

Every file is written atomically, so a killed run leaves the last finished epoch behind and
``resume=True`` continues from it.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path

from torch import nn

from nas._yaml import read_bounded
from nas.data import Dataset
from nas.errors import ConfigError
from nas.io import atomic_write_text
from nas.preprocessing import FILE_NAME as PREPROCESSING
from nas.preprocessing import Preprocessing
from nas.train._config import TrainConfig, resolve_device
from nas.train._io import save_checkpoint, write_history_csv
from nas.train._loop import check_training, train_model
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
    files: Mapping[str, str] | None = None,
) -> TrainResult:
    """Train ``model`` with :func:`train_model`, keeping everything in ``out`` (see above).

    ``files``: more files of the run, name -> text (``nas train`` passes its
    ``genotype.yaml``), written before training. Resuming checks that the folder's
    ``preprocessing.json`` and these files say what they say now, and rewrites ``train.json``
    only once the checkpoint has accepted the config, so a refused resume changes nothing.

    Raises:
        ConfigError: before anything is written: the config's device is not available
            (:func:`resolve_device`), ``out`` already holds a checkpoint and ``resume`` is
            false (so a finished run is never overwritten by accident), or the checkpoint does
            not match: another config, model, data (its normalisation, input shape or class
            names) or ``files``; a model built from a genotype that does not fit ``data``.
        TypeError: an argument of another type (:func:`~nas.train._loop.check_training`).
    """
    check_training(model, data, config)
    resolve_device(config.device)
    folder = Path(out)
    checkpoint = folder / CHECKPOINT
    if checkpoint.exists() and not resume:
        raise ConfigError(
            f"{checkpoint} exists; resume it (--resume) or choose another output folder", path="out"
        )
    preprocessing = Preprocessing.from_dataset(data)
    files = dict(files or {})
    resuming = checkpoint.exists()
    if resuming:
        _check_same_run(folder, preprocessing, files)
    folder.mkdir(parents=True, exist_ok=True)
    preprocessing.write(folder / PREPROCESSING)
    for name, text in files.items():
        atomic_write_text(folder / name, text)
    if not resuming:
        _write_config(folder, config)
    result = train_model(
        model,
        data,
        config,
        checkpoint=checkpoint,
        resume=resume,
        on_epoch=lambda history: write_history_csv(folder / METRICS, history),
        progress=progress,
    )
    if resuming:  # the checkpoint took the config: what may change on resume (time limit, ...) did
        _write_config(folder, config)
    save_checkpoint(folder / WEIGHTS, model.state_dict())
    atomic_write_text(folder / RESULT, json.dumps(result.to_dict(), indent=2) + "\n")
    return result


def _write_config(folder: Path, config: TrainConfig) -> None:
    atomic_write_text(folder / CONFIG, json.dumps(dataclasses.asdict(config), indent=2) + "\n")


def _check_same_run(folder: Path, preprocessing: Preprocessing, files: Mapping[str, str]) -> None:
    """Raise :class:`ConfigError` unless ``folder``'s preprocessing and ``files`` (those it
    holds) are these."""
    saved = folder / PREPROCESSING
    if saved.exists() and Preprocessing.read(saved) != preprocessing:
        raise ConfigError(
            "the checkpoint was trained on other data (its normalisation, input shape or class names "
            "differ): resume with the same dataset options",
            file=str(saved),
        )
    for name, text in files.items():
        path = folder / name
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            continue
        except OSError as error:
            raise ConfigError(f"cannot read: {error.strerror or error}", file=str(path)) from None
        expected = text.encode()
        # a file of another size differs unread; else read_bounded (a FIFO never blocks it)
        if size != len(expected) or read_bounded(path, limit=len(expected), error=ConfigError) != expected:
            raise ConfigError(f"the checkpoint was trained with another {name}: resume with the same one",
                              file=str(path))
