"""NAS-Bench-201, all of its Python: cells, the accuracy table, the lookup objective, and the
edge parameters of the zoo's ``nb201`` genotype (``genotypes/nb201.yaml``).

Public API:

- :class:`Cell`, :data:`OPS`, :data:`EDGES`: the cell, its ops and its stable edge labels;
  ``Cell.parse`` / ``Cell.to_str`` for the benchmark's strings, ``Cell.key`` for the
  isomorphism key.
- :class:`NB201Table`: the CSV table (``NB201Table.load(path)``) with named ``<dataset>_<metric>``
  columns, and lookups; :func:`read_columns` reads a file's column names from its header.
- :func:`make_nb201_objective`, :class:`NB201Objective`, :class:`Evaluation`,
  :func:`suggest_cell`, :func:`cell_key`: the objective a search calls instead of training.
- :func:`nb201_params`, :func:`nb201_arch`, :data:`NB201_EDGE_PARAMS`: a cell string <-> the
  ``nb201`` genotype's edge parameters (``nas.load_genotype("nb201", **nb201_params(arch))``).
- :class:`CellError`, :class:`TableError`: both derive from :class:`nas.errors.ConfigError`.
"""

from __future__ import annotations

from nas.nb201._cell import EDGES, OPS, Cell, CellError
from nas.nb201._genotype import NB201_EDGE_PARAMS, nb201_arch, nb201_params
from nas.nb201._objective import (
    DUPLICATE_ATTR,
    KEY_ATTR,
    Evaluation,
    NB201Objective,
    cell_key,
    make_nb201_objective,
    suggest_cell,
)
from nas.nb201._table import NB201Table, TableError, read_columns, resolve_column

__all__ = [
    "DUPLICATE_ATTR",
    "EDGES",
    "KEY_ATTR",
    "NB201_EDGE_PARAMS",
    "OPS",
    "Cell",
    "CellError",
    "Evaluation",
    "NB201Objective",
    "NB201Table",
    "TableError",
    "cell_key",
    "make_nb201_objective",
    "nb201_arch",
    "nb201_params",
    "read_columns",
    "resolve_column",
    "suggest_cell",
]
