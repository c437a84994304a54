"""Reading and writing the files of ``runs/NAME/`` (layout in :mod:`nas.search`).

Every write is atomic (:mod:`nas.io`). Reading needs neither torch nor Optuna, so
``nas best`` and result analysis start quickly.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nas.errors import ConfigError
from nas.io import atomic_write_text

__all__ = [
    "METRICS_SCHEMA",
    "best_trials",
    "pareto_front",
    "read_run",
    "read_trials",
    "trial_dir",
    "write_json",
]

#: Version of the ``metrics.json`` layout; bumped when a field changes meaning.
METRICS_SCHEMA = 1


def trial_dir(run_dir: Path, number: int) -> Path:
    return run_dir / "trials" / f"{number:04d}"


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    """Write ``data`` as indented JSON (NaN and infinities as null), atomically."""
    atomic_write_text(path, json.dumps(_clean(data), indent=2, sort_keys=False) + "\n")


def read_run(run_dir: str | Path) -> dict[str, Any]:
    """``run.json`` of a run folder.

    Raises:
        ConfigError: ``run_dir`` is not a run folder, or its run.json is unreadable.
    """
    path = Path(run_dir) / "run.json"
    if not path.is_file():
        raise ConfigError("not a run folder (no run.json)", file=str(run_dir))
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"unreadable: {error}", file=str(path)) from None


def read_trials(run_dir: str | Path) -> list[dict[str, Any]]:
    """Every ``trials/NNNN/metrics.json`` of a run, by trial number."""
    records = []
    for path in sorted((Path(run_dir) / "trials").glob("*/metrics.json")):
        try:
            records.append(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError):  # pragma: no cover - writes are atomic
            continue
    return sorted(records, key=lambda r: r["trial"])


def _dominates(a: Sequence[float], b: Sequence[float], signs: Sequence[int]) -> bool:
    better = False
    for x, y, s in zip(a, b, signs):
        if s * x < s * y:
            return False
        if s * x > s * y:
            better = True
    return better


def pareto_front(records: Sequence[Mapping[str, Any]], objectives: Sequence[str],
                 directions: Sequence[str]) -> list[Mapping[str, Any]]:
    """The records no other record dominates (ties: the earliest trial is kept)."""
    signs = [1 if d == "maximize" else -1 for d in directions]
    points = [[r["objectives"][o] for o in objectives] for r in records]
    front, seen = [], set()
    for i, (record, point) in enumerate(zip(records, points)):
        if any(_dominates(other, point, signs) for j, other in enumerate(points) if j != i):
            continue
        if tuple(point) in seen:
            continue
        seen.add(tuple(point))
        front.append(record)
    return front


def best_trials(run_dir: str | Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """``(run, best)``: the run's ``run.json`` and its best complete trial (one objective) or
    Pareto set (several, sorted by the first objective), from the trials' ``metrics.json``.
    Duplicates (trials that reused an isomorphic genotype's result) are left out."""
    run = read_run(run_dir)
    objectives, directions = run["objectives"], run["directions"]
    done = [r for r in read_trials(run_dir)
            if r["state"] == "complete" and r.get("duplicate_of") is None
            and all(r["objectives"].get(o) is not None for o in objectives)]
    if not done:
        return run, []
    sign = 1 if directions[0] == "maximize" else -1
    if len(objectives) == 1:
        best = max(done, key=lambda r: (sign * r["objectives"][objectives[0]], -r["trial"]))
        return run, [best]
    front = pareto_front(done, objectives, directions)
    return run, sorted(front, key=lambda r: -sign * r["objectives"][objectives[0]])
