"""Text drawings of a primitive graph: Graphviz DOT and Mermaid flowcharts.

Nodes are grouped into nested clusters by their hierarchical path, so blocks read as boxes.
"""

from __future__ import annotations

from typing import Any

import networkx as nx

__all__ = ["to_dot", "to_mermaid"]


_DOT_NEWLINE = "\\n"  # a backslash-n escape inside a DOT label


def _label(node: str, data: dict[str, Any], newline: str) -> str:
    shape = "x".join(map(str, data["shape"]))
    leaf = node.rsplit(".", 1)[-1]
    return f"{leaf}: {data['op']}{newline}{shape}" if data["op"] != "input" else f"input{newline}{shape}"


def _tree(graph: nx.DiGraph) -> dict[str, Any]:
    """Nested dict of path prefixes; leaves hold node ids under the key ``None``."""
    root: dict[str, Any] = {}
    for node in graph.nodes:
        parts = node.split(".")
        branch = root
        for part in parts[:-1]:
            branch = branch.setdefault(part, {})
        branch.setdefault(None, []).append(node)
    return root


def _ids(graph: nx.DiGraph) -> dict[str, str]:
    return {node: f"n{index}" for index, node in enumerate(graph.nodes)}


def _emit_tree(
    graph: nx.DiGraph, lines: list[str], node_line, open_cluster, close_cluster
) -> None:
    """Append a line per node, nested in clusters by path prefix, using the three writers."""

    def emit(branch: dict[str, Any], prefix: str, indent: str) -> None:
        for node in branch.get(None, []):
            lines.append(indent + node_line(node))
        for name, child in branch.items():
            if name is None:
                continue
            path = f"{prefix}{name}"
            lines.extend(indent + line for line in open_cluster(path))
            emit(child, f"{path}.", indent + "  ")
            lines.append(indent + close_cluster)

    emit(_tree(graph), "", "  ")


def to_dot(graph: nx.DiGraph) -> str:
    """Graphviz DOT text (render with ``dot -Tsvg``)."""
    ids = _ids(graph)
    name = graph.graph.get("name", "network")
    lines = [f'digraph "{name}" {{', "  rankdir=TB;", "  node [shape=box, fontsize=10];"]
    _emit_tree(
        graph, lines,
        node_line=lambda node: f'{ids[node]} [label="{_label(node, graph.nodes[node], _DOT_NEWLINE)}"];',
        open_cluster=lambda path: [f'subgraph "cluster_{path}" {{', f'  label="{path}";'],
        close_cluster="}",
    )
    lines.extend(f"  {ids[source]} -> {ids[target]};" for source, target in graph.edges)
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_mermaid(graph: nx.DiGraph) -> str:
    """Mermaid flowchart text (renders in GitHub Markdown)."""
    ids = _ids(graph)
    lines = ["flowchart TD"]
    _emit_tree(
        graph, lines,
        node_line=lambda node: f'{ids[node]}["{_label(node, graph.nodes[node], "<br/>")}"]',
        open_cluster=lambda path: [f'subgraph {path.replace(".", "_")}["{path}"]'],
        close_cluster="end",
    )
    lines.extend(f"  {ids[source]} --> {ids[target]}" for source, target in graph.edges)
    return "\n".join(lines) + "\n"
