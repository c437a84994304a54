"""The primitive registry (see :mod:`nas.ops._registry` for the contract of an op).

Public API: :class:`Op` (subclass it; :func:`register` it), :class:`Arg`, :class:`Kind` and
:data:`KINDS` (argument schemas), :class:`Example` (every op's small valid use),
:class:`OpInfo`, :class:`BuildContext`, :data:`REQUIRED`; lookups :func:`get`, :func:`names`,
:func:`ops`, :func:`canonical_name`; :func:`make_activation` (an activation argument's module);
:func:`primitive_table` (the docs' table, printed by ``nas ops``); :func:`check_op` (an op's
static rule against its torch module, ``nas check-op``).
"""

from nas.ops import _primitives  # noqa: F401  (registers the built-in primitives)
from nas.ops._check import OpCheck, check_op
from nas.ops._registry import (
    KINDS,
    REQUIRED,
    Arg,
    BuildContext,
    Example,
    Kind,
    Op,
    OpInfo,
    Shape,
    canonical_name,
    generation,
    get,
    make_activation,
    names,
    ops,
    register,
)
from nas.ops._table import primitive_table

__all__ = [
    "KINDS",
    "REQUIRED",
    "Arg",
    "BuildContext",
    "Example",
    "Kind",
    "Op",
    "OpCheck",
    "OpInfo",
    "Shape",
    "canonical_name",
    "check_op",
    "generation",
    "get",
    "make_activation",
    "names",
    "ops",
    "primitive_table",
    "register",
]
