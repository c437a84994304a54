"""The NAS-Bench-201 table, read from a CSV file, with named columns.

The file has one row per cell with the columns ``index``, ``arch`` (the benchmark's cell
string) and any number of value columns named ``<dataset>_<metric>`` (lower case letters and
digits on each side of one underscore), e.g. ``cifar10_valid``, ``cifar10_test``,
``cifar100_test`` (accuracies in percent). Other columns are ignored. Which column a search
optimises and which it reports are named by the caller (a run config's ``tabular.objective``
and ``tabular.report``); nothing here knows a dataset or a metric. A bare dataset name
(``cifar10``) still means its test column (``cifar10_test``), as before columns were named.
The path is always given by the caller; this module knows no default location. Loading reads
the file once with pandas and builds a dict from cell string to row, so a lookup is a dict
access; isomorphism keys are computed on first use.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from nas.nb201._cell import Cell, CellError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["TableError", "NB201Table", "read_columns", "resolve_column", "value_columns"]

_REQUIRED = ("index", "arch")
MAX_TABLE_BYTES = 256 << 20
"""Largest table file read: the benchmark's 15,625 cells with every metric of its datasets
take a few dozen megabytes (a larger file would be read whole into memory by pandas)."""
MAX_COLUMNS = 1_000
"""Most columns a table file's header may name: the benchmark's metrics are a few dozen, and
pandas reads a header of 200,000 names in 20 s."""
_MAX_HEADER_BYTES = 1 << 20
_COLUMN = re.compile(r"^[a-z][a-z0-9]*_[a-z][a-z0-9]*$")


class TableError(CellError):
    """A NAS-Bench-201 table file that cannot be read, or a query it cannot answer."""


def value_columns(names: Sequence[str]) -> tuple[str, ...]:
    """The ``<dataset>_<metric>`` names among ``names``, in their order."""
    return tuple(n for n in names if n not in _REQUIRED and _COLUMN.match(str(n)))


def read_columns(path: str | PathLike[str]) -> tuple[str, ...]:
    """The value columns of the CSV file at ``path``, from its header alone.

    Raises:
        TableError: if the file is missing or unreadable, lacks ``index`` and ``arch``, or
            names more than :data:`MAX_COLUMNS` columns.
    """
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise TableError("NAS-Bench-201 table not found", file=str(path))
    size = path.stat().st_size
    if size > MAX_TABLE_BYTES:
        raise TableError(f"{size:,} bytes: larger than a NAS-Bench-201 table (at most {MAX_TABLE_BYTES:,})",
                         file=str(path))
    _check_header(path)
    try:
        names = list(pd.read_csv(path, nrows=0).columns)
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise TableError(f"cannot read the table: {exc}", file=str(path)) from None
    missing = [c for c in _REQUIRED if c not in names]
    if missing:
        raise TableError(f"missing column(s) {', '.join(missing)}", file=str(path))
    return value_columns(names)


def _check_header(path: Path) -> None:
    """Refuse a header line of more than :data:`MAX_COLUMNS` columns (counted as its commas,
    before pandas parses it) or longer than 1 MiB.

    Raises:
        TableError: naming the file.
    """
    try:
        with open(path, "rb") as handle:
            header = handle.readline(_MAX_HEADER_BYTES + 1)
    except OSError as error:
        raise TableError(f"cannot read the table: {error.strerror or error}", file=str(path)) from None
    if len(header) > _MAX_HEADER_BYTES or header.count(b",") >= MAX_COLUMNS:
        raise TableError(f"its header names more than {MAX_COLUMNS:,} columns (or is longer than "
                         f"{_MAX_HEADER_BYTES:,} bytes): not a NAS-Bench-201 table", file=str(path))


def resolve_column(name: Any, columns: Sequence[str], *, file: str | None = None) -> str:
    """``name`` if it is one of ``columns``; a bare dataset name means ``<name>_test``.

    Raises:
        TableError: "unknown column ...; valid columns are ..." otherwise.
    """
    if isinstance(name, str):
        if name in columns:
            return name
        if f"{name}_test" in columns:
            return f"{name}_test"
    raise TableError(f"unknown column {name!r}; valid columns are {', '.join(columns)}", file=file)


class NB201Table:
    """Values of every NAS-Bench-201 cell, in named columns.

    Use :meth:`load` to read the CSV file. Cells are looked up by :class:`Cell`, by the
    benchmark's cell string, or by a mapping of edge labels to ops. A column is named by its
    full name (``cifar10_valid``) or, for the test column, by the dataset (``cifar10``).
    """

    def __init__(self, frame: pd.DataFrame, *, source: str | None = None):
        """Wrap a frame with the columns of the CSV file (see the module docstring).

        Raises:
            TableError: if ``index``, ``arch`` or every value column is missing, there is no
                row, a value column is not numeric or an arch is empty (naming the first such
                row), or a cell string is repeated.
            TypeError: ``frame`` is not a DataFrame (a path is read by :meth:`load`).
        """
        import pandas as pd

        if not isinstance(frame, pd.DataFrame):
            hint = " (read a file with NB201Table.load)" if isinstance(frame, (str, PathLike)) else ""
            raise TypeError(f"frame must be a pandas DataFrame{hint}, got {type(frame).__name__}")
        missing = [c for c in _REQUIRED if c not in frame.columns]
        if missing:
            raise TableError(f"missing column(s) {', '.join(missing)}", file=source)
        columns = value_columns(list(frame.columns))
        if not columns:
            raise TableError("missing value columns: none named <dataset>_<metric> "
                             "(e.g. cifar10_test)", file=source)
        if frame.empty:
            raise TableError("holds no cells (a header without rows)", file=source)
        self._source = source
        self._frame = frame.reset_index(drop=True)
        self._values: dict[str, np.ndarray] = {}
        for column in columns:
            try:
                self._values[column] = self._frame[column].to_numpy(dtype=float)
            except (TypeError, ValueError):
                import pandas as pd

                numbers = pd.to_numeric(self._frame[column], errors="coerce")
                rows = np.flatnonzero(numbers.isna() & self._frame[column].notna())
                where = (f": {self._where(int(rows[0]))} holds "
                         f"{str(self._frame[column][rows[0]])[:50]!r}" if rows.size else "")
                raise TableError(f"column {column} is not numeric{where}", file=source) from None
        arch = self._frame["arch"].tolist()
        for row, text in enumerate(arch):
            if not isinstance(text, str):  # an empty cell: NaN, which no lookup finds
                raise TableError(f"{self._where(row)}: arch is empty, not a cell string",
                                 file=source)
        self._row = {text: row for row, text in enumerate(arch)}
        if len(self._row) != len(arch):
            raise TableError("the table lists a cell string twice", file=source)
        self._cells: list[Cell] | None = None
        self._keys: list[str] | None = None

    def _where(self, row: int) -> str:
        """Row ``row`` as a user finds it: its line in the CSV file (the header is line 1, and
        no cell string holds a line break) and its ``index``."""
        return f"line {row + 2} (index {str(self._frame['index'][row])[:20]})"

    def check_finite(self, column: str) -> None:
        """Refuse a ``column`` holding NaN (an empty cell) or an infinity: a search would record
        it as a trial's value (Optuna refused NaN: 'unexpected ValueError'; an infinity was
        stored as null, so no trial recorded the objective).

        Raises:
            TableError: naming the file, the column and the first such row.
        """
        values = self._values[self.column(column)]
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            row = int(bad[0])
            raise TableError(f"column {self.column(column)}: {self._where(row)} holds "
                             f"{values[row]} ({bad.size:,} such rows); every value must be a "
                             "finite number", file=self._source)

    @classmethod
    def load(cls, path: str | PathLike[str]) -> NB201Table:
        """Read the table from the CSV file at ``path``.

        Raises:
            TableError: if the file does not exist, is not a CSV with the needed columns.
        """
        import pandas as pd

        path = Path(path)
        names = {*_REQUIRED, *read_columns(path)}  # a set: a header of 200,000 names took minutes
        try:
            frame = pd.read_csv(path, usecols=lambda c: c in names)
        except (ValueError, OSError, pd.errors.ParserError) as exc:
            raise TableError(f"cannot read the table: {exc}", file=str(path)) from None
        return cls(frame, source=str(path))

    def __len__(self) -> int:
        return len(self._frame)

    @property
    def columns(self) -> tuple[str, ...]:
        """The value columns (``<dataset>_<metric>``), in file order."""
        return tuple(self._values)

    @property
    def source(self) -> str | None:
        """The file the table was read from, if any."""
        return self._source

    def column(self, name: str) -> str:
        """The full name of column ``name`` (a bare dataset name means its test column).

        Raises:
            TableError: for an unknown column, listing the valid ones.
        """
        return resolve_column(name, self.columns, file=self._source)

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

    def value(self, cell: Cell | str | Mapping[str, Any], column: str) -> float:
        """The value of ``cell`` in ``column`` (e.g. ``cifar10_valid``; ``cifar10`` means
        ``cifar10_test``).

        Raises:
            TableError: for an unknown column or a cell not in the table.
            CellError: if ``cell`` is not a valid cell.
        """
        return float(self._values[self.column(column)][self.row(cell)])

    def values(self, column: str) -> np.ndarray:
        """Every value of ``column``, in row order (a read-only view).

        Raises:
            TableError: for an unknown column.
        """
        values = self._values[self.column(column)].view()
        values.flags.writeable = False
        return values

    #: Former names, from when every column was an accuracy: ``accuracy(cell, "cifar10")``.
    accuracy = value
    accuracies = values

    def top_k_threshold(self, column: str, k: int) -> float:
        """The ``k``-th largest value of ``column``: reaching it means being in the top ``k``.

        Raises:
            TableError: for an unknown column or ``k`` outside ``1..len(self)``.
        """
        if not 1 <= k <= len(self):
            raise TableError(f"k must be between 1 and {len(self)}, got {k}")
        values = np.sort(self.values(column))[::-1]
        return float(values[k - 1])


def _as_cell(cell: Cell | str | Mapping[str, Any]) -> Cell:
    if isinstance(cell, Cell):
        return cell
    if isinstance(cell, str):
        return Cell.parse(cell)
    if isinstance(cell, Mapping):
        return Cell.from_params(cell)
    raise CellError(f"expected a Cell, a cell string or a mapping, got {type(cell).__name__}")
