"""Text drawings of a primitive graph: Graphviz DOT and Mermaid flowcharts.

Nodes are grouped into nested clusters by their hierarchical path, so blocks read as boxes.
"""

from __future__ import annotations

from typing import Any

import networkx as nx

__all__ = ["to_dot", "to_mermaid"]


def _label(node: str, data: dict[str, Any]) -> str:
    shape = "x".join(map(str, data["shape"]))
    leaf = node.rsplit(".", 1)[-1]
    return f"{leaf}: {data['op']}\\n{shape}" if data["op"] != "input" else f"input\\n{shape}"


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


def to_dot(graph: nx.DiGraph) -> str:
    """Graphviz DOT text (render with ``dot -Tsvg``)."""
    ids = _ids(graph)
    lines = [f'digraph "{graph.graph.get("name", "network")}" {{', "  rankdir=TB;", "  node [shape=box, fontsize=10];"]

    def emit(branch: dict[str, Any], prefix: str, indent: str) -> None:
        for node in branch.get(None, []):
            lines.append(f'{indent}{ids[node]} [label="{_label(node, graph.nodes[node])}"];')
        for name, child in branch.items():
            if name is None:
                continue
            path = f"{prefix}{name}"
            lines.append(f'{indent}subgraph "cluster_{path}" {{')
            lines.append(f'{indent}  label="{path}";')
            emit(child, f"{path}.", indent + "  ")
            lines.append(f"{indent}}}")

    emit(_tree(graph), "", "  ")
    for source, target in graph.edges:
        lines.append(f"  {ids[source]} -> {ids[target]};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_mermaid(graph: nx.DiGraph) -> str:
    """Mermaid flowchart text (renders in GitHub Markdown)."""
    ids = _ids(graph)
    lines = ["flowchart TD"]

    def emit(branch: dict[str, Any], prefix: str, indent: str) -> None:
        for node in branch.get(None, []):
            label = _label(node, graph.nodes[node]).replace("\\n", "<br/>")
            lines.append(f'{indent}{ids[node]}["{label}"]')
        for name, child in branch.items():
            if name is None:
                continue
            path = f"{prefix}{name}"
            lines.append(f'{indent}subgraph {path.replace(".", "_")}["{path}"]')
            emit(child, f"{path}.", indent + "  ")
            lines.append(f"{indent}end")

    emit(_tree(graph), "", "  ")
    for source, target in graph.edges:
        lines.append(f"  {ids[source]} --> {ids[target]}")
    return "\n".join(lines) + "\n"
