"""The NAS-Bench-201 accuracy table, read from a CSV file.

The file has one row per cell with the columns ``index``, ``arch`` (the benchmark's cell
string) and one ``<dataset>_test`` column per dataset (test accuracy in percent). The path is
always given by the caller; this module knows no default location. Loading reads the file once
with pandas and builds a dict from cell string to row, so a lookup is a dict access; isomorphism
keys are computed on first use.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from nas.tabular._cell import Cell, CellError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["DATASETS", "TableError", "NB201Table"]

#: The datasets the table can answer for; each is a column ``<name>_test``.
DATASETS: tuple[str, ...] = ("cifar10", "cifar100")

_REQUIRED = ("index", "arch", *(f"{d}_test" for d in DATASETS))


class TableError(CellError):
    """A NAS-Bench-201 table file that cannot be read, or a query it cannot answer."""


def check_dataset(dataset: str) -> str:
    """Return ``dataset`` if the table has it.

    Raises:
        TableError: listing the valid datasets otherwise.
    """
    if dataset not in DATASETS:
        raise TableError(f"unknown dataset {dataset!r}; valid datasets are {', '.join(DATASETS)}")
    return dataset


class NB201Table:
    """Test accuracies of every NAS-Bench-201 cell.

    Use :meth:`load` to read the CSV file. Cells are looked up by :class:`Cell`, by the
    benchmark's cell string, or by a mapping of edge labels to ops.
    """

    def __init__(self, frame: pd.DataFrame, *, source: str | None = None):
        """Wrap a frame with the columns of the CSV file (see the module docstring).

        Raises:
            TableError: if a column is missing, a cell string is invalid or repeated.
        """
        missing = [c for c in _REQUIRED if c not in frame.columns]
        if missing:
            raise TableError(f"missing column(s) {', '.join(missing)}", file=source)
        self._source = source
        self._frame = frame.reset_index(drop=True)
        self._accuracy = {d: frame[f"{d}_test"].to_numpy(dtype=float) for d in DATASETS}
        arch = frame["arch"].tolist()
        self._row = {text: row for row, text in enumerate(arch)}
        if len(self._row) != len(arch):
            raise TableError("the table lists a cell string twice", file=source)
        self._cells: list[Cell] | None = None
        self._keys: list[str] | None = None

    @classmethod
    def load(cls, path: str | PathLike[str]) -> NB201Table:
        """Read the table from the CSV file at ``path``.

        Raises:
            TableError: if the file does not exist, is not a CSV with the needed columns.
        """
        import pandas as pd

        path = Path(path)
        if not path.is_file():
            raise TableError("NAS-Bench-201 table not found", file=str(path))
        try:
            frame = pd.read_csv(path, usecols=lambda c: c in _REQUIRED)
        except (ValueError, OSError, pd.errors.ParserError) as exc:
            raise TableError(f"cannot read the table: {exc}", file=str(path)) from None
        return cls(frame, source=str(path))

    def __len__(self) -> int:
        return len(self._frame)

    @property
    def frame(self) -> pd.DataFrame:
        """The table as a DataFrame (a copy; edit it freely)."""
        return self._frame.copy()

    def cell(self, row: int) -> Cell:
        """The cell of row ``row`` (0-based position, equal to the ``index`` column)."""
        return self.cells()[row]

    def cells(self) -> Sequence[Cell]:
        """Every cell, in row order (decoded on first use)."""
        if self._cells is None:
            self._cells = [Cell.parse(text) for text in self._frame["arch"]]
        return self._cells

    def keys(self) -> Sequence[str]:
        """The isomorphism key (:meth:`Cell.key`) of every row, in row order."""
        if self._keys is None:
            self._keys = [cell.key() for cell in self.cells()]
        return self._keys

    def row(self, cell: Cell | str | Mapping[str, Any]) -> int:
        """The row of ``cell``.

        Raises:
            CellError: if ``cell`` is not a valid cell.
            TableError: if the table has no row for it.
        """
        text = _as_cell(cell).to_str()
        try:
            return self._row[text]
        except KeyError:
            raise TableError(f"cell {text} is not in the table", file=self._source) from None

    def accuracy(self, cell: Cell | str | Mapping[str, Any], dataset: str) -> float:
        """Test accuracy (percent) of ``cell`` on ``dataset`` (``'cifar10'`` or ``'cifar100'``).

        Raises:
            TableError: for an unknown dataset or a cell not in the table.
            CellError: if ``cell`` is not a valid cell.
        """
        return float(self._accuracy[check_dataset(dataset)][self.row(cell)])

    def accuracies(self, dataset: str) -> np.ndarray:
        """All test accuracies on ``dataset``, in row order (a read-only view)."""
        values = self._accuracy[check_dataset(dataset)].view()
        values.flags.writeable = False
        return values

    def top_k_threshold(self, dataset: str, k: int) -> float:
        """The accuracy of the ``k``-th best row: reaching it means being in the top ``k``.

        Raises:
            TableError: for an unknown dataset or ``k`` outside ``1..len(self)``.
        """
        if not 1 <= k <= len(self):
            raise TableError(f"k must be between 1 and {len(self)}, got {k}")
        values = np.sort(self.accuracies(dataset))[::-1]
        return float(values[k - 1])


def _as_cell(cell: Cell | str | Mapping[str, Any]) -> Cell:
    if isinstance(cell, Cell):
        return cell
    if isinstance(cell, str):
        return Cell.parse(cell)
    if isinstance(cell, Mapping):
        return Cell.from_params(cell)
    raise CellError(f"expected a Cell, a cell string or a mapping, got {type(cell).__name__}")
