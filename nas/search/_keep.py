"""Which trials keep their trained weights, within a disk budget.

A search keeps the weights of its best trials next to their genotype::

    trials/NNNN/weights.pth    the trained model's state_dict (torch.load(weights_only=True))
    trials/NNNN/weights.json   input shape, mean, std, class names (nas.preprocessing), plus
                               trial, objectives, values and bytes of the weights file

The weights are those of the trial's best epoch (:class:`BestEpoch`), whose validation
accuracy is the trial's ``val_accuracy``. The kept set is, by default, the Pareto set over the run's objectives (several objectives)
or the top ``top`` trials (one objective); ties go to the earlier trial. Within that set,
ranked by the first objective, trials are kept while their files fit in ``max_mb``. When a
trial finishes training, :meth:`WeightKeeper.offer` decides under a file lock in the run
folder (safe with several worker processes on one machine): the new trial's weights are
written if it belongs to the new kept set, and the files of trials that fell out are deleted.

The kept set is computed from the ``weights.json`` files alone (no storage query): the top
``k`` (or the Pareto set) of all trials offered so far is the top ``k`` (or Pareto set) of the
previous kept set plus the new trial, so the files on disk are always the answer. Writes are
atomic (weights first, ``weights.json`` last: a folder counts as kept only once both exist);
deletion removes ``weights.json`` first. Workers on other machines (an RDB storage with
separate run folders) each keep their own folder's best trials.

Config key ``keep_weights`` (run config)::

    keep_weights: {select: auto, top: 3, max_mb: 200}   # the defaults; auto = pareto with
                                                        # several objectives, else top
    keep_weights: false                                 # keep none
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nas import _checks
from nas.errors import ConfigError
from nas.io import atomic_write_bytes, read_json_object

if TYPE_CHECKING:
    from torch import nn

    from nas.preprocessing import Preprocessing

__all__ = ["BestEpoch", "KeepPolicy", "WEIGHTS", "WEIGHTS_JSON", "WeightKeeper", "kept_weights", "parse_keep"]

WEIGHTS, WEIGHTS_JSON = "weights.pth", "weights.json"
_SELECT = ("auto", "top", "pareto")
_LOCK = ".weights.lock"


@dataclass(frozen=True)
class KeepPolicy:
    """Which trials keep weights: ``select`` (auto, top, pareto), ``top`` (how many for
    ``top``) and ``max_mb`` (disk budget for all kept weights of the run folder)."""

    select: str = "auto"
    top: int = 3
    max_mb: float = 200.0

    def mode(self, objectives: Sequence[str]) -> str:
        if self.select != "auto":
            return self.select
        return "pareto" if len(objectives) > 1 else "top"

    def describe(self, objectives: Sequence[str]) -> str:
        what = (f"the Pareto set over {', '.join(objectives)}" if self.mode(objectives) == "pareto"
                else f"the top {self.top} by {objectives[0]}")
        return f"{what}, within {self.max_mb:g} MB"


def parse_keep(value: Any, *, file: str) -> KeepPolicy | None:
    """Validate the ``keep_weights`` config value; ``None``/missing -> defaults, false -> None.

    Raises:
        ConfigError: a bad value, naming ``keep_weights.KEY``.
    """
    if value is None or value is True:
        return KeepPolicy()
    if value is False:
        return None
    if not isinstance(value, Mapping):
        raise ConfigError("must be false or a mapping with select, top, max_mb", file=file,
                          path="keep_weights")
    _checks.known_keys(value, ("select", "top", "max_mb"), path="keep_weights", file=file)
    select = value.get("select", "auto")
    if select not in _SELECT:
        raise ConfigError(f"must be one of {', '.join(_SELECT)}, got {select!r}", file=file,
                          path="keep_weights.select")
    top = value.get("top", 3)
    if not isinstance(top, int) or isinstance(top, bool) or top < 1:
        raise ConfigError(f"must be an integer >= 1, got {top!r}", file=file, path="keep_weights.top")
    max_mb = value.get("max_mb", 200.0)
    if isinstance(max_mb, bool) or not isinstance(max_mb, (int, float)) or not 0 < max_mb < float("inf"):
        raise ConfigError(f"must be a positive number of megabytes, got {max_mb!r}", file=file,
                          path="keep_weights.max_mb")
    return KeepPolicy(select=select, top=top, max_mb=float(max_mb))


def kept_weights(folder: str | Path) -> Path | None:
    """A trial folder's ``weights.pth`` if its weights are kept (both files exist), else None.

    Raises:
        ConfigError: either file is there but is not a regular file (a folder, a FIFO, a
            broken or looping link): damage, not "no weights kept".
    """
    folder = Path(folder)
    for name in (WEIGHTS, WEIGHTS_JSON):
        path = folder / name
        if os.path.lexists(path) and not path.is_file():
            raise ConfigError("damaged: not a regular file", file=str(path))
    if (folder / WEIGHTS).is_file() and (folder / WEIGHTS_JSON).is_file():
        return folder / WEIGHTS
    return None


class BestEpoch:
    """An ``on_epoch`` callback for :func:`nas.train.train_model` that keeps a CPU copy of the
    model's weights after its best epoch (highest validation accuracy, earliest on ties): the
    weights whose accuracy the trial reports."""

    def __init__(self, model: nn.Module):
        self.model, self.accuracy = model, -1.0
        self.state: dict[str, Any] | None = None

    def __call__(self, history: Sequence[Any]) -> None:
        accuracy = history[-1].val_accuracy
        if accuracy > self.accuracy:
            self.accuracy = accuracy
            self.state = {k: v.detach().to("cpu", copy=True).contiguous()
                          for k, v in self.model.state_dict().items()}


@dataclass(frozen=True)
class _Entry:
    trial: int
    values: tuple[float, ...]
    bytes: int


def _dominates(a: Sequence[float], b: Sequence[float], signs: Sequence[int]) -> bool:
    return all(s * x >= s * y for x, y, s in zip(a, b, signs)) and \
        any(s * x > s * y for x, y, s in zip(a, b, signs))


class WeightKeeper:
    """Keeps the weights of a run folder's best trials (see the module docstring)."""

    def __init__(self, run_dir: str | Path, policy: KeepPolicy, objectives: Sequence[str],
                 directions: Sequence[str]):
        self.run_dir, self.policy = Path(run_dir), policy
        self.objectives, self.signs = tuple(objectives), [1 if d == "maximize" else -1 for d in directions]

    def _folder(self, number: int) -> Path:
        return self.run_dir / "trials" / f"{number:04d}"

    def _index(self) -> list[_Entry]:
        entries = []
        for path in (self.run_dir / "trials").glob(f"*/{WEIGHTS_JSON}"):
            data, _ = read_json_object(path)  # never blocks on a FIFO, never raises
            if data is None:
                continue
            try:
                entry = _Entry(int(data["trial"]), tuple(float(v) for v in data["values"]),
                               int(data["bytes"]))
            except (ValueError, KeyError, TypeError):
                continue  # not ours or damaged: never counted, never deleted
            if (path.parent / WEIGHTS).is_file():
                entries.append(entry)
        return entries

    def _rank_key(self, entry: _Entry) -> tuple[float, int]:
        return (-self.signs[0] * entry.values[0], entry.trial)

    def select(self, entries: Sequence[_Entry]) -> list[_Entry]:
        """The entries to keep, best first (by the first objective)."""
        ranked = sorted(entries, key=self._rank_key)
        if self.policy.mode(self.objectives) == "pareto":
            chosen = [e for e in ranked
                      if not any(_dominates(o.values, e.values, self.signs) for o in ranked)]
            seen: set[tuple[float, ...]] = set()
            chosen = [e for e in chosen if not (e.values in seen or seen.add(e.values))]
        else:
            chosen = ranked[: self.policy.top]
        budget, total, kept = self.policy.max_mb * 1e6, 0, []
        for entry in chosen:
            if total + entry.bytes <= budget:
                kept.append(entry)
                total += entry.bytes
        return kept

    def offer(self, number: int, values: Sequence[float], state: Mapping[str, Any],
              preprocessing: Preprocessing) -> dict[str, Any]:
        """Keep trial ``number``'s weights if it belongs to the kept set; delete the files of
        trials that fall out. Returns the trial record's ``weights`` entry:
        ``{"kept": bool, "file": "weights.pth" or None, "bytes": int, "evicted": [...],
        "policy": "..."}``."""
        import torch

        from nas.search._folder import file_lock  # not at the top: _folder imports the config

        buffer = io.BytesIO()
        torch.save(dict(state), buffer)
        data = buffer.getvalue()
        candidate = _Entry(number, tuple(float(v) for v in values), len(data))
        with file_lock(self.run_dir / _LOCK):
            entries = [e for e in self._index() if e.trial != number]
            kept = self.select([*entries, candidate])
            keep_numbers = {e.trial for e in kept}
            folder = self._folder(number)
            if number in keep_numbers:
                atomic_write_bytes(folder / WEIGHTS, data)
                preprocessing.write(folder / WEIGHTS_JSON, trial=number, objectives=list(self.objectives),
                                    values=list(candidate.values), bytes=len(data), weights=WEIGHTS)
            evicted = [e.trial for e in entries if e.trial not in keep_numbers]
            for other in evicted:
                self.discard(other)
        return {"kept": number in keep_numbers, "file": WEIGHTS if number in keep_numbers else None,
                "bytes": len(data), "evicted": sorted(evicted),
                "policy": self.policy.describe(self.objectives)}

    def offer_safely(self, number: int, values: Sequence[float], state: Mapping[str, Any],
                     data: Any) -> dict[str, Any]:
        """:meth:`offer` for weights trained on ``data`` (a :class:`nas.data.Dataset`); a
        failure to write (a full disk) is returned as ``{"kept": False, "error": ...}``, so it
        never fails the trial."""
        from nas.preprocessing import Preprocessing

        try:
            return self.offer(number, values, state, Preprocessing.from_dataset(data))
        except OSError as error:
            return {"kept": False, "file": None, "error": f"{type(error).__name__}: {error}",
                    "policy": self.policy.describe(self.objectives)}

    def discard(self, number: int) -> None:
        """Delete trial ``number``'s kept weights (marker first, so it is never half-kept)."""
        folder = self._folder(number)
        (folder / WEIGHTS_JSON).unlink(missing_ok=True)
        (folder / WEIGHTS).unlink(missing_ok=True)

