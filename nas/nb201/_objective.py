"""NAS-Bench-201 as an objective: six edge ops in, a looked-up value out.

The objective reads one named column (the one a search optimises, e.g. ``cifar10_valid``) and
reports others alongside (e.g. ``cifar10_test``): the published protocol selects cells on
validation accuracy and reports their test accuracy.

A lookup stands in for training. Cells are deduplicated by their isomorphism key
(:meth:`Cell.key`): the first cell evaluated with a key is "trained" (its table accuracy is
read), and every later cell with the same key is a duplicate that gets the cached accuracy at no
cost, as the search engine's dedup cache would do. The cache lives in the objective object, one
per process; a multi-process engine that wants a shared cache keeps it in its storage and can
:meth:`NB201Objective.remember` what other workers evaluated.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from os import PathLike
from typing import TYPE_CHECKING, Any

from nas.nb201._cell import EDGES, OPS, Cell
from nas.nb201._table import NB201Table, _as_cell, read_columns, resolve_column

if TYPE_CHECKING:
    import optuna

__all__ = ["Evaluation", "NB201Objective", "cell_key", "make_nb201_objective", "suggest_cell"]

#: User-attribute names an Optuna trial gets from :meth:`NB201Objective.__call__`.
KEY_ATTR = "nb201.key"
DUPLICATE_ATTR = "nb201.duplicate"


@dataclass(frozen=True)
class Evaluation:
    """The result of evaluating one cell.

    Attributes:
        cell: the cell asked for.
        key: its isomorphism key.
        accuracy: its value in the objective's column (e.g. validation accuracy in percent);
            for a duplicate, that of the first equivalent cell evaluated.
        duplicate: whether an equivalent cell had been evaluated before (a cache hit that costs
            no training).
        report: its values in the reported columns (for a duplicate, the first equivalent
            cell's), by column name.
    """

    cell: Cell
    key: str
    accuracy: float
    duplicate: bool
    report: Mapping[str, float] = field(default_factory=dict)


def suggest_cell(trial: optuna.Trial, *, prefix: str = "") -> Cell:
    """Suggest the six edges as categorical parameters ``prefix + label`` over :data:`OPS`."""
    return Cell(tuple(trial.suggest_categorical(prefix + label, OPS) for label in EDGES))


def cell_key(params: Mapping[str, Any], *, prefix: str = "") -> str | None:
    """The isomorphism key of the cell in ``params`` (``prefix + label -> op``), or ``None``
    when an edge is missing. Suits :class:`nas.samplers.DeduplicatingSampler`'s ``key``.

    Raises:
        CellError: if an op is unknown.
    """
    if any(prefix + label not in params for label in EDGES):
        return None
    return Cell.from_params(params, prefix=prefix).key()


class NB201Objective:
    """Maps a cell to its value in one column, deduplicating equivalent cells.

    Call :meth:`evaluate` with a :class:`Cell`, a cell string or a mapping of edge labels to
    ops; or pass the object to ``study.optimize`` as an Optuna objective (to be maximised).

    Args:
        table: the loaded table.
        column: the column to optimise (``'cifar10_valid'``; a bare dataset name such as
            ``'cifar10'`` means its test column).
        report: columns to report with every evaluation.
        prefix: prefix of the edge parameter names when used as an Optuna objective.

    Raises:
        TableError: for an unknown column (the message lists the valid ones), or one holding
            NaN or an infinity (:meth:`NB201Table.check_finite`).
    """

    def __init__(self, table: NB201Table, column: str, *, report: Sequence[str] = (),
                 prefix: str = ""):
        self.table = table
        self.column = table.column(column)
        self.report = tuple(table.column(c) for c in report)
        for name in (self.column, *self.report):
            table.check_finite(name)
        self.prefix = prefix
        self._accuracies = table.values(self.column)
        self._reported = {c: table.values(c) for c in self.report}
        self._cache: dict[str, tuple[float, dict[str, float]]] = {}

    @property
    def trained(self) -> int:
        """How many evaluations were not duplicates (distinct keys seen so far)."""
        return len(self._cache)

    def is_duplicate(self, cell: Cell | str | Mapping[str, Any]) -> bool:
        """Whether an equivalent cell was already evaluated (without evaluating ``cell``)."""
        return _as_cell(cell).key() in self._cache

    def remember(self, key: str, accuracy: float, report: Mapping[str, float] | None = None) -> None:
        """Record a result obtained elsewhere (e.g. by another worker) under ``key``."""
        self._cache.setdefault(key, (float(accuracy), dict(report or {})))

    def evaluate(self, cell: Cell | str | Mapping[str, Any]) -> Evaluation:
        """Evaluate ``cell``: a table lookup, or the cached result of an equivalent cell.

        Raises:
            CellError: if ``cell`` is not a valid cell.
            TableError: if it is not in the table.
        """
        cell = _as_cell(cell)
        key = cell.key()
        cached = self._cache.get(key)
        if cached is not None:
            return Evaluation(cell, key, cached[0], True, dict(cached[1]))
        row = self.table.row(cell)
        accuracy = float(self._accuracies[row])
        report = {c: float(v[row]) for c, v in self._reported.items()}
        self._cache[key] = (accuracy, report)
        return Evaluation(cell, key, accuracy, False, dict(report))

    def __call__(self, trial: optuna.Trial) -> float:
        """Optuna objective: suggest the cell, evaluate it, record key and duplicate flag."""
        result = self.evaluate(suggest_cell(trial, prefix=self.prefix))
        trial.set_user_attr(KEY_ATTR, result.key)
        trial.set_user_attr(DUPLICATE_ATTR, result.duplicate)
        return result.accuracy


def make_nb201_objective(
    table: str | PathLike[str] | NB201Table, column: str, *, report: Sequence[str] = (),
    prefix: str = "",
) -> NB201Objective:
    """Make the tabular objective from a table path (a run config's value) or a loaded table.

    With a path, the column names are checked against the file's header before the table is
    read.

    Raises:
        TableError: if the file cannot be read or a column is unknown.
    """
    if not isinstance(table, NB201Table):
        columns = read_columns(table)
        for name in (column, *report):
            resolve_column(name, columns, file=str(table))
        table = NB201Table.load(table)
    return NB201Objective(table, column, report=report, prefix=prefix)
