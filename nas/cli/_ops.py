"""``nas ops``: the primitive table, generated from the op registry (never imports torch)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "ops", help="list the primitives: arguments, defaults, traits (the docs' Markdown table); "
                    "plugins' ops after the built-ins")
    parser.set_defaults(run=run_ops)


def run_ops(args: argparse.Namespace) -> int:
    from nas.ops import primitive_table
    from nas.plugins import load_installed

    load_installed()  # installed plugins' ops are listed too (--plugin ones are loaded already)
    print(primitive_table(), end="")
    return 0
