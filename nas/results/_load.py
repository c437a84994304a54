"""Reading run folders into pandas: one row per trial, plus a long table of epoch histories.

Sources (layout in :mod:`nas.search`): the Optuna storage is the source of truth for which
trials exist and their state (``complete``, ``pruned``, ``fail``, ``running``, ``waiting``);
``trials/NNNN/metrics.json`` carries everything else (end reason, genotype, params, MACs,
history, worker). A trial whose metrics file is missing or damaged (truncated, not UTF-8, not
JSON, not an object, a field of the wrong type: :func:`nas.search._records.read_record`) still
has a row: its ``status`` is ``"unreadable"`` (or ``"running"`` / ``"waiting"`` / ``"no_metrics"``
when there is no file) and its ``reason`` says why; what the storage knows (parameters, values,
seed, hash) is filled in. When the storage cannot be opened (an RDB URL whose password
``run.json`` masks, a missing driver), the metrics files alone are read and
``frame.attrs["notes"]`` says so; pass ``storage=`` to read it anyway.

Does not write anything into the run folder.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nas.errors import ConfigError, _printable
from nas.search._records import read_record, read_run, trial_number

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["COLUMNS", "PARAM_PREFIX", "PROXY_PREFIX", "TABLE_PREFIX", "load", "load_history"]

#: Prefix of the columns that hold search parameters (``param.stage2.depth``).
PARAM_PREFIX = "param."
#: Prefix of the columns that hold a tabular trial's table values (``table.cifar10_test``).
TABLE_PREFIX = "table."
#: Prefix of the columns that hold a trial's recorded zero-cost proxy scores (``proxy.naswot``).
PROXY_PREFIX = "proxy."

#: The fixed columns of :func:`load`, in order; objective columns (``val_accuracy``,
#: ``table_accuracy``; ``params``, ``macs`` and ``latency`` are fixed ones) and one column per
#: search parameter follow.
COLUMNS = (
    "run", "number", "state", "status", "reason", "counted", "is_seed", "seed", "retry_of",
    "duplicate_of", "worker", "hash", "genotype", "genotype_path", "cell", "params", "macs",
    "activation_bytes", "peak_activation_bytes", "latency", "epochs", "best_val_accuracy",
    "final_val_accuracy", "batch_size", "train_time", "wall_time", "started", "finished",
)

_SEED_ATTR = "nas.seed"
_HASH_ATTR = "nas.hash"
_REASON_ATTR = "nas.end_reason"
_DUPLICATE_ATTR = "nas.duplicate_of"
_RETRY_ATTR = "nas.retry_of"
_UNCOUNTED_ATTR = "nas.uncounted"
_TABLE_ATTR = "nas.table"
_PROXIES_ATTR = "nas.proxies"


def _run_info(run_dir: Path) -> dict[str, Any]:
    return read_run(run_dir)


def _storage_trials(run_dir: Path, info: Mapping[str, Any], storage: str | None,
                    notes: list[str]) -> dict[int, Any] | None:
    """The study's trials by number (``FrozenTrial``; surplus ones left out), or ``None`` if
    the storage can't be read."""
    from nas.search._storage import SURPLUS_ATTR, open_run_study

    study = open_run_study(run_dir, info, storage=storage, notes=notes)
    if study is None:
        return None
    return {t.number: t for t in study.get_trials(deepcopy=False) if not t.user_attrs.get(SURPLUS_ATTR)}


def open_study(run_dir: str | Path, *, storage: str | None = None) -> Any:
    """The Optuna study of a run folder (for importances, ``optuna.visualization``...).

    Raises:
        ConfigError: not a run folder, or its storage cannot be opened.
    """
    run_dir = Path(run_dir)
    info = _run_info(run_dir)
    url = storage or info.get("storage") or "journal.log"
    if "://" not in url and not Path(url).is_absolute():
        url = str(run_dir / url)
    from nas.search._storage import load_study, read_failure

    try:
        return load_study(url, info.get("study_name") or info.get("name") or run_dir.name)
    except Exception as error:  # noqa: BLE001
        raise ConfigError(f"cannot open the study's storage {url!r}: {read_failure(error)}",
                          file=str(run_dir)) from None


def _metrics_files(run_dir: Path, notes: list[str] | None = None) -> dict[int, Path]:
    """``trials/NNNN/metrics.json`` by trial number; a folder that holds a metrics file but
    whose name is not a trial number (:func:`~nas.search._records.trial_number`) is left out,
    with a note in ``notes``."""
    folder = run_dir / "trials"
    if not folder.is_dir():
        return {}
    out = {}
    for child in sorted(folder.iterdir()):
        number = trial_number(child.name)
        if number is not None:
            out[number] = child / "metrics.json"
        elif notes is not None and (child / "metrics.json").exists():
            notes.append(f"{run_dir.name}: trials/{_printable(child.name, 80)}/metrics.json is "
                         "unreadable (the folder's name is not a trial number); left out")
    return out


def _finite(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _trial_row(run: str, number: int, record: dict[str, Any] | None, why: str | None,
               trial: Any, objectives: Sequence[str], run_dir: Path) -> dict[str, Any]:
    r = record or {}
    genotype = r.get("genotype") or {}
    static = r.get("static") or {}
    attrs = dict(trial.user_attrs) if trial is not None else {}
    state = trial.state.name.lower() if trial is not None else r.get("state")
    status, reason = r.get("status"), r.get("end_reason")
    if record is None:
        folder = f"trials/{number:04d}/metrics.json"
        if why is not None:
            status, reason = "unreadable", f"{folder} is unreadable ({why})"
        elif state in ("running", "waiting"):
            status, reason = state, attrs.get(_REASON_ATTR)
        else:
            status, reason = "no_metrics", attrs.get(_REASON_ATTR) or f"{folder} is missing"
    seed = r.get("seed") or attrs.get(_SEED_ATTR)
    path = genotype.get("path")
    row: dict[str, Any] = {
        "run": run, "number": number, "state": state, "status": status, "reason": reason,
        "counted": r.get("counted", not attrs.get(_UNCOUNTED_ATTR, False)),
        "is_seed": bool(seed), "seed": seed,
        "retry_of": r.get("retry_of", attrs.get(_RETRY_ATTR)),
        "duplicate_of": r.get("duplicate_of", attrs.get(_DUPLICATE_ATTR)),
        "worker": r.get("worker"), "hash": genotype.get("hash") or attrs.get(_HASH_ATTR),
        "genotype": genotype.get("name"),
        "genotype_path": _local(run_dir / "trials" / f"{number:04d}" / path) if path else None,
        "cell": genotype.get("cell"),
        "params": static.get("params"), "macs": static.get("macs"),
        "activation_bytes": static.get("activation_bytes"),
        "peak_activation_bytes": static.get("peak_activation_bytes"),
        "latency": r.get("latency_s"), "epochs": r.get("epochs"),
        "best_val_accuracy": r.get("best_val_accuracy"),
        "final_val_accuracy": r.get("final_val_accuracy"), "batch_size": r.get("batch_size"),
        "train_time": r.get("train_time"), "wall_time": r.get("wall_time"),
        "started": r.get("started"), "finished": r.get("finished"),
    }
    for name, value in (r.get("objectives") or {}).items():
        row.setdefault(name, None)
        if row[name] is None:
            row[name] = _finite(value)
    if trial is not None:
        values = trial.values if trial.values is not None else [None] * len(objectives)
        for name, value in zip(objectives, values):
            if value is not None:
                row[name] = _finite(value)
        if row["started"] is None and trial.datetime_start is not None:
            row["started"] = trial.datetime_start.isoformat(timespec="seconds")
        if row["finished"] is None and trial.datetime_complete is not None:
            row["finished"] = trial.datetime_complete.isoformat(timespec="seconds")
        if row["wall_time"] is None and trial.duration is not None:
            row["wall_time"] = trial.duration.total_seconds()
    for name in objectives:
        row.setdefault(name, None)
    params = trial.params if trial is not None and trial.params else (r.get("params") or {})
    for label, value in params.items():
        row[PARAM_PREFIX + label] = value
    for prefix, key, attr in ((TABLE_PREFIX, "table", _TABLE_ATTR), (PROXY_PREFIX, "proxies", _PROXIES_ATTR)):
        for name, value in (r.get(key) or attrs.get(attr) or {}).items():
            row[prefix + name] = _finite(float("nan") if value is None else value)
    return row


def _local(path: Path) -> str | None:
    """``path`` when this machine's run folder holds it (another machine ran the trial)."""
    return str(path) if path.is_file() else None


def _stored_record(trial: Any) -> dict[str, Any] | None:
    """The record the storage holds for a trial that ended (every machine sees it)."""
    from nas.search._storage import RECORD_ATTR, UNCOUNTED_ATTR, stored_record

    if trial is None or (RECORD_ATTR not in trial.user_attrs and not trial.user_attrs.get(UNCOUNTED_ATTR)):
        return None
    return stored_record(trial, "")


def _read_run(run_dir: Path, *, storage: str | None,
              notes: list[str]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    info = _run_info(run_dir)
    run = info.get("name") or run_dir.name
    objectives = list(info.get("objectives") or [])
    trials = _storage_trials(run_dir, info, storage, notes)
    files = _metrics_files(run_dir, notes)
    numbers = sorted(set(files) | set(trials or ()))
    rows = []
    for number in numbers:
        record, why = _stored_record((trials or {}).get(number)), None
        path = files.get(number)
        if path is not None:
            local, local_why = read_record(path, number=number)
            if record is None:
                record, why = local, local_why
            elif local_why is not None:
                notes.append(f"{run_dir.name}: trials/{number:04d}/metrics.json is unreadable "
                             f"({local_why}); the storage's record of trial {number} is used")
        rows.append(_trial_row(run, number, record, why, (trials or {}).get(number), objectives,
                               run_dir))
    meta = {"dir": str(run_dir), "objectives": objectives,
            "directions": list(info.get("directions") or []), "tabular": bool(info.get("tabular")),
            "storage_read": trials is not None, "info": info}
    return rows, meta


def _as_dirs(run_dirs: str | Path | Iterable[str | Path]) -> list[Path]:
    """``run_dirs`` (one folder or several) as paths.

    Raises:
        TypeError: ``run_dirs`` is neither a path nor an iterable of paths.
        ConfigError: no folder is given.
    """
    if isinstance(run_dirs, (str, os.PathLike)):
        return [Path(run_dirs)]
    items = [run_dirs] if isinstance(run_dirs, bytes) or not isinstance(run_dirs, Iterable) else list(run_dirs)
    for item in items:
        if not isinstance(item, (str, os.PathLike)):
            raise TypeError(f"run_dirs must be a run folder's path or a list of them, got "
                            f"{type(item).__name__}")
    dirs = [Path(d) for d in items]
    if not dirs:
        raise ConfigError("no run folder given")
    return dirs


def _frame(rows: list[dict[str, Any]], metas: dict[str, dict[str, Any]],
           notes: list[str]) -> pd.DataFrame:
    import pandas as pd

    objective_cols: list[str] = []
    param_cols: list[str] = []
    for meta in metas.values():
        objective_cols += [o for o in meta["objectives"] if o not in COLUMNS and o not in objective_cols]
    for row in rows:
        for key in row:
            if key.startswith(PARAM_PREFIX) and key not in param_cols:
                param_cols.append(key)
            elif key not in COLUMNS and not key.startswith(PARAM_PREFIX) and key not in objective_cols:
                objective_cols.append(key)
    columns = [*COLUMNS, *objective_cols, *param_cols]
    frame = pd.DataFrame.from_records(rows, columns=columns)
    for col in ("started", "finished"):
        frame[col] = pd.to_datetime(frame[col], errors="coerce")
    for col in ("params", "macs", "activation_bytes", "peak_activation_bytes", "epochs",
                "retry_of", "duplicate_of", "batch_size"):
        frame[col] = frame[col].astype("Int64")
    for col in ("latency", "best_val_accuracy", "final_val_accuracy", "train_time", "wall_time",
                *objective_cols):
        frame[col] = pd.to_numeric(frame[col], errors="coerce").astype("float64")
    frame["counted"] = frame["counted"].astype("boolean")
    frame["is_seed"] = frame["is_seed"].astype(bool)
    directions = {tuple(m["directions"]) for m in metas.values()}
    objectives = {tuple(m["objectives"]) for m in metas.values()}
    frame.attrs = {
        "runs": {name: {k: v for k, v in m.items() if k != "info"} for name, m in metas.items()},
        "objectives": list(next(iter(objectives))) if len(objectives) == 1 else [],
        "directions": list(next(iter(directions))) if len(directions) == 1 else [],
        "notes": list(notes),
    }
    return frame


def load(run_dirs: str | Path | Iterable[str | Path], *, storage: str | None = None) -> pd.DataFrame:
    """One row per trial of one or several run folders.

    Columns: :data:`COLUMNS` (``run`` is the run's name; ``state`` is Optuna's, lower case;
    ``status`` the end reason as a token: ``completed``, ``duplicate``, ``constraint``,
    ``pruned``, ``timeout``, ``nan_loss``, ``oom``, ``error``, ``interrupted``, ...,
    ``unreadable`` for a corrupt metrics file; ``reason`` the same as a sentence; ``params``,
    ``macs`` the static counts of the trained genotype; ``latency`` seconds per forward pass),
    then one column per objective named after it (``val_accuracy``, ``table_accuracy``), then
    one column per search parameter (``param.<label>``). ``frame.attrs`` holds ``runs`` (name
    -> folder, objectives, directions), the common ``objectives`` and ``directions``, and
    ``notes`` (sources that could not be read).

    Args:
        run_dirs: A run folder or several (their trials are stacked; names must differ).
        storage: Read the Optuna storage from this URL or file instead of the one in
            ``run.json`` (one run folder only).

    Raises:
        ConfigError: a folder is not a run folder, or two runs have the same name.
    """
    dirs = _as_dirs(run_dirs)
    if storage is not None and len(dirs) > 1:
        raise ConfigError("storage= needs exactly one run folder")
    notes: list[str] = []
    rows: list[dict[str, Any]] = []
    metas: dict[str, dict[str, Any]] = {}
    for run_dir in dirs:
        run_rows, meta = _read_run(run_dir, storage=storage, notes=notes)
        name = meta["info"].get("name") or run_dir.name
        if name in metas:
            raise ConfigError(f"two run folders are named {name!r}", file=str(run_dir))
        metas[name] = meta
        rows += run_rows
    return _frame(rows, metas, notes)


def load_history(run_dirs: str | Path | Iterable[str | Path], *, storage: str | None = None) -> pd.DataFrame:
    """Per-epoch history of every trained trial, from the storage's records (the metrics files
    when it cannot be read): columns ``run``, ``number``, ``epoch``, ``train_loss``,
    ``val_accuracy``, ``seconds``, ``lr``, then any other field the records hold (``steps``,
    ``val_loss`` since those were recorded)."""
    import pandas as pd

    history: list[dict[str, Any]] = []
    for run_dir in _as_dirs(run_dirs):
        info = _run_info(Path(run_dir))
        run = info.get("name") or Path(run_dir).name
        trials = _storage_trials(Path(run_dir), info, storage, []) or {}
        files = _metrics_files(Path(run_dir))
        for number in sorted(set(files) | set(trials)):
            record = _stored_record(trials.get(number))
            if record is None and number in files:
                record, _ = read_record(files[number], number=number)
            for h in (record or {}).get("history") or ():
                history.append({"run": run, "number": number, **h})
    columns = ["run", "number", "epoch", "train_loss", "val_accuracy", "seconds", "lr"]
    frame = pd.DataFrame.from_records(history)
    for col in columns:
        if col not in frame:
            frame[col] = pd.Series(dtype="float64")
    return frame[columns + [c for c in frame.columns if c not in columns]]
