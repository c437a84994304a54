"""What a picture of a primitive graph shows: its boxes, their labels, arrows and clusters.

:func:`layout` turns an expanded graph into a :class:`Drawing`, the plain data both writers
(Graphviz in :mod:`nas.drawing`, Mermaid here) draw:

- **Blocks collapse.** Block calls nested more than ``depth`` blocks deep become one box,
  labelled with the call as evaluated (``basic(128, s=2)``); ``depth=0`` shows the network's
  own statements, each block one box. Open blocks are clusters labelled with their call;
  ``repeat`` and ``seq`` are transparent (their copies are drawn in the enclosing cluster).
- **Repeats shorten.** Consecutive copies of a repeat (or items of a seq) drawn as one box
  each, with the same label and chained one after the other, become one box ``x N``.
- **Chains fuse.** An op without channels, kernel or stride that keeps its input's shape (a
  norm, an activation, dropout) joins the box of the op before it when it is that op's only
  reader: ``conv 7x7/2, 64 + bn + relu``.
- Boxes keep the order statements are written (the order of the graph's nodes), so writers
  that honour input order draw branches left to right as written.

Every box shows its name (the path relative to its cluster), the op with its key arguments
(channels, kernel, stride, groups, dilation, and any other argument not at its default, except
paddings, flags and norm constants) or the block call, and its output shape.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import networkx as nx

from nas import ops

__all__ = ["Box", "Cluster", "Drawing", "layout", "op_text", "to_mermaid"]

_KEY_ARGS = ("k", "s", "c")  # an op with any of these is never fused into the box before it
_QUIET_KINDS = ("padding", "bool")  # argument kinds a label never shows
_QUIET_NAMES = ("eps", "momentum")  # norm constants
_FUSED = " + "
_MAX_FUSED = 200  # characters of a fused box's text (a longer one is cut, ending "...")


@dataclass
class Box:
    """One drawn node: primitives ``members`` (in graph order), shown as ``name``, ``text``
    (op or block call) and ``shape`` (the last member's output shape)."""

    id: str
    name: str  # the path, or first-last of merged copies (layer3.1-5)
    text: str
    shape: tuple[int, ...]
    members: list[str]
    cluster: str  # path of the cluster holding the box; "" for the top level
    kind: str  # "input", "op", "block" (a collapsed block) or "output" (an op that is an output)
    count: int = 1  # copies merged into this box
    last: str = ""  # the text of the last copy merged (see _merge_copies)


@dataclass
class Cluster:
    """An open block: drawn as a frame labelled ``label`` inside the cluster ``parent``."""

    path: str
    label: str
    parent: str


@dataclass
class Drawing:
    """Boxes in written order, arrows between box ids (in the order of the graph's edges,
    each once), and the clusters by path (parents before children)."""

    name: str
    boxes: list[Box]
    edges: list[tuple[str, str]]
    clusters: dict[str, Cluster] = field(default_factory=dict)


def op_text(op: str, args: dict[str, Any]) -> str:
    """``conv 3x3/2, 64, g=32``: the op, kernel and stride, channels, then every other argument
    that differs from its default (paddings, flags, ``eps`` and ``momentum`` left out)."""
    if op == "input":
        return "input"
    schema = {arg.name: arg for arg in ops.get(op).args}
    parts = []
    if "k" in args:
        kernel = _size(args["k"])
        stride = args.get("s", 1)
        parts.append(kernel + (f"/{_size(stride, short=True)}" if stride not in (1, (1, 1)) else ""))
    elif "s" in args and args["s"] not in (1, (1, 1)):
        parts.append(f"/{_size(args['s'], short=True)}")
    if "c" in args:
        parts.append(str(args["c"]))
    for name, value in args.items():
        arg = schema.get(name)
        if name in _KEY_ARGS or arg is None or arg.kind in _QUIET_KINDS or name in _QUIET_NAMES:
            continue
        if value != arg.default:
            parts.append(f"{name}={_value(value)}")
    return f"{op} {', '.join(parts)}" if parts else op


def _size(value: Any, *, short: bool = False) -> str:
    if isinstance(value, (tuple, list)):
        return f"{value[0]}x{value[1]}" if value[0] != value[1] or not short else str(value[0])
    return str(value) if short else f"{value}x{value}"


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (tuple, list)):
        return "x".join(map(str, value))
    return str(value)


def _shape(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape))


def layout(graph: nx.DiGraph, depth: int = 0) -> Drawing:
    """The drawing of ``graph`` (from :func:`nas.genotype.expand`) with blocks nested more than
    ``depth`` deep collapsed. Raises ``ValueError`` for a negative depth."""
    if depth < 0:
        raise ValueError(f"depth must be >= 0, got {depth}")
    blocks: dict[str, str] = graph.graph.get("blocks", {})
    outputs = set(graph.graph.get("outputs", ()))
    clusters: dict[str, Cluster] = {}
    boxes: dict[str, Box] = {}  # by key: the collapsed block's path or the primitive's path
    owner: dict[str, str] = {}  # primitive -> box key
    for node, data in graph.nodes(data=True):
        key, cluster = _place(node, blocks, depth, clusters)
        owner[node] = key
        box = boxes.get(key)
        if box is not None:
            box.members.append(node)
            box.shape = data["shape"]
            continue
        if key == node:
            kind = "input" if data["op"] == "input" else "output" if node in outputs else "op"
            text = op_text(data["op"], data["args"])
        else:
            kind, text = "block", blocks[key]
        boxes[key] = Box(f"n{len(boxes)}", key, text, data["shape"], [node], cluster, kind)
    _fuse(graph, boxes, owner, outputs)
    _merge_copies(graph, boxes, owner)
    ordered = list(boxes.values())
    by_key = {key: box.id for key, box in boxes.items()}
    edges: dict[tuple[str, str], None] = {}
    for source, target in graph.edges:
        a, b = by_key[owner[source]], by_key[owner[target]]
        if a != b:
            edges[(a, b)] = None
    used: set[str] = set()  # the clusters holding a box, and the clusters around them
    for path in {box.cluster for box in ordered}:
        while path and path not in used:  # each cluster walked once: linear in the clusters
            used.add(path)
            path = clusters[path].parent
    kept = {path: c for path, c in clusters.items() if path in used}
    return Drawing(graph.graph.get("name", "network"), ordered, list(edges), kept)


def _place(node: str, blocks: dict[str, str], depth: int, clusters: dict[str, Cluster]) -> tuple[str, str]:
    """The box key of a primitive (itself, or the collapsed block holding it) and its cluster
    (the innermost open block above it); records open blocks in ``clusters``."""
    level, cluster, prefix = 0, "", ""
    for part in node.split(".")[:-1]:
        prefix = f"{prefix}.{part}" if prefix else part
        text = blocks.get(prefix)
        if text is None:
            continue
        level += 1
        if level > depth:
            return prefix, cluster
        if prefix not in clusters:
            clusters[prefix] = Cluster(prefix, f"{_relative(prefix, cluster)}: {text}", cluster)
        cluster = prefix
    return node, cluster


def _relative(path: str, cluster: str) -> str:
    return path[len(cluster) + 1:] if cluster and path.startswith(cluster + ".") else path


def fused_label(parts: list[str]) -> str:
    """The text of a box that fused ``parts`` (op texts, in order): runs of the same text
    counted (``relu x200``), joined by ``" + "`` and cut to :data:`_MAX_FUSED` characters
    (ending ``...``), so a deep stack of activations stays a label ``dot`` accepts."""
    runs: list[list[Any]] = []
    for part in parts:
        if runs and runs[-1][0] == part:
            runs[-1][1] += 1
        else:
            runs.append([part, 1])
    text = _FUSED.join(part if count == 1 else f"{part} x{count}" for part, count in runs)
    return text if len(text) <= _MAX_FUSED else text[:_MAX_FUSED - 3] + "..."


def _fuse(graph: nx.DiGraph, boxes: dict[str, Box], owner: dict[str, str], outputs: set[str]) -> None:
    """Fold shape-keeping ops without key arguments into the op box before them (its text
    from :func:`fused_label`)."""
    parts: dict[str, list[str]] = {}  # box key -> texts fused into it, the box's own first
    for node, data in graph.nodes(data=True):
        key = owner[node]
        box = boxes[key]
        if key != node or box.kind != "op" or len(data["inputs"]) != 1:
            continue
        (source,) = data["inputs"]
        before = boxes[owner[source]]
        if (
            before.kind != "op" or before.members[-1] != source or before.cluster != box.cluster
            or graph.out_degree(source) != 1 or source in outputs
            or graph.nodes[source]["shape"] != data["shape"]
            or any(name in data["args"] for name in _KEY_ARGS)
        ):
            continue
        if data["op"] != "identity":
            parts.setdefault(owner[source], [before.text]).append(box.text)
        before.members.append(node)
        before.shape = data["shape"]
        del boxes[key]
        owner[node] = owner[source]
    for key, texts in parts.items():
        boxes[key].text = fused_label(texts)


def _copy_of(key: str, box: Box) -> str | None:
    """The copy of a repeat (or item of a seq) that holds every member of ``box``, if any:
    ``layer1.2`` for the block box ``layer1.2`` or the op box ``layer1.2.conv + relu``. (Path
    parts that are numbers are copies: node names are identifiers.)"""
    parts = key.split(".")
    for end in range(len(parts) - 1, 0, -1):
        form = ".".join(parts[:end])
        if parts[end].isdigit():
            copy = f"{form}.{parts[end]}"
            if all(m == copy or m.startswith(copy + ".") for m in box.members):
                return copy
            return None
    return None


def _merge_copies(graph: nx.DiGraph, boxes: dict[str, Box], owner: dict[str, str]) -> None:
    """Merge consecutive, chained copies of a repeat drawn as one box each with equal labels."""
    copies: dict[str, list[str]] = {}  # copy path -> keys of the boxes it holds
    for key, box in boxes.items():
        copy = _copy_of(key, box)
        if copy is not None:
            copies.setdefault(copy, []).append(key)
    copy_of = {keys[0]: copy for copy, keys in copies.items() if len(keys) == 1}
    head_key: str | None = None  # the box a run of copies merges into
    for key in list(boxes):
        copy = copy_of.get(key)
        if copy is None:
            head_key = None
            continue
        if head_key is not None and _continues(graph, boxes, owner, head_key, copy_of[head_key], key, copy):
            head, box = boxes[head_key], boxes.pop(key)
            head.members.extend(box.members)
            head.shape = box.shape
            head.count += 1
            head.last = box.text
            for member in box.members:
                owner[member] = head_key
            form, first = copy_of[head_key].rsplit(".", 1)
            head.name = f"{form}.{first}-{int(first) + head.count - 1}"
            continue
        head_key = key
    for box in boxes.values():
        if box.count > 1:
            box.text = f"{_span(box.text, box.last)} x{box.count}"


def _continues(graph: nx.DiGraph, boxes: dict[str, Box], owner: dict[str, str],
               head_key: str, head_copy: str, key: str, copy: str) -> bool:
    """Whether box ``key`` (holding ``copy``) extends the run of copies merged into ``head_key``."""
    head, box = boxes[head_key], boxes[key]
    form, index = copy.rsplit(".", 1)
    head_form, head_index = head_copy.rsplit(".", 1)
    return (
        head_form == form and int(head_index) + head.count == int(index)
        and (box.kind, box.cluster) == (head.kind, head.cluster)
        and _span(head.text, box.text) is not None
        and _chained(graph, head, box, owner, head_key, key)
    )


def _chained(graph: nx.DiGraph, head: Box, box: Box, owner: dict[str, str], head_key: str, key: str) -> bool:
    """Whether ``box`` reads only from ``head`` and ``head`` feeds only ``box`` (besides itself)."""
    inside = set(head.members)
    for member in box.members:
        for source in graph.predecessors(member):
            if owner[source] not in (head_key, key):
                return False
    for member in inside:
        for target in graph.successors(member):
            if owner[target] not in (head_key, key):
                return False
    return True


def _span(first: str, last: str) -> str | None:
    """One text for a run of copies from the first's and the last's: equal texts, or texts
    differing only in decimal numbers (a drop rate growing along the network), shown as
    ``p=0.0056..0.1``; ``None`` when they differ in anything else (channels, strides, ops)."""
    if first == last:
        return first
    a, b = _split(first), _split(last)
    if a is None or b is None or len(a) != len(b):
        return None
    parts = []
    for x, y in zip(a, b):
        if x == y:
            parts.append(x)
            continue
        (kx, _, vx), (ky, _, vy) = x.rpartition("="), y.rpartition("=")
        if kx != ky or not (_decimal(vx) and _decimal(vy)):
            return None
        parts.append(f"{kx}={vx}..{vy}" if kx else f"{vx}..{vy}")
    return f"{first[:first.index('(') + 1]}{', '.join(parts)})"


def _split(text: str) -> list[str] | None:
    """The top-level arguments of a call's text ``name(a, [b, c], k=v)``; ``None`` if not a call."""
    if "(" not in text or not text.endswith(")"):
        return None
    inner = text[text.index("(") + 1:-1]
    parts, depth, start = [], 0, 0
    for index, char in enumerate(inner):
        depth += (char in "([") - (char in ")]")
        if char == "," and depth == 0:
            parts.append(inner[start:index].strip())
            start = index + 1
    parts.append(inner[start:].strip())
    return parts


def _decimal(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return any(c in text for c in ".en") and not text.isdigit()


def label_lines(box: Box, *, in_cluster: bool = False) -> tuple[str, str]:
    """The two lines of a box: ``name: text`` and the shape; the name relative to the box's
    cluster when ``in_cluster`` (drawn inside its frame)."""
    name = _relative(box.name, box.cluster) if in_cluster else box.name
    first = box.text if box.kind == "input" or name == box.text else f"{name}: {box.text}"
    return first, _shape(box.shape)


def to_mermaid(graph: nx.DiGraph, depth: int = 0) -> str:
    """Mermaid flowchart text (renders in GitHub Markdown) of :func:`layout`'s drawing."""
    drawing = layout(graph, depth)
    lines = ["flowchart TD"]
    children: dict[str, list[str]] = {}
    for path, cluster in drawing.clusters.items():
        children.setdefault(cluster.parent, []).append(path)
    members: dict[str, list[Box]] = {}
    for box in drawing.boxes:
        members.setdefault(box.cluster, []).append(box)
    number = {path: index for index, path in enumerate(drawing.clusters)}

    def emit(path: str, indent: str) -> None:
        for box in members.get(path, []):
            first, shape = label_lines(box, in_cluster=True)
            lines.append(f'{indent}{box.id}["{_mermaid_text(first)}<br/>{shape}"]')
        for index, child in enumerate(children.get(path, [])):
            cluster_id = f"c{number[child]}"
            lines.append(f'{indent}subgraph {cluster_id}["{_mermaid_text(drawing.clusters[child].label)}"]')
            emit(child, indent + "  ")
            lines.append(f"{indent}end")

    emit("", "  ")
    lines.extend(f"  {a} --> {b}" for a, b in drawing.edges)
    return "\n".join(lines) + "\n"


def _mermaid_text(text: str) -> str:
    return text.replace('"', "#quot;")
