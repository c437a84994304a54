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
from nas.weights import MAX_TORCH_FILE_BYTES, check_tensors, load_torch_file

__all__ = ["checkpoint_history", "load_checkpoint", "save_checkpoint", "write_history_csv"]

#: The entries a training checkpoint needs to resume, and the type each must have.
_RESUME_ENTRIES: dict[str, type] = {
    "model": dict, "optimizer": dict, "schedule": dict, "history": list,
    "loader_rng": torch.Tensor, "torch_rng": torch.Tensor,
}
#: Entries that older checkpoints may lack, and their types.
_OPTIONAL_ENTRIES: dict[str, type] = {"config": dict, "step_losses": list}


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


def checkpoint_history(state: Mapping[str, Any], *, file: str,
                       like: Mapping[str, torch.Tensor] | None = None) -> list[EpochRecord]:
    """The epochs of a loaded checkpoint after checking every entry resuming reads: the
    entries of :data:`_RESUME_ENTRIES` present with their types, the model's tensors dense,
    finite and of the dtype kinds of ``like`` (the model's ``state_dict``, when given;
    :func:`nas.weights.check_tensors`), ``config`` and ``step_losses`` of their types when
    present, each ``history`` entry a dict of
    :class:`EpochRecord` fields (integers ``epoch`` and ``steps``, finite numbers, ``val_loss``
    a number or None) and each step loss a number.

    Raises:
        ConfigError: naming ``file`` and the key path (``history[0].val_accuracy``).
    """
    from nas import _checks

    for key, kind in (*_RESUME_ENTRIES.items(), *_OPTIONAL_ENTRIES.items()):
        if key not in state:
            if key in _RESUME_ENTRIES:
                raise ConfigError("missing (not a checkpoint nas train wrote)", file=file, path=key)
        elif not isinstance(state[key], kind):
            raise ConfigError(f"expected a {kind.__name__}, got {type(state[key]).__name__}",
                              file=file, path=key)
    check_tensors(state["model"], file=file, path="model.", like=like)
    for i, value in enumerate(state.get("step_losses", ())):
        if not isinstance(value, float):  # NaN is a real step loss: the epoch then stopped
            _checks.number(value, file=file, path=f"step_losses[{i}]")
    fields = {f.name: f for f in dataclasses.fields(EpochRecord)}
    records = []
    for i, entry in enumerate(state["history"]):
        where = f"history[{i}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"expected a dict, got {type(entry).__name__}", file=file, path=where)
        _checks.known_keys(entry, fields, path=where, file=file)
        for name, field in fields.items():
            if name not in entry:
                if field.default is dataclasses.MISSING:
                    raise ConfigError("missing", file=file, path=f"{where}.{name}")
            elif not (name == "val_loss" and (entry[name] is None or isinstance(entry[name], float))):
                _checks.number(entry[name], file=file, path=f"{where}.{name}",
                               integer=name in ("epoch", "steps"))
        records.append(EpochRecord(**entry))
    return records


def write_history_csv(path: str | Path, history: Sequence[EpochRecord]) -> None:
    """Write one row per epoch (the :class:`EpochRecord` fields as columns) atomically."""
    text = io.StringIO()
    columns = [f.name for f in dataclasses.fields(EpochRecord)]
    writer = csv.DictWriter(text, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for record in history:
        writer.writerow(dataclasses.asdict(record))
    atomic_write_text(path, text.getvalue())
