"""The primitive registry: one :class:`Op` per name, duplicates rejected.

An op states, in one place, its argument schema (:attr:`Op.args`), how many inputs it takes,
its static rule (:meth:`Op.infer`: output shape, parameter count and multiply-accumulates from
the input shapes, without torch) and its torch builder (:meth:`Op.build`). Torch is imported
inside ``build`` only, so the language and the analysis never load it.

Shapes exclude the batch dimension: ``(C, H, W)`` for feature maps, ``(C,)`` for vectors.
MACs count the multiply-accumulates of convolutions and linear layers (and of the small
convolutions inside squeeze-excite); like torchvision's published figures, they leave out
normalisation, activations, pooling and element-wise ops.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from nas.errors import GenotypeError

__all__ = [
    "REQUIRED",
    "Arg",
    "Op",
    "OpInfo",
    "BuildContext",
    "Shape",
    "register",
    "get",
    "names",
    "ops",
]

Shape = tuple[int, ...]


class _Required:
    def __repr__(self) -> str:
        return "required"


REQUIRED: Any = _Required()
"""Marker for an argument without a default."""


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_pair(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and len(value) == 2 and all(map(_is_int, value))


@dataclass(frozen=True)
class Arg:
    """One argument of an op.

    ``kind`` is one of ``int`` (an integer ``>= minimum``), ``float``, ``prob`` (a float in
    [0, 1)), ``bool``, ``size`` (a positive integer or a ``[h, w]`` pair), ``padding``
    (``"same"``, a non-negative integer or a pair), ``activation`` (the name of an activation
    op) or ``any``.
    """

    name: str
    kind: str
    default: Any = REQUIRED
    minimum: int = 1
    doc: str = ""

    def check(self, op: str, value: Any) -> Any:
        """Return ``value`` normalised (pairs as tuples), or raise :class:`GenotypeError`.
        Floats must be finite (NaN and infinities are refused)."""
        if value is None and self.default is None:
            return None
        if not _KIND_CHECKS[self.kind](self, value):
            raise GenotypeError(f"{op}: argument '{self.name}' must be {self.expected()}, got {value!r}")
        if isinstance(value, list):
            return tuple(value)
        if self.kind == "float" and isinstance(value, int):
            return float(value)
        return value

    def expected(self) -> str:
        """What a valid value looks like, in words."""
        return {
            "int": f"an integer >= {self.minimum}",
            "float": "a finite number",
            "prob": "a probability in [0, 1)",
            "bool": "true or false",
            "size": "a positive integer or a pair [h, w]",
            "padding": "'same', a non-negative integer or a pair [h, w]",
            "activation": "one of " + ", ".join(sorted(_ACTIVATIONS)),
            "any": "a value",
        }[self.kind]


def _is_finite_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


_KIND_CHECKS: dict[str, Any] = {
    "int": lambda arg, v: _is_int(v) and v >= arg.minimum,
    "float": lambda arg, v: _is_finite_number(v),
    "prob": lambda arg, v: _is_finite_number(v) and 0 <= v < 1,
    "bool": lambda arg, v: isinstance(v, bool),
    "size": lambda arg, v: (_is_int(v) and v >= 1) or (_is_pair(v) and min(v) >= 1),
    "padding": lambda arg, v: v == "same" or (_is_int(v) and v >= 0) or (_is_pair(v) and min(v) >= 0),
    "activation": lambda arg, v: isinstance(v, str) and v in _ACTIVATIONS,
    "any": lambda arg, v: True,
}


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
    """Base class of primitives. Subclasses set the class attributes and override
    :meth:`infer` and :meth:`build`; register an instance with :func:`register`."""

    name: ClassVar[str]
    args: ClassVar[tuple[Arg, ...]] = ()
    min_inputs: ClassVar[int] = 1
    max_inputs: ClassVar[int | None] = 1
    aliases: ClassVar[tuple[str, ...]] = ()
    #: True when the op computes element-wise on its single input (activations), so a
    #: builder may run it in place.
    elementwise: ClassVar[bool] = False
    #: True when the order of inputs does not matter (used by the isomorphism hash).
    commutative: ClassVar[bool] = True

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


def register(op: Op | type[Op]) -> Any:
    """Add an op (an instance, or a class instantiated without arguments) to the registry.

    Usable as a class decorator. Raises ``ValueError`` when a name or alias is taken.
    """
    instance = op() if isinstance(op, type) else op
    for key in (instance.name, *instance.aliases):
        if key in _CANONICAL:
            raise ValueError(f"op name '{key}' is already registered")
    for key in (instance.name, *instance.aliases):
        _CANONICAL[key] = instance.name
    _REGISTRY[instance.name] = instance
    if instance.elementwise:
        _ACTIVATIONS.update((instance.name, *instance.aliases))
    return op


def canonical_name(name: str) -> str | None:
    """The registered name for ``name`` or one of its aliases, or ``None``."""
    return _CANONICAL.get(name)


def get(name: str) -> Op:
    """The op called ``name`` (or an alias). Raises :class:`GenotypeError` listing valid names."""
    canonical = _CANONICAL.get(name)
    if canonical is None:
        raise GenotypeError(f"unknown op '{name}' (ops: {', '.join(names())})")
    return _REGISTRY[canonical]


def names() -> list[str]:
    """Registered op names, sorted (aliases left out)."""
    return sorted(_REGISTRY)


def ops() -> Iterator[Op]:
    """Registered ops in name order."""
    return (_REGISTRY[name] for name in names())
