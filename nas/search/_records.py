"""Reading and writing the files of ``runs/NAME/`` (layout in :mod:`nas.search`).

Every write is atomic (:mod:`nas.io`). Reading the files needs neither torch nor Optuna;
:func:`read_trials` reads the storage (Optuna, imported then) first: it holds every machine's
trials.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nas._checks import folder_name
from nas.errors import ConfigError
from nas.io import MAX_RECORD_BYTES, atomic_write_text, read_json_object

__all__ = [
    "DIRECTION_SIGNS",
    "direction_signs",
    "METRICS_SCHEMA",
    "best_trials",
    "pareto_front",
    "plain_json",
    "read_json_object",
    "read_record",
    "read_run",
    "read_trial_files",
    "read_trials",
    "trial_dir",
    "trial_number",
    "write_json",
]

#: Version of the ``metrics.json`` layout; bumped when a field changes meaning.
METRICS_SCHEMA = 1


#: The most digits a trial folder's name has (:func:`trial_dir` writes ``f"{number:04d}"``).
MAX_TRIAL_DIGITS = 9


def trial_dir(run_dir: Path, number: int) -> Path:
    return run_dir / "trials" / f"{number:04d}"


def trial_number(name: str) -> int | None:
    """The trial number a folder name under ``trials/`` spells (1 to :data:`MAX_TRIAL_DIGITS`
    ASCII digits), or None: ``+1``, `` 7``, ``1_0``, ``²``, ``٣`` or twenty digits are not
    trial folders."""
    if name.isascii() and name.isdigit() and len(name) <= MAX_TRIAL_DIGITS:
        return int(name)
    return None


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def plain_json(data: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` with NaN and infinities as None (strict JSON, as the files hold it)."""
    return _clean(data)


def write_json(path: Path, data: Mapping[str, Any], *, sync: bool = True) -> None:
    """Write ``data`` as indented JSON (NaN and infinities as null), atomically (``sync``:
    see :func:`nas.io.atomic_write_bytes`)."""
    atomic_write_text(path, json.dumps(_clean(data), indent=2, sort_keys=False) + "\n", sync=sync)



# Field -> the types it may hold (``None`` means null is allowed). Fields not listed are free.
_NUMBER = (int, float)
_METRICS_TYPES: dict[str, tuple[Any, ...]] = {
    "schema": (int,), "run": (str, None), "trial": (int,), "state": (str,),
    "status": (str, None), "end_reason": (str, None), "counted": (bool,), "seed": (str, None),
    "retry_of": (int, None), "worker": (str, None), "params": (dict,), "genotype": (dict, None),
    "static": (dict, None), "objectives": (dict,), "values": (list, None),
    "duplicate_of": (int, None), "epochs": (int, None), "best_val_accuracy": (*_NUMBER, None),
    "final_val_accuracy": (*_NUMBER, None), "history": (list, None), "latency_s": (*_NUMBER, None),
    "batch_size": (int, None), "train_time": (*_NUMBER, None), "started": (str, None),
    "finished": (str, None), "wall_time": (*_NUMBER, None),
}
_GENOTYPE_TYPES: dict[str, tuple[Any, ...]] = {
    "name": (str, None), "hash": (str, None), "path": (str, None), "params": (dict, None),
    "input": (list, None), "cell": (str, None), "cell_key": (str, None), "text": (str, None),
}
_STATES = ("complete", "pruned", "fail")


def _type_problem(value: Any, kinds: tuple[Any, ...]) -> bool:
    if value is None:
        return None not in kinds
    if isinstance(value, bool):
        return bool not in kinds
    return not isinstance(value, tuple(k for k in kinds if k is not None))


def _record_problem(data: Any, number: int | None) -> str | None:
    """Why ``data`` is not a usable ``metrics.json`` record, or None when it is."""
    if not isinstance(data, dict):
        return f"not a JSON object ({type(data).__name__})"
    for key in ("trial", "state"):
        if key not in data:
            return f"no {key!r}"
    for fields, where in ((_METRICS_TYPES, data), (_GENOTYPE_TYPES, data.get("genotype") or {})):
        for key, kinds in fields.items():
            if key in where and _type_problem(where[key], kinds):
                return f"{key!r} is {type(where[key]).__name__}"
    if data["state"] not in _STATES:
        return f"state {data['state']!r} is not one of {', '.join(_STATES)}"
    if number is not None and data["trial"] != number:
        return f"'trial' is {data['trial']}, not the folder's {number}"
    if data.get("seed") is not None:  # a seed's name is a folder name (the space checks it)
        try:
            folder_name(data["seed"], path="seed")
        except ConfigError as error:  # HTML in it went into nas analyze's report.md
            return str(error)
    numbers = [(key, data[key]) for key, kinds in _METRICS_TYPES.items()
               if key in data and (int in kinds or float in kinds)]
    for key in ("objectives", "static"):
        numbers += [(f"{key}.{name}", value) for name, value in (data.get(key) or {}).items()]
    numbers += [(f"values[{i}]", value) for i, value in enumerate(data.get("values") or ())]
    for i, entry in enumerate(data.get("history") or ()):
        if not isinstance(entry, dict):
            return f"history[{i}] is {type(entry).__name__}, not an object"
        numbers += [(f"history[{i}].{name}", value) for name, value in entry.items()]
    for where, value in numbers:
        problem = _number_problem(value)
        if problem:
            return f"{where} {problem}"
    return None


#: The largest integer a record may hold: readers turn numbers into floats (tables, plots,
#: rankings), exact up to 2**53 (10**400 raised OverflowError in nas analyze and nas best --export).
_MAX_INTEGER = 2**53


def _number_problem(value: Any) -> str | None:
    """Why ``value`` is neither null nor a usable number (a finite float, or an int that is not
    a bool within 2**53), or None. The writer stores NaN and infinities as null, so a record
    holding them (Python's json reads ``NaN`` and ``Infinity``) is not one it wrote: an
    infinite accuracy ranked first in nas best."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, _NUMBER):
        return f"is {type(value).__name__}, not a number"
    if isinstance(value, int) and abs(value) > _MAX_INTEGER:
        return "is an integer beyond 2**53"
    if isinstance(value, float) and not math.isfinite(value):
        return f"is {value!r}, not a finite number"
    return None


def read_record(path: str | Path, *, number: int | None = None) -> tuple[dict[str, Any] | None, str | None]:
    """Read one ``metrics.json`` (trial ``number``, when given) defensively.

    Returns:
        ``(record, None)`` for a well-formed record; ``(None, None)`` when the file does not
        exist; ``(None, why)`` for anything else: not a regular file, over
        :data:`MAX_RECORD_BYTES`, not UTF-8, not JSON, not an object, a field of the wrong
        type (the schema in :mod:`nas.search`). Never raises for a damaged file.
    """
    data, why = read_json_object(path)
    if data is None:
        return None, why
    why = _record_problem(data, number)
    return (None, why) if why else (data, None)


def read_run(run_dir: str | Path) -> dict[str, Any]:
    """``run.json`` of a run folder, with the run's plugins loaded (its genotypes may use
    their ops).

    Raises:
        ConfigError: ``run_dir`` is not a run folder, or its run.json is unreadable or lacks
            a list of objectives with one direction ("maximize" or "minimize") each, or names
            the run otherwise than a search does (:func:`nas._checks.folder_name`: a name of
            '../../x' made nas analyze write its best-NAME.svg outside --out, an escape
            sequence went into report.md), or a plugin of the run cannot be loaded.
    """
    path = Path(run_dir) / "run.json"
    data, why = read_json_object(path)
    if data is None:
        if why is None:
            raise ConfigError("not a run folder (no run.json)", file=str(run_dir))
        raise ConfigError(f"unreadable: {why}", file=str(path))
    objectives, directions = data.get("objectives"), data.get("directions")
    if (not isinstance(objectives, list) or not objectives
            or not all(isinstance(o, str) for o in objectives)
            or not isinstance(directions, list) or len(directions) != len(objectives)
            or not all(d in DIRECTION_SIGNS for d in directions)):
        raise ConfigError("unreadable: needs 'objectives' (names) and 'directions' (maximize or "
                          "minimize, one per objective)", file=str(path))
    for key in ("name", "study_name", "storage"):
        if _type_problem(data.get(key), (str, None)):
            raise ConfigError(f"unreadable: {key!r} is {type(data[key]).__name__}", file=str(path))
    if data.get("name") is not None:  # a search names its run so; nas analyze names files by it
        folder_name(data["name"], file=str(path), path="name")
    plugins = data.get("plugins") or []
    if not isinstance(plugins, list):
        raise ConfigError(f"unreadable: 'plugins' is {type(plugins).__name__}", file=str(path))
    if plugins:  # the run's genotypes may use their ops
        from nas.plugins import load_plugins

        load_plugins(plugins, file=str(path))
    return data


def read_trial_files(run_dir: str | Path) -> tuple[list[dict[str, Any]], dict[Path, str]]:
    """``(records, unreadable)``: every well-formed ``trials/NNNN/metrics.json`` of a run by
    trial number, and the damaged ones (path -> why; see :func:`read_record`)."""
    records, unreadable = [], {}
    for path in sorted((Path(run_dir) / "trials").glob("*/metrics.json")):
        number = trial_number(path.parent.name)
        if number is None:  # '+1' would be read as a second trial 1
            unreadable[path] = "the folder's name is not a trial number"
            continue
        record, why = read_record(path, number=number)
        if record is not None:
            records.append(record)
        elif why is not None:
            unreadable[path] = why
    return sorted(records, key=lambda r: r["trial"]), unreadable


def read_trials(run_dir: str | Path, *, storage: str | None = None,
                study: Any = None) -> list[dict[str, Any]]:
    """Every ended trial's record, by trial number: from the Optuna storage ``run.json`` points
    at (or ``storage``, or the open ``study``), which holds every machine's trials; from the
    well-formed ``trials/NNNN/metrics.json`` files of this folder when the storage cannot be
    read or holds no records (damaged files are left out: :func:`read_trial_files` names them)."""
    stored = stored_trials(run_dir, storage=storage, study=study)
    return stored if stored is not None else read_trial_files(run_dir)[0]


def stored_trials(run_dir: str | Path, *, storage: str | None = None,
                  study: Any = None) -> list[dict[str, Any]] | None:
    """The ended trials' well-formed records the storage holds (see :func:`read_trials`), or
    None when it cannot be read or holds none (a run from before records were stored)."""
    from nas.search._storage import open_run_study, stored_records

    run_dir = Path(run_dir)
    if study is None:
        study = open_run_study(run_dir, read_run(run_dir), storage=storage, notes=[])
    if study is None:
        return None
    records = [r for r in stored_records(study) if r.get("state") in _STATES]
    if not records:
        return None
    return [r for r in records if _record_problem(r, None) is None]


#: The directions an objective may have (Optuna's words) and their signs (larger is better).
DIRECTION_SIGNS = {"maximize": 1, "minimize": -1}


def direction_signs(directions: Sequence[Any]) -> list[int]:
    """``+1`` for each ``"maximize"``, ``-1`` for each ``"minimize"``.

    Raises:
        ValueError: any other value (``"max"``, ``"MAXIMIZE"``, ...), naming the valid ones.
    """
    signs = []
    for direction in directions:
        if not isinstance(direction, str) or direction not in DIRECTION_SIGNS:
            raise ValueError(f"unknown direction {direction!r}; valid: "
                             f"{', '.join(map(repr, DIRECTION_SIGNS))}")
        signs.append(DIRECTION_SIGNS[direction])
    return signs


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
    """The records no other record dominates (ties: the earliest trial is kept).

    Raises:
        ValueError: a direction other than "maximize" or "minimize", or not one per objective.
    """
    signs = direction_signs(directions)
    if len(signs) != len(objectives):
        raise ValueError(f"{len(objectives)} objectives but {len(signs)} directions")
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


def best_trials(run_dir: str | Path, *, storage: str | None = None,
                study: Any = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """``(run, best)``: the run's ``run.json`` and its best complete trial (one objective) or
    Pareto set (several, sorted by the first objective), from :func:`read_trials` (``study``:
    the run's study, already open). Duplicates (trials that reused an isomorphic genotype's
    result) are left out."""
    run = read_run(run_dir)
    objectives, directions = run["objectives"], run["directions"]
    complete = [r for r in read_trials(run_dir, storage=storage, study=study)
                if r["state"] == "complete" and r.get("duplicate_of") is None]
    done = [r for r in complete if all((r.get("objectives") or {}).get(o) is not None for o in objectives)]
    recorded = sorted({str(o) for r in complete for o in (r.get("objectives") or {})})
    if recorded and not done:  # run.json and the trials disagree: not "no complete trial"
        raise ConfigError(
            f"the run's objectives ({', '.join(objectives)}) are recorded by none of its "
            f"{len(complete)} complete trials (they record: {', '.join(recorded)})",
            file=str(Path(run_dir) / "run.json"),
        )
    if not done:
        return run, []
    sign = 1 if directions[0] == "maximize" else -1
    if len(objectives) == 1:
        best = max(done, key=lambda r: (sign * r["objectives"][objectives[0]], -r["trial"]))
        return run, [best]
    front = pareto_front(done, objectives, directions)
    return run, sorted(front, key=lambda r: -sign * r["objectives"][objectives[0]])
