"""The primitive registry (see :mod:`nas.ops._registry` for the contract of an op)."""

from nas.ops import _primitives  # noqa: F401  (registers the built-in primitives)
from nas.ops._registry import (
    REQUIRED,
    Arg,
    BuildContext,
    Op,
    OpInfo,
    Shape,
    canonical_name,
    get,
    names,
    ops,
    register,
)

__all__ = [
    "REQUIRED",
    "Arg",
    "BuildContext",
    "Op",
    "OpInfo",
    "Shape",
    "canonical_name",
    "get",
    "names",
    "ops",
    "register",
]
