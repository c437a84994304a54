"""Safe expressions: parsed with :mod:`ast`, checked against a whitelist, never ``eval``-ed.

Grammar (a subset of Python expressions)::

    expr := constant | name | expr[index] | expr[start:stop]
          | name(args, key=value, ...)          # an op, a block, a form or a math function
          | expr OP expr  (+ - * / // % **)     | -expr | not expr
          | expr CMP expr (== != < <= > >= in, not in)
          | expr and expr | expr or expr
          | expr if expr else expr
          | [expr, ...] | (expr, ...)

Everything else (attributes, lambdas, comprehensions, starred arguments, f-strings, walrus,
calls of anything that is not a name) is rejected when the text is parsed. Arithmetic works on
numbers only and its results are bounded, so no expression can exhaust memory or time.

Names are resolved by the caller through a :class:`Scope`; calls are delegated to the scope's
``call`` hook, so this module knows nothing about ops or blocks.
"""

from __future__ import annotations

import ast
import functools
import math
import operator
from collections.abc import Callable, Mapping
from typing import Any

from nas.errors import GenotypeError

__all__ = ["Expression", "parse_expression", "MATH_FUNCTIONS", "Scope", "Deferred"]

# Results beyond this magnitude are refused: channel counts and sizes never come near it.
_MAX_MAGNITUDE = 2**53
_MAX_SEQUENCE = 4096


def _divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round ``value`` to a multiple of ``divisor``, never more than 10% below it.

    The rule of MobileNet and EfficientNet (timm's and torchvision's ``make_divisible``).
    """
    if divisor <= 0:
        raise ValueError("divisor must be positive")
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


MATH_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "min": min,
    "max": max,
    "abs": abs,
    "int": int,
    "float": float,
    "round": round,
    "ceil": math.ceil,
    "floor": math.floor,
    "sqrt": math.sqrt,
    "len": len,
    "sum": sum,
    "divisible": _divisible,
}
"""Pure functions callable from expressions, besides ops, blocks and forms."""

_BINARY = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_COMPARE = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
}
_ALLOWED = (
    ast.Expression, ast.Constant, ast.Name, ast.Load, ast.Call, ast.keyword, ast.BinOp,
    ast.UnaryOp, ast.USub, ast.UAdd, ast.Not, ast.Compare, ast.BoolOp, ast.And, ast.Or,
    ast.IfExp, ast.Subscript, ast.Slice, ast.List, ast.Tuple, *_BINARY, *_COMPARE,
)
_FORBIDDEN_NAMES = {
    ast.Attribute: "attributes",
    ast.Lambda: "lambdas",
    ast.ListComp: "comprehensions",
    ast.SetComp: "comprehensions",
    ast.DictComp: "comprehensions",
    ast.GeneratorExp: "comprehensions",
    ast.Starred: "starred arguments",
    ast.JoinedStr: "f-strings",
    ast.NamedExpr: "assignment expressions",
    ast.Dict: "dict literals",
    ast.Set: "set literals",
    ast.Await: "await",
    ast.Yield: "yield",
}


class Scope:
    """How an expression sees the world: ``lookup`` resolves names, ``call`` applies callees.

    ``lookup(name)`` returns the value or raises :class:`GenotypeError`; ``call(name, args,
    kwargs)`` is asked for every call, whatever the callee.
    """

    def lookup(self, name: str) -> Any:  # pragma: no cover - interface
        raise NotImplementedError

    def call(self, name: str, args: list[Any], kwargs: dict[str, Any]) -> Any:  # pragma: no cover
        raise NotImplementedError

    def defers(self, name: str) -> bool:
        """True when calls of ``name`` receive :class:`Deferred` arguments, evaluated later
        (and possibly several times, with extra names bound)."""
        return False


class Deferred:
    """An argument expression not yet evaluated; :meth:`value` evaluates it in its scope with
    ``bindings`` layered on top."""

    __slots__ = ("_node", "_scope", "_text")

    def __init__(self, node: ast.AST, scope: Scope, text: str):
        self._node, self._scope, self._text = node, scope, text

    def value(self, **bindings: Any) -> Any:
        scope = _Layered(self._scope, bindings) if bindings else self._scope
        return _Evaluator(scope, self._text).visit(self._node)


class _Layered(Scope):
    def __init__(self, base: Scope, bindings: Mapping[str, Any]):
        self.base, self.bindings = base, bindings

    def lookup(self, name: str) -> Any:
        return self.bindings[name] if name in self.bindings else self.base.lookup(name)

    def call(self, name: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
        return self.base.call(name, args, kwargs)

    def defers(self, name: str) -> bool:
        return self.base.defers(name)


class Expression:
    """A parsed, validated expression. Equal texts give equal (cached) objects."""

    __slots__ = ("text", "_tree", "_canonical")

    def __init__(self, text: str, tree: ast.Expression):
        self.text = text
        self._tree = tree
        self._canonical: str | None = None

    def __repr__(self) -> str:
        return f"Expression({self.text!r})"

    @property
    def canonical(self) -> str:
        """The text in normal form (``ast.unparse``): equal expressions, equal text."""
        if self._canonical is None:
            self._canonical = ast.unparse(self._tree)
        return self._canonical

    @property
    def head(self) -> str | None:
        """The callee of a call (``conv`` in ``conv(64)``), the name of a bare name, else None."""
        node = self._tree.body
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            return node.func.id
        return node.id if isinstance(node, ast.Name) else None

    def names(self) -> set[str]:
        """Every name read or called in the expression."""
        return {node.id for node in ast.walk(self._tree) if isinstance(node, ast.Name)}

    def callees(self) -> set[str]:
        """Names used as callees."""
        return {
            node.func.id
            for node in ast.walk(self._tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
        }

    def evaluate(self, scope: Scope) -> Any:
        """Evaluate in ``scope``. Raises :class:`GenotypeError` for any failure."""
        try:
            return _Evaluator(scope, self.text).visit(self._tree.body)
        except GenotypeError:
            raise
        except (ArithmeticError, TypeError, ValueError, IndexError, KeyError) as error:
            raise GenotypeError(f"cannot evaluate '{self.text}': {error}") from None


@functools.lru_cache(maxsize=8192)
def parse_expression(text: str) -> Expression:
    """Parse ``text`` into an :class:`Expression`.

    Raises :class:`GenotypeError` naming the first construct outside the grammar.
    """
    if not isinstance(text, str):
        raise GenotypeError(f"expected an expression string, got {text!r}")
    if len(text) > 2000:
        raise GenotypeError("expression longer than 2000 characters")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as error:
        raise GenotypeError(f"invalid expression '{text}': {error.msg}") from None
    nodes = list(ast.walk(tree))
    for node in nodes:
        if not isinstance(node, _ALLOWED):
            what = _FORBIDDEN_NAMES.get(type(node), type(node).__name__)
            raise GenotypeError(f"'{text}': {what} are not allowed in expressions")
    for node in nodes:
        if isinstance(node, ast.Call) and not isinstance(node.func, ast.Name):
            raise GenotypeError(f"'{text}': only names can be called")
        if isinstance(node, ast.Constant) and not isinstance(node.value, (int, float, str, bool, type(None))):
            raise GenotypeError(f"'{text}': constant {node.value!r} is not allowed")
    return Expression(text, tree)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float))


class _Evaluator:
    def __init__(self, scope: Scope, text: str):
        self.scope = scope
        self.text = text

    def fail(self, message: str) -> GenotypeError:
        return GenotypeError(f"'{self.text}': {message}")

    def visit(self, node: ast.AST) -> Any:
        match node:
            case ast.Constant(value=value):
                return value
            case ast.Name(id=name):
                return self.scope.lookup(name)
            case ast.List(elts=elts) | ast.Tuple(elts=elts):
                return [self.visit(e) for e in elts]
            case ast.BinOp(left=left, op=op, right=right):
                return self.binary(op, self.visit(left), self.visit(right))
            case ast.UnaryOp(op=ast.Not(), operand=operand):
                return not self.visit(operand)
            case ast.UnaryOp(op=op, operand=operand):
                value = self.visit(operand)
                if not _number(value):
                    raise self.fail(f"cannot negate {value!r}")
                return -value if isinstance(op, ast.USub) else +value
            case ast.BoolOp(op=op, values=values):
                result = None
                for item in values:
                    result = self.visit(item)
                    if isinstance(op, ast.And) and not result:
                        return result
                    if isinstance(op, ast.Or) and result:
                        return result
                return result
            case ast.Compare(left=left, ops=ops, comparators=comparators):
                current = self.visit(left)
                for op, comparator in zip(ops, comparators):
                    other = self.visit(comparator)
                    if not _COMPARE[type(op)](current, other):
                        return False
                    current = other
                return True
            case ast.IfExp(test=test, body=body, orelse=orelse):
                return self.visit(body) if self.visit(test) else self.visit(orelse)
            case ast.Subscript(value=value, slice=index):
                return self.subscript(self.visit(value), index)
            case ast.Call(func=ast.Name(id=name), args=args, keywords=keywords):
                if self.scope.defers(name):
                    argument = lambda a: Deferred(a, self.scope, self.text)  # noqa: E731
                else:
                    argument = self.visit
                positional = [argument(a) for a in args]
                named: dict[str, Any] = {}
                for keyword in keywords:
                    if keyword.arg in named:
                        raise self.fail(f"argument '{keyword.arg}' given twice")
                    named[keyword.arg] = argument(keyword.value)
                return self.scope.call(name, positional, named)
        raise self.fail(f"unsupported syntax {type(node).__name__}")  # pragma: no cover

    def binary(self, op: ast.operator, left: Any, right: Any) -> Any:
        if isinstance(op, ast.Add) and isinstance(left, list) and isinstance(right, list):
            if len(left) + len(right) > _MAX_SEQUENCE:
                raise self.fail("list too long")
            return left + right
        if not (_number(left) and _number(right)):
            raise self.fail(f"arithmetic needs numbers, got {left!r} and {right!r}")
        if isinstance(op, ast.Pow) and (abs(right) > 64 or abs(left) > _MAX_MAGNITUDE):
            raise self.fail("power out of range")
        result = _BINARY[type(op)](left, right)
        if isinstance(result, complex) or abs(result) > _MAX_MAGNITUDE:
            raise self.fail("result out of range")
        return result

    def subscript(self, value: Any, index: ast.AST) -> Any:
        if not isinstance(value, (list, tuple, str)):
            raise self.fail(f"cannot index {value!r}")
        if isinstance(index, ast.Slice):
            bounds = [None if b is None else self.visit(b) for b in (index.lower, index.upper, index.step)]
            if any(b is not None and not isinstance(b, int) for b in bounds):
                raise self.fail("slice bounds must be integers")
            return value[slice(*bounds)]
        position = self.visit(index)
        if not isinstance(position, int) or isinstance(position, bool):
            raise self.fail(f"index must be an integer, got {position!r}")
        if not -len(value) <= position < len(value):
            raise self.fail(f"index {position} out of range for {len(value)} items")
        return value[position]


def call_math(name: str, args: list[Any], kwargs: Mapping[str, Any]) -> Any:
    """Apply a whitelisted math function; numbers in, numbers out."""
    function = MATH_FUNCTIONS[name]
    try:
        return function(*args, **kwargs)
    except (TypeError, ValueError, ArithmeticError) as error:
        raise GenotypeError(f"{name}(): {error}") from None
