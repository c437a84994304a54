"""``nas configs``: the run configs shipped with nas, and the command that runs each.

A shipped config runs by its name from any folder (``nas search quickstart``); to edit one, copy
it from the folder printed (a copy resolves its genotype relative to itself, else in the zoo).
Reads the YAML only: no torch, no validation beyond telling a ``nas search`` config (it has
``space``) from a ``nas scale-search`` one.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "configs", help="list the shipped run configs (run one by name: nas search quickstart)")
    parser.set_defaults(run=run_configs)


def describe(path: Path) -> tuple[str, str]:
    """``(command, description)`` of a config file: ``search`` or ``scale-search``, and its
    ``doc`` or else its first comment line. A file that does not read is described so."""
    from nas._yaml import load_yaml_file
    from nas.errors import NasError

    try:
        data = load_yaml_file(path)
    except NasError as error:
        return "?", f"unreadable: {error.message}"
    if not isinstance(data, dict):
        return "?", "not a mapping"
    command = "search" if "space" in data else "scale-search"
    doc = data.get("doc")
    if not isinstance(doc, str) or not doc.strip():
        comments = (line for line in path.read_text(encoding="utf-8").splitlines() if line.startswith("#"))
        doc = next(comments, "").lstrip("#").strip()
    return command, " ".join(doc.split())


def run_configs(args: argparse.Namespace) -> int:
    from nas._shipped import configs_dir, shipped_configs

    rows = [(path.stem, *describe(path)) for path in shipped_configs()]
    width = max((len(name) for name, _, _ in rows), default=4)
    command_width = max((len(command) for _, command, _ in rows), default=7)
    print(f"{'name'.ljust(width)}  {'command'.ljust(command_width)}  description")
    for name, command, doc in rows:
        print(f"{name.ljust(width)}  {command.ljust(command_width)}  {doc}".rstrip())
    print(f"\n{len(rows)} configs in {configs_dir()}; run one by name (`nas search quickstart`) "
          f"or copy it and pass the copy's path")
    return 0
