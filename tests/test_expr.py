"""The expression whitelist: what parses, what evaluates, and what is refused."""

from __future__ import annotations

import pytest

from nas.errors import GenotypeError
from nas.genotype._expr import Scope, parse_expression


class DictScope(Scope):
    def __init__(self, **values):
        self.values = values

    def lookup(self, name):
        if name not in self.values:
            raise GenotypeError(f"unknown name '{name}'")
        return self.values[name]

    def call(self, name, args, kwargs):
        from nas.genotype._expr import MATH_FUNCTIONS, call_math

        if name in MATH_FUNCTIONS:
            return call_math(name, args, kwargs)
        return (name, tuple(args), tuple(sorted(kwargs.items())))


@pytest.mark.parametrize(
    "text, expected",
    [
        ("width * 2 + 1", 129),
        ("width // 3", 21),
        ("depths[1]", 4),
        ("depths[-1]", 3),
        ("depths[1:3]", [4, 6]),
        ("128 if width > 32 else 8", 128),
        ("width == 64 and not flag", True),
        ("[width, width * 2]", [64, 128]),
        ("'a' in ['a', 'b']", True),
        ("divisible(32 * 1.1, 8)", 32),
        ("divisible(320 * 1.4, 8)", 448),
        ("ceil(2 * 1.1)", 3),
        ("max(1, width // 4)", 16),
        ("conv(width, k=3)", ("conv", (64,), (("k", 3),))),
        ("-width", -64),
        ("2 ** 10", 1024),
    ],
)
def test_evaluates(text, expected):
    scope = DictScope(width=64, depths=[3, 4, 6, 3], flag=False)
    assert parse_expression(text).evaluate(scope) == expected


@pytest.mark.parametrize(
    "text, message",
    [
        ("width.real", "attributes are not allowed"),
        ("(lambda: 1)()", "lambdas are not allowed"),
        ("[x for x in depths]", "comprehensions are not allowed"),
        ("{1: 2}", "dict literals are not allowed"),
        ("conv(*depths)", "starred arguments are not allowed"),
        ("f'{width}'", "f-strings are not allowed"),
        ("(y := 3)", "assignment expressions are not allowed"),
        ("depths[0](3)", "only names can be called"),
        ("__import__('os').system('true')", "attributes are not allowed"),
        ("width +", "invalid expression"),
        ("conv(1" + "0" * 310 + ")", r"constant 1000\.\.\.\(311 digits\) is not a finite number"),
        ("a if 1" + "0" * 310 + " > 1.5 else b", r"constant 1000\.\.\.\(311 digits\)"),
        ("1" + "0" * 20, r"constant 1000\.\.\.\(21 digits\)"),
        ("2 ** 60 if 1e400 else 1", "constant inf is not a finite number"),
    ],
)
def test_refused_at_parse(text, message):
    with pytest.raises(GenotypeError, match=message):
        parse_expression(text)


@pytest.mark.parametrize(
    "text, message",
    [
        ("9 ** 9 ** 9", "power out of range"),
        ("2 ** 40 * 2 ** 40", "result out of range"),
        ("'ab' * 10", "arithmetic needs numbers"),
        ("depths * 1000", "arithmetic needs numbers"),
        ("depths[10]", "out of range"),
        ("width / 0", "division by zero"),
        ("nope + 1", "unknown name 'nope'"),
    ],
)
def test_refused_at_evaluation(text, message):
    scope = DictScope(width=64, depths=[3, 4, 6, 3])
    with pytest.raises(GenotypeError, match=message):
        parse_expression(text).evaluate(scope)


@pytest.mark.parametrize("text, message", [
    ("int(x=3)", "int(): got an unexpected keyword argument 'x'"),
    ("round(1, 2, 3)", "round(): takes from 1 to 2 positional arguments but 3 were given"),
    ("sqrt(1, 2)", "sqrt(): takes exactly one argument (2 given)"),
    ("min()", "min(): min() of nothing"),
])
def test_a_math_call_error_names_the_function_as_written(text, message):
    # Python's message named the function it called: '_round() takes ...', 'math.sqrt() takes ...'
    with pytest.raises(GenotypeError) as error:
        parse_expression(text).evaluate(DictScope())
    assert error.value.message == message
