"""Static analysis of a genotype: shapes, parameters, MACs and activation memory, without torch.

Figures come from each primitive's static rule (:meth:`nas.ops.Op.infer`) on the expanded
graph, so they equal what the built module has: the parameter count is exact, MACs count
convolutions and linear layers (torchvision's convention), and memory figures are for one
sample in float32 (multiply by the batch size).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from nas.errors import ConfigError, GenotypeError
from nas import ops
from nas.genotype import INPUT, Genotype
from nas.genotype._model import require_genotype

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence, Set

    import networkx as nx
    import pandas as pd

__all__ = ["Stats", "NodeStats", "analyze", "check_memory", "depends_on_input", "format_bytes", "MAX_MEMORY"]

BYTES_PER_ELEMENT = 4
MAX_MEMORY = 4 << 30
"""Default limit of :attr:`Stats.memory_bytes` (4 GiB) for validating, decoding and building:
the zoo's largest network needs under 1 GiB. Raise it with ``max_memory=`` or ``--max-memory``."""


@dataclass(frozen=True)
class NodeStats:
    """Figures for one primitive."""

    path: str
    op: str
    args: dict[str, Any]
    input_shapes: tuple[tuple[int, ...], ...]
    output_shape: tuple[int, ...]
    params: int
    macs: int

    @property
    def activations(self) -> int:
        """Elements of the output (one sample)."""
        return math.prod(self.output_shape)


@dataclass(frozen=True)
class Stats:
    """What :func:`analyze` reports. ``nodes`` lists primitives in execution order."""

    name: str
    input_shape: tuple[int, ...]
    output_shapes: tuple[tuple[int, ...], ...]
    params: int
    macs: int
    activation_bytes: int
    peak_activation_bytes: int
    nodes: tuple[NodeStats, ...] = field(repr=False)

    @property
    def param_bytes(self) -> int:
        """Bytes of the parameters in float32."""
        return self.params * BYTES_PER_ELEMENT

    @property
    def input_bytes(self) -> int:
        """Bytes of one input sample in float32."""
        return math.prod(self.input_shape) * BYTES_PER_ELEMENT

    @property
    def memory_bytes(self) -> int:
        """What building the network and running one sample through it in training needs at
        least: parameter, input and activation bytes (float32)."""
        return self.param_bytes + self.input_bytes + self.activation_bytes

    def training_bytes(self, batch: int) -> int:
        """What training a batch of ``batch`` samples needs at least: the parameters, and
        ``batch`` times the input and activation bytes (float32; :attr:`memory_bytes` for 1)."""
        return self.param_bytes + batch * (self.input_bytes + self.activation_bytes)

    @property
    def output_shape(self) -> tuple[int, ...]:
        """Shape of the (first) output, without the batch dimension."""
        return self.output_shapes[0]

    @cached_property
    def per_node(self) -> pd.DataFrame:
        """One row per primitive: path, op, args, input/output shapes, params, MACs,
        activations (elements)."""
        import pandas as pd

        return pd.DataFrame(
            [
                {
                    "path": n.path,
                    "op": n.op,
                    "args": _format_args(n.args),
                    "input_shapes": n.input_shapes,
                    "output_shape": n.output_shape,
                    "params": n.params,
                    "macs": n.macs,
                    "activations": n.activations,
                }
                for n in self.nodes
            ]
        )

    def to_dict(self) -> dict[str, Any]:
        """Totals as plain JSON-ready data."""
        return {
            "name": self.name,
            "input_shape": list(self.input_shape),
            "output_shape": list(self.output_shape),
            "output_shapes": [list(s) for s in self.output_shapes],
            "params": self.params,
            "macs": self.macs,
            "activation_bytes": self.activation_bytes,
            "peak_activation_bytes": self.peak_activation_bytes,
            "primitives": len(self.nodes),
        }


def _format_args(args: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in args.items() if v is not None)


def analyze(genotype: Genotype) -> Stats:
    """Static figures for ``genotype`` (expanding it if not yet done).

    Raises :class:`nas.GenotypeError` when the genotype does not expand, ``TypeError`` when
    ``genotype`` is not a :class:`~nas.Genotype`.
    """
    graph = require_genotype(genotype).graph
    nodes = []
    for path, data in graph.nodes(data=True):
        if path == INPUT:
            continue
        nodes.append(
            NodeStats(
                path=path,
                op=data["op"],
                args=data["args"],
                input_shapes=tuple(graph.nodes[s]["shape"] for s in data["inputs"]),
                output_shape=data["shape"],
                params=data["params"],
                macs=data["macs"],
            )
        )
    stored = sum(n.activations for n in nodes if not ops.get(n.op).alias)
    return Stats(
        name=genotype.name,
        input_shape=graph.nodes["input"]["shape"],
        output_shapes=tuple(graph.nodes[o]["shape"] for o in graph.graph["outputs"]),
        params=sum(n.params for n in nodes),
        macs=sum(n.macs for n in nodes),
        activation_bytes=stored * BYTES_PER_ELEMENT,
        peak_activation_bytes=_peak_elements(graph) * BYTES_PER_ELEMENT,
        nodes=tuple(nodes),
    )


def depends_on_input(graph: nx.DiGraph) -> bool:
    """Whether an output of the expanded ``graph`` can change with the network's input: False
    when every path from the input to the outputs passes through a ``zero`` (zeros whatever
    the values they read), e.g. a NAS-Bench-201 cell whose "none" edges cut its output off.
    Such a network computes a constant: training it cannot learn anything.

    Raises:
        TypeError: ``graph`` is not an expanded genotype's graph (:attr:`Genotype.graph`).
    """
    if not isinstance(getattr(graph, "graph", None), dict) or "outputs" not in graph.graph or INPUT not in graph:
        raise TypeError(f"graph must be an expanded genotype's graph (Genotype.graph), got {type(graph).__name__}")
    zero = {node for node, data in graph.nodes(data=True) if data["op"] == "zero"}
    return INPUT in outputs_depend_on(graph, stop=zero)


def outputs_depend_on(
    graph: nx.DiGraph, sources_of: Mapping[str, Sequence[str]] | None = None, *, stop: Set[str] = frozenset()
) -> set[str]:
    """The nodes some output depends on: the outputs and, walking back, each node's sources
    (``sources_of``, default every node's ``inputs``); a node in ``stop`` is reached but not
    walked through."""
    needed = set(graph.graph["outputs"])
    pending = list(needed)
    while pending:
        node = pending.pop()
        if node in stop:
            continue
        for source in graph.nodes[node]["inputs"] if sources_of is None else sources_of[node]:
            if source not in needed:
                needed.add(source)
                pending.append(source)
    return needed


def alias_roots(graph: nx.DiGraph, sources_of: Mapping[str, Sequence[str]] | None = None) -> dict[str, str]:
    """For every node, the node whose tensor it is: itself, or for an alias (identity:
    :attr:`nas.ops.Op.alias`) the root of its input. One pass in insertion (topological)
    order, so long identity chains stay linear. ``sources_of``: each node's inputs where they
    are fewer than the graph's (a sum left one input is an alias of it: ``nas.build``)."""
    roots: dict[str, str] = {}
    for node, data in graph.nodes(data=True):
        if node != INPUT:
            sources = data["inputs"] if sources_of is None else sources_of[node]
            op = ops.get(data["op"])
            if op.alias or len(sources) < op.min_inputs:
                roots[node] = roots[sources[0]]
                continue
        roots[node] = node
    return roots


def _peak_elements(graph: nx.DiGraph) -> int:
    """Peak of live activations in inference, running nodes in insertion (topological) order
    and freeing each output after its last reader. Aliases (identity) share their input's memory."""
    order = list(graph.nodes)
    position = {node: index for index, node in enumerate(order)}
    outputs = set(graph.graph["outputs"])
    owner = alias_roots(graph)

    last_read: dict[str, int] = {}
    for node in order:
        for source in graph.nodes[node]["inputs"]:
            root = owner[source]
            last_read[root] = max(last_read.get(root, 0), position[node])
    for node in outputs:
        last_read[owner[node]] = len(order)
    live = peak = 0
    frees: dict[int, int] = {}
    for index, node in enumerate(order):
        data = graph.nodes[node]
        if owner[node] == node:
            size = math.prod(data["shape"])
            live += size
            peak = max(peak, live)
            free_at = last_read.get(node, index)
            frees[free_at] = frees.get(free_at, 0) + size
        live -= frees.pop(index, 0)
    return peak


def format_bytes(count: float) -> str:
    """``1536`` → ``"1.5 KiB"``; powers of 1024."""
    for unit, size in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if count >= size:
            return f"{count / size:.1f} {unit}"
    return f"{int(count)} B"


def check_memory(genotype: Genotype, max_memory: int = MAX_MEMORY, *, batch: int = 1) -> Stats:
    """Static figures for ``genotype`` (:func:`analyze`) after checking that training a batch of
    ``batch`` samples fits in ``max_memory`` bytes: :attr:`Stats.memory_bytes` for one sample,
    the parameters plus ``batch`` times the input and activations for more.

    Raises :class:`nas.GenotypeError` (one line: the figure, its parts and the limit) when it is
    not, or when the genotype does not expand; :class:`nas.ConfigError` when ``max_memory`` is
    not a number of bytes (``math.inf`` is: no limit).
    """
    if isinstance(max_memory, bool) or not isinstance(max_memory, (int, float)) or not max_memory >= 0:
        raise ConfigError(f"must be a number of bytes >= 0, got {max_memory!r}", path="max_memory")
    stats = analyze(genotype)
    per_sample = stats.input_bytes + stats.activation_bytes
    if stats.training_bytes(batch) > max_memory:
        what = "per sample" if batch == 1 else f"per sample, times a batch of {batch:,}"
        raise GenotypeError(
            f"needs {format_bytes(stats.training_bytes(batch))} of memory (parameters "
            f"{format_bytes(stats.param_bytes)}, input and activations {format_bytes(per_sample)} "
            f"{what} in training), over the limit of {format_bytes(max_memory)} "
            "(raise it with --max-memory)",
            file=genotype.source,
        )
    return stats
