"""The primitive registry: one :class:`Op` per name, duplicates rejected.

An op states, in one place, its argument schema (:attr:`Op.args`), how many inputs it takes,
its static rule (:meth:`Op.infer`: output shape, parameter count and multiply-accumulates from
the input shapes, without torch), its torch builder (:meth:`Op.build`), a small valid use
(:attr:`Op.example`, which the tests build for every registered op) and every behaviour the
rest of the package asks about: in-place safety (:attr:`Op.inplace`, :attr:`Op.overwritable`),
aliasing (:attr:`Op.alias`), pooling (:attr:`Op.pooling`), joins (:attr:`Op.joins`),
activations (:attr:`Op.activation`) and arguments decided by the op's readers
(:meth:`Op.resolve`, with :attr:`Op.cancels_bias`). Nothing outside this package tests an op's
name. Torch is imported inside ``build`` only, so the language and the analysis never load it.

Shapes exclude the batch dimension: ``(C, H, W)`` for feature maps, ``(C,)`` for vectors.
MACs count the multiply-accumulates of convolutions and linear layers (and of the small
convolutions inside squeeze-excite); like torchvision's published figures, they leave out
normalisation, activations, pooling and element-wise ops.
"""

from __future__ import annotations

import keyword
import math
import re
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from nas.errors import GenotypeError

__all__ = [
    "REQUIRED",
    "Arg",
    "Example",
    "KINDS",
    "Kind",
    "Op",
    "OpInfo",
    "BuildContext",
    "Shape",
    "register",
    "get",
    "make_activation",
    "names",
    "ops",
]

Shape = tuple[int, ...]


class _Required:
    def __repr__(self) -> str:
        return "required"

    def __reduce__(self) -> str:
        return "REQUIRED"  # pickled and copied as the one marker (found by name in this module)


REQUIRED: Any = _Required()
"""Marker for an argument without a default."""


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_pair(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and len(value) == 2 and all(map(_is_int, value))


@dataclass(frozen=True)
class Kind:
    """What values an argument accepts: ``check(arg, value)`` is true for a valid value, and
    ``expected(arg)`` says in words what a valid value looks like (for error messages). The
    built-in kinds are named by strings (:data:`KINDS`); an op may give its own ``Kind``."""

    check: Callable[[Arg, Any], bool]
    expected: Callable[[Arg], str]


@dataclass(frozen=True)
class Arg:
    """One argument of an op.

    ``kind`` is a :class:`Kind` or the name of a built-in one: ``int`` (an integer
    ``>= minimum``), ``float``, ``positive`` (a float > 0: an epsilon), ``non_negative`` (a
    float >= 0), ``prob`` (a float in [0, 1)), ``fraction`` (a float in [0, 1]: a momentum),
    ``bool``, ``size`` (a positive
    integer or a ``[h, w]`` pair), ``padding`` (``"same"``, a non-negative integer or a pair),
    ``activation`` (the name of an activation op, or from Python a callable that returns a
    torch module, e.g. ``torch.nn.Mish``: see :func:`make_activation`) or ``any``. ``unset``
    says in a word what a ``None`` default means (``derived``); the primitive table shows it.
    """

    name: str
    kind: str | Kind
    default: Any = REQUIRED
    minimum: int = 1
    doc: str = ""
    unset: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.kind, Kind) and self.kind not in KINDS:
            raise ValueError(f"argument '{self.name}': unknown kind {self.kind!r} (kinds: {', '.join(KINDS)}, or a Kind)")

    def check(self, op: str, value: Any) -> Any:
        """Return ``value`` normalised (pairs as tuples), or raise :class:`GenotypeError`.
        Floats must be finite (NaN and infinities are refused)."""
        if value is None and self.default is None:
            return None
        if not self._kind().check(self, value):
            raise GenotypeError(f"{op}: argument '{self.name}' must be {self.expected()}, got {value!r}")
        if isinstance(value, list):
            return tuple(value)
        if self.kind == "float" and isinstance(value, int):
            return float(value)
        return value

    def expected(self) -> str:
        """What a valid value looks like, in words."""
        return self._kind().expected(self)

    def _kind(self) -> Kind:
        return self.kind if isinstance(self.kind, Kind) else KINDS[self.kind]


def _is_finite_number(value: Any) -> bool:
    """A finite float, or an int (not a bool) that a float can hold: compared, never converted
    (``float(10**400)`` overflows)."""
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, int) and not isinstance(value, bool) and abs(value) <= sys.float_info.max


def _is_activation(value: Any) -> bool:
    return value in _ACTIVATIONS if isinstance(value, str) else callable(value)


def _kind(check: Callable[[Arg, Any], bool], expected: str | Callable[[Arg], str]) -> Kind:
    return Kind(check, expected if callable(expected) else lambda arg: expected)


#: The built-in argument kinds by name (see :class:`Arg`).
KINDS: dict[str, Kind] = {
    "int": _kind(lambda arg, v: _is_int(v) and v >= arg.minimum, lambda arg: f"an integer >= {arg.minimum}"),
    "float": _kind(lambda arg, v: _is_finite_number(v), "a finite number"),
    "positive": _kind(lambda arg, v: _is_finite_number(v) and v > 0, "a finite number > 0"),
    "non_negative": _kind(lambda arg, v: _is_finite_number(v) and v >= 0, "a finite number >= 0"),
    "prob": _kind(lambda arg, v: _is_finite_number(v) and 0 <= v < 1, "a probability in [0, 1)"),
    "fraction": _kind(lambda arg, v: _is_finite_number(v) and 0 <= v <= 1, "a number in [0, 1]"),
    "bool": _kind(lambda arg, v: isinstance(v, bool), "true or false"),
    "size": _kind(lambda arg, v: (_is_int(v) and v >= 1) or (_is_pair(v) and min(v) >= 1),
                  "a positive integer or a pair [h, w]"),
    "padding": _kind(lambda arg, v: v == "same" or (_is_int(v) and v >= 0) or (_is_pair(v) and min(v) >= 0),
                     "'same', a non-negative integer or a pair [h, w]"),
    "activation": _kind(lambda arg, v: _is_activation(v),
                        lambda arg: "one of " + ", ".join(sorted(_ACTIVATIONS)) + " (or, from Python, a callable)"),
    "any": _kind(lambda arg, v: True, "a value"),
}


FLOAT_KINDS = frozenset({"float", "positive", "non_negative", "prob", "fraction"})
"""The built-in kinds whose values are floats (an integer is accepted, and built as a float)."""


@dataclass(frozen=True)
class Example:
    """A small valid use of an op: its arguments and the shapes of its inputs (batch left out).
    Tests build every registered op from its example, run it forward and backward, and compare
    the result with the op's static rule; plugin ops are held to the same contract."""

    args: Mapping[str, Any] = field(default_factory=dict)
    inputs: tuple[Shape, ...] = ((4, 9, 9),)


@dataclass(frozen=True)
class OpInfo:
    """What the static rule of an op derives from its input shapes."""

    shape: Shape
    params: int = 0
    macs: int = 0


@dataclass
class BuildContext:
    """Facts about a node's place in the graph that a builder may use.

    ``inplace`` is true when the builder may overwrite its input (it has no other reader and
    autograd does not need it).
    """

    inplace: bool = False


class Op:
    """Base class of primitives. Subclasses set the class attributes (``name`` and ``example``
    at least) and override :meth:`infer` and :meth:`build`; register an instance with
    :func:`register`. The first line of the class docstring is the op's note in the primitive
    table (:func:`nas.ops.primitive_table`)."""

    name: ClassVar[str]
    args: ClassVar[tuple[Arg, ...]] = ()
    min_inputs: ClassVar[int] = 1
    max_inputs: ClassVar[int | None] = 1
    aliases: ClassVar[tuple[str, ...]] = ()
    #: A small valid use of the op (required: :func:`register` refuses an op without one).
    example: ClassVar[Example]
    #: An element-wise activation of one input: its name is a valid value of ``activation``
    #: arguments (``se``'s ``act`` and ``gate``).
    activation: ClassVar[bool] = False
    #: The builder can write its result over its first input: ``build`` then gets
    #: ``context.inplace`` true when that input has no other reader and its producer is
    #: :attr:`overwritable` (activations with torch's ``inplace``, ``add``).
    inplace: ClassVar[bool] = False
    #: Backward does not read this op's output, so an in-place reader may overwrite it
    #: (convolutions, linear, batch norm, sums, pooling; not ReLU, whose backward reads it).
    overwritable: ClassVar[bool] = False
    #: The output is the input tensor itself: no module (``build`` gives ``None``), no memory.
    alias: ClassVar[bool] = False
    #: Pools over space. A window pooling's padding may be at most half its kernel (torch's rule).
    pooling: ClassVar[bool] = False
    #: Subtracts a per-channel mean, so a bias of the layer before it is redundant: a
    #: convolution read only by such ops gets no bias (:meth:`resolve`).
    cancels_bias: ClassVar[bool] = False
    #: True when the order of inputs does not matter (used by the isomorphism hash).
    commutative: ClassVar[bool] = True

    @property
    def joins(self) -> bool:
        """Takes several inputs. In a genotype a join skips inputs whose node is absent, and
        with one input left passes it through."""
        return self.max_inputs != 1

    def resolve(self, args: dict[str, Any], readers: Sequence[Op], output: bool) -> dict[str, Any] | None:
        """Arguments that the node's readers decide, once the whole graph is known: the
        arguments with those filled in, or ``None`` when nothing changes (the default).
        ``readers`` are the ops that read the node's output; ``output`` is true for a network
        output. The expansion calls it for every node and re-runs :meth:`infer` on a change."""
        return None

    def bind(self, positional: Sequence[Any], named: Mapping[str, Any]) -> dict[str, Any]:
        """Match call arguments to the schema; return every argument, defaults filled in."""
        if len(positional) > len(self.args):
            raise GenotypeError(
                f"{self.name} takes at most {len(self.args)} positional arguments, "
                f"got {len(positional)}"
            )
        valid = {arg.name: arg for arg in self.args}
        given: dict[str, Any] = dict(zip((a.name for a in self.args), positional))
        for key, value in named.items():
            if key not in valid:
                listing = ", ".join(valid) or "none"
                raise GenotypeError(f"{self.name}: unknown argument '{key}' (valid: {listing})")
            if key in given:
                raise GenotypeError(f"{self.name}: argument '{key}' given twice")
            given[key] = value
        bound = {}
        for arg in self.args:
            if arg.name in given:
                bound[arg.name] = arg.check(self.name, given[arg.name])
            elif arg.default is REQUIRED:
                raise GenotypeError(f"{self.name}: missing argument '{arg.name}'")
            else:
                bound[arg.name] = arg.default
        return bound

    def build_args(self, args: dict[str, Any]) -> dict[str, Any]:
        """``args`` as :meth:`build` gets them: an integer given to an argument of a float kind
        (:data:`FLOAT_KINDS`: ``bn(momentum=0)``, ``dropout(0)``) made a float, as torch's
        modules hold it (TorchScript refused the int). The graph keeps the value as written,
        so its hash is unchanged."""
        converted = {arg.name: float(args[arg.name]) for arg in self.args
                     if arg.kind in FLOAT_KINDS and type(args.get(arg.name)) is int}
        return {**args, **converted} if converted else args

    def check_inputs(self, count: int) -> None:
        if count < self.min_inputs or (self.max_inputs is not None and count > self.max_inputs):
            if self.max_inputs == self.min_inputs:
                wanted = str(self.min_inputs)
            elif self.max_inputs is None:
                wanted = f"at least {self.min_inputs}"
            else:
                wanted = f"{self.min_inputs} to {self.max_inputs}"
            plural = "" if wanted == "1" else "s"
            raise GenotypeError(f"{self.name} takes {wanted} input{plural}, got {count}")

    def infer(self, args: dict[str, Any], shapes: list[Shape]) -> OpInfo:  # pragma: no cover
        raise NotImplementedError

    def build(self, args: dict[str, Any], shapes: list[Shape], context: BuildContext) -> Any:
        """Return an ``nn.Module``, or ``None`` for identity. Single-input ops' modules take a
        tensor; ops with several inputs take one list of tensors, in input order."""
        raise NotImplementedError  # pragma: no cover

    def __repr__(self) -> str:
        return f"<op {self.name}>"


_REGISTRY: dict[str, Op] = {}
_CANONICAL: dict[str, str] = {}
_ACTIVATIONS: set[str] = set()


#: An op name or alias: a lowercase identifier, which the genotype language parses as a call.
OP_NAME = re.compile(r"[a-z][a-z0-9_]*")


LANGUAGE_NAMES = frozenset({
    "repeat", "seq",  # forms
    "input", "cin", "hin", "win", "i", "required",  # the input node and shape, repeat's index, "required"
    "abs", "ceil", "divisible", "float", "floor", "int", "len", "max", "min", "round", "sqrt", "sum",
})
"""Op-shaped names the genotype language gives its own meaning, ahead of ops (its forms, the
names it binds, its math functions): an op so named could never be called. The language's own
lists (``nas.genotype``) are checked against this one by the tests."""


def _check_name(name: Any) -> None:
    """Raise ``TypeError`` unless ``name`` is a string, ``ValueError`` unless it matches
    :data:`OP_NAME`, is no Python keyword (``if(x)`` does not parse as a call) and is not one of
    :data:`LANGUAGE_NAMES`."""
    if not isinstance(name, str):
        raise TypeError(f"an op name must be a string, got {type(name).__name__} {_short(name)}")
    if not OP_NAME.fullmatch(name) or keyword.iskeyword(name):
        raise ValueError(f"op name {_short(name)} is not a lowercase identifier a genotype can call "
                         "(letters a-z, digits and '_', starting with a letter; not a Python keyword)")
    if name in LANGUAGE_NAMES:
        raise ValueError(f"op name {name!r} is the genotype language's own (a form, a name it binds or "
                         "a math function): an op so named could never be called")


def _short(value: Any) -> str:
    """``repr(value)``, cut to 60 characters."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def register(op: Op | type[Op]) -> Any:
    """Add an op (an instance, or a class instantiated without arguments) to the registry.

    Usable as a class decorator. Raises ``TypeError`` when ``op`` is not an :class:`Op` (a
    subclass or an instance) or the name or an alias is not a string, ``ValueError`` when one
    is not a name a genotype can call (:data:`OP_NAME`: a lowercase identifier, not a Python
    keyword) or is taken, or the op has no :attr:`Op.example`.
    """
    if not (isinstance(op, Op) or isinstance(op, type) and issubclass(op, Op)):
        raise TypeError(f"register takes an Op subclass or instance, got {_short(op)}")
    instance = op() if isinstance(op, type) else op
    for key in (getattr(instance, "name", None), *getattr(instance, "aliases", ())):
        _check_name(key)
    if not isinstance(getattr(instance, "example", None), Example):
        raise ValueError(f"op '{instance.name}' has no example (an Example of its arguments and input shapes)")
    for key in (instance.name, *instance.aliases):
        if key in _CANONICAL:
            raise ValueError(f"op name '{key}' is already registered")
    for key in (instance.name, *instance.aliases):
        _CANONICAL[key] = instance.name
    _REGISTRY[instance.name] = instance
    if instance.activation:
        _ACTIVATIONS.update((instance.name, *instance.aliases))
    return op


def canonical_name(name: str) -> str | None:
    """The registered name for ``name`` or one of its aliases, or ``None``. The first miss
    loads the plugins installed under the ``nas.plugins`` entry points (:mod:`nas.plugins`)."""
    canonical = _CANONICAL.get(name)
    if canonical is None:
        from nas.plugins import load_installed

        if load_installed():
            canonical = _CANONICAL.get(name)
    return canonical


def get(name: str) -> Op:
    """The op called ``name`` (or an alias). Raises :class:`GenotypeError` listing valid names."""
    canonical = canonical_name(name)
    if canonical is None:
        raise GenotypeError(f"unknown op '{name}' (ops: {', '.join(names())})")
    return _REGISTRY[canonical]


def generation() -> int:
    """A number that changes whenever an op is registered (the count of names and aliases):
    caches of anything that resolved names against the registry key on it."""
    return len(_CANONICAL)


def names() -> list[str]:
    """Registered op names, sorted (aliases left out)."""
    return sorted(_REGISTRY)


def ops(*, by_name: bool = True) -> Iterator[Op]:
    """Registered ops in name order, or with ``by_name=False`` in registration order."""
    return (_REGISTRY[name] for name in (names() if by_name else list(_REGISTRY)))


def make_activation(value: Any, shape: Shape, *, inplace: bool = False) -> Any:
    """The torch module of an ``activation`` argument: for an op name, that op built for an
    input of ``shape`` (in place when ``inplace`` and the op can); for a callable,
    ``value()`` (a module class such as ``torch.nn.Mish``, or any factory of a module).

    Raises:
        GenotypeError: an unknown op name.
        TypeError: ``value`` is neither a name nor callable.
    """
    if isinstance(value, str):
        op = get(value)
        return op.build(op.bind([], {}), [shape], BuildContext(inplace=inplace))
    if not callable(value):
        raise TypeError(f"an activation is an op name or a callable making a module, got {_short(value)}")
    return value()
