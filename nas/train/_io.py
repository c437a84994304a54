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

from nas import _checks
from nas.errors import ConfigError
from nas.io import atomic_write_bytes, atomic_write_text
from nas.train._result import EpochRecord
from nas.weights import MAX_TORCH_FILE_BYTES, check_tensors, load_torch_file

__all__ = ["check_training_state", "checkpoint_history", "load_checkpoint", "save_checkpoint",
           "write_history_csv"]

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
    a number or None), the ``i``-th with ``epoch`` ``i + 1``, and each step loss a number.

    Raises:
        ConfigError: naming ``file`` and the key path (``history[0].val_accuracy``).
    """
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
        if entry["epoch"] != i + 1:  # resuming starts at len(history) + 1
            raise ConfigError(f"must be {i + 1} (the epochs are recorded in order from 1), got "
                              f"{entry['epoch']!r}", file=file, path=f"{where}.epoch")
        records.append(EpochRecord(**entry))
    return records


def check_training_state(state: Mapping[str, Any], *, file: str, optimizer: torch.optim.Optimizer,
                         schedule: Any) -> None:
    """Check a checkpoint's ``optimizer`` and ``schedule`` entries against the ones this
    training would write, before torch loads them (torch checks only the number and sizes of
    the parameter groups: a momentum buffer of another shape crashed the process in the fused
    SGD step, a text learning rate or a schedule entry naming ``optimizer`` (which
    ``LambdaLR.load_state_dict`` sets as an attribute) was an exception deep in the step).

    The parameter groups and the schedule must have no key but those of ``optimizer``'s and
    ``schedule``'s own ``state_dict``, with values of the same kinds (:func:`_check_like`);
    each ``optimizer.state`` entry must name a parameter of the groups and hold, per name,
    ``None``, a finite number, or a dense finite floating-point tensor of that parameter's
    shape or a scalar (:func:`nas.weights.check_tensors`).

    Raises:
        ConfigError: naming ``file`` and the key path (``optimizer.state[0].momentum_buffer``).
    """
    saved, ours = state["optimizer"], optimizer.state_dict()
    for key in ("state", "param_groups"):
        if key not in saved:
            raise ConfigError("missing (not a checkpoint nas train wrote)", file=file, path=f"optimizer.{key}")
    _check_like(saved, {"state": {}, "param_groups": ours["param_groups"]}, file=file,
                path="optimizer", open_keys=("optimizer.state",))
    params = {pid: param for saved_group, group in zip(saved["param_groups"], optimizer.param_groups)
              for pid, param in zip(saved_group["params"], group["params"])}
    for pid, entry in saved["state"].items():
        where = f"optimizer.state[{pid!r}]"
        if pid not in params:
            raise ConfigError("names no parameter of the optimizer's param_groups", file=file, path=where)
        if not isinstance(entry, dict):
            raise ConfigError(f"expected a dict, got {type(entry).__name__}", file=file, path=where)
        for name, value in entry.items():
            if not isinstance(name, str):
                raise ConfigError(f"expected text keys, got {name!r}", file=file, path=where)
            if isinstance(value, torch.Tensor):
                like = params[pid] if value.dim() else torch.zeros(())
                check_tensors({name: value}, file=file, path=f"{where}.", like={name: like.detach()})
            elif value is not None:
                _checks.number(value, file=file, path=f"{where}.{name}")
    _check_like(state["schedule"], schedule.state_dict(), file=file, path="schedule")


def _check_like(value: Any, like: Any, *, file: str, path: str, open_keys: tuple[str, ...] = ()) -> None:
    """``value`` has the structure of ``like`` (plain data from a ``state_dict``): a dict with
    no key ``like`` lacks (a missing one keeps the current value: torch fills in the options
    an older version did not save; the dicts at ``open_keys`` paths are only dicts), a list
    or tuple of the same length, a bool or ``None`` where ``like`` has either (a flag such as ``fused`` differs by
    device), an integer where an integer, a finite number where a float, text where text, a
    tensor of the same shape and kind (:func:`nas.weights.check_tensors`); recursively.

    Raises:
        ConfigError: naming ``file`` and the path of the first value that differs.
    """
    def fail(expected: str) -> ConfigError:
        return ConfigError(f"expected {expected}, got {type(value).__name__}", file=file, path=path)

    if isinstance(like, dict):
        if not isinstance(value, dict):
            raise fail("a dict")
        if path in open_keys:
            return
        _checks.known_keys(value, like, path=path, file=file)
        for key, item in like.items():
            if key in value:
                _check_like(value[key], item, file=file, path=f"{path}.{key}", open_keys=open_keys)
    elif isinstance(like, (list, tuple)):
        if not isinstance(value, (list, tuple)):
            raise fail(f"a list of {len(like)}")
        if len(value) != len(like):
            raise ConfigError(f"expected a list of {len(like)}, got {len(value)} items", file=file, path=path)
        for i, (item, own) in enumerate(zip(value, like)):
            _check_like(item, own, file=file, path=f"{path}[{i}]", open_keys=open_keys)
    elif like is None or isinstance(like, bool):
        if value is not None and not isinstance(value, bool):
            raise fail("true, false or null")
    elif isinstance(like, int):
        _checks.number(value, file=file, path=path, integer=True)
    elif isinstance(like, float):
        _checks.number(value, file=file, path=path)
    elif isinstance(like, str):
        if not isinstance(value, str):
            raise fail("text")
    elif isinstance(like, torch.Tensor):
        if not isinstance(value, torch.Tensor):
            raise fail("a tensor")
        head, _, key = path.rpartition(".")
        check_tensors({key: value}, file=file, path=f"{head}." if head else "", like={key: like})


def write_history_csv(path: str | Path, history: Sequence[EpochRecord]) -> None:
    """Write one row per epoch (the :class:`EpochRecord` fields as columns) atomically."""
    text = io.StringIO()
    columns = [f.name for f in dataclasses.fields(EpochRecord)]
    writer = csv.DictWriter(text, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for record in history:
        writer.writerow(dataclasses.asdict(record))
    atomic_write_text(path, text.getvalue())
