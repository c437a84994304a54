"""Answers computed from a :func:`nas.results.load` frame: the finished candidates, the best
trial, Pareto fronts, the best seed at equal or lower cost, where the budget went, and Optuna's
parameter importances. Pure pandas/numpy except :func:`importances` (Optuna)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from nas._checks import name_list

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ACCURACY_COLUMNS", "accuracy_column", "best", "best_seed", "budget", "candidates",
           "cost_column", "importances", "pareto_front"]

#: Columns that hold a model's accuracy, in order of preference.
ACCURACY_COLUMNS = ("val_accuracy", "table_accuracy", "best_val_accuracy")


def accuracy_column(frame: pd.DataFrame) -> str | None:
    """The frame's accuracy column: the first of :data:`ACCURACY_COLUMNS` with a value."""
    for col in ACCURACY_COLUMNS:
        if col in frame and frame[col].notna().any():
            return col
    return None


def cost_column(frame: pd.DataFrame) -> str | None:
    """``macs`` if any trial has it, else ``params``, else ``None``."""
    for col in ("macs", "params"):
        if col in frame and frame[col].notna().any():
            return col
    return None


#: The columns of a :func:`nas.results.load` frame that the functions here read.
_TRIAL_COLUMNS = ("run", "number", "state", "status", "duplicate_of")


def _check_frame(frame: Any, columns: Sequence[str] = _TRIAL_COLUMNS) -> None:
    """Raise when ``frame`` is not a :func:`nas.results.load` frame with ``columns``.

    Raises:
        TypeError: ``frame`` is not a DataFrame.
        ValueError: it lacks one of ``columns`` (e.g. a selection of a few columns).
    """
    import pandas as pd

    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"frame must be a DataFrame from nas.results.load, got {type(frame).__name__}")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"frame lacks the column(s) {', '.join(missing)} of a nas.results.load "
                         "frame; select rows, not columns, before passing it")


def candidates(frame: pd.DataFrame, objectives: Sequence[str] = ()) -> pd.DataFrame:
    """Complete trials that evaluated a genotype of their own (no duplicates) and have every
    objective in ``objectives``.

    Raises:
        TypeError, ValueError: ``frame`` is not a :func:`nas.results.load` frame.
        ValueError: ``objectives`` is one string, not a list, or names a column the frame
            lacks (the message lists the available ones).
    """
    _check_frame(frame)
    name_list(objectives, path="objectives", error=ValueError)
    _check_columns(frame, objectives)
    mask = (frame["state"] == "complete") & frame["duplicate_of"].isna() & (frame["status"] != "unreadable")
    for col in objectives:
        mask &= frame[col].notna()
    return frame[mask]


def _check_columns(frame: pd.DataFrame, names: Sequence[str]) -> None:
    missing = [name for name in names if name not in frame.columns]
    if missing:
        raise ValueError(f"unknown column {missing[0]!r}; available: {', '.join(map(str, frame.columns))}")


def pareto_front(frame: pd.DataFrame, objectives: Sequence[str] | None = None,
                 directions: Sequence[str] | None = None) -> pd.DataFrame:
    """The non-dominated :func:`candidates` over ``objectives`` (default: the frame's, from
    ``frame.attrs``), sorted by the first objective, best first. Of equal points the earliest
    trial is kept.

    Args:
        frame: A :func:`nas.results.load` frame.
        objectives: Column names, e.g. ``["val_accuracy", "macs"]``.
        directions: One per objective: exactly ``"maximize"`` or ``"minimize"`` (Optuna's
            words; no abbreviations, so ``"max"`` cannot be taken for something else).

    Raises:
        ValueError: a direction other than those two, not one direction per objective, a
            column the frame lacks (the message lists the available ones), or no objectives
            given while the frame's runs have different ones.
        TypeError, ValueError: ``frame`` is not a :func:`nas.results.load` frame.
    """
    from nas.search._records import direction_signs

    _check_frame(frame)

    if isinstance(directions, str) or isinstance(objectives, str):
        raise ValueError("objectives and directions are lists, one direction per objective")
    objectives = list(objectives if objectives is not None else frame.attrs.get("objectives") or ())
    if directions is None:
        directions = frame.attrs.get("directions") or []
    directions = list(directions)
    if not objectives:
        raise ValueError("pareto_front needs objectives (the frame's runs have different ones)")
    signs = direction_signs(directions)
    if len(signs) != len(objectives):
        raise ValueError(f"{len(objectives)} objectives but {len(signs)} directions: give one "
                         "direction per objective")
    _check_columns(frame, objectives)
    import pandas as pd

    for col in objectives:
        if not pd.api.types.is_numeric_dtype(frame[col]) or pd.api.types.is_bool_dtype(frame[col]):
            raise ValueError(f"column {col!r} does not hold numbers")
    done = candidates(frame, objectives).sort_values(["run", "number"])
    if done.empty:
        return done
    points = done[objectives].to_numpy(dtype=float) * np.array(signs, dtype=float)  # larger is better
    keep = np.ones(len(points), dtype=bool)
    for i, p in enumerate(points):
        ge = (points >= p).all(axis=1)
        gt = (points > p).any(axis=1)
        if (ge & gt).any():
            keep[i] = False
    front = done[keep]
    front = front.loc[~front[objectives].duplicated(keep="first")]
    return front.sort_values(objectives[0], ascending=directions[0] != "maximize", kind="stable")


def best(frame: pd.DataFrame) -> pd.DataFrame:
    """The best trial (one objective: the earliest with the best value) or the Pareto set (several),
    over the frame's objectives; matches :func:`nas.search.best_trials` for one run.

    Raises:
        TypeError, ValueError: ``frame`` is not a :func:`nas.results.load` frame.
    """
    _check_frame(frame)
    objectives = frame.attrs.get("objectives") or []
    directions = frame.attrs.get("directions") or []
    if len(objectives) > 1:
        return pareto_front(frame, objectives, directions)
    if not objectives:
        col = accuracy_column(frame)
        if col is None:
            return frame.iloc[0:0]
        objectives, directions = [col], ["maximize"]
    done = candidates(frame, objectives)
    if done.empty:
        return done
    col = objectives[0]
    ordered = done.sort_values([col, "number"], ascending=[directions[0] != "maximize", True],
                               kind="stable")
    return ordered.head(1)


def best_seed(frame: pd.DataFrame, row: pd.Series, accuracy: str,
              cost: str | None) -> tuple[pd.Series | None, bool]:
    """``(seed, at_equal_cost)``: the most accurate complete seed of ``row``'s run whose cost
    is at most ``row``'s (``at_equal_cost`` true), else the most accurate seed (false), else
    ``None``."""
    seeds = frame[(frame["run"] == row["run"]) & frame["is_seed"] & (frame["state"] == "complete")
                  & frame[accuracy].notna()]
    if seeds.empty:
        return None, False
    if cost is not None and row[cost] is not None and not _isna(row[cost]):
        cheap = seeds[seeds[cost].notna() & (seeds[cost] <= row[cost])]
        if not cheap.empty:
            return cheap.sort_values([accuracy, "number"], ascending=[False, True]).iloc[0], True
    return seeds.sort_values([accuracy, "number"], ascending=[False, True]).iloc[0], False


def _isna(value: Any) -> bool:
    import pandas as pd

    return bool(pd.isna(value))


#: Budget categories: (name, test on a row's state and status).
_BUDGET = (
    ("trained", lambda s, st: s == "complete" and st not in ("duplicate", "unreadable")),
    ("deduplicated", lambda s, st: st == "duplicate"),
    ("rejected by constraints", lambda s, st: st == "constraint"),
    ("pruned", lambda s, st: s == "pruned" and st != "constraint"),
    ("interrupted (re-run)", lambda s, st: st == "interrupted"),
    ("failed", lambda s, st: s == "fail" and st != "interrupted"),
    ("running or waiting", lambda s, st: s in ("running", "waiting")),
)


def budget(frame: pd.DataFrame) -> pd.DataFrame:
    """Where the trials and the wall time went: one row per category (trained, deduplicated,
    rejected by constraints, pruned, interrupted, failed, running or waiting) with ``trials``,
    ``wall_time`` (seconds), ``statuses`` (the end reasons counted in it); only categories that
    occur. Unreadable trials are counted by their storage state.

    Raises:
        TypeError, ValueError: ``frame`` is not a :func:`nas.results.load` frame.
    """
    import pandas as pd

    _check_frame(frame, ("state", "status", "wall_time"))

    states, statuses = frame["state"].astype(str).tolist(), frame["status"].astype(str).tolist()
    labels = []
    for s, st in zip(states, statuses):
        labels.append(next((name for name, test in _BUDGET if test(s, st)), "other"))
    tagged = frame.assign(_category=labels)
    rows = []
    for name in [b[0] for b in _BUDGET] + ["other"]:
        part = tagged[tagged["_category"] == name]
        if part.empty:
            continue
        counts = part["status"].value_counts()
        rows.append({"category": name, "trials": len(part),
                     "wall_time": float(part["wall_time"].sum(skipna=True)),
                     "statuses": ", ".join(f"{k} {v}" for k, v in counts.items())})
    return pd.DataFrame(rows, columns=["category", "trials", "wall_time", "statuses"])


def importances(run_dir: str | Path, objectives: Sequence[str], *,
                storage: str | None = None) -> tuple[dict[str, dict[str, float]], list[str]]:
    """Optuna's parameter importances (``get_param_importances``) of a run, per objective.

    Returns ``(importances, notes)``: objective -> {parameter: importance}, largest first, and
    one sentence per objective for which they could not be computed (too few trials, a single
    parameter value, an unreadable storage): never raises for those.
    """
    import warnings

    import optuna

    from nas.results._load import open_study

    notes: list[str] = []
    out: dict[str, dict[str, float]] = {}
    try:
        study = open_study(run_dir, storage=storage)
    except Exception as error:  # noqa: BLE001
        return {}, [f"parameter importances unavailable: {error}"]
    complete = [t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))]
    if len(complete) < 2:
        return {}, [f"parameter importances need at least 2 complete trials ({len(complete)} so far)"]
    for i, name in enumerate(objectives):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                values = optuna.importance.get_param_importances(
                    study, target=(lambda t, i=i: t.values[i]) if len(objectives) > 1 else None)
        except Exception as error:  # noqa: BLE001 - Optuna refuses small or constant studies
            message = " ".join(str(error).split())[:200]
            notes.append(f"parameter importances for {name} could not be computed "
                         f"({type(error).__name__}: {message})")
            continue
        if not values:
            notes.append(f"parameter importances for {name}: no parameter varied")
            continue
        out[name] = {k: float(v) for k, v in values.items()}
    return out, notes
