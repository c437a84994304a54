"""NAS-Bench-201 as an objective: six edge ops in, a looked-up accuracy out.

A lookup stands in for training. Cells are deduplicated by their isomorphism key
(:meth:`Cell.key`): the first cell evaluated with a key is "trained" (its table accuracy is
read), and every later cell with the same key is a duplicate that gets the cached accuracy at no
cost, as the search engine's dedup cache would do. The cache lives in the objective object, one
per process; a multi-process engine that wants a shared cache keeps it in its storage and can
:meth:`NB201Objective.remember` what other workers evaluated.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from os import PathLike
from typing import TYPE_CHECKING, Any

from nas.tabular._cell import EDGES, OPS, Cell
from nas.tabular._table import NB201Table, _as_cell, check_dataset

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
        accuracy: test accuracy in percent; for a duplicate, that of the first equivalent cell
            evaluated.
        duplicate: whether an equivalent cell had been evaluated before (a cache hit that costs
            no training).
    """

    cell: Cell
    key: str
    accuracy: float
    duplicate: bool


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
    """Maps a cell to its test accuracy on one dataset, deduplicating equivalent cells.

    Call :meth:`evaluate` with a :class:`Cell`, a cell string or a mapping of edge labels to
    ops; or pass the object to ``study.optimize`` as an Optuna objective (to be maximised).

    Args:
        table: the loaded table.
        dataset: ``'cifar10'`` or ``'cifar100'``.
        prefix: prefix of the edge parameter names when used as an Optuna objective.

    Raises:
        TableError: for an unknown dataset.
    """

    def __init__(self, table: NB201Table, dataset: str, *, prefix: str = ""):
        self.table = table
        self.dataset = check_dataset(dataset)
        self.prefix = prefix
        self._accuracies = table.accuracies(dataset)
        self._cache: dict[str, float] = {}

    @property
    def trained(self) -> int:
        """How many evaluations were not duplicates (distinct keys seen so far)."""
        return len(self._cache)

    def is_duplicate(self, cell: Cell | str | Mapping[str, Any]) -> bool:
        """Whether an equivalent cell was already evaluated (without evaluating ``cell``)."""
        return _as_cell(cell).key() in self._cache

    def remember(self, key: str, accuracy: float) -> None:
        """Record a result obtained elsewhere (e.g. by another worker) under ``key``."""
        self._cache.setdefault(key, float(accuracy))

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
            return Evaluation(cell, key, cached, True)
        accuracy = float(self._accuracies[self.table.row(cell)])
        self._cache[key] = accuracy
        return Evaluation(cell, key, accuracy, False)

    def __call__(self, trial: optuna.Trial) -> float:
        """Optuna objective: suggest the cell, evaluate it, record key and duplicate flag."""
        result = self.evaluate(suggest_cell(trial, prefix=self.prefix))
        trial.set_user_attr(KEY_ATTR, result.key)
        trial.set_user_attr(DUPLICATE_ATTR, result.duplicate)
        return result.accuracy


def make_nb201_objective(
    table: str | PathLike[str] | NB201Table, dataset: str, *, prefix: str = ""
) -> NB201Objective:
    """Make the tabular objective from a table path (a run config's value) or a loaded table.

    Raises:
        TableError: if the file cannot be read or ``dataset`` is unknown.
    """
    check_dataset(dataset)
    if not isinstance(table, NB201Table):
        table = NB201Table.load(table)
    return NB201Objective(table, dataset, prefix=prefix)
