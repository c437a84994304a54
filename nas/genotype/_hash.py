"""The isomorphism hash of an expanded genotype: Weisfeiler-Lehman over op, arguments and shapes.

A search hashes every candidate (deduplication), and candidates of one space share most of
their nodes and neighbourhoods. So the text of a node's label (``op(args)shape``) and the
digest of every text a refinement step builds are kept across calls, in two bounded tables
(:data:`MAX_KEPT` entries each, emptied when full; digests only of texts up to
:data:`MAX_KEPT_TEXT` characters, so the tables' size in bytes is bounded too). A digest is
kept under the strings its text is made of (the node's text and its neighbours', in the
graph's order, and its edges' ports unless they are all empty), not under the text: looking
a tuple up reuses the strings' cached hashes, where a text would be built and hashed whole on
every lookup. The key determines the text, and a digest is a pure function of its text, so
what a table returns is what the computation would give. Thread-safe (a table read while another thread
empties it is a miss).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Mapping
from operator import itemgetter
from typing import Any

import networkx as nx

from nas import ops

__all__ = ["graph_hash", "node_label", "exact_key", "MAX_KEPT", "MAX_KEPT_TEXT"]

MAX_KEPT = 1 << 15
"""Most entries each table keeps (label texts; digests of refinement texts)."""
MAX_KEPT_TEXT = 1 << 10
"""Longest refinement text whose digest is kept (a node and its neighbours' labels: a few
hundred characters in the zoo; a node with many neighbours is digested every time)."""

_DIGESTS: dict[tuple[Any, ...], str] = {}  # refinement key -> digest of its text
_LABELS: dict[tuple, str] = {}


def graph_hash(graph: nx.DiGraph, iterations: int = 4, *, labels: Mapping[str, str] | None = None) -> str:
    """Weisfeiler-Lehman hash of the primitive graph, invariant to node names.

    Nodes are labelled ``op(args)shape`` (plus ``outN`` on outputs); an edge carries its input
    port where input order matters. The result equals networkx 3.5's
    ``weisfeiler_lehman_graph_hash(labelled, node_attr="label", edge_attr="port",
    iterations=4, digest_size=16)`` of that labelled graph (kept identical, so hashes stored in
    existing runs stay valid); it is computed here directly, without building the labelled
    copy, in time linear in the graph's size per iteration.

    ``labels``: every node's :func:`node_label`, when the caller has them (expansion makes
    them as it adds nodes: :func:`nas.genotype._expand.expand_labelled`); they must be what
    :func:`node_label` gives for the node's data now."""
    nodes = graph._node
    index_of = dict(zip(nodes, range(len(nodes))))
    if labels is None:
        texts = [node_label(data["op"], data["args"], data["shape"]) for data in nodes.values()]
    else:
        texts = list(map(labels.__getitem__, nodes))  # each node's label, then its digests
    marked: set[str] = set()
    for position, node in enumerate(graph.graph.get("outputs", [])):
        if node not in marked:  # an output's label ends in outN, N its first place in outputs
            marked.add(node)
            texts[index_of[node]] += f"out{position}"
    ops_of = [data["op"] for data in nodes.values()]
    ordered = {op: op != "input" and not ops.get(op).commutative for op in set(ops_of)}
    ported = list(map(ordered.__getitem__, ops_of))  # whether a node's edges carry their port
    # neighbours by index, each with the port text its edge contributes
    successors: list[list[tuple[str, int]]] = [[] for _ in texts]
    predecessors: list[list[tuple[str, int]]] = [[] for _ in texts]
    # networkx's own predecessor dicts, read (what graph.in_edges(data="port") iterates); an
    # edge into a node whose inputs commute contributes no port (nor reads it)
    for target, sources in graph._pred.items():
        target_index = index_of[target]
        before = predecessors[target_index]
        if ported[target_index]:
            for source, data in sources.items():
                text = str(data.get("port"))
                source_index = index_of[source]
                successors[source_index].append((text, target_index))
                before.append((text, source_index))
        else:
            for source in sources:
                source_index = index_of[source]
                successors[source_index].append(("", target_index))
                before.append(("", source_index))
    # most nodes have one reader and one source, and no port on either edge: their key is
    # three strings (theirs, their reader's, their source's), their text the three joined,
    # nothing to sort; the others' key is a pair, their edges' ports and the texts of the node
    # and its neighbours (so no key of one kind equals one of the other)
    single: list[tuple[int, int, int]] = []
    several: list[tuple[int, tuple[Any, ...], itemgetter, list[tuple[str, int]], list[tuple[str, int]]]] = []
    for index, (after, before) in enumerate(zip(successors, predecessors)):
        if len(after) == 1 and len(before) == 1 and not after[0][0] and not before[0][0]:
            single.append((index, after[0][1], before[0][1]))
        else:
            edges = after + before
            ports = (len(after), *[port for port, _ in edges])
            several.append((index, ports, itemgetter(index, *[other for _, other in edges]), after, before))
    counts: list[tuple[str, int]] = []
    digests = _DIGESTS
    for _ in range(iterations):
        new = texts.copy()  # each node's entry replaced below
        for index, reader, source in single:
            key = (texts[index], texts[reader], texts[source])
            digest = digests.get(key)
            if digest is None:
                digest = _new_digest(key, "".join(key))
            new[index] = digest
        for index, ports, gather, after, before in several:
            key = (ports, gather(texts))
            digest = digests.get(key)
            if digest is None:
                text = (
                    texts[index]
                    + "".join(sorted([port + texts[other] for port, other in after]))
                    + "".join(sorted([port + texts[other] for port, other in before]))
                )
                digest = _new_digest(key, text)
            new[index] = digest
        texts = new
        counts.extend(sorted(Counter(texts).items()))
    return _digest(_tuple_text(counts))


def _tuple_text(counts: list[tuple[str, int]]) -> str:
    """``str(tuple(counts))`` for hex digests (whose ``repr`` is the text in quotes) and their
    counts, made in one join (the tuple's ``str`` was a sixth of a NAS-Bench-201 cell's hash)."""
    if len(counts) == 1:
        return f"(('{counts[0][0]}', {counts[0][1]}),)"
    return "(" + ", ".join([f"('{digest}', {count})" for digest, count in counts]) + ")"


def node_label(op: str, args: Mapping[str, Any], shape: Any) -> str:
    """A node's label in the hash: ``op(k=v,...)shape``, arguments sorted by name, values as
    ``repr`` (an output's adds its ``outN``)."""
    key = _label_key(op, args, shape)
    if key is None:
        return _label_text(op, args, shape)
    label = _LABELS.get(key)
    if label is None:
        label = _keep(_LABELS, key, _label_text(op, args, shape))
    return label


def _label_text(op: str, args: Mapping[str, Any], shape: Any) -> str:
    text = ",".join([f"{k}={args[k]!r}" for k in sorted(args)])
    return f"{op}({text}){shape}"


# equal values of one of these types have equal repr (but 0.0 and -0.0, kept out of keys; a NaN
# equals only itself, so another NaN is a miss)
_EXACT = frozenset({int, str, bool, float, type(None)})
_INTEGER = frozenset({int})


def _label_key(op: str, args: Mapping[str, Any], shape: Any) -> tuple | None:
    """A key equal only for equal label texts, or ``None`` where the values do not say their
    text: arguments other than numbers, strings, booleans and None, a float zero, a shape
    other than a tuple of integers. Types are part of the key (``1``, ``1.0``, ``True``)."""
    key = exact_key(args)
    if key is None or not (shape.__class__ is tuple and _INTEGER.issuperset(map(type, shape))):
        return None
    return (op, shape, *key)


def exact_key(args: Mapping[str, Any]) -> tuple | None:
    """A hashable key equal only for arguments of equal names, values and types (``1``,
    ``1.0`` and ``True`` differ; a float zero, whose sign ``==`` ignores, gives no key), or
    ``None`` for values other than numbers, strings, booleans and None."""
    values = tuple(args.values())
    types = tuple(map(type, values))
    if not _EXACT.issuperset(types) or (float in types and 0.0 in values):
        return None
    return (tuple(args), values, types)


def _keep(table: dict, key: Any, value: str) -> str:
    """``table[key] = value``, emptying ``table`` first when it holds :data:`MAX_KEPT` entries."""
    if len(table) >= MAX_KEPT:
        table.clear()
    table[key] = value
    return value


def _new_digest(key: tuple[Any, ...], text: str) -> str:
    """The digest of a refinement ``text`` (made of ``key``'s strings) not in the table, kept
    there under ``key`` if the text is short enough. (:func:`_digest` and :func:`_keep`
    written out: a NAS-Bench-201 candidate makes ~280 new texts.)"""
    blake = _BLAKE2B.copy()
    blake.update(text.encode("ascii"))
    digest = blake.hexdigest()
    if len(text) <= MAX_KEPT_TEXT:
        if len(_DIGESTS) >= MAX_KEPT:
            _DIGESTS.clear()
        _DIGESTS[key] = digest
    return digest


_BLAKE2B = hashlib.blake2b(digest_size=16)  # copied: cheaper than parsing the size each time


def _digest(text: str) -> str:
    """networkx's digest of a WL text: ``blake2b(text.encode("ascii"), digest_size=16)``."""
    blake = _BLAKE2B.copy()
    blake.update(text.encode("ascii"))
    return blake.hexdigest()
