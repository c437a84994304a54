"""NAS-Bench-201 as a tabular benchmark: cells, the accuracy table and the lookup objective.

Public API:

- :class:`Cell`, :data:`OPS`, :data:`EDGES`: the cell, its ops and its stable edge labels;
  ``Cell.parse`` / ``Cell.to_str`` for the benchmark's strings, ``Cell.key`` for the
  isomorphism key.
- :class:`NB201Table`: the CSV table (``NB201Table.load(path)``) with named ``<dataset>_<metric>``
  columns, and lookups; :func:`read_columns` reads a file's column names from its header.
- :func:`make_nb201_objective`, :class:`NB201Objective`, :class:`Evaluation`,
  :func:`suggest_cell`, :func:`cell_key`: the objective a search calls instead of training.
- :class:`CellError`, :class:`TableError`: both derive from :class:`nas.errors.ConfigError`.
"""

from __future__ import annotations

from nas.tabular._cell import EDGES, OPS, Cell, CellError
from nas.tabular._objective import (
    DUPLICATE_ATTR,
    KEY_ATTR,
    Evaluation,
    NB201Objective,
    cell_key,
    make_nb201_objective,
    suggest_cell,
)
from nas.tabular._table import NB201Table, TableError, read_columns, resolve_column

__all__ = [
    "DUPLICATE_ATTR",
    "EDGES",
    "KEY_ATTR",
    "OPS",
    "Cell",
    "CellError",
    "Evaluation",
    "NB201Objective",
    "NB201Table",
    "TableError",
    "cell_key",
    "make_nb201_objective",
    "read_columns",
    "resolve_column",
    "suggest_cell",
]
