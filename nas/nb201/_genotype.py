"""NAS-Bench-201 cell strings <-> the edge parameters of ``genotypes/nb201.yaml``.

The genotype names its six op-valued parameters after :data:`nas.nb201.EDGES` with ``_`` for
``.`` (``node2.in1`` -> ``node2_in1``: the op from node 1 to node 2), and names its edge
blocks after the benchmark's ops, so a parameter holds the benchmark's op name as it is. Parsing and validation are :class:`nas.nb201.Cell`'s.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nas.nb201._cell import EDGES, Cell, CellError

__all__ = ["NB201_EDGE_PARAMS", "nb201_params", "nb201_arch"]

#: The genotype's edge parameter names, in the order the benchmark's cell string lists them.
NB201_EDGE_PARAMS: tuple[str, ...] = tuple(label.replace(".", "_") for label in EDGES)


def nb201_params(arch: str) -> dict[str, str]:
    """The ``nb201`` genotype's edge parameters for a benchmark cell string.

    >>> nb201_params("|nor_conv_3x3~0|+|none~0|skip_connect~1|+|none~0|none~1|avg_pool_3x3~2|")["node2_in1"]
    'skip_connect'

    Use as ``nas.load_genotype("nb201", **nb201_params(arch))``.

    Raises:
        nas.nb201.CellError: for a malformed string or an unknown op (a ``ConfigError``).
    """
    cell = Cell.parse(arch)
    return dict(zip(NB201_EDGE_PARAMS, cell.ops))


def nb201_arch(params: Mapping[str, Any]) -> str:
    """The benchmark's cell string for the edge parameters in ``params`` (other keys, such as
    ``width`` or ``classes``, are ignored): the inverse of :func:`nb201_params`.

    >>> nb201_arch(nb201_params("|none~0|+|none~0|none~1|+|none~0|none~1|skip_connect~2|"))
    '|none~0|+|none~0|none~1|+|none~0|none~1|skip_connect~2|'

    Raises:
        nas.nb201.CellError: when an edge parameter is missing or holds an unknown op.
    """
    missing = [name for name in NB201_EDGE_PARAMS if name not in params]
    if missing:
        raise CellError(f"missing edge parameter(s) {', '.join(missing)}")
    return Cell(tuple(params[name] for name in NB201_EDGE_PARAMS)).to_str()
