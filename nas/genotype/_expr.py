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
calls of anything that is not a name) is rejected when the text is parsed.

Bounds, so no expression can exhaust memory, time or the stack:

- text: at most :data:`MAX_TEXT` characters and :data:`MAX_OPERATORS` operators and brackets,
  counted on the raw text *before* :func:`ast.parse` (which recurses); the tree at most
  :data:`MAX_DEPTH` levels deep;
- work: every evaluation step is charged to a :class:`Budget` (one per expansion, shared with
  block calls and repeats), so no file can make evaluation loop for long;
- values: numbers finite and within ``2**53``; lists at most :data:`MAX_SEQUENCE` items, with
  at most :data:`MAX_VALUE_ITEMS` items and :data:`MAX_VALUE_DEPTH` levels all told; constants
  finite. Arithmetic works on numbers (``+`` also joins lists), and every math function checks
  its arguments (``round`` digits, ``sum`` of lists) before it runs.

Names are resolved by the caller through a :class:`Scope`; calls are delegated to the scope's
``call`` hook, so this module knows nothing about ops or blocks.
"""

from __future__ import annotations

import ast
import functools
import math
import operator
import re
from collections.abc import Callable, Mapping
from typing import Any

from nas.errors import GenotypeError

__all__ = [
    "Expression",
    "parse_expression",
    "MATH_FUNCTIONS",
    "Scope",
    "Deferred",
    "Budget",
    "MAX_TEXT",
    "MAX_OPERATORS",
    "MAX_DEPTH",
    "MAX_SEQUENCE",
    "MAX_VALUE_ITEMS",
    "MAX_VALUE_DEPTH",
]

# Results beyond this magnitude are refused: channel counts and sizes never come near it.
_MAX_MAGNITUDE = 2**53
MAX_TEXT = 2000
"""Longest expression text (characters)."""
MAX_OPERATORS = 256
"""Most operators, brackets and keyword operators in one expression (counted before parsing)."""
MAX_DEPTH = 64
"""Deepest expression tree."""
MAX_SEQUENCE = 4096
"""Longest list an expression may build."""
MAX_VALUE_ITEMS = 1 << 16
"""Most items (all levels counted, shared lists once per use) in one value an expression builds."""
MAX_VALUE_DEPTH = 16
"""Deepest nesting of lists in one value an expression builds."""
_MAX_ROUND_DIGITS = 32
_MAX_NUMBER_TEXT = 64
_OPERATOR_TOKENS = re.compile(r"[-+*/%<>=!~&|^@(\[{]|\b(?:not|and|or|if|in|is|lambda)\b")


class Budget:
    """Work allowed for one expansion: every block call, repeat copy, chain item, op and
    expression step costs one unit (more for big values). Exceeding it raises
    :class:`GenotypeError`; so does nesting layers deeper than ``max_nesting``."""

    __slots__ = ("limit", "left")

    def __init__(self, limit: int = 2_000_000):
        self.limit = limit
        self.left = limit

    @property
    def used(self) -> int:
        """Units spent so far."""
        return self.limit - self.left

    def charge(self, units: int = 1) -> None:
        """Spend ``units``; raise :class:`GenotypeError` when the budget is exhausted."""
        self.left -= units
        if self.left < 0:
            raise GenotypeError(
                f"expansion needs more than {self.limit:,} steps (the work limit: block calls, "
                "repeats and expression steps all count)"
            )


def cost(value: Any) -> int:
    """Work units to charge for an operation that reads all of ``value`` (a comparison, ``in``,
    a math function): its list items, all levels counted (capped), or a unit per 64 characters
    of a string."""
    if isinstance(value, str):
        return len(value) // 64
    if not isinstance(value, (list, tuple)):
        return 0
    total, pending = 0, [value]
    while pending and total <= 16 * MAX_VALUE_ITEMS:
        current = pending.pop()
        if isinstance(current, str):
            total += len(current) // 64
            continue
        total += len(current)
        pending.extend(
            item for item in current
            if isinstance(item, (list, tuple)) or (isinstance(item, str) and len(item) >= 64)
        )
    return total


def bounded(value: Any, budget: Budget | None = None) -> Any:
    """Return ``value`` after checking the bounds stated in the module docstring (numbers
    finite and in range, lists short and shallow); raise :class:`GenotypeError` otherwise.
    The walk costs one budget unit per item and stops at the limits, shared lists included."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            raise GenotypeError(f"result {value!r} is not a finite number")
        if abs(value) > _MAX_MAGNITUDE:
            raise GenotypeError("result out of range (magnitude above 2**53)")
        return value
    if isinstance(value, (list, tuple)):
        if len(value) > MAX_SEQUENCE:
            raise GenotypeError(f"list longer than {MAX_SEQUENCE} items")
        items = 0
        pending = [(value, 1)]
        while pending:
            current, depth = pending.pop()
            if depth > MAX_VALUE_DEPTH:
                raise GenotypeError(f"lists nested deeper than {MAX_VALUE_DEPTH} levels")
            items += len(current)
            if items > MAX_VALUE_ITEMS:
                raise GenotypeError(f"value holds more than {MAX_VALUE_ITEMS} items")
            for item in current:
                if isinstance(item, (list, tuple)):
                    pending.append((item, depth + 1))
                elif isinstance(item, float) and not math.isfinite(item):
                    raise GenotypeError(f"value holds {item!r}, not a finite number")
        if budget is not None:
            budget.charge(items)
    return value


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


def _number_argument(name: str, value: Any) -> Any:
    if isinstance(value, str):
        if len(value) > _MAX_NUMBER_TEXT:
            raise ValueError(f"text longer than {_MAX_NUMBER_TEXT} characters")
        return value
    if not _number(value):
        raise TypeError(f"expected a number, got {value!r}")
    return value


def _int(value: Any = 0) -> int:
    return int(_number_argument("int", value))


def _float(value: Any = 0.0) -> float:
    return float(_number_argument("float", value))


def _round(value: Any, ndigits: Any = None) -> Any:
    if not _number(value):
        raise TypeError(f"expected a number, got {value!r}")
    if ndigits is None:
        return round(value)
    if not isinstance(ndigits, int) or isinstance(ndigits, bool) or abs(ndigits) > _MAX_ROUND_DIGITS:
        raise ValueError(f"digits must be an integer in [-{_MAX_ROUND_DIGITS}, {_MAX_ROUND_DIGITS}], got {ndigits!r}")
    return round(value, ndigits)


def _sum(items: Any, start: Any = 0) -> Any:
    """``sum`` whose partial results stay bounded (lists at most MAX_SEQUENCE items)."""
    if not isinstance(items, (list, tuple)):
        raise TypeError(f"expected a list, got {items!r}")
    total = start
    for item in items:
        if isinstance(total, list) and isinstance(item, list):
            if len(total) + len(item) > MAX_SEQUENCE:
                raise ValueError(f"list longer than {MAX_SEQUENCE} items")
        elif not (_number(total) and _number(item)):
            raise TypeError(f"cannot add {item!r} to {total!r}")
        total = total + item
        if _number(total) and abs(total) > _MAX_MAGNITUDE:
            raise ValueError("result out of range (magnitude above 2**53)")
    return total


def _numbers(function: Callable[..., Any]) -> Callable[..., Any]:
    """``function`` with every argument required to be a number."""

    @functools.wraps(function)
    def checked(*args: Any, **kwargs: Any) -> Any:
        for value in (*args, *kwargs.values()):
            if value is not None and not _number(value):
                raise TypeError(f"expected a number, got {value!r}")
        return function(*args, **kwargs)

    return checked


def _extreme(function: Callable[..., Any]) -> Callable[..., Any]:
    """``min``/``max`` over numbers or strings, given as arguments or as one list."""

    @functools.wraps(function)
    def checked(*args: Any) -> Any:
        values = args[0] if len(args) == 1 and isinstance(args[0], (list, tuple)) else args
        if not values:
            raise ValueError(f"{function.__name__}() of nothing")
        return function(values)

    return checked


MATH_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "min": _extreme(min),
    "max": _extreme(max),
    "abs": _numbers(abs),
    "int": _int,
    "float": _float,
    "round": _round,
    "ceil": _numbers(math.ceil),
    "floor": _numbers(math.floor),
    "sqrt": _numbers(math.sqrt),
    "len": len,
    "sum": _sum,
    "divisible": _numbers(_divisible),
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
    kwargs)`` is asked for every call, whatever the callee. ``budget`` is charged for every
    evaluation step (a fresh default :class:`Budget` per evaluation when ``None``).
    """

    budget: Budget | None = None

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
        return _run(scope, self._text, self._node)


class _Layered(Scope):
    def __init__(self, base: Scope, bindings: Mapping[str, Any]):
        self.base, self.bindings = base, bindings
        self.budget = base.budget

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
        return _run(scope, self.text, self._tree.body)


def _run(scope: Scope, text: str, node: ast.AST) -> Any:
    evaluator = _Evaluator(scope, text)
    try:
        return evaluator.visit(node)
    except GenotypeError:
        raise
    except (ArithmeticError, TypeError, ValueError, IndexError, KeyError) as error:
        raise GenotypeError(f"cannot evaluate '{_short(text)}': {error}") from None


@functools.lru_cache(maxsize=8192)
def parse_expression(text: str) -> Expression:
    """Parse ``text`` into an :class:`Expression`.

    Raises :class:`GenotypeError` naming the first construct outside the grammar.
    """
    if not isinstance(text, str):
        raise GenotypeError(f"expected an expression string, got {text!r}")
    if len(text) > MAX_TEXT:
        raise GenotypeError(f"expression longer than {MAX_TEXT} characters")
    operators = len(_OPERATOR_TOKENS.findall(text))
    if operators > MAX_OPERATORS:
        raise GenotypeError(
            f"expression too complex: {operators} operators and brackets (at most {MAX_OPERATORS})"
        )
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as error:
        raise GenotypeError(f"invalid expression '{_short(text)}': {error.msg}") from None
    except (RecursionError, MemoryError):  # pragma: no cover - the operator count prevents it
        raise GenotypeError("expression too complex") from None
    nodes = _walk(tree)
    for node in nodes:
        if not isinstance(node, _ALLOWED):
            what = _FORBIDDEN_NAMES.get(type(node), type(node).__name__)
            raise GenotypeError(f"'{_short(text)}': {what} are not allowed in expressions")
    for node in nodes:
        if isinstance(node, ast.Call) and not isinstance(node.func, ast.Name):
            raise GenotypeError(f"'{_short(text)}': only names can be called")
        if isinstance(node, ast.keyword) and node.arg is None:
            raise GenotypeError(f"'{_short(text)}': keyword unpacking (**) is not allowed in expressions")
        if isinstance(node, ast.Constant):
            if not isinstance(node.value, (int, float, str, bool, type(None))):
                raise GenotypeError(f"'{_short(text)}': constant {node.value!r} is not allowed")
            value = node.value
            # compared, never converted: float(10**400) overflows; nan and inf compare false
            if _number(value) and not isinstance(value, bool) and not abs(value) <= _MAX_MAGNITUDE:
                raise GenotypeError(
                    f"'{_short(text)}': constant {show_number(value)} is not a finite number within 2**53"
                )
    return Expression(text, tree)


def _short(text: str) -> str:
    return text if len(text) <= 80 else text[:77] + "..."


def show_number(value: int | float) -> str:
    """``value`` for a message: an integer of more than 20 digits as its first digits and its
    length (``1000...(310 digits)``), never converted to float or to all its digits."""
    if isinstance(value, int) and abs(value) >= 10**20:
        digits = len(str(abs(value)))  # at most MAX_TEXT digits: an expression's length
        return f"{'-' if value < 0 else ''}{str(abs(value))[:4]}...({digits} digits)"
    return repr(value)


def _walk(tree: ast.AST) -> list[ast.AST]:
    """Every node of ``tree``, iteratively; raises when it is deeper than :data:`MAX_DEPTH`."""
    nodes: list[ast.AST] = []
    pending = [(tree, 0)]
    while pending:
        node, depth = pending.pop()
        if depth > MAX_DEPTH:
            raise GenotypeError(f"expression nested deeper than {MAX_DEPTH} levels")
        nodes.append(node)
        pending.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
    return nodes


def _number(value: Any) -> bool:
    return isinstance(value, (int, float))


class _Evaluator:
    def __init__(self, scope: Scope, text: str):
        self.scope = scope
        self.text = text
        self.budget = scope.budget if scope.budget is not None else Budget()

    def fail(self, message: str) -> GenotypeError:
        return GenotypeError(f"'{_short(self.text)}': {message}")

    def visit(self, node: ast.AST) -> Any:
        self.budget.charge()
        method = _VISITS.get(type(node))
        if method is None:
            raise self.fail(f"unsupported syntax {type(node).__name__}")  # pragma: no cover
        return method(self, node)

    def constant(self, node: ast.Constant) -> Any:
        return node.value

    def name(self, node: ast.Name) -> Any:
        return self.scope.lookup(node.id)

    def sequence(self, node: ast.List | ast.Tuple) -> Any:
        return self.bounded([self.visit(e) for e in node.elts])

    def binop(self, node: ast.BinOp) -> Any:
        return self.binary(node.op, self.visit(node.left), self.visit(node.right))

    def unary(self, node: ast.UnaryOp) -> Any:
        if isinstance(node.op, ast.Not):
            return not self.visit(node.operand)
        value = self.visit(node.operand)
        if not _number(value):
            raise self.fail(f"cannot negate {value!r}")
        return -value if isinstance(node.op, ast.USub) else +value

    def boolop(self, node: ast.BoolOp) -> Any:
        result = None
        for item in node.values:
            result = self.visit(item)
            if isinstance(node.op, ast.And) and not result:
                return result
            if isinstance(node.op, ast.Or) and result:
                return result
        return result

    def compare(self, node: ast.Compare) -> Any:
        current = self.visit(node.left)
        for op, comparator in zip(node.ops, node.comparators):
            other = self.visit(comparator)
            self.budget.charge(cost(current) + cost(other))
            if not _COMPARE[type(op)](current, other):
                return False
            current = other
        return True

    def ifexp(self, node: ast.IfExp) -> Any:
        return self.visit(node.body) if self.visit(node.test) else self.visit(node.orelse)

    def subscript_node(self, node: ast.Subscript) -> Any:
        return self.subscript(self.visit(node.value), node.slice)

    def call(self, node: ast.Call) -> Any:
        name = node.func.id  # type: ignore[attr-defined]  # parse_expression allows names only
        if self.scope.defers(name):
            argument = lambda a: Deferred(a, self.scope, self.text)  # noqa: E731
        else:
            argument = self.visit
        positional = [argument(a) for a in node.args]
        named: dict[str, Any] = {}
        for keyword in node.keywords:
            if keyword.arg in named:
                raise self.fail(f"argument '{keyword.arg}' given twice")
            named[keyword.arg] = argument(keyword.value)
        self.budget.charge(sum(map(cost, positional)) + sum(map(cost, named.values())))
        return self.bounded(self.scope.call(name, positional, named))

    def bounded(self, value: Any) -> Any:
        try:
            return bounded(value, self.budget)
        except GenotypeError as error:
            if "work limit" in error.message:
                raise
            raise self.fail(error.message) from None

    def binary(self, op: ast.operator, left: Any, right: Any) -> Any:
        if isinstance(op, ast.Add) and isinstance(left, list) and isinstance(right, list):
            if len(left) + len(right) > MAX_SEQUENCE:
                raise self.fail(f"list longer than {MAX_SEQUENCE} items")
            return self.bounded(left + right)
        if not (_number(left) and _number(right)):
            raise self.fail(f"arithmetic needs numbers, got {_short(repr(left))} and {_short(repr(right))}")
        if isinstance(op, ast.Pow) and (abs(right) > 64 or abs(left) > _MAX_MAGNITUDE):
            raise self.fail("power out of range")
        result = _BINARY[type(op)](left, right)
        if isinstance(result, complex):
            raise self.fail("result out of range")
        if isinstance(result, float) and not math.isfinite(result):
            raise self.fail(f"result {result!r} is not a finite number")
        if abs(result) > _MAX_MAGNITUDE:
            raise self.fail("result out of range")
        return result

    def subscript(self, value: Any, index: ast.AST) -> Any:
        if not isinstance(value, (list, tuple, str)):
            raise self.fail(f"cannot index {value!r}")
        if isinstance(index, ast.Slice):
            bounds = [None if b is None else self.visit(b) for b in (index.lower, index.upper, index.step)]
            if any(b is not None and not isinstance(b, int) for b in bounds):
                raise self.fail("slice bounds must be integers")
            part = value[slice(*bounds)]
            self.budget.charge(cost(part))
            return part
        position = self.visit(index)
        if not isinstance(position, int) or isinstance(position, bool):
            raise self.fail(f"index must be an integer, got {position!r}")
        if not -len(value) <= position < len(value):
            raise self.fail(f"index {position} out of range for {len(value)} items")
        return value[position]


_VISITS: dict[type, Callable[[_Evaluator, Any], Any]] = {
    ast.Constant: _Evaluator.constant,
    ast.Name: _Evaluator.name,
    ast.List: _Evaluator.sequence,
    ast.Tuple: _Evaluator.sequence,
    ast.BinOp: _Evaluator.binop,
    ast.UnaryOp: _Evaluator.unary,
    ast.BoolOp: _Evaluator.boolop,
    ast.Compare: _Evaluator.compare,
    ast.IfExp: _Evaluator.ifexp,
    ast.Subscript: _Evaluator.subscript_node,
    ast.Call: _Evaluator.call,
}
"""The evaluator's method for each node type the grammar allows (by exact type: ast classes
are not subclassed)."""


def call_math(name: str, args: list[Any], kwargs: Mapping[str, Any]) -> Any:
    """Apply a whitelisted math function; numbers in, numbers out."""
    function = MATH_FUNCTIONS[name]
    try:
        return bounded(function(*args, **kwargs))
    except (TypeError, ValueError, ArithmeticError) as error:
        # Python names the function it called: '_round() takes ...', 'math.sqrt() takes ...'
        text = str(error)
        callee = _PYTHON_CALLEE.match(text)
        if callee is not None and callee.group(1) != name:
            text = text[callee.end():]
        raise GenotypeError(f"{name}(): {text}") from None
    except GenotypeError as error:
        raise GenotypeError(f"{name}(): {error.message}") from None


_PYTHON_CALLEE = re.compile(r"([\w.]+)\(\) ")
