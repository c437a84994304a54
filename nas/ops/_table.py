"""The primitive table of the docs, generated from the registry.

``genotypes/README.md`` holds this table between two marker lines (:data:`BEGIN`, :data:`END`);
``nas ops`` prints it and a test fails when the README's copy differs, so the docs cannot drift
from the ops. Each row comes from the op itself: its names, how many inputs it takes, its
arguments with their defaults, its traits (the behaviour attributes of :class:`Op`) and the
first line of its docstring.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from nas.ops._registry import REQUIRED, Arg, Op, ops

__all__ = ["BEGIN", "END", "primitive_table", "replace_table"]

BEGIN = "<!-- primitive table: generated from the registry by `nas ops`; do not edit by hand -->"
END = "<!-- end of primitive table -->"

_TRAITS = (
    ("activation", "activation"),
    ("inplace", "in place when safe"),
    ("alias", "alias of its input"),
    ("pooling", "pooling"),
    ("cancels_bias", "cancels a bias before it"),
    ("joins", "join: absent inputs skipped"),
)


def _inputs(op: Op) -> str:
    if op.max_inputs == op.min_inputs:
        return str(op.min_inputs)
    if op.max_inputs is None:
        return f"{op.min_inputs}+"
    return f"{op.min_inputs}-{op.max_inputs}"


def _value(arg: Arg, value: Any) -> str:
    if isinstance(value, str):
        return value if arg.kind == "activation" else f'"{value}"'
    if isinstance(value, tuple):
        return "[" + ", ".join(map(str, value)) + "]"
    return getattr(value, "__name__", None) or repr(value)


def _argument(arg: Arg) -> str:
    if arg.default is REQUIRED:
        return arg.name
    if arg.default is None and arg.unset:
        return f"{arg.name}={arg.unset}"
    return f"{arg.name}={_value(arg, arg.default)}"


def _note(op: Op) -> str:
    doc = (type(op).__doc__ or "").strip()
    first = doc.split("\n\n")[0]
    return re.sub(r"``([^`]*)``", r"`\1`", " ".join(first.split())).replace("|", "\\|")


def primitive_table(selected: Iterable[Op] | None = None) -> str:
    """The Markdown table of the ``selected`` ops (default: every registered op, in
    registration order: built-ins first, as ``nas/ops/_primitives.py`` groups them, then
    plugins' ops), ending with a newline."""
    lines = [
        "| op | inputs | arguments (defaults) | traits | notes |",
        "| --- | --- | --- | --- | --- |",
    ]
    for op in ops(by_name=False) if selected is None else selected:
        name = op.name + (f" ({', '.join(op.aliases)})" if op.aliases else "")
        arguments = ", ".join(_argument(arg) for arg in op.args)
        traits = ", ".join(text for attribute, text in _TRAITS if getattr(op, attribute))
        lines.append(f"| {name} | {_inputs(op)} | {arguments} | {traits} | {_note(op)} |")
    return "\n".join(lines) + "\n"


def replace_table(text: str, table: str) -> str:
    """``text`` with the part between the :data:`BEGIN` and :data:`END` lines replaced by
    ``table``. Raises ``ValueError`` when the markers are missing or out of order."""
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"the markers {BEGIN!r} and {END!r} are missing or out of order")
    return text[: start + len(BEGIN)] + "\n" + table + text[end:]
