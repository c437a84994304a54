"""YAML in and out, safely.

Loading uses PyYAML's safe loader, tightened: duplicate keys and anchors/aliases are errors
(aliases let a small file expand into a huge document), as are files over 1 MiB and any tag
outside the YAML core schema (``!!python/...``). Dumping writes block style with short lists of
scalars in flow style (``[3, 224, 224]``), keys in the order given.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from nas.errors import NasError

__all__ = ["load_yaml", "load_yaml_file", "dump_yaml", "MAX_FILE_BYTES"]

MAX_FILE_BYTES = 1 << 20


class _StrictLoader(yaml.SafeLoader):
    def compose_node(self, parent, index):  # type: ignore[override]
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, "anchors and aliases are not allowed", event.start_mark
            )
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):  # type: ignore[override]
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key '{key}'", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_yaml(text: str, *, file: str | None = None, error: type[NasError] = NasError) -> Any:
    """Parse YAML text; raise ``error`` (one line, with the line number) on any problem."""
    if len(text) > MAX_FILE_BYTES:
        raise error(f"larger than {MAX_FILE_BYTES} bytes", file=file)
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as problem:
        mark = getattr(problem, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else None
        message = getattr(problem, "problem", None) or str(problem)
        if "could not determine a constructor for the tag" in message:
            message = f"tag {message.split('tag', 1)[1].strip()} is not allowed (plain YAML only)"
        raise error(f"invalid YAML: {message}", file=file, path=where) from None


def load_yaml_file(path: str | Path, *, error: type[NasError] = NasError) -> Any:
    """Read and parse a YAML file, with errors naming it."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise error(f"larger than {MAX_FILE_BYTES} bytes", file=str(path))
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error("file not found", file=str(path)) from None
    except (OSError, UnicodeDecodeError) as problem:
        raise error(f"cannot read: {problem}", file=str(path)) from None
    return load_yaml(text, file=str(path), error=error)


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


_Dumper.add_representer(list, _represent_list)
_Dumper.add_representer(tuple, _represent_list)


def dump_yaml(data: Any) -> str:
    """YAML text for plain data (dicts, lists, scalars), keys in insertion order."""
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)
