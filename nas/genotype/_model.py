"""The genotype: typed, immutable data parsed from YAML, and its canonical dump.

A genotype file has these keys (only ``network`` is required)::

    name: resnet18                    # defaults to the file name
    meta: {paper: ..., year: 2015}    # free-form facts, kept as they are
    input: [3, 224, 224]              # C, H, W; items may be expressions over params
    imports: [lib/resnet.yaml]        # files whose blocks this genotype uses
    params: {width: 64, block: basic} # the knobs: names with default values
    scaling: {depth: [depths], width: [widths]}   # params that compound scaling multiplies
    outputs: [out, aux]               # extra outputs (default: the network's output only)
    blocks:                           # parameterised sub-graphs
      basic:
        args: {c: required, s: 1}     # defaults may be expressions
        inputs: [in]                  # the default; DARTS-like cells take two
        nodes:                        # a mapping (a DAG) or a list (a chain)
          a: conv(c, s=s) <- in
          b: bn
          ...
    network: [...]                    # a body, like a block's nodes, reading 'in'

A *body* is a sequence of statements ``NAME: EXPR <- INPUT, INPUT`` (in a mapping) or ``EXPR``
/ ``{NAME: EXPR}`` items (in a list). A statement without ``<-`` reads the statement written
before it (the body's first input for the first one). The body's output is the statement
named ``out`` or else the last one. A statement whose expression gives ``None`` is left out.

Parsing checks structure, names and expression syntax; shapes, argument types and recursion
through op-valued parameters are checked when the genotype is expanded.
"""

from __future__ import annotations

import datetime
import hashlib
import keyword
import os
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from nas import ops
from nas._checks import plain_number
from nas._gc import gc_paused
from nas._shipped import zoo_dir
from nas._yaml import dump_yaml, load_yaml
from nas.errors import GenotypeError
from nas.genotype._expr import MATH_FUNCTIONS, Expression, parse_expression, show_number
from nas.genotype._files import FileLog, LoadCache
from nas.genotype._libraries import library_dirs, library_generation
from nas.genotype._memo import ExpansionMemo

if TYPE_CHECKING:
    import networkx as nx

__all__ = ["Statement", "BlockDef", "Genotype", "load_genotype", "require_genotype", "FORMS", "RESERVED_NAMES"]

FORMS = ("repeat", "seq")
"""Structural forms callable in expressions: ``repeat(n, first, rest)`` and ``seq(a, b, ...)``."""

RESERVED_NAMES = frozenset({"in", "input", "i", "cin", "hin", "win", "required", "None", "True", "False"})
_TOP_KEYS = ("name", "meta", "input", "imports", "params", "scaling", "outputs", "blocks", "network")
_BLOCK_KEYS = ("args", "inputs", "nodes", "doc")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_INPUTS = re.compile(r"\s*[A-Za-z_][A-Za-z0-9_]*(\s*,\s*[A-Za-z_][A-Za-z0-9_]*)*\s*\Z")
MAX_IMPORT_DEPTH = 16
MAX_NAME = 100
"""Longest name of a node, block, argument, parameter or output."""
MAX_TITLE = 300
"""Longest genotype ``name`` (a title, not an identifier: ``resnet20@phi=1,alpha=1.3`` grows
with each scaling)."""
_UNPRINTABLE = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})  # controls, format (bidi), surrogates, line breaks
MAX_IMPORTS = 64
"""Most library files one genotype may import, all levels counted."""


def printable_line(text: Any, *, path: str, limit: int = MAX_TITLE) -> str:
    """``text`` when it is one line of printable text, 1 to ``limit`` characters: free text that
    is printed (a genotype's name in tables, errors, DOT and Mermaid text; the zoo's family)
    holds no control, bidi or line-break characters. A name of ``"\\x1b[2J"`` or with a
    newline rewrote the terminal or split a line.

    Raises:
        GenotypeError: at ``path``.
    """
    if not isinstance(text, str) or not text:
        raise GenotypeError("must be a non-empty string", path=path)
    if len(text) > limit:
        raise GenotypeError(f"'{text[:40]}...' is longer than {limit} characters", path=path)
    _check_printable(text, path=path)
    return str.__str__(text)  # a str, also for a subclass (numpy.str_): YAML dumps no other


def _check_printable(text: str, *, path: str | None = None) -> None:
    """Refuse ``text`` holding a control, bidi (format), surrogate or line-break character.

    Raises:
        GenotypeError: at ``path``, showing the text (cut) and the character.
    """
    for char in text:
        if unicodedata.category(char) in _UNPRINTABLE:
            shown = repr(text) if len(text) <= 80 else repr(text[:77]) + "..."
            raise GenotypeError(f"must be one line of printable text; {shown} holds {char!r}", path=path)


def _identifier(name: Any, what: str) -> str:
    if isinstance(name, str) and len(name) > MAX_NAME:
        raise GenotypeError(f"{what} '{name[:40]}...' is longer than {MAX_NAME} characters")
    if not isinstance(name, str) or not _IDENTIFIER.match(name) or keyword.iskeyword(name):
        shown = repr(name)
        raise GenotypeError(f"{what} {shown if len(shown) <= 80 else shown[:77] + '...'} is not a valid name (letters, digits, _)")
    return name


@dataclass(frozen=True)
class Statement:
    """One node of a body: ``name: expr <- inputs``. ``inputs`` is ``None`` for "the
    previous statement"; ``name`` is ``None`` for an unnamed chain item."""

    name: str | None
    expr: str
    inputs: tuple[str, ...] | None = None
    parsed: Expression | None = field(default=None, compare=False, repr=False)
    """The parsed expression, kept so expansion never parses it again (``None``: parsed on use)."""

    @property
    def expression(self) -> Expression:
        """The parsed :attr:`expr`."""
        return self.parsed if self.parsed is not None else parse_expression(self.expr)

    @classmethod
    def parse(cls, name: str | None, text: Any) -> Statement:
        """Parse ``EXPR`` or ``EXPR <- A, B``; a YAML null is the expression ``None``."""
        if text is None:
            text = "None"
        elif isinstance(text, bool) or not isinstance(text, (str, int, float)):
            raise GenotypeError(f"expected an expression, got {type(text).__name__}")
        text = str(text)
        inputs = None
        if "<-" in text:
            head, tail = text.rsplit("<-", 1)
            if not _INPUTS.match(tail):
                raise GenotypeError(f"'{text}': after '<-' list input names separated by commas")
            text = head
            inputs = tuple(part.strip() for part in tail.split(","))
            for part in inputs:
                if len(part) > MAX_NAME:
                    raise GenotypeError(f"input name '{part[:40]}...' is longer than {MAX_NAME} characters")
        expression = parse_expression(text)
        return cls(name, expression.canonical, inputs, expression)

    def dump(self) -> str:
        return self.expr if self.inputs is None else f"{self.expr} <- {', '.join(self.inputs)}"


def _node_name(name: Any, where: str) -> str:
    """A mapping key naming a node: text (YAML reads ``null:``, ``1:`` or ``true:`` as others)."""
    if not isinstance(name, str):
        raise GenotypeError(f"a node name must be text, got {name!r}", path=where)
    return name


def _parse_body(data: Any, where: str) -> tuple[Statement, ...]:
    statements: list[Statement] = []
    if isinstance(data, Mapping):
        items: Iterable[tuple[str | None, Any, str]] = (
            (_node_name(name, where), value, f"{where}.{name}") for name, value in data.items()
        )
    elif isinstance(data, list):
        def list_items():
            for index, item in enumerate(data):
                if isinstance(item, Mapping):
                    if len(item) != 1:
                        raise GenotypeError(
                            "a named chain item is a mapping with one key", path=f"{where}[{index}]"
                        )
                    ((name, value),) = item.items()
                    yield _node_name(name, f"{where}[{index}]"), value, f"{where}.{name}"
                else:
                    yield None, item, f"{where}[{index}]"

        items = list_items()
    else:
        raise GenotypeError("expected a list (a chain) or a mapping (a DAG) of nodes", path=where)
    names: set[str] = set()
    for name, value, path in items:
        try:
            if name is not None:
                _identifier(name, "node name")
                if name in RESERVED_NAMES:
                    raise GenotypeError(f"'{name}' is reserved and cannot name a node")
                if name in names:
                    raise GenotypeError(f"duplicate node name '{name}'")
                names.add(name)
            statements.append(Statement.parse(name, value))
        except GenotypeError as error:
            raise error.located(path=path)
    if not statements:
        raise GenotypeError("a body needs at least one node", path=where)
    return tuple(statements)


def _dump_body(statements: tuple[Statement, ...]) -> Any:
    if all(s.name is not None for s in statements):
        return {s.name: s.dump() for s in statements}
    return [s.dump() if s.name is None else {s.name: s.dump()} for s in statements]


def _block_def(name: str, args: tuple, inputs: tuple, nodes: tuple, doc: str, defaults: dict) -> BlockDef:
    """A :class:`BlockDef` from its pickled fields."""
    return BlockDef(name, args, inputs, nodes, doc, MappingProxyType(defaults))


@dataclass(frozen=True)
class BlockDef:
    """A parameterised sub-graph. ``args`` maps names to defaults (``ops.REQUIRED`` for none;
    strings are expressions evaluated when the block is applied)."""

    name: str
    args: tuple[tuple[str, Any], ...]
    inputs: tuple[str, ...]
    nodes: tuple[Statement, ...]
    doc: str = ""
    parsed_defaults: Mapping[str, Expression] = field(default_factory=dict, compare=False, repr=False)
    """Parsed expressions of the string defaults in :attr:`args` (missing ones parse on use)."""

    def __reduce__(self) -> tuple[Any, tuple]:
        """Pickled (and copied) as its fields, the read-only mapping as a dict."""
        return (_block_def, (self.name, self.args, self.inputs, self.nodes, self.doc, dict(self.parsed_defaults)))

    def default_expression(self, arg: str, text: str) -> Expression:
        """The parsed default ``text`` of argument ``arg``."""
        parsed = self.parsed_defaults.get(arg)
        return parsed if parsed is not None else parse_expression(text)

    @classmethod
    def parse(cls, name: str, data: Any, where: str) -> BlockDef:
        if isinstance(data, list):
            data = {"nodes": data}
        if not isinstance(data, Mapping):
            raise GenotypeError("a block is a mapping with 'nodes' (and 'args', 'inputs')", path=where)
        _check_keys(data, _BLOCK_KEYS, where)
        if "nodes" not in data:
            raise GenotypeError("missing key 'nodes'", path=where)
        raw_args = data.get("args") or {}
        if not isinstance(raw_args, Mapping):
            raise GenotypeError("'args' must be a mapping of names to defaults", path=f"{where}.args")
        args = []
        parsed_defaults: dict[str, Expression] = {}
        for arg, default in raw_args.items():
            try:
                _identifier(arg, "argument")
                if arg in RESERVED_NAMES:
                    raise GenotypeError(f"'{arg}' is reserved and cannot name an argument")
                if ops.canonical_name(arg) or arg in FORMS:
                    raise GenotypeError(f"argument '{arg}' would hide the op '{arg}'; rename it")
                if isinstance(default, str) and default != "required":
                    parsed_defaults[arg] = parse_expression(default)
                _check_value(default)
            except GenotypeError as error:
                raise error.located(path=f"{where}.args.{arg}")
            args.append((arg, ops.REQUIRED if default == "required" else default))
        inputs = data.get("inputs", ["in"])
        if not isinstance(inputs, list) or not inputs:
            raise GenotypeError("'inputs' must be a non-empty list of names", path=f"{where}.inputs")
        for item in inputs:
            if item != "in":
                try:
                    _identifier(item, "input")
                except GenotypeError as error:
                    raise error.located(path=f"{where}.inputs")
        if len(set(inputs)) != len(inputs):
            raise GenotypeError("duplicate input name", path=f"{where}.inputs")
        nodes = _parse_body(data["nodes"], f"{where}.nodes")
        clash = {s.name for s in nodes} & set(inputs)
        if clash:
            raise GenotypeError(f"node '{clash.pop()}' has the name of an input", path=f"{where}.nodes")
        doc = data.get("doc", "")
        if not isinstance(doc, str):
            raise GenotypeError("'doc' must be a string", path=f"{where}.doc")
        return cls(name, tuple(args), tuple(inputs), nodes, doc, MappingProxyType(parsed_defaults))

    def dump(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.doc:
            out["doc"] = self.doc
        if self.args:
            out["args"] = {k: "required" if v is ops.REQUIRED else _plain(v) for k, v in self.args}
        if self.inputs != ("in",):
            out["inputs"] = list(self.inputs)
        out["nodes"] = _dump_body(self.nodes)
        return out

    def callees(self) -> set[str]:
        names: set[str] = set()
        for statement in self.nodes:
            names |= statement.expression.names()
        for _, default in self.args:
            if isinstance(default, str):
                names |= parse_expression(default).names()
        return names


def _check_keys(data: Mapping, allowed: tuple[str, ...], where: str | None) -> None:
    for key in data:
        if key not in allowed:
            raise GenotypeError(
                f"unknown key '{key}' (valid: {', '.join(allowed)})", path=where if where else None
            )


def _check_value(value: Any, depth: int = 0) -> None:
    """Parameter values are plain data: numbers, strings (printable, one line), booleans, null
    and lists of them."""
    if depth > 8:
        raise GenotypeError("value nested too deeply")
    if isinstance(value, list):
        if len(value) > 4096:
            raise GenotypeError("list longer than 4096 items")
        for item in value:
            _check_value(item, depth + 1)
    elif not isinstance(value, (int, float, str, bool, type(None))):
        raise GenotypeError(f"expected a number, string, boolean or list, got {type(value).__name__}")
    elif isinstance(value, str):  # printed in trial lines and tables (nas search, nas best)
        _check_printable(value)
    elif isinstance(value, (int, float)) and not isinstance(value, bool) and not abs(value) <= 2**53:
        # compared, never converted: float(10**400) overflows; nan and inf compare false
        raise GenotypeError(f"{show_number(value)} is not a finite number within 2**53")


_MAX_PLAIN_DEPTH = 100  # lists in lists _plain walks (a value deeper than YAML's 64 levels is refused)
_EXACT = {int: int.__int__, float: float.__float__, str: str.__str__}  # a subclass's value, as the type itself


def _plain(value: Any, depth: int = 0) -> Any:
    """``value`` as YAML data: tuples become lists, NumPy scalars Python numbers, and a
    subclass of int, float or str (an ``IntEnum``, ``numpy.float64``, ``numpy.str_``) the
    built-in type (YAML's safe dumper represents no other, and the hash label shows its repr).

    Raises:
        GenotypeError: lists nested more than 100 levels (a list that holds itself).
    """
    if isinstance(value, (tuple, list)):
        if depth >= _MAX_PLAIN_DEPTH:
            raise GenotypeError("value nested too deeply")
        return [_plain(v, depth + 1) for v in value]
    value = plain_number(value)
    kind = type(value)
    if kind not in _EXACT and kind is not bool:
        for base, exact in _EXACT.items():
            if isinstance(value, base):
                return exact(value)
    return value


def _freeze(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


def _same_kind(old: Any, new: Any) -> bool:
    if old is None or new is None:
        return True
    if isinstance(old, bool) or isinstance(new, bool):
        return isinstance(old, bool) and isinstance(new, bool)
    if isinstance(old, (int, float)):
        return isinstance(new, (int, float)) and (isinstance(old, float) or isinstance(new, int) or float(new).is_integer())
    if isinstance(old, (list, tuple)):
        return isinstance(new, (list, tuple))
    return type(old) is type(new)


@dataclass(frozen=True, eq=False)
class Genotype:
    """A network description: parameters with defaults, blocks and the network body.

    Immutable. Equality and :attr:`hash` are about the network: two genotypes are equal when
    their canonical dumps are equal (``source`` is ignored); :attr:`hash` is equal for
    networks whose expanded graphs are isomorphic.
    """

    name: str
    network: tuple[Statement, ...]
    input: tuple[Any, ...] = (3, 224, 224)
    params: Mapping[str, Any] = field(default_factory=dict)
    blocks: Mapping[str, BlockDef] = field(default_factory=dict)
    meta: Mapping[str, Any] = field(default_factory=dict)
    scaling: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    outputs: tuple[str, ...] | None = None
    source: str | None = None
    _memo: ExpansionMemo = field(default_factory=ExpansionMemo, repr=False)
    """Block expansions shared with the variants made from this genotype (:mod:`nas.genotype._memo`)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))
        object.__setattr__(self, "blocks", MappingProxyType(dict(self.blocks)))
        object.__setattr__(self, "meta", MappingProxyType(dict(self.meta)))
        object.__setattr__(self, "scaling", MappingProxyType(dict(self.scaling)))

    def __reduce__(self) -> tuple[type, tuple]:
        """Pickled (and copied) as its fields, the read-only mappings as dicts; the copy expands
        again when asked, with a memo of its own."""
        return (Genotype, (self.name, self.network, self.input, dict(self.params), dict(self.blocks),
                           dict(self.meta), dict(self.scaling), self.outputs, self.source))

    # ------------------------------------------------------------------ identity

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Genotype) and self.dump() == other.dump()

    def __hash__(self) -> int:
        return hash(self.dump())

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"Genotype({self.name!r}, {params})"

    @cached_property
    def graph(self) -> nx.DiGraph:
        """The expanded primitive DAG (see :mod:`nas.genotype._expand`). Computed once."""
        return self._expansion[0]

    @cached_property
    def hash(self) -> str:
        """A hex digest equal for genotypes whose primitive graphs are isomorphic
        (Weisfeiler-Lehman over op, arguments and shapes; edges labelled by input port where
        input order matters)."""
        from nas.genotype._hash import graph_hash

        graph, labels = self._expansion
        with gc_paused():
            return graph_hash(graph, labels=labels)

    @cached_property
    def _expansion(self) -> tuple[nx.DiGraph, dict[str, str]]:
        """The graph and its nodes' hash labels, made together (``expand_labelled``)."""
        from nas.genotype._expand import expand_labelled

        with gc_paused():
            return expand_labelled(self)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The input's ``(C, H, W)`` with expressions evaluated."""
        from nas.genotype._expand import evaluate_input

        return evaluate_input(self)

    @property
    def output_shape(self) -> tuple[int, ...]:
        """The (first) output's shape, e.g. ``(classes,)`` for a classifier (expands the
        genotype if not yet done; raises :class:`GenotypeError` when it does not expand)."""
        graph = self.graph
        return tuple(graph.nodes[graph.graph["outputs"][0]]["shape"])

    # ------------------------------------------------------------------ variation

    def with_params(self, **params: Any) -> Genotype:
        """A copy with parameter defaults replaced. Raises :class:`GenotypeError` for an
        unknown parameter or a value of another kind than the default."""
        merged = dict(self.params)
        for key, given in params.items():
            if key not in self.params:
                known = ", ".join(self.params) or "none"
                raise GenotypeError(f"unknown parameter '{key}' (parameters: {known})", file=self.source)
            try:
                value = _plain(given)
                _check_value(value)
            except GenotypeError as error:
                raise error.located(file=self.source, path=f"params.{key}")
            if not _same_kind(self.params[key], value):
                raise GenotypeError(
                    f"parameter '{key}' expects a value like {_plain(self.params[key])!r}, got {given!r}",
                    file=self.source,
                )
            merged[key] = _freeze(value)
        return replace(self, params=merged)

    def with_input(self, shape: Iterable[int]) -> Genotype:
        """A copy whose input has shape ``shape``, e.g. ``(C, H, W)`` (checked on expansion).

        Raises:
            TypeError: ``shape`` is not a sequence (a string such as ``"3,32,32"`` is not one).
        """
        if isinstance(shape, (str, bytes)) or not isinstance(shape, Iterable):
            raise TypeError(f"shape must be a sequence of ints such as (3, 32, 32), got {shape!r}")
        return replace(self, input=tuple(shape))

    # ------------------------------------------------------------------ text

    def to_dict(self) -> dict[str, Any]:
        """Plain data in canonical order; blocks not reachable from the network are left out."""
        data: dict[str, Any] = {"name": self.name}
        if self.meta:
            data["meta"] = {k: _plain(self.meta[k]) for k in sorted(self.meta)}
        data["input"] = [_plain(v) for v in self.input]
        if self.params:
            data["params"] = {k: _plain(v) for k, v in self.params.items()}
        if self.scaling:
            data["scaling"] = {k: list(v) for k, v in self.scaling.items()}
        if self.outputs is not None:
            data["outputs"] = list(self.outputs)
        used = self.reachable_blocks()
        if used:
            data["blocks"] = {name: self.blocks[name].dump() for name in sorted(used)}
        data["network"] = _dump_body(self.network)
        return data

    def dump(self) -> str:
        """Canonical YAML: self-contained (imported blocks inlined), stable, and loading it
        gives an equal genotype."""
        return self._text

    @cached_property
    def _text(self) -> str:
        return dump_yaml(self.to_dict())

    @property
    def digest(self) -> str:
        """SHA-256 of the canonical dump (text identity, unlike the isomorphism :attr:`hash`)."""
        return hashlib.sha256(self.dump().encode()).hexdigest()

    def reachable_blocks(self) -> set[str]:
        """Blocks the network can reach through names in expressions or parameter values."""
        pending = _names_in(self.network) | _strings_in(self.params.values())
        seen: set[str] = set()
        while pending:
            name = pending.pop()
            if name in self.blocks and name not in seen:
                seen.add(name)
                pending |= self.blocks[name].callees()
                pending |= _strings_in(v for _, v in self.blocks[name].args)
        return seen


def _names_in(statements: Iterable[Statement]) -> set[str]:
    names: set[str] = set()
    for statement in statements:
        names |= statement.expression.names()
    return names


def _strings_in(values: Iterable[Any]) -> set[str]:
    found: set[str] = set()
    for value in values:
        if isinstance(value, str):
            found.add(value)
            if not _IDENTIFIER.match(value):
                try:
                    found |= parse_expression(value).names()
                except GenotypeError:
                    pass
        elif isinstance(value, (list, tuple)):
            found |= _strings_in(value)
    return found


# ---------------------------------------------------------------------- loading


def load_genotype(source: str | Path | Mapping[str, Any], /, **params: Any) -> Genotype:
    """Load a genotype from a file path, YAML text, a zoo name or a mapping.

    A ``str`` is YAML text when it has a newline or a colon, a zoo name (``"resnet18"``, found in
    :func:`zoo_dir`) when it is a bare identifier, and a path otherwise. Keyword arguments
    replace parameter defaults (:meth:`Genotype.with_params`).

    Files and texts, once parsed, are kept (:mod:`nas.genotype._files`): loading the same
    file again with other parameters reads it and its imports to check they are unchanged,
    without parsing them again, and expands through the blocks already expanded.

    Raises :class:`GenotypeError` (one line: file, key path, problem) for anything wrong in
    the genotype, and ``TypeError`` for a ``source`` of another type.
    """
    if not isinstance(source, (str, os.PathLike, Mapping)):
        raise TypeError(f"source must be a path, YAML text, a zoo name or a mapping, got "
                        f"{type(source).__name__}")
    if isinstance(source, Mapping):
        genotype = _from_data(source, file=None, base=Path.cwd(), default_name="genotype", log=FileLog())
    else:
        text_like = isinstance(source, str) and ("\n" in source or ":" in source)
        if text_like:
            start: tuple[Any, ...] = ("text", hashlib.sha256(source.encode("utf-8", "surrogatepass")).digest())
        else:
            start = ("path", type(source).__name__, os.fspath(source))
        key = (*start, os.getcwd(), str(zoo_dir()), ops.generation(), library_generation())
        genotype = replace(_LOADED.get(key, lambda log: _parse_source(source, text_like, log)))
    if params:
        genotype = genotype.with_params(**params)
    try:
        genotype.graph  # noqa: B018 - expand now, so errors surface at load time
    except GenotypeError as error:
        raise error.located(file=genotype.source)
    return genotype


def require_genotype(value: Any, name: str = "genotype") -> Genotype:
    """``value``, checked to be a :class:`Genotype`: the public functions that take one call
    this first, so a path, a zoo name or ``None`` fails here rather than deep inside.

    Raises:
        TypeError: naming ``name`` and the type given.
    """
    if not isinstance(value, Genotype):
        hint = " (load it with nas.load_genotype)" if isinstance(value, (str, os.PathLike, Mapping)) else ""
        raise TypeError(f"{name} must be a nas.Genotype{hint}, got {type(value).__name__}")
    return value


_LOADED = LoadCache()


def _parse_source(source: str | Path, text_like: bool, log: FileLog) -> Genotype:
    """Parse YAML text or a file (a path or a zoo name), reading files through ``log``."""
    if text_like:
        data = load_yaml(source, error=GenotypeError)  # type: ignore[arg-type]
        return _from_data(data, file=None, base=Path.cwd(), default_name="genotype", log=log)
    path = Path(source)
    if isinstance(source, str) and _IDENTIFIER.match(source) and not log.exists(path):
        path = zoo_dir() / f"{source}.yaml"
        if not log.exists(path):
            raise GenotypeError(f"no genotype '{source}' in {zoo_dir()}")
    file = str(path)
    data = log.read_yaml(path)
    resolved = log.resolve(path)
    return _from_data(data, file=file, base=resolved.parent, default_name=Path(file).stem, log=log,
                      resolved=resolved)


def _from_data(data: Any, *, file: str | None, base: Path, default_name: str, log: FileLog,
               resolved: Path | None = None) -> Genotype:
    """The genotype of parsed YAML ``data`` read from ``file`` (``None``: text or a mapping),
    whose imports are relative to ``base``; ``resolved`` is the file's resolved path, which
    starts the import chain, so a library importing the genotype itself is a cycle."""
    try:
        if not isinstance(data, Mapping):
            raise GenotypeError("a genotype is a mapping with at least 'network'")
        _check_keys(data, _TOP_KEYS, None)
        if "network" not in data:
            raise GenotypeError("missing key 'network'")
        name = printable_line(data.get("name", default_name), path="name")
        meta = data.get("meta") or {}
        if not isinstance(meta, Mapping):
            raise GenotypeError("'meta' must be a mapping", path="meta")
        for key in meta:  # the canonical YAML sorts them (1 and 'a' do not compare)
            if not isinstance(key, str):
                raise GenotypeError(f"a key must be text, got {key!r}", path="meta")
            _check_meta(meta[key], f"meta.{key}")
        shape = data.get("input", [3, 224, 224])
        if not isinstance(shape, list) or not 1 <= len(shape) <= 3:
            raise GenotypeError("'input' must be a list [C, H, W]", path="input")
        for index, item in enumerate(shape):
            if isinstance(item, str):
                try:
                    parse_expression(item)
                except GenotypeError as error:
                    raise error.located(path=f"input[{index}]")
            elif isinstance(item, bool) or not isinstance(item, int) or item < 1:
                raise GenotypeError(f"expected a positive integer, got {item!r}", path=f"input[{index}]")
        params = _parse_params(data.get("params") or {})
        blocks: dict[str, BlockDef] = {}
        root = str(resolved) if resolved is not None else file or "<text>"
        _import_blocks(data.get("imports"), base, blocks, stack=[root], done=set(), log=log)
        for block_name, block in _blocks_of(data).items():
            _add_block(blocks, BlockDef.parse(_block_name(block_name), block, f"blocks.{block_name}"), "blocks")
        scaling = _parse_scaling(data.get("scaling") or {}, params)
        outputs = data.get("outputs")
        if outputs is not None:
            if not isinstance(outputs, list) or not outputs:
                raise GenotypeError("'outputs' must be a non-empty list of node names", path="outputs")
            try:
                outputs = tuple(_identifier(o, "output") for o in outputs)
            except GenotypeError as error:
                raise error.located(path="outputs")
        network = _parse_body(data["network"], "network")
        for param in params:
            if param in blocks:
                raise GenotypeError(f"parameter '{param}' has the name of a block", path=f"params.{param}")
        _check_block_recursion(blocks)
        return Genotype(
            name=name,
            network=network,
            input=tuple(shape),
            params=params,
            blocks=blocks,
            meta=dict(meta),
            scaling=scaling,
            outputs=outputs,
            source=file,
        )
    except GenotypeError as error:
        raise error.located(file=file)


_META_SCALARS = frozenset({str, int, float, bool, type(None), bytes, datetime.date, datetime.datetime})
_MAX_META_DEPTH = 64  # as nas._yaml.MAX_DEPTH


def _check_meta(value: Any, path: str) -> None:
    """``value`` is data YAML reads and the canonical dump writes (what a file's ``meta``
    holds): scalars, dates, bytes, and sets, lists and dicts of them, at most 64 levels deep,
    of exactly these types (YAML's safe dumper represents no subclass). A mapping given to
    :func:`load_genotype` may hold anything; dumping another object failed.

    Raises:
        GenotypeError: at ``path`` (``meta.KEY``).
    """
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        kind = type(item)
        if depth > _MAX_META_DEPTH:
            raise GenotypeError(f"nested deeper than {_MAX_META_DEPTH} levels", path=path)
        if kind is dict:
            pending.extend((v, depth + 1) for v in (*item.keys(), *item.values()))
        elif kind in (list, tuple, set):
            pending.extend((v, depth + 1) for v in item)
        elif kind not in _META_SCALARS:
            raise GenotypeError(f"expected YAML data (text, numbers, dates, lists, mappings), got "
                                f"{type(item).__name__}", path=path)


def _blocks_of(data: Mapping[str, Any]) -> Mapping[str, Any]:
    """The ``blocks`` of a genotype or library file: a mapping, empty when left out or null.

    Raises:
        GenotypeError: at ``blocks``, for anything else (``blocks: []`` was taken as none).
    """
    raw = data.get("blocks")
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise GenotypeError("'blocks' must be a mapping of names to blocks", path="blocks")
    return raw


def _block_name(name: Any) -> str:
    try:
        _identifier(name, "block name")
    except GenotypeError as error:
        raise error.located(path=f"blocks.{name}"[:200])
    if name in RESERVED_NAMES or ops.canonical_name(name) or name in FORMS or name in MATH_FUNCTIONS:
        raise GenotypeError(f"block name '{name}' is taken by a built-in", path=f"blocks.{name}")
    return name


def _add_block(blocks: dict[str, BlockDef], block: BlockDef, where: str) -> None:
    if block.name in blocks:
        raise GenotypeError(f"block '{block.name}' is defined twice", path=f"{where}.{block.name}")
    blocks[block.name] = block


def _parse_params(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, Mapping):
        raise GenotypeError("'params' must be a mapping of names to defaults", path="params")
    params = {}
    for key, value in raw.items():
        try:
            _identifier(key, "parameter")
            if key in RESERVED_NAMES or ops.canonical_name(key) or key in FORMS or key in MATH_FUNCTIONS:
                raise GenotypeError(f"parameter name '{key}' is taken by a built-in")
            value = _plain(value)  # as with_params takes it (a mapping may hold NumPy numbers)
            _check_value(value)
        except GenotypeError as error:
            raise error.located(path=f"params.{key}")
        params[key] = _freeze(value)
    return params


def _parse_scaling(raw: Any, params: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
    """``scaling``: for each of depth, width and resolution, the parameters it multiplies.

    A parameter is scaled by one of them, once: listed under two, the last applied replaced
    the other's result (``depth: [s], width: [s]`` scaled by ``--depth 3 --width 4`` gave ``s *
    4``, the depth lost).

    Raises:
        GenotypeError: at ``scaling`` or ``scaling.KEY``.
    """
    if not isinstance(raw, Mapping):
        raise GenotypeError("'scaling' must be a mapping", path="scaling")
    scaling: dict[str, tuple[str, ...]] = {}
    scaled_by: dict[str, str] = {}
    for key, names in raw.items():
        if key not in ("depth", "width", "resolution"):
            raise GenotypeError(f"unknown key '{key}' (valid: depth, width, resolution)", path="scaling")
        names = [names] if isinstance(names, str) else names
        if not isinstance(names, list):
            raise GenotypeError("expected a list of parameter names", path=f"scaling.{key}")
        for name in names:
            if not isinstance(name, str) or name not in params:
                raise GenotypeError(f"'{name}' is not a parameter", path=f"scaling.{key}")
            if name in scaled_by:
                where = "listed twice" if scaled_by[name] == key else f"already scaled by {scaled_by[name]}"
                raise GenotypeError(f"parameter '{name}' is {where}; a parameter scales one way, once",
                                    path=f"scaling.{key}")
            scaled_by[name] = key
        scaling[key] = tuple(names)
    return scaling


def _find_import(base: Path, item: str, log: FileLog) -> Path:
    """Where ``imports: [item]`` reads from: beside the importing file, else the zoo, else a
    plugin's library folder (:mod:`nas.genotype._libraries`); the first of these when none has
    it (reading it then reports the missing file)."""
    for folder in (base, zoo_dir()):
        if log.exists(folder / item):
            return folder / item
    for folder in library_dirs():  # loads installed plugins: only on a miss
        if log.exists(folder / item):
            return folder / item
    return base / item


def _import_blocks(
    imports: Any, base: Path, blocks: dict[str, BlockDef], stack: list[str], done: set[str], log: FileLog
) -> None:
    """Add the blocks of each imported file (``imports``: a list, or None for none), once
    however often it is imported.

    ``ITEM`` is relative to the importing file's folder (``base``); only when no file is there
    is it looked up in :func:`zoo_dir`, then in plugins' library folders (:func:`_find_import`).
    One list names at most :data:`MAX_IMPORTS` items (a list of the same file 100,000 times
    took 10 s of ``stat`` and ``resolve`` calls). A file is known by its resolved path and by its parsed content (``done`` holds both), so a
    copy of a library met again through the zoo, or under another path, is the same library and
    is not loaded twice.
    """
    if imports is None:  # left out, or null
        return
    if not isinstance(imports, list):
        raise GenotypeError("'imports' must be a list of files", path="imports")
    if len(imports) > MAX_IMPORTS:  # each item costs file-system calls, now and on every cache check
        raise GenotypeError(f"more than {MAX_IMPORTS} files listed", path="imports")
    if len(stack) > MAX_IMPORT_DEPTH:
        raise GenotypeError("imports nested too deeply", path="imports")
    for item in imports:
        if not isinstance(item, str):
            raise GenotypeError(f"expected a file name, got {item!r}", path="imports")
        path = _find_import(base, item, log)
        resolved = str(log.resolve(path))
        if resolved in stack:
            raise GenotypeError(f"import cycle: {' -> '.join([*stack, item])}", path="imports")
        if resolved in done:
            continue
        done.add(resolved)
        if len(done) > 2 * MAX_IMPORTS:  # a path and a content digest per file
            raise GenotypeError(f"more than {MAX_IMPORTS} files imported", path="imports")
        try:
            data = log.read_yaml(path)
        except GenotypeError as error:
            if error.path is not None:  # a YAML error inside the library: name the library
                raise
            raise GenotypeError(f"cannot import '{item}': {error.message}", path="imports") from None
        content = "sha256:" + hashlib.sha256(repr(data).encode()).hexdigest()
        if content in done:
            continue
        done.add(content)
        try:
            if not isinstance(data, Mapping):
                raise GenotypeError("a library is a mapping with 'blocks' (and 'imports')")
            _check_keys(data, ("imports", "blocks", "meta"), None)
            _import_blocks(data.get("imports"), path.parent, blocks, [*stack, resolved], done, log)
            for name, block in _blocks_of(data).items():
                _add_block(blocks, BlockDef.parse(_block_name(name), block, f"blocks.{name}"), "blocks")
        except GenotypeError as error:
            raise error.located(file=str(path))


def _check_block_recursion(blocks: Mapping[str, BlockDef]) -> None:
    """Reject blocks that call themselves, directly or through other blocks."""
    import networkx as nx

    calls = nx.DiGraph()
    for name, block in blocks.items():
        calls.add_node(name)
        for callee in block.callees() & blocks.keys():
            calls.add_edge(name, callee)
    try:
        cycle = nx.find_cycle(calls)
    except nx.NetworkXNoCycle:
        return
    chain = " -> ".join([edge[0] for edge in cycle] + [cycle[0][0]])
    raise GenotypeError(f"block references itself: {chain}", path=f"blocks.{cycle[0][0]}")
