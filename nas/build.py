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

Work whose result cannot reach an output is not run (``prune``, on by default): a sum does not
add the ``zero`` inputs it has (a cell's "none" edges), and a node that no output depends on
then (a cell node whose every out-edge is "none") is left out of ``forward``. Its submodules
stay in the model, so parameters, ``state_dict`` keys and their order are the genotype's
whatever it prunes; the outputs are the same (to floating-point rounding: kernels may reduce
in another order when tensors are laid out or allocated otherwise; of 11 NAS-Bench-201 cells
trained 625 steps, 9 gave bit-identical losses), only the dead branches' forward hooks never
fire, their batch-norm statistics never move and their parameters get no gradient.
:func:`nas.analyze` still counts the pruned nodes' MACs, as the reference networks (e.g.
NAS-Bench-201's) run them.
"""

from __future__ import annotations

import copy
import functools
from typing import TYPE_CHECKING, Any

import torch
import torch.fx as fx

from nas import ops
from nas.analysis import MAX_MEMORY, alias_roots, check_memory, outputs_depend_on
from nas.genotype import INPUT, Genotype
from nas.ops import BuildContext

if TYPE_CHECKING:
    import networkx as nx

__all__ = ["build_model", "module_name", "GenotypeModule"]


def build_model(
    genotype: Genotype, *, inplace: bool = True, max_memory: int = MAX_MEMORY, prune: bool = True
) -> torch.nn.Module:
    """Build ``genotype`` as a ``torch.fx.GraphModule`` in training mode, float32, on the CPU.

    With several outputs (``outputs:`` in the genotype) ``forward`` returns a tuple.
    ``inplace=False`` turns off in-place activations (e.g. for gradient checks).
    ``prune=False`` runs every node, dead branches included (the module docstring says what
    pruning changes; zero-cost proxies that read every activation want all of them). Before
    anything is allocated, the network's parameter plus activation bytes (one sample) are
    checked against ``max_memory`` (:func:`nas.analysis.check_memory`).

    Raises :class:`nas.GenotypeError` when the genotype does not expand or needs more memory
    than ``max_memory``.
    """
    check_memory(genotype, max_memory)
    graph = genotype.graph
    if prune:
        sources_of = _live_sources(graph)
        needed = outputs_depend_on(graph, sources_of)
    else:
        sources_of = {node: list(data["inputs"]) for node, data in graph.nodes(data=True)}
        needed = set(graph)
    roots = alias_roots(graph, sources_of)
    readers = _reader_counts(graph, sources_of, needed, roots)
    fx_graph = fx.Graph()
    modules: dict[str, Any] = {}
    values: dict[str, fx.Node] = {"input": fx_graph.placeholder("x")}
    for node, data in graph.nodes(data=True):
        if node == INPUT:
            continue
        op = ops.get(data["op"])
        sources = sources_of[node]
        may_overwrite = inplace and op.inplace and node in needed
        if may_overwrite and op.commutative:
            sources.sort(key=lambda s: not _overwritable(graph, readers, roots, s))
        context = BuildContext(inplace=may_overwrite and _overwritable(graph, readers, roots, sources[0]))
        shapes = [graph.nodes[s]["shape"] for s in data["inputs"]]
        built = op.build(op.build_args(data["args"]), shapes, context)
        target = module_name(node)
        if built is not None:
            modules[target] = built  # also a dead node's: the parameters are the genotype's
        if node not in needed:
            continue
        arguments = [values[s] for s in sources]
        if built is None or len(sources) < op.min_inputs:  # an alias, or a sum left one input
            values[node] = arguments[0]
        else:
            single = op.max_inputs == 1
            values[node] = fx_graph.call_module(target, (arguments[0],) if single else (arguments,))
    outputs = [values[o] for o in graph.graph["outputs"]]
    fx_graph.output(outputs[0] if len(outputs) == 1 else tuple(outputs))
    return GenotypeModule(_nest(modules), fx_graph, genotype)


def _live_sources(graph: nx.DiGraph) -> dict[str, list[str]]:
    """Each node's inputs, less a sum's ``zero`` inputs (or aliases of one) where another input
    is left (``x + 0`` is ``x``; the zero's shape is the sum's, which the genotype checked)."""
    zero = {node for node, root in alias_roots(graph).items() if graph.nodes[root]["op"] == "zero"}
    sources_of: dict[str, list[str]] = {}
    for node, data in graph.nodes(data=True):
        sources = list(data["inputs"])
        if data["op"] == "add" and zero.intersection(sources):
            sources = [s for s in sources if s not in zero] or sources
        sources_of[node] = sources
    return sources_of


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


def _reader_counts(
    graph: nx.DiGraph, sources_of: dict[str, list[str]], needed: set[str], roots: dict[str, str]
) -> dict[str, int]:
    """How many of the nodes run (aliases too) and outputs read each node's tensor, looking
    through aliases."""
    counts: dict[str, int] = {}
    for node in needed:
        for source in sources_of[node]:
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

    def __init__(self, root: torch.nn.Module, graph: fx.Graph, genotype: Genotype):
        """``root``'s children are the submodules (:func:`_nest`), ``graph`` the forward."""
        super().__init__(root, graph, class_name="GenotypeModule")
        # fx copied only the submodules forward calls: put back the whole tree, in order, so
        # the modules of pruned branches (build_model's prune) keep their parameters
        for name in list(self._modules):
            del self._modules[name]
        for name, child in root.named_children():
            self.add_module(name, child)
        self.genotype = genotype

    def __reduce__(self) -> tuple[Any, tuple]:
        """Pickled (``torch.save`` of the model) as its submodules (all of them), forward
        graph, genotype and mode; fx's own pickling keeps only the modules forward calls."""
        return (_restore, (self._root(), copy.deepcopy(self.graph), self.genotype, self.training))

    def __deepcopy__(self, memo: dict[int, Any]) -> GenotypeModule:
        root, graph, genotype = copy.deepcopy((self._root(), self.graph, self.genotype), memo)
        copied = _restore(root, graph, genotype, self.training)
        memo[id(self)] = copied
        return copied

    def _root(self) -> torch.nn.Module:
        root = torch.nn.Module()
        for name, child in self.named_children():
            root.add_module(name, child)
        return root

    def extra_repr(self) -> str:
        return f"genotype={self.genotype.name!r}, hash={self.genotype.hash[:12]}"


def _restore(root: torch.nn.Module, graph: fx.Graph, genotype: Genotype, training: bool) -> GenotypeModule:
    """A :class:`GenotypeModule` from what its ``__reduce__`` gives."""
    module = GenotypeModule(root, graph, genotype)
    module.training = training  # the submodules keep their own modes
    return module


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
