"""YAML in and out, safely.

Loading uses PyYAML's safe constructor, tightened: duplicate keys and anchors/aliases are
errors (aliases let a small file expand into a huge document), as are files over 1 MiB,
documents of more than :data:`MAX_NODES` values or nested deeper than :data:`MAX_DEPTH`
levels (both checked while composing, so a file of ``[[[[...`` fails after a few events
instead of exhausting the stack, and a long list stops before it is built) and any tag
outside the YAML core schema (``!!python/...``). A number with an exponent is a number as in
YAML 1.2 (``1.0e6``, ``1e-3``), where PyYAML's YAML 1.1 rules would read a string. Files are
read only when they are regular files, and never more than ``MAX_FILE_BYTES + 1`` bytes
whatever the file system reports (``/dev/zero`` and ``/dev/stdin`` are refused, a growing
file is cut at the cap and rejected).

Scanning and parsing run in libyaml when PyYAML has it (events only: composition and
construction stay in Python, where the depth and alias checks live), so a 1 MiB file loads in
about a second. Dumping writes block style with short lists of scalars in flow style
(``[3, 224, 224]``), keys in the order given.
"""

from __future__ import annotations

import os
import re
import stat
from collections import OrderedDict
from pathlib import Path
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.resolver import Resolver

from nas.errors import NasError

__all__ = ["load_yaml", "load_yaml_file", "load_yaml_bytes", "read_bounded", "read_text", "dump_yaml",
           "MAX_FILE_BYTES", "MAX_DEPTH", "MAX_NODES"]

MAX_FILE_BYTES = 1 << 20
MAX_DEPTH = 64
"""Deepest nesting of collections in a document (genotypes and configs use fewer than 10)."""
MAX_NODES = 250_000
"""Most scalars and collections in a document (a genotype at the 50,000-primitive limit needs
about 100,000): a 1 MiB file of short scalars holds 500,000, and each costs time to compose
and construct."""
MAX_NUMBER_CHARS = 64
"""Longest number written in a document: a longer integer (or a base-60 one such as
``1:59:59:...``) would take time quadratic in its length to convert."""


class _StrictComposer:
    """Composition with the depth and alias checks; mixed into both loaders below."""

    _depth = 0
    _nodes = 0

    def compose_node(self, parent, index):  # type: ignore[no-untyped-def]
        self._nodes += 1
        if self._nodes > MAX_NODES:
            raise yaml.composer.ComposerError(
                None, None, f"more than {MAX_NODES:,} values in one document", self.peek_event().start_mark
            )
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, "anchors and aliases are not allowed", event.start_mark
            )
        if self._depth >= MAX_DEPTH:
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, f"nested deeper than {MAX_DEPTH} levels", event.start_mark
            )
        self._depth += 1
        try:
            return Composer.compose_node(self, parent, index)
        finally:
            self._depth -= 1

    def construct_object(self, node, deep=False):  # type: ignore[no-untyped-def]
        """PyYAML's, with the errors its safe constructors raise for a core tag on a value it
        cannot take (``!!bool abc``: ``KeyError``; ``!!timestamp abc``: ``AttributeError``;
        ``!!int ''``: ``IndexError``) made a ``ConstructorError`` at the value's line."""
        try:
            return SafeConstructor.construct_object(self, node, deep=deep)
        except (ArithmeticError, AttributeError, LookupError, TypeError, ValueError) as problem:
            tag = str(node.tag).replace("tag:yaml.org,2002:", "!!")
            value = node.value
            shown = "this value" if not isinstance(value, str) else repr(value) if len(value) <= 40 \
                else repr(value[:37]) + "..."
            detail = f" ({problem})" if isinstance(problem, ValueError) else ""
            raise yaml.constructor.ConstructorError(
                None, None, f"{tag} cannot be {shown}{detail}", node.start_mark
            ) from None

    def construct_mapping(self, node, deep=False):  # type: ignore[no-untyped-def]
        if not isinstance(node, yaml.MappingNode):  # SafeConstructor's error: "expected a mapping node"
            return SafeConstructor.construct_mapping(self, node, deep=deep)
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
            except TypeError:  # an unhashable key: SafeConstructor reports it
                break
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key '{key}'", key_node.start_mark
                )
            seen.add(key)
        return SafeConstructor.construct_mapping(self, node, deep=deep)

    def construct_yaml_int(self, node):  # type: ignore[no-untyped-def]
        _check_number_length(node)
        return SafeConstructor.construct_yaml_int(self, node)

    def construct_yaml_float(self, node):  # type: ignore[no-untyped-def]
        _check_number_length(node)
        return SafeConstructor.construct_yaml_float(self, node)


def _check_number_length(node: yaml.ScalarNode) -> None:
    if len(node.value) > MAX_NUMBER_CHARS:
        raise yaml.constructor.ConstructorError(
            None, None, f"a number longer than {MAX_NUMBER_CHARS} characters", node.start_mark
        )


class _StrictLoader(_StrictComposer, yaml.SafeLoader):
    """Pure-Python scanning and parsing (used when PyYAML lacks libyaml)."""


try:
    from yaml._yaml import CParser as _CParser
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    _CParser = None

if _CParser is not None:

    class _FastLoader(_StrictComposer, _CParser, SafeConstructor, Resolver):  # type: ignore[misc, valid-type]
        """libyaml's scanner and parser (events), Python composition and construction."""

        def __init__(self, stream: str) -> None:
            _CParser.__init__(self, stream)
            SafeConstructor.__init__(self)
            Resolver.__init__(self)
            self.anchors: dict[str, Any] = {}

        get_single_node = Composer.get_single_node
        compose_document = Composer.compose_document
        compose_scalar_node = Composer.compose_scalar_node
        compose_sequence_node = Composer.compose_sequence_node
        compose_mapping_node = Composer.compose_mapping_node

    _LOADER: type = _FastLoader
else:  # pragma: no cover - PyYAML built without libyaml
    _LOADER = _StrictLoader

for _loader in {_StrictLoader, _LOADER}:  # the constructor table is per class, not per method
    _loader.add_constructor("tag:yaml.org,2002:int", _StrictComposer.construct_yaml_int)
    _loader.add_constructor("tag:yaml.org,2002:float", _StrictComposer.construct_yaml_float)


# YAML 1.2 floats that PyYAML's YAML 1.1 rules read as strings: an exponent without a dot or
# without a sign (``1e6``, ``1.0e6``, ``1e-3``). Read as floats, and quoted when a string of
# that form is dumped, so text and data round-trip.
_FLOAT_12 = re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9][0-9_]*)[eE][-+]?[0-9]+$")
for _cls in {_StrictLoader, _LOADER}:
    _cls.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_12, list("-+0123456789."))


def load_yaml(text: str, *, file: str | None = None, error: type[NasError] = NasError) -> Any:
    """Parse YAML text; raise ``error`` (one line, with the line number) on any problem."""
    if len(text) > MAX_FILE_BYTES:
        raise error(f"larger than {MAX_FILE_BYTES} bytes", file=file)
    try:
        loader = _LOADER(text)
        try:
            return loader.get_single_data()
        finally:
            loader.dispose()
    except yaml.YAMLError as problem:
        mark = getattr(problem, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else None
        message = getattr(problem, "problem", None) or str(problem)
        if "could not determine a constructor for the tag" in message:
            message = f"tag {message.split('tag', 1)[1].strip()} is not allowed (plain YAML only)"
        elif message.startswith("mapping values are not allowed") and mark is not None and mark.column > 1024:
            # PyYAML forgets a possible key after 1,024 characters, then meets its ':'
            message += " (likely a key longer than 1,024 characters, which YAML does not allow)"
        raise error(f"invalid YAML: {message}", file=file, path=where) from None
    except RecursionError:  # pragma: no cover - the depth cap keeps well below the stack limit
        raise error(f"invalid YAML: nested deeper than {MAX_DEPTH} levels", file=file) from None
    except (ValueError, OverflowError) as problem:  # a scalar PyYAML's constructors cannot convert
        raise error(f"invalid YAML: {' '.join(str(problem).split())[:200]}", file=file) from None


def read_bounded(path: str | Path, *, limit: int = MAX_FILE_BYTES, error: type[NasError] = NasError) -> bytes:
    """The bytes of ``path``, which must be a regular file of at most ``limit`` bytes.

    The file is opened without blocking (a FIFO or a device never stalls the call), checked to
    be a regular file on the opened descriptor, and read up to ``limit + 1`` bytes whatever
    ``stat`` says, so a file that grows while read is still refused. Raises ``error`` naming
    the file.
    """
    name = str(path)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        descriptor = os.open(path, flags)
    except FileNotFoundError:
        raise error("file not found", file=_short(name)) from None
    except OSError as problem:
        raise error(f"cannot read: {problem.strerror or problem}", file=_short(name)) from None
    except ValueError:  # a NUL byte in the name
        raise error("cannot read: not a valid file name", file=_short(name)) from None
    try:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            raise error("not a regular file", file=name)
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(descriptor, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as problem:
        raise error(f"cannot read: {problem.strerror or problem}", file=name) from None
    finally:
        os.close(descriptor)
    if size > limit:
        raise error(f"larger than {limit} bytes", file=name)
    return b"".join(chunks)


def read_text(path: str | Path, *, limit: int = MAX_FILE_BYTES, error: type[NasError] = NasError) -> str:
    """The UTF-8 text of ``path``, read by :func:`read_bounded` (a regular file of at most
    ``limit`` bytes, never blocking). Raises ``error`` naming the file."""
    raw = read_bounded(path, limit=limit, error=error)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as problem:
        raise error(f"cannot read: not UTF-8 text ({problem.reason} at byte {problem.start})",
                    file=str(path)) from None


def _short(name: str) -> str:
    return name if len(name) <= 200 else name[:197] + "..."


def load_yaml_file(path: str | Path, *, error: type[NasError] = NasError) -> Any:
    """Read (:func:`read_bounded`) and parse a YAML file, with errors naming it."""
    return load_yaml_bytes(read_bounded(path, error=error), file=str(path), error=error)


def load_yaml_bytes(raw: bytes, *, file: str, error: type[NasError] = NasError) -> Any:
    """Parse the bytes read from ``file`` (UTF-8 YAML), with errors naming it."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as problem:
        raise error(f"cannot read: not UTF-8 text ({problem.reason} at byte {problem.start})",
                    file=file) from None
    return load_yaml(text, file=file, error=error)


class _Dumper(yaml.SafeDumper):
    def increase_indent(self, flow: bool = False, indentless: bool = False):  # type: ignore[override]
        return super().increase_indent(flow, False)  # indent list items under their key


def _flow_item(item: Any) -> bool:
    if isinstance(item, str):
        return item.isidentifier()
    return isinstance(item, (int, float, bool, type(None)))


def _represent_list(dumper: yaml.SafeDumper, data: list) -> yaml.Node:
    flow = len(data) <= 16 and all(map(_flow_item, data))
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_Dumper.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_12, list("-+0123456789."))
_Dumper.add_representer(list, _represent_list)
_Dumper.add_representer(tuple, _represent_list)


def _dump(data: Any) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)


# Text of one top-level entry, by (key, repr of its value); least recently used dropped first.
_ENTRIES: OrderedDict[tuple[str, str], str] = OrderedDict()
_ENTRIES_MAX = 512


def dump_yaml(data: Any) -> str:
    """YAML text for plain data (dicts, lists, scalars), keys in insertion order.

    A non-empty mapping is dumped entry by entry, each top-level entry's text cached by its
    key and the ``repr`` of its value: the text of a block mapping at the root is the
    concatenation of its entries' texts, so a genotype that differs from the last one dumped in
    its ``params`` only costs the dump of ``params`` (PyYAML's emitter takes ~10 ms for a
    NAS-Bench-201 cell). Documents where that does not hold are dumped whole: a container
    that appears twice (PyYAML writes an anchor and an alias, numbered across the document)
    or an entry that leaves the document open-ended (``...``).
    """
    if not isinstance(data, dict) or not data or not all(isinstance(k, str) for k in data) \
            or _shares_containers(data.values()):
        return _dump(data)
    parts = []
    for key, value in data.items():
        cache_key = (key, repr(value))
        text = _ENTRIES.get(cache_key)
        if text is None:
            text = _dump({key: value})
            if text.endswith("...\n"):
                return _dump(data)
            _ENTRIES[cache_key] = text
            if len(_ENTRIES) > _ENTRIES_MAX:
                _ENTRIES.popitem(last=False)
        else:
            _ENTRIES.move_to_end(cache_key)
        parts.append(text)
    return "".join(parts)


def _shares_containers(values: Any) -> bool:
    """Whether one list, dict or non-empty tuple occurs twice under ``values`` (by identity,
    as PyYAML's representer detects aliases)."""
    seen: set[int] = set()
    stack = list(values)
    while stack:
        item = stack.pop()
        if isinstance(item, (dict, list)) or (isinstance(item, tuple) and item):
            if id(item) in seen:
                return True
            seen.add(id(item))
            stack.extend(item.values() if isinstance(item, dict) else item)
    return False
