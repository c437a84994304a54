"""Build a ``torch.nn.Module`` from a genotype's primitive graph.

The result is a :class:`torch.fx.GraphModule`: its ``forward`` is straight-line Python generated
from the graph (``print(model.code)`` shows it), so dispatch costs what a hand-written
``forward`` costs, and it can be traced, scripted and exported to ONNX as it is. Submodules are
named by the hierarchical node paths (``layer1.0.conv0``), so ``state_dict`` keys are stable
for a given genotype. A path segment that would clash with an attribute of the module
(``forward``, ``training``, ``to``, ``state_dict``, any name starting with ``_``) gets a
trailing ``_`` (:func:`module_name`: ``forward`` → ``forward_``, ``forward_`` → ``forward__``),
so every genotype that validates also builds, and the keys stay readable and distinct.
Ops that can (:attr:`nas.ops.Op.inplace`: ReLU-like activations, sums) run in place where the
overwritten tensor has no other reader and autograd does not need it
(:attr:`nas.ops.Op.overwritable`), as torchvision's ResNet does.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import torch
import torch.fx as fx

from nas import ops
from nas.analysis import MAX_MEMORY, alias_roots, check_memory
from nas.genotype import INPUT, Genotype
from nas.ops import BuildContext

if TYPE_CHECKING:
    import networkx as nx

__all__ = ["build_model", "module_name", "GenotypeModule"]


def build_model(genotype: Genotype, *, inplace: bool = True, max_memory: int = MAX_MEMORY) -> torch.nn.Module:
    """Build ``genotype`` as a ``torch.fx.GraphModule`` in training mode, float32, on the CPU.

    With several outputs (``outputs:`` in the genotype) ``forward`` returns a tuple.
    ``inplace=False`` turns off in-place activations (e.g. for gradient checks). Before anything
    is allocated, the network's parameter plus activation bytes (one sample) are checked
    against ``max_memory`` (:func:`nas.analysis.check_memory`).

    Raises :class:`nas.GenotypeError` when the genotype does not expand or needs more memory
    than ``max_memory``.
    """
    check_memory(genotype, max_memory)
    graph = genotype.graph
    fx_graph = fx.Graph()
    modules: dict[str, Any] = {}
    values: dict[str, fx.Node] = {"input": fx_graph.placeholder("x")}
    roots = alias_roots(graph)
    readers = _reader_counts(graph, roots)
    for node, data in graph.nodes(data=True):
        if node == INPUT:
            continue
        op = ops.get(data["op"])
        sources = list(data["inputs"])
        may_overwrite = inplace and op.inplace
        if may_overwrite and op.commutative:
            sources.sort(key=lambda s: not _overwritable(graph, readers, roots, s))
        context = BuildContext(inplace=may_overwrite and _overwritable(graph, readers, roots, sources[0]))
        shapes = [graph.nodes[s]["shape"] for s in sources]
        built = op.build(data["args"], shapes, context)
        arguments = [values[s] for s in sources]
        if built is None:
            values[node] = arguments[0]
        else:
            target = module_name(node)
            modules[target] = built
            single = op.max_inputs == 1
            values[node] = fx_graph.call_module(target, (arguments[0],) if single else (arguments,))
    outputs = [values[o] for o in graph.graph["outputs"]]
    fx_graph.output(outputs[0] if len(outputs) == 1 else tuple(outputs))
    return GenotypeModule(modules, fx_graph, genotype)


@functools.cache
def _taken_names() -> frozenset[str]:
    """Attribute names of the built module and its containers (methods, properties, state)."""
    sample = fx.GraphModule(torch.nn.Module(), fx.Graph())
    # fx names the value of a call after its target, and a value named `self` would shadow
    # the module in the generated forward
    return frozenset(dir(GenotypeModule)) | frozenset(vars(sample)) | {"genotype", "self"}


def module_name(path: str) -> str:
    """The submodule name of the node at ``path``: each dotted segment that is an attribute of
    ``torch.nn.Module``, ``torch.fx.GraphModule`` or :class:`GenotypeModule`, or starts with
    ``_``, gets a trailing ``_`` (applied to ``name_``, ``name__``... too, so distinct paths
    stay distinct)."""
    taken = _taken_names()
    return ".".join(
        f"{segment}_" if segment.startswith("_") or segment.rstrip("_") in taken else segment
        for segment in path.split(".")
    )


def _reader_counts(graph: nx.DiGraph, roots: dict[str, str]) -> dict[str, int]:
    """How many primitives read each node's tensor, looking through identity aliases."""
    counts: dict[str, int] = {}
    for node, data in graph.nodes(data=True):
        for source in data["inputs"]:
            root = roots[source]
            counts[root] = counts.get(root, 0) + 1
    for output in graph.graph["outputs"]:
        root = roots[output]
        counts[root] = counts.get(root, 0) + 1
    return counts


def _overwritable(graph: nx.DiGraph, readers: dict[str, int], roots: dict[str, str], source: str) -> bool:
    """True when a reader of ``source`` may overwrite its tensor: the tensor is not the
    network's input, its producer's backward does not need it, and nothing else reads it."""
    root = roots[source]
    return root != INPUT and ops.get(graph.nodes[root]["op"]).overwritable and readers.get(root, 0) == 1


class GenotypeModule(fx.GraphModule):
    """A network built from a genotype; ``genotype`` holds the source genotype."""

    def __init__(self, modules: dict[str, torch.nn.Module], graph: fx.Graph, genotype: Genotype):
        super().__init__(_nest(modules), graph, class_name="GenotypeModule")
        self.genotype = genotype

    def extra_repr(self) -> str:
        return f"genotype={self.genotype.name!r}, hash={self.genotype.hash[:12]}"


def _nest(modules: dict[str, torch.nn.Module]) -> torch.nn.Module:
    """A tree of containers holding ``modules`` at their dotted paths, in the given order
    (so ``state_dict`` follows execution order)."""
    root = torch.nn.Module()
    for path, module in modules.items():
        *parents, leaf = path.split(".")
        container = root
        for name in parents:
            child = getattr(container, name, None)
            if child is None:
                child = torch.nn.Module()
                container.add_module(name, child)
            container = child
        container.add_module(leaf, module)
    return root
