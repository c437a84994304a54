"""Expansion: a :class:`Genotype` becomes a ``networkx.DiGraph`` of primitives.

Nodes are keyed by their hierarchical path (``layer1.0.conv0``); the network input is the node
:data:`INPUT` (``input``, whose ``op`` is ``input`` too: it is not a registered op). Every
node carries ``op`` (registered name), ``args`` (all arguments, resolved), ``shape`` (output
shape without the batch dimension), ``params``, ``macs`` and ``inputs`` (the ordered source
nodes; edges carry the same information for graph algorithms). The graph attribute
``outputs`` lists the output nodes, and ``blocks`` (a read-only mapping, :class:`BlockCalls`)
maps the path of every block application to the call as evaluated (``basic(128, s=2)``, at
most :data:`CALL_TEXT` characters); drawings use it to collapse blocks. (Path parts that are
numbers are the copies of a ``repeat`` or the items of a ``seq``: node names are
identifiers.)

Expansion checks everything the parser could not: names, argument types, shapes, recursion,
and the size limits (:class:`Limits`), counting as it goes so a hostile file fails fast
instead of exhausting memory. The graph is acyclic by construction.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import networkx as nx

from nas import ops
from nas.errors import GenotypeError
from nas.genotype._hash import exact_key, node_label
from nas.genotype._expr import MATH_FUNCTIONS, Budget, Deferred, Scope, call_math, parse_expression
from nas.genotype._model import FORMS, BlockDef, Genotype, Statement

__all__ = ["INPUT", "Limits", "LIMITS", "Layer", "expand", "evaluate_input", "call_text", "CALL_TEXT"]

#: The id (and ``op``) of the network-input node of an expanded graph.
INPUT = "input"


@dataclass(frozen=True)
class Limits:
    """Bounds that keep expansion of any file fast and small."""

    max_nodes: int = 50_000
    max_depth: int = 32
    max_repeat: int = 1_000
    max_params: int = 2_000_000_000  # 8 GB of float32 weights: still buildable on a workstation
    max_activation: int = 1 << 31  # elements of one node's output (one sample)
    max_work: int = 500_000  # steps: block calls, repeat copies, chain items, ops, expression steps
    max_nesting: int = 100  # layers applied inside layers (blocks, seq, repeat) on one path
    max_path: int = 1_000  # characters of a node path (network.stage2.block0.conv1)


LIMITS = Limits()

MAX_INPUT_SIZE = 1 << 16
"""Largest size of an input dimension (channels, height, width)."""


@dataclass(frozen=True)
class Layer:
    """An op, block or form applied to arguments, not yet to inputs."""

    name: str
    args: tuple[Any, ...] = ()
    kwargs: tuple[tuple[str, Any], ...] = ()
    applied: bool = False


_PASS_THROUGH = object()  # a join left with a single input forwards it
_MAX_PLANS = 4096  # bodies' plans one memo (or expansion) keeps; emptied when full


@dataclass(frozen=True)
class _Plan:
    """What expanding a body needs that depends only on its statements and input names: each
    statement's name, statement and input names, in topological order (ties in written
    order); the output's name; the work the body is charged besides its statements' own."""

    steps: tuple[tuple[str, Statement, tuple[str, ...]], ...]
    output: str
    work: int


class _Scope(Scope):
    def __init__(self, expander: _Expander, local: Mapping[str, Any], shapes: Sequence[tuple] | None):
        self.expander = expander
        self.local = local
        self.shapes = shapes
        self.budget = expander.budget

    def lookup(self, name: str) -> Any:
        if name in self.local:
            return self.local[name]
        if name in ("cin", "hin", "win"):
            if not self.shapes:
                raise GenotypeError(f"'{name}' is only defined where there is an input")
            shape = self.shapes[0]
            index = ("cin", "hin", "win").index(name)
            if index >= len(shape):
                raise GenotypeError(f"'{name}': the input {shape} has no such dimension")
            return shape[index]
        params = self.expander.params
        if name in params:
            self.expander.reads.add(name)
            return params[name]
        callee = self.expander.callable_name(name)
        if callee:
            return Layer(callee)
        if name in MATH_FUNCTIONS:
            raise GenotypeError(f"'{name}' is a function; call it")
        raise GenotypeError(f"unknown name '{name}': not an argument, parameter, op or block")

    def defers(self, name: str) -> bool:
        # repeat's layers are evaluated once per copy, with `i` bound to the copy's index
        return name == "repeat" and name not in self.local

    def call(self, name: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
        if name in MATH_FUNCTIONS and name not in self.local:
            return call_math(name, args, kwargs)
        try:
            target = self.lookup(name)
        except GenotypeError:
            raise GenotypeError(
                f"'{name}' is not an op or block (ops: {', '.join(ops.names())}; "
                f"blocks: {', '.join(sorted(self.expander.genotype.blocks)) or 'none'})"
            ) from None
        layer = self.expander.as_layer(target, strict=False)
        if layer is None:
            raise GenotypeError(f"'{name}' is {target!r}, not an op or block, and cannot be called")
        if layer.applied:
            raise GenotypeError(f"'{name}' already has its arguments")
        return Layer(layer.name, tuple(args), tuple(kwargs.items()), applied=True)


class _Expander:
    def __init__(self, genotype: Genotype, limits: Limits):
        self.genotype = genotype
        self.limits = limits
        self.graph = nx.DiGraph()
        self.nodes = self.graph._node  # node -> data, read without NodeView's per-item work
        self.stack: list[str] = []
        self.total_params = 0
        self.budget = Budget(limits.max_work)
        self.nesting = 0
        # parameter values as expressions see them (lists), converted once per expansion
        self.params = {k: list(v) if isinstance(v, tuple) else v for k, v in genotype.params.items()}
        # block expansions already made in this expansion, replayed under a new path (_Replay)
        self.added: list[str] = []  # op nodes in the order they were added
        self.labels: dict[str, str] = {}  # node -> its hash label (nas.genotype._hash.node_label)
        # the parameters each node of `added` was counted with (_count): before _settle may
        # change them, so a replay counts what a full expansion counts
        self.counted: list[int] = []
        # op nodes whose readers-decided arguments (Op.resolve) are not settled yet (_settle)
        self.unresolved: list[str] = []
        self.replays: dict[tuple, _Replay | None] = {}
        self.plans: dict[tuple, tuple[Sequence[Statement], _Plan]] = {}  # without a memo: _plan
        self.deepest_nesting = 0
        self.deepest_stack = 0
        self.longest_path = 0
        self.blocks_used: set[str] = set()
        # block applications: (path, call text), or (prefix, replay) for the calls a replay
        # made under prefix (listed once, by reference: see _flatten_calls)
        self.calls: list[tuple[str, Any]] = []
        # parameters read by the block being expanded (its replay is valid where they are equal)
        self.reads: set[str] = set()
        self.memo = genotype._memo if genotype._memo.serves(genotype.blocks) else None
        # the limits in the memo's keys: their values (a Limits hashes in Python, every time)
        self.memo_limits = tuple(vars(limits).values())
        self.typed_params: dict[str, Any] = {}
        # static rules already run in this expansion: (op, arguments, input shapes) -> OpInfo
        self.inferred: dict[tuple, ops.OpInfo] = {}

    # -------------------------------------------------------------- names

    def callable_name(self, name: str) -> str | None:
        if name in self.genotype.blocks or name in FORMS:
            return name
        return ops.canonical_name(name)

    def as_layer(self, value: Any, *, strict: bool = True) -> Layer | None:
        if isinstance(value, Layer):
            return value
        if isinstance(value, str):
            name = self.callable_name(value)
            if name is not None:
                return Layer(name)
            if strict:
                raise GenotypeError(
                    f"unknown op or block '{value}' (ops: {', '.join(ops.names())}; "
                    f"blocks: {', '.join(sorted(self.genotype.blocks)) or 'none'})"
                )
        if strict:
            raise GenotypeError(f"expected an op or block, got {value!r}")
        return None

    # -------------------------------------------------------------- bodies

    def body(
        self,
        statements: Sequence[Statement],
        inputs: Mapping[str, str],
        prefix: str,
        local: Mapping[str, Any],
    ) -> tuple[str, dict[str, str | None]]:
        plan = self._plan(statements, inputs, prefix)
        self.budget.charge(plan.work)
        env: dict[str, str | None] = dict(inputs)
        for name, statement, deps in plan.steps:
            path = prefix + name
            sources = [env[dep] for dep in deps]
            present = [s for s in sources if s is not None]
            shapes = [self.nodes[s]["shape"] for s in present]
            try:
                value = statement.expression.evaluate(_Scope(self, local, shapes))
                if value is not None and len(present) < len(sources):
                    value = self._drop_absent(value, deps, sources)
            except GenotypeError as error:
                raise error.located(path=path)
            if value is None:
                env[name] = None
            elif value is _PASS_THROUGH:
                env[name] = present[0]
            else:
                env[name] = self.apply(value, present, path, local)
        if env[plan.output] is None:
            raise GenotypeError(f"the output node '{plan.output}' is absent", path=prefix + plan.output)
        return env[plan.output], env  # type: ignore[return-value]

    def _plan(self, statements: Sequence[Statement], inputs: Mapping[str, str], prefix: str) -> _Plan:
        """The body's :class:`_Plan`, made once per body and input names (kept in the memo the
        genotype's variants share, else for this expansion)."""
        plans = self.memo.plans if self.memo is not None else self.plans
        key = (id(statements), tuple(inputs))
        kept = plans.get(key)
        if kept is not None and kept[0] is statements:  # the same object: its id is not reused
            return kept[1]
        plan = self._make_plan(statements, inputs, prefix)
        if len(plans) >= _MAX_PLANS:
            plans.clear()
        plans[key] = (statements, plan)
        return plan

    def _make_plan(self, statements: Sequence[Statement], inputs: Mapping[str, str], prefix: str) -> _Plan:
        names = self._name_statements(statements, set(inputs))
        first_input = next(iter(inputs))
        deps: dict[str, tuple[str, ...]] = {}
        work = 2 * len(statements)  # each statement, and each step of the loop in body()
        for index, (name, statement) in enumerate(zip(names, statements)):
            if statement.inputs is not None:
                work += len(statement.inputs)
                deps[name] = statement.inputs
            else:
                deps[name] = (names[index - 1],) if index else (first_input,)
            for dep in deps[name]:
                if dep not in inputs and dep not in deps and dep not in names:
                    known = ", ".join([*inputs, *names[:index]])
                    raise GenotypeError(
                        f"input '{dep}' does not exist (known: {known})", path=prefix + name
                    )
        by_name = dict(zip(names, statements))
        steps = tuple((name, by_name[name], deps[name]) for name in self._order(names, deps, prefix))
        return _Plan(steps, "out" if "out" in by_name else names[-1], work)

    def _drop_absent(self, value: Any, names: Sequence[str], sources: list[str | None]) -> Any:
        """Ops that join several inputs skip absent ones; with one left they pass it through."""
        layer = self.as_layer(value)
        op = ops.get(layer.name) if layer.name not in FORMS and layer.name not in self.genotype.blocks else None
        if op is None or not op.joins:
            missing = next(n for n, s in zip(names, sources) if s is None)
            raise GenotypeError(f"input '{missing}' is absent (its expression gave None)")
        present = sum(s is not None for s in sources)
        if present == 0:
            return None
        return _PASS_THROUGH if present == 1 else value

    @staticmethod
    def _name_statements(statements: Sequence[Statement], taken: set[str]) -> list[str]:
        explicit = {s.name for s in statements if s.name is not None}
        used = taken | explicit
        counters: dict[str, int] = {}
        names = []
        for statement in statements:
            if statement.name is not None:
                names.append(statement.name)
                continue
            callee = statement.expression.head or "node"
            while True:
                count = counters.get(callee, 0)
                counters[callee] = count + 1
                candidate = f"{callee}{count}"
                if candidate not in used:
                    break
            used.add(candidate)
            names.append(candidate)
        return names

    @staticmethod
    def _order(names: list[str], deps: Mapping[str, tuple[str, ...]], prefix: str) -> list[str]:
        """Topological order of a body, ties broken by the order statements are written
        (Kahn's algorithm with a heap: O(n log n), so long chains stay fast)."""
        position = {name: index for index, name in enumerate(names)}
        waiting = [0] * len(names)
        readers: list[list[int]] = [[] for _ in names]
        for index, name in enumerate(names):
            for dep in set(deps[name]):
                if dep in position:
                    waiting[index] += 1
                    readers[position[dep]].append(index)
        ready = [index for index, count in enumerate(waiting) if count == 0]
        heapq.heapify(ready)
        order: list[str] = []
        while ready:
            index = heapq.heappop(ready)
            order.append(names[index])
            for reader in readers[index]:
                waiting[reader] -= 1
                if waiting[reader] == 0:
                    heapq.heappush(ready, reader)
        if len(order) < len(names):
            graph = nx.DiGraph()
            graph.add_nodes_from(names)  # find_cycle starts from the first statement written
            graph.add_edges_from((dep, name) for name in names for dep in deps[name] if dep in position)
            cycle = [edge[0] for edge in nx.find_cycle(graph)]
            chain = " -> ".join([*cycle, cycle[0]])
            raise GenotypeError(f"cycle: {chain}", path=prefix + cycle[0])
        return order

    # -------------------------------------------------------------- layers

    def apply(self, value: Any, sources: list[str], path: str, local: Mapping[str, Any]) -> str:
        try:
            layer = self.as_layer(value)
        except GenotypeError as error:
            raise error.located(path=path)
        self.budget.charge()
        self.longest_path = max(self.longest_path, len(path))
        if len(path) > self.limits.max_path:
            raise GenotypeError(f"node path longer than {self.limits.max_path} characters", path=path[:200] + "...")
        if self.nesting >= self.limits.max_nesting:
            raise GenotypeError(
                f"layers nested deeper than {self.limits.max_nesting} (blocks, seq and repeat)", path=path
            )
        self.nesting += 1
        self.deepest_nesting = max(self.deepest_nesting, self.nesting)
        try:
            if layer.name in FORMS:
                return self.form(layer, sources, path, local)
            if layer.name in self.genotype.blocks:
                self.calls.append((path, call_text(layer)))
                return self.block(self.genotype.blocks[layer.name], layer, sources, path)
            return self.op(layer, sources, path)
        except GenotypeError as error:
            raise error.located(path=path)
        finally:
            self.nesting -= 1

    def op(self, layer: Layer, sources: list[str], path: str) -> str:
        op = ops.get(layer.name)
        op.check_inputs(len(sources))
        plain = lambda v: v.name if isinstance(v, Layer) and not v.applied else v  # noqa: E731
        args = op.bind([plain(a) for a in layer.args], {k: plain(v) for k, v in layer.kwargs})
        shapes = [self.nodes[s]["shape"] for s in sources]
        info = self.infer(op, args, shapes)
        shape = tuple(info.shape)
        self._count(info.params, shape)
        self.graph.add_node(
            path, op=op.name, args=args, shape=shape, params=info.params, macs=info.macs, inputs=tuple(sources),
        )
        for port, source in enumerate(sources):
            self.graph.add_edge(source, path, port=port)
        self.added.append(path)
        self.labels[path] = node_label(op.name, args, shape)
        self.counted.append(info.params)
        if _resolves(op):
            self.unresolved.append(path)
        return path

    def infer(self, op: ops.Op, args: dict[str, Any], shapes: list[tuple]) -> ops.OpInfo:
        """``op.infer(args, shapes)``, run once per distinct call in an expansion (a static
        rule is a pure function of its arguments and input shapes; long chains repeat one)."""
        key = exact_key(args)
        if key is None:
            return op.infer(args, shapes)
        key = (op.name, *key, tuple(shapes))
        info = self.inferred.get(key)
        if info is None:
            info = self.inferred[key] = op.infer(args, shapes)
        return info

    def resolve(self, node: str, *, output: bool) -> None:
        """Let ``node`` resolve the arguments its readers decide (:meth:`nas.ops.Op.resolve`: a
        convolution's unset ``bias``), re-running its static rule and its label when they
        change. Its readers must all be in the graph; ``output``: it is a network output."""
        nodes = self.nodes
        data = nodes[node]
        op = ops.get(data["op"])
        readers = [ops.get(nodes[r]["op"]) for r in self.graph._succ[node]]
        args = op.resolve(data["args"], readers, output)
        if args is None:
            return
        info = self.infer(op, args, [nodes[s]["shape"] for s in data["inputs"]])
        data.update(args=args, params=info.params, macs=info.macs)
        self.labels[node] = node_label(data["op"], args, data["shape"])

    def _count(self, params: int, shape: tuple, pending: int = 0) -> None:
        """Count a node about to be added (``pending`` more are on their way) against the limits."""
        limits = self.limits
        if self.graph.number_of_nodes() + pending >= limits.max_nodes:
            raise GenotypeError(f"network has more than {limits.max_nodes} primitives (the size limit)")
        self.total_params += params
        if self.total_params > limits.max_params:
            raise GenotypeError(f"network has more than {limits.max_params:,} parameters (the size limit)")
        elements = 1
        for dim in shape:
            elements *= dim
        if elements > limits.max_activation:
            raise GenotypeError(f"output {shape} has more than {limits.max_activation:,} elements (the size limit)")

    def block(self, block: BlockDef, layer: Layer, sources: list[str], path: str) -> str:
        if block.name in self.stack:
            chain = " -> ".join([*self.stack[self.stack.index(block.name):], block.name])
            raise GenotypeError(f"block references itself: {chain}")
        if len(self.stack) >= self.limits.max_depth:
            raise GenotypeError(f"blocks nested deeper than {self.limits.max_depth}")
        if len(sources) != len(block.inputs):
            raise GenotypeError(f"block '{block.name}' takes {len(block.inputs)} input(s), got {len(sources)}")
        self.budget.charge(len(block.args) + len(block.nodes))
        arg_names = [name for name, _ in block.args]
        if len(layer.args) > len(arg_names):
            raise GenotypeError(
                f"block '{block.name}' takes at most {len(arg_names)} positional arguments, got {len(layer.args)}"
            )
        given = dict(zip(arg_names, layer.args))
        for key, value in layer.kwargs:
            if key not in arg_names:
                raise GenotypeError(
                    f"{block.name}: unknown argument '{key}' (valid: {', '.join(arg_names) or 'none'})"
                )
            if key in given:
                raise GenotypeError(f"{block.name}: argument '{key}' given twice")
            given[key] = value
        shapes = [self.nodes[s]["shape"] for s in sources]
        local: dict[str, Any] = {}
        for name, default in block.args:
            if name in given:
                local[name] = given[name]
            elif default is ops.REQUIRED:
                raise GenotypeError(f"{block.name}: missing argument '{name}'")
            elif isinstance(default, str):
                local[name] = block.default_expression(name, default).evaluate(_Scope(self, local, shapes))
            else:
                local[name] = list(default) if isinstance(default, tuple) else default
        key = _replay_key(block.name, local, shapes)
        replay = self.replays.get(key) if key is not None else None
        if replay is None and key is not None and self.memo is not None:
            replay = self.memo.find((key, self.memo_limits), self._typed_values)
            if replay is not None:  # later calls with this key find it without the memo
                self.replays[key] = replay
        if replay is not None and replay.fits(self, path):
            self.reads |= replay.reads
            return replay.apply(self, sources, path)
        start = (len(self.added), self.budget.used, self.nesting, len(self.stack), len(self.calls))
        unresolved = len(self.unresolved)
        outer = (self.deepest_nesting, self.deepest_stack, self.longest_path, self.blocks_used, self.reads)
        self.deepest_nesting, self.deepest_stack, self.longest_path = self.nesting, len(self.stack) + 1, 0
        self.blocks_used = {block.name}
        self.reads = set()
        self.stack.append(block.name)
        try:
            output, _ = self.body(block.nodes, dict(zip(block.inputs, sources)), path + ".", local)
            self._settle(unresolved, output)
            if key is not None and key not in self.replays:
                self.replays[key] = replay = _Replay.record(self, start, sources, path, output)
                if replay is not None and self.memo is not None:
                    self._keep(key, replay)
        finally:
            self.stack.pop()
            inner = (self.deepest_nesting, self.deepest_stack, self.longest_path, self.blocks_used, self.reads)
            self.deepest_nesting = max(outer[0], inner[0])
            self.deepest_stack = max(outer[1], inner[1])
            self.longest_path = max(outer[2], inner[2])
            self.blocks_used = outer[3] | inner[3]
            self.reads = outer[4] | inner[4]
        return output

    def _settle(self, mark: int, output: str) -> None:
        """Resolve (:meth:`nas.ops.Op.resolve`) the nodes a block just added, ``unresolved[mark:]``,
        except its output: nothing outside a block reads its other nodes, so their readers are
        all known now, and a replay of the block carries them resolved."""
        waiting = self.unresolved[mark:]
        del self.unresolved[mark:]
        for node in waiting:
            if node == output:
                self.unresolved.append(node)
            else:
                self.resolve(node, output=False)

    def _typed_values(self, names: tuple[str, ...]) -> tuple | None:
        """The typed values (:func:`_frozen`) of parameters ``names``; ``None`` if one is too large."""
        values = []
        for name in names:
            if name not in self.typed_params:
                try:
                    self.typed_params[name] = _frozen(self.params[name], [_REPLAY_ITEMS])
                except TypeError:
                    self.typed_params[name] = None
            value = self.typed_params[name]
            if value is None:
                return None
            values.append(value)
        return tuple(values)

    def _keep(self, key: tuple, replay: _Replay) -> None:
        names = tuple(sorted(replay.reads))
        values = self._typed_values(names)
        if values is not None and self.memo is not None:
            self.memo.keep((key, self.memo_limits), tuple(zip(names, values)), replay, len(replay.suffixes))

    def form(self, layer: Layer, sources: list[str], path: str, local: Mapping[str, Any]) -> str:
        if layer.kwargs and layer.name == "seq":
            raise GenotypeError("seq takes no keyword arguments")
        if layer.name == "repeat":
            names = ("n", "first", "rest")
            given = dict(zip(names, layer.args))
            for key, value in layer.kwargs:
                if key not in names or key in given:
                    raise GenotypeError(f"repeat: unexpected argument '{key}' (valid: n, first, rest)")
                given[key] = value
            if "n" not in given or "first" not in given:
                raise GenotypeError("repeat needs a count and a layer: repeat(n, first, rest=first)")
            count = _value(given["n"])
            if not isinstance(count, int) or isinstance(count, bool) or count < 0:
                raise GenotypeError(f"repeat count must be a non-negative integer, got {count!r}")
            if count > self.limits.max_repeat:
                raise GenotypeError(f"repeat count {count} exceeds the limit of {self.limits.max_repeat}")
            rest = given.get("rest", given["first"])
            layers = []
            for i in range(count):
                self.budget.charge()
                layers.append(_value(given["first"] if i == 0 else rest, i=i))
        else:
            layers = list(layer.args)
        if not layers:
            if len(sources) != 1:
                raise GenotypeError(f"an empty {layer.name} takes 1 input, got {len(sources)}")
            return sources[0]
        current = sources
        for index, item in enumerate(layers):
            current = [self.apply(item, current, f"{path}.{index}", local)]
        return current[0]


_REPLAY_ITEMS = 256  # arguments holding more items than this are not worth a replay key


def _replay_key(block: str, local: Mapping[str, Any], shapes: list[tuple]) -> tuple | None:
    """What a block's expansion depends on besides the genotype's parameters (the values of
    those it reads are kept next to the replay): its name, its resolved arguments (types
    included: 1, 1.0 and True differ) and its input shapes. ``None`` when an argument is too
    large or of an unexpected kind."""
    budget = [_REPLAY_ITEMS]
    try:
        return (block, tuple((k, _frozen(v, budget)) for k, v in local.items()), tuple(shapes))
    except TypeError:
        return None


_ATOMS = {int: "int", str: "str", bool: "bool", type(None): "NoneType"}  # type -> its name


def _frozen(value: Any, budget: list[int]) -> Any:
    """A hashable, typed copy of ``value``; raises ``TypeError`` past ``budget[0]`` items or
    for a value of an unexpected kind."""
    budget[0] -= 1
    if budget[0] < 0:
        raise TypeError
    atom = _ATOMS.get(value.__class__)  # most values: answered without the checks below
    if atom is not None:
        return (atom, value)
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, tuple(_frozen(v, budget) for v in value))
    if isinstance(value, Layer):
        kwargs = tuple((k, _frozen(v, budget)) for k, v in value.kwargs)
        return ("layer", value.name, _frozen(value.args, budget), kwargs, value.applied)
    if isinstance(value, float):
        return ("float", repr(value))
    if isinstance(value, (bool, int, str, type(None))):
        return (type(value).__name__, value)
    raise TypeError


@dataclass(frozen=True)
class _Replay:
    """A block expansion recorded once and replayed for later calls with the same key: the same
    nodes, data and edges under another path, charged the same work, and only where the
    original's limits (nesting, block depth, path length, recursion) hold at the new place.

    Its nodes carry their data resolved (:meth:`_Expander._settle`) except the output's, which
    waits for its readers (``open_output``)."""

    # the nodes, in the order they were added: path suffixes, data, inputs; an input or the
    # output is an index into the call's sources followed by these nodes
    suffixes: tuple[str, ...]
    data: tuple[dict[str, Any], ...]
    inputs: tuple[tuple[int, ...], ...]
    output: int
    calls: tuple[tuple[str, Any], ...]  # the block calls inside, as in _Expander.calls (suffixes)
    work: int
    nesting: int  # deepest layer nesting below the call
    stack: int  # deepest block stack below the call
    suffix: int  # longest path suffix applied below the call
    blocks: frozenset[str]
    reads: frozenset[str]  # genotype parameters the expansion read
    open_output: bool  # the output is a node of the block whose Op.resolve is still to run
    counted: tuple[int, ...]  # each node's parameters as counted against the limits (_Expander.counted)
    labels: tuple[str, ...]  # each node's hash label (_Expander.labels)
    params: int  # the nodes' counted parameters
    peak_params: int  # the largest running total of the nodes' counted parameters, in order
    largest: int  # elements of the largest node output

    @classmethod
    def record(cls, expander: _Expander, start: tuple[int, int, int, int, int], sources: list[str],
               path: str, output: str) -> _Replay | None:
        first, used, nesting, stack, first_call = start
        prefix = path + "."
        added = expander.added[first:]
        index = {source: i for i, source in enumerate(sources)}
        if len(index) < len(sources):  # one node given twice: which input a node reads is ambiguous
            return None
        for node in added:
            if not node.startswith(prefix):
                return None
            index[node] = len(index)
        suffixes, data, inputs = [], [], []
        total = peak = largest = 0
        counted = tuple(expander.counted[first:])
        skip = len(prefix)
        for node, params in zip(added, counted):
            values = expander.nodes[node].copy()
            values["args"] = values["args"].copy()  # the graph is the caller's; the memo outlives it
            refs = tuple([index.get(source, -1) for source in values["inputs"]])
            if -1 in refs:
                return None
            suffixes.append(node[skip:])
            data.append(values)
            inputs.append(refs)
            total += params
            if total > peak:
                peak = total
            elements = math.prod(values["shape"])
            if elements > largest:
                largest = elements
        if output not in index:
            return None
        # the output's Op.resolve is still to run only if this block added it (then _settle left
        # it last in `unresolved`); a source passed through is resolved, or waits, where it was added
        open_output = index[output] >= len(sources) and expander.unresolved[-1:] == [output]
        calls = tuple((call[len(prefix):], payload) for call, payload in expander.calls[first_call:])
        return cls(
            tuple(suffixes), tuple(data), tuple(inputs), index[output], calls,
            expander.budget.used - used, expander.deepest_nesting - nesting, expander.deepest_stack - stack,
            max(0, expander.longest_path - len(prefix)), frozenset(expander.blocks_used),
            frozenset(expander.reads), open_output, counted, tuple(map(expander.labels.__getitem__, added)),
            total, peak, largest,
        )

    def fits(self, expander: _Expander, path: str) -> bool:
        limits = expander.limits
        return (
            expander.nesting + self.nesting <= limits.max_nesting
            and len(expander.stack) + self.stack <= limits.max_depth
            and len(path) + 1 + self.suffix <= limits.max_path
            and self.blocks.isdisjoint(expander.stack)
        )

    def apply(self, expander: _Expander, sources: list[str], path: str) -> str:
        expander.budget.charge(self.work)
        expander.blocks_used |= self.blocks
        expander.deepest_nesting = max(expander.deepest_nesting, expander.nesting + self.nesting)
        expander.deepest_stack = max(expander.deepest_stack, len(expander.stack) + self.stack)
        expander.longest_path = max(expander.longest_path, len(path) + 1 + self.suffix)
        prefix = path + "."
        names = [prefix + suffix for suffix in self.suffixes]
        self._count(expander, names)
        node = [*sources, *names].__getitem__  # an index in self.inputs -> the node's name
        _add_in_bulk(expander.graph, names, self.data, [tuple(map(node, refs)) for refs in self.inputs])
        expander.added.extend(names)
        expander.labels.update(zip(names, self.labels))
        expander.counted.extend(self.counted)
        expander.calls.append((prefix, self))
        output = node(self.output)
        if self.open_output:
            expander.unresolved.append(output)
        return output

    def _count(self, expander: _Expander, names: list[str]) -> None:
        """Count the nodes against the limits: at once where none can reach them, else node by
        node (:meth:`_Expander._count`), so an error names the node that reached one."""
        limits = expander.limits
        if (
            expander.graph.number_of_nodes() + len(names) <= limits.max_nodes
            and expander.total_params + self.peak_params <= limits.max_params
            and self.largest <= limits.max_activation
        ):
            expander.total_params += self.params
            return
        for pending, (node, params, data) in enumerate(zip(names, self.counted, self.data)):
            try:
                expander._count(params, data["shape"], pending)
            except GenotypeError as error:
                raise error.located(path=node)


def _add_in_bulk(graph: nx.DiGraph, names: list[str], data: Sequence[Mapping[str, Any]],
                 inputs: list[tuple[str, ...]]) -> None:
    """Add nodes ``names``, each with a copy of its ``data`` (its ``args`` copied too) whose
    ``inputs`` are its ``inputs``, and the edges into each from those inputs (port: the
    input's position), to a graph expansion is building, in the order ``add_node(name,
    **data)`` then ``add_edge(source, name, port=port)`` for each node would give.

    The one place that writes networkx's adjacency dicts (``_succ``, ``_pred``, ``_node``)
    itself, as ``add_nodes_from`` / ``add_edges_from`` do but without their per-item work
    (most of a replay's time went there). For an ``nx.DiGraph`` of plain dicts that no
    algorithm has cached anything for yet, node names not in it (a node's path is unique in
    an expansion), and inputs already in it. A networkx that lays its graphs out otherwise
    fails ``test_add_in_bulk_leaves_the_graph_as_add_node_and_add_edge_do``."""
    succ, pred, attributes = graph._succ, graph._pred, graph._node
    for name, template, sources in zip(names, data, inputs):
        values = attributes[name] = template.copy()
        values["args"] = template["args"].copy()
        values["inputs"] = sources
        succ[name] = {}
        edges = pred[name] = {}
        for port, source in enumerate(sources):
            edge = edges.get(source)
            if edge is None:
                succ[source][name] = edges[source] = {"port": port}
            else:  # a node that reads one source twice: one edge, the last port (as add_edge)
                edge["port"] = port


class BlockCalls(Mapping[str, str]):
    """The graph attribute ``blocks``: ``path: call text`` of every block application, in the
    order they were made. Flattened from the expansion's call list (where a replay's calls
    are one entry) on first use: only drawings read it, and flattening every graph took a
    thirtieth of a NAS-Bench-201 candidate's expansion and hash. Read-only; pickles (and
    copies with :mod:`copy`) as a plain dict."""

    __slots__ = ("_calls", "_flat")

    def __init__(self, calls: Sequence[tuple[str, Any]]) -> None:
        self._calls = calls
        self._flat: dict[str, str] | None = None

    def _items(self) -> dict[str, str]:
        if self._flat is None:
            self._flat = _flatten_calls(self._calls, "", {})
            self._calls = ()
        return self._flat

    def __getitem__(self, path: str) -> str:
        return self._items()[path]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items())

    def __len__(self) -> int:
        return len(self._items())

    def __repr__(self) -> str:
        return f"BlockCalls({self._items()!r})"

    def __reduce__(self) -> tuple[type, tuple[dict[str, str]]]:
        return (dict, (self._items(),))


def _flatten_calls(calls: Sequence[tuple[str, Any]], prefix: str, into: dict[str, str]) -> dict[str, str]:
    """``into``, with ``path: text`` of every block call added, replays' calls under their
    prefixes. Linear in the calls of a successful expansion (each was charged to the work
    budget); recursion as deep as replays nest (within the nesting limits)."""
    for path, payload in calls:
        if payload.__class__ is _Replay:
            _flatten_calls(payload.calls, prefix + path, into)
        else:
            into[prefix + path] = payload
    return into


CALL_TEXT = 120  # characters of a recorded call's text; longer ones end in "..."
_CALL_ITEMS = 8  # items of a list argument shown in a call's text


def call_text(layer: Layer) -> str:
    """The call as evaluated, e.g. ``basic(128, s=2)``; lists show their first items, the
    whole at most :data:`CALL_TEXT` characters."""
    parts = [_shown(v) for v in layer.args] + [f"{k}={_shown(v)}" for k, v in layer.kwargs]
    text = f"{layer.name}({', '.join(parts)})" if parts else layer.name
    return text if len(text) <= CALL_TEXT else text[: CALL_TEXT - 3] + "..."


def _shown(value: Any) -> str:
    """An argument's text in :func:`call_text` (a module function: a nested recursive one
    made a reference cycle, left for the garbage collector, at every block call)."""
    if isinstance(value, Layer):
        return call_text(value)
    if isinstance(value, (list, tuple)):
        items = [_shown(v) for v in value[:_CALL_ITEMS]]
        return "[" + ", ".join(items + (["..."] if len(value) > _CALL_ITEMS else [])) + "]"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (bool, int, str, type(None))):
        return str(value)
    return "..."  # an unevaluated argument (a repeat's layers)


def _value(argument: Any, **bindings: Any) -> Any:
    return argument.value(**bindings) if isinstance(argument, Deferred) else argument


def evaluate_input(genotype: Genotype) -> tuple[int, ...]:
    """The genotype's input shape with expressions evaluated against its parameters."""
    expander = None  # made for the first expression (most inputs are numbers)
    shape = []
    for index, item in enumerate(genotype.input):
        if isinstance(item, str):
            expander = expander or _Expander(genotype, LIMITS)
            try:
                item = parse_expression(item).evaluate(_Scope(expander, {}, None))
            except GenotypeError as error:
                raise error.located(file=genotype.source, path=f"input[{index}]")
        if isinstance(item, bool) or not isinstance(item, int) or not 1 <= item <= MAX_INPUT_SIZE:
            raise GenotypeError(f"expected an integer in [1, {MAX_INPUT_SIZE:,}], got {item!r}",
                                file=genotype.source, path=f"input[{index}]")
        shape.append(item)
    return tuple(shape)


def expand(genotype: Genotype, limits: Limits = LIMITS) -> nx.DiGraph:
    """Expand ``genotype`` into its primitive DAG. Raises :class:`GenotypeError` located at
    the node path where expansion failed."""
    return expand_labelled(genotype, limits)[0]


def expand_labelled(genotype: Genotype, limits: Limits = LIMITS) -> tuple[nx.DiGraph, dict[str, str]]:
    """:func:`expand`, and every node's hash label (:func:`nas.genotype._hash.node_label` of its
    data in the graph), made as the nodes were: replayed nodes bring theirs along."""
    expander = _Expander(genotype, limits)
    graph = expander.graph
    shape = genotype.input_shape
    graph.add_node(INPUT, op=INPUT, args={}, shape=shape, params=0, macs=0, inputs=())
    expander.labels[INPUT] = node_label(INPUT, {}, shape)
    try:
        output, env = expander.body(genotype.network, {"in": INPUT}, "", {})
    except GenotypeError as error:
        raise error.located(file=genotype.source)
    except RecursionError:  # pragma: no cover - the nesting limits keep well below the stack
        raise GenotypeError("nested too deeply to expand", file=genotype.source) from None
    outputs = [output]
    if genotype.outputs is not None:
        outputs = []
        for name in genotype.outputs:
            if name not in env:
                raise GenotypeError(f"'{name}' is not a node of the network", file=genotype.source, path="outputs")
            if env[name] is not None:
                outputs.append(env[name])
        if not outputs:
            raise GenotypeError("every output is absent", file=genotype.source, path="outputs")
    graph.graph["outputs"] = outputs
    graph.graph["name"] = genotype.name
    graph.graph["blocks"] = BlockCalls(expander.calls)
    outputs = set(outputs)
    for node in expander.unresolved:
        expander.resolve(node, output=node in outputs)
    return graph, expander.labels


def _resolves(op: ops.Op) -> bool:
    """True when ``op`` overrides :meth:`nas.ops.Op.resolve` (the others never change)."""
    return type(op).resolve is not ops.Op.resolve
