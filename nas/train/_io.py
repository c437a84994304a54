"""Checkpoints and metrics on disk, written atomically (see :mod:`nas.io`).

A killed process leaves either the previous file or the new one, never half of one.
"""

from __future__ import annotations

import csv
import dataclasses
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from nas.errors import ConfigError
from nas.io import atomic_write_bytes, atomic_write_text
from nas.train._result import EpochRecord
from nas.weights import MAX_TORCH_FILE_BYTES, load_torch_file

__all__ = ["load_checkpoint", "save_checkpoint", "write_history_csv"]


def save_checkpoint(path: str | Path, state: Mapping[str, Any]) -> None:
    """Save ``state`` (tensors, numbers, strings, lists and dicts only) atomically."""
    buffer = io.BytesIO()
    torch.save(dict(state), buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(path: str | Path, *, max_bytes: int = MAX_TORCH_FILE_BYTES) -> dict[str, Any]:
    """Load a checkpoint with ``torch.load(weights_only=True)``: no code is run
    (:func:`nas.weights.load_torch_file`; a file over ``max_bytes`` is refused unread).

    Raises:
        ConfigError: one line naming the file: missing, not a regular file, too large, or
            not a checkpoint (a pickle that would run code, a truncated or foreign file).
    """
    state = load_torch_file(path, max_bytes=max_bytes, what="a checkpoint")
    if not isinstance(state, dict):
        raise ConfigError("not a checkpoint (expected a dict)", file=str(path))
    return state


def write_history_csv(path: str | Path, history: Sequence[EpochRecord]) -> None:
    """Write one row per epoch (the :class:`EpochRecord` fields as columns) atomically."""
    text = io.StringIO()
    columns = [f.name for f in dataclasses.fields(EpochRecord)]
    writer = csv.DictWriter(text, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for record in history:
        writer.writerow(dataclasses.asdict(record))
    atomic_write_text(path, text.getvalue())
