"""Pictures of genotypes: Graphviz DOT, SVG and PNG (through the ``graphviz`` package), and
Mermaid text.

What a picture shows is :func:`nas.genotype._draw.layout`'s drawing: blocks collapsed below
``depth`` levels, repeats shortened to ``x N``, norms and activations fused into the op box
before them, branches in written order. SVG and PNG need Graphviz's ``dot`` program; without
it :func:`render` raises :class:`~nas.errors.ConfigError` with one line saying how to install it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from nas.errors import ConfigError
from nas.genotype._draw import Drawing, label_lines, layout, to_mermaid

if TYPE_CHECKING:
    import networkx as nx

    from nas.genotype import Genotype

__all__ = ["FORMATS", "SUFFIXES", "draw", "format_for", "render", "to_dot", "INSTALL_DOT"]

FORMATS = ("svg", "png", "dot", "mermaid")
SUFFIXES = {".svg": "svg", ".png": "png", ".dot": "dot", ".gv": "dot", ".mmd": "mermaid"}
INSTALL_DOT = (
    "Graphviz's 'dot' program is not installed (it draws SVG and PNG): "
    "apt-get install graphviz, brew install graphviz or conda install graphviz; "
    "--format dot or mermaid need no program"
)

DOT_SECONDS = 30.0
"""Longest ``dot`` may take to draw one picture: its layout is superlinear in the boxes and
far worse in crossing edges (a 20 KB genotype of 100 nodes each adding all earlier ones ran
for minutes); past it the drawing is refused, not waited for."""

_FILL = {"input": "#e8e8e8", "op": "#ffffff", "block": "#dbe9f6", "output": "#fde7c8"}
_WRAP = 44  # characters of a label line before it wraps (at a comma or a " + ")


def to_dot(graph: nx.DiGraph, depth: int = 0) -> str:
    """Graphviz DOT text of the drawing of ``graph`` (render with ``dot -Tsvg``)."""
    return _digraph(layout(graph, depth)).source


def render(graph: nx.DiGraph, fmt: str, depth: int = 0) -> bytes:
    """The picture of ``graph`` as ``fmt`` (one of :data:`FORMATS`) in bytes. Raises
    :class:`~nas.errors.ConfigError` when ``fmt`` is unknown or needs ``dot`` and it is missing."""
    if fmt not in FORMATS:
        raise ConfigError(f"unknown picture format '{fmt}' (valid: {', '.join(FORMATS)})")
    if fmt == "mermaid":
        return to_mermaid(graph, depth).encode()
    digraph = _digraph(layout(graph, depth))
    if fmt == "dot":
        return digraph.source.encode()
    return _run_dot(digraph.source, fmt, graph.graph.get("name", "network"))


def _run_dot(source: str, fmt: str, name: str) -> bytes:
    """``dot -T fmt`` of ``source``. Raises :class:`~nas.errors.ConfigError`: no ``dot``
    (:data:`INSTALL_DOT`), ``dot`` still drawing after :data:`DOT_SECONDS` (it is killed), or
    one line naming the genotype ``name`` and the first line ``dot`` wrote to stderr when it
    fails (``communicate`` ignores the broken pipe of a ``dot`` that exited before reading all
    its input)."""
    import subprocess

    try:
        done = subprocess.run(["dot", f"-T{fmt}"], input=source.encode(), capture_output=True, check=False,
                              timeout=DOT_SECONDS)
    except FileNotFoundError:
        raise ConfigError(INSTALL_DOT) from None
    except subprocess.TimeoutExpired:
        raise ConfigError(f"genotype {name!r}: Graphviz's dot did not finish drawing it in {DOT_SECONDS:g} s; "
                          "draw fewer boxes (a smaller --depth) or write --format dot or mermaid") from None
    if done.returncode != 0:
        lines = done.stderr.decode(errors="replace").strip().splitlines() or [f"exit status {done.returncode}"]
        first = lines[0] if len(lines[0]) <= 200 else lines[0][:197] + "..."
        raise ConfigError(f"genotype {name!r}: Graphviz's dot could not draw it: {first}")
    return done.stdout


def format_for(out: str | Path | None, fmt: str | None) -> str:
    """The format of a picture written to ``out``: ``fmt`` if given (it must agree with a known
    suffix of ``out``), else picked by the suffix; ``dot`` for standard output."""
    suffix = Path(out).suffix.lower() if out is not None else ""
    by_suffix = SUFFIXES.get(suffix)
    if fmt is not None:
        if fmt not in FORMATS:
            raise ConfigError(f"unknown picture format '{fmt}' (valid: {', '.join(FORMATS)})")
        if by_suffix is not None and by_suffix != fmt:
            raise ConfigError(f"--out {Path(out).name} is {by_suffix}, not the --format {fmt} asked for")
        return fmt
    if out is None:
        return "dot"
    if by_suffix is None:
        raise ConfigError(
            f"cannot tell the format of '{Path(out).name}': end it in {', '.join(SUFFIXES)} or give --format"
        )
    return by_suffix


def draw(genotype: Genotype, out: str | Path, *, fmt: str | None = None, depth: int = 0) -> Path:
    """Write the picture of ``genotype`` to ``out`` (format from ``fmt`` or the suffix) and
    return the path. Raises :class:`~nas.errors.ConfigError` (unknown format, no ``dot``)."""
    from nas.io import atomic_write_bytes

    out = Path(out)
    data = render(genotype.graph, format_for(out, fmt), depth)
    atomic_write_bytes(out, data)
    return out


def _digraph(drawing: Drawing):
    """The Graphviz graph of a drawing. Open blocks are not drawn as Graphviz clusters: inside
    clusters ``dot`` ignores ``ordering=out`` and shuffles branches (Inception's came out 3, 2,
    4, 1); boxes carry their full path instead. The name and labels are drawn as written
    (``graphviz.escape``): a backslash is no DOT escape (one ending a name escaped the closing
    quote), ``<...>`` no HTML label."""
    import graphviz

    dot = graphviz.Digraph(
        graphviz.escape(drawing.name),
        graph_attr={"rankdir": "TB", "ordering": "out", "ranksep": "0.22", "nodesep": "0.18", "margin": "0.1"},
        node_attr={
            "shape": "box", "style": "rounded,filled", "fontname": "Helvetica", "fontsize": "10",
            "margin": "0.08,0.03", "height": "0.3",
        },
        edge_attr={"arrowsize": "0.6"},
    )
    for box in drawing.boxes:
        first, shape = label_lines(box)
        dot.node(box.id, graphviz.escape(f"{_wrap(first)}\n{shape}"), fillcolor=_FILL[box.kind])
    for a, b in drawing.edges:
        dot.edge(a, b)
    return dot


def _wrap(text: str) -> str:
    """Break ``text`` into lines of about :data:`_WRAP` characters after commas and pluses."""
    lines, line = [], ""
    for piece in _pieces(text):
        if line and len(line) + len(piece) > _WRAP:
            lines.append(line.rstrip())
            line = piece.lstrip()
        else:
            line += piece
    lines.append(line)
    return "\n".join(lines)


def _pieces(text: str) -> list[str]:
    pieces, start = [], 0
    for index, char in enumerate(text):
        if char in ",+" and index + 1 < len(text) and text[index + 1] == " ":
            pieces.append(text[start:index + 1])
            start = index + 1
    pieces.append(text[start:])
    return pieces
