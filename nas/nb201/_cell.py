"""The NAS-Bench-201 cell: six edge ops, their string form and an isomorphism key.

The cell has four nodes. Node 0 is the cell input; node ``j`` (1..3) is the sum of
``op(node i)`` over every ``i < j``; node 3 is the cell output. That gives six edges, named
here by the node they feed and the node they read, in the benchmark's own order:

========= ==========================
label     edge
========= ==========================
node1.in0 node 0 -> node 1
node2.in0 node 0 -> node 2
node2.in1 node 1 -> node 2
node3.in0 node 0 -> node 3
node3.in1 node 1 -> node 3
node3.in2 node 2 -> node 3
========= ==========================

These labels are the stable parameter names a search uses (see :data:`EDGES`). The ops are
those of :data:`OPS`. The benchmark's cell string lists, node by node, ``op~input`` tokens::

    |nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|

This module only decodes, validates and encodes; it does not know accuracies.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nas.errors import ConfigError

__all__ = ["OPS", "EDGES", "CellError", "Cell"]

#: The five candidate ops of an edge, in the benchmark's order.
OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")

#: The six edge labels, in the order the benchmark's cell string lists them.
EDGES: tuple[str, ...] = (
    "node1.in0",
    "node2.in0",
    "node2.in1",
    "node3.in0",
    "node3.in1",
    "node3.in2",
)

# (target node, source node) of each edge, position for position with EDGES.
_EDGE_NODES: tuple[tuple[int, int], ...] = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))

# The canonical expression of a node that is identically zero.
_ZERO = "0"


class CellError(ConfigError):
    """A NAS-Bench-201 cell string, op name or edge label that is invalid."""


def _check_op(op: Any, where: str) -> str:
    if op not in OPS:
        raise CellError(f"unknown op {op!r}; valid ops are {', '.join(OPS)}", path=where)
    return op


@dataclass(frozen=True)
class Cell:
    """A NAS-Bench-201 cell: one op per edge, in the order of :data:`EDGES`.

    Construct it from a benchmark string (:meth:`parse`), from a mapping of edge labels to ops
    (:meth:`from_params`), or directly from a sequence of six ops.

    Raises:
        CellError: if there are not exactly six ops or one of them is not in :data:`OPS`.
    """

    ops: tuple[str, ...]

    def __post_init__(self) -> None:
        ops = tuple(self.ops)
        if len(ops) != len(EDGES):
            raise CellError(f"a cell has {len(EDGES)} edges, got {len(ops)} ops")
        for label, op in zip(EDGES, ops):
            _check_op(op, label)
        object.__setattr__(self, "ops", ops)

    @classmethod
    def parse(cls, text: str) -> Cell:
        """Decode the benchmark's cell string.

        Grammar: three node groups joined by ``+``; group ``j`` (for node ``j`` = 1, 2, 3) is
        ``|op~0|op~1|...|op~(j-1)|``, one token per input node in increasing order. Surrounding
        white space is ignored; nothing else is accepted.

        Raises:
            CellError: naming the token that is malformed, has the wrong input node or an
                unknown op (the message lists the valid ops).
        """
        if not isinstance(text, str):
            raise CellError(f"a cell string must be text, got {type(text).__name__}")
        groups = text.strip().split("+")
        if len(groups) != 3:
            raise CellError(f"cell string {text!r} must have 3 node groups joined by '+'")
        ops: list[str] = []
        for node, group in enumerate(groups, start=1):
            if not (group.startswith("|") and group.endswith("|")) or len(group) < 2:
                raise CellError(f"node group {group!r} must start and end with '|'",
                                path=f"node{node}")
            tokens = group[1:-1].split("|")
            if len(tokens) != node:
                raise CellError(f"node {node} needs {node} inputs, got {len(tokens)} in {group!r}",
                                path=f"node{node}")
            for source, token in enumerate(tokens):
                where = f"node{node}.in{source}"
                op, sep, index = token.partition("~")
                if not sep or index != str(source):
                    raise CellError(f"token {token!r} must read 'op~{source}'", path=where)
                ops.append(_check_op(op, where))
        return cls(tuple(ops))

    @classmethod
    def from_params(cls, params: Mapping[str, Any], *, prefix: str = "") -> Cell:
        """Build a cell from a mapping ``prefix + label -> op`` (e.g. an Optuna trial's params).

        Keys other than the six prefixed edge labels are ignored, so a trial may carry more
        parameters than the cell.

        Raises:
            CellError: if an edge label is missing (the message names it) or an op is unknown.
        """
        missing = [prefix + label for label in EDGES if prefix + label not in params]
        if missing:
            raise CellError(f"missing edge parameter(s) {', '.join(missing)}")
        return cls(tuple(params[prefix + label] for label in EDGES))

    def params(self, *, prefix: str = "") -> dict[str, str]:
        """The mapping ``prefix + label -> op``, the inverse of :meth:`from_params`."""
        return {prefix + label: op for label, op in zip(EDGES, self.ops)}

    def to_str(self) -> str:
        """The benchmark's cell string; ``Cell.parse(c.to_str()) == c``."""
        groups: list[list[str]] = [[], [], []]
        for (target, source), op in zip(_EDGE_NODES, self.ops):
            groups[target - 1].append(f"{op}~{source}")
        return "+".join("|" + "|".join(tokens) + "|" for tokens in groups)

    def __str__(self) -> str:
        return self.to_str()

    def key(self) -> str:
        """An isomorphism key: equal for cells that compute the same function.

        Each node is written as a canonical expression of the input ``x``: a sum of terms in
        sorted order (the sum is commutative and associative), ``0`` when it has none. A
        ``none`` edge or a zero source adds no term, ``skip_connect`` adds its source's terms
        (so sums flatten across nodes), any other op adds the term ``op(source)``. The key is
        the output node's expression, so edges whose result cannot reach the output, node
        numbering and term order do not change it. This follows NAS-Bench-201's
        ``to_unique_str(consider_zero=True)``, with sums flattened through skip edges. Every
        disconnected cell has the key ``'0'``. Two summands that are equal are kept twice
        (``a + a`` is not ``a``).
        """
        # Each node is a sorted tuple of summands; () is zero. A skip edge adds its source's
        # summands (so sums flatten across nodes), any other op adds one wrapped summand.
        nodes: list[tuple[str, ...]] = [("x",)]
        for node in (1, 2, 3):
            terms: list[str] = []
            for (target, source), op in zip(_EDGE_NODES, self.ops):
                if target != node or op == "none" or not nodes[source]:
                    continue
                if op == "skip_connect":
                    terms.extend(nodes[source])
                else:
                    terms.append(f"{op}({'+'.join(nodes[source])})")
            nodes.append(tuple(sorted(terms)))
        return "+".join(nodes[3]) or _ZERO

    def is_connected(self) -> bool:
        """Whether the output depends on the input (the key is not ``'0'``)."""
        return self.key() != _ZERO
