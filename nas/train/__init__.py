"""Proxy and full training of one model on one dataset, and measured latency.

``train_model(model, data, config, report=...)`` trains in place and returns a
:class:`TrainResult` whose ``status`` says how it ended (``completed``, ``pruned``,
``nan_loss``, ``oom``, ``timeout``); failures a search must survive are statuses, not
exceptions. ``measure_latency`` times forward passes. Chooses no architectures and imports
no Optuna: a search wraps its trial's ``report`` / ``should_prune`` into ``report``.

Example:
    >>> from nas.data import load_dataset
    >>> from nas.train import TrainConfig, train_model
    >>> result = train_model(model, load_dataset("digits"), TrainConfig(epochs=5, lr=0.05))
    >>> result.status, result.best_val_accuracy  # doctest: +SKIP
"""

from __future__ import annotations

from nas.train._config import TrainConfig, resolve_device
from nas.train._full import train_to_folder
from nas.train._io import load_checkpoint, save_checkpoint, write_history_csv
from nas.train._latency import measure_latency
from nas.train._loop import ReportFn, evaluate, is_out_of_memory, native_bf16, train_model
from nas.train._optim import make_optimizer, make_schedule, schedule_factor
from nas.train._result import EpochRecord, Status, TrainResult

__all__ = [
    "EpochRecord",
    "ReportFn",
    "Status",
    "TrainConfig",
    "TrainResult",
    "evaluate",
    "is_out_of_memory",
    "load_checkpoint",
    "make_optimizer",
    "make_schedule",
    "native_bf16",
    "measure_latency",
    "resolve_device",
    "save_checkpoint",
    "schedule_factor",
    "train_model",
    "train_to_folder",
    "write_history_csv",
]
