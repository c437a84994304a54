"""``nas check-op``: does an op's static rule agree with its torch module? (:mod:`nas.ops._check`)"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "check-op", help="check that ops' static rules (shape, params, MACs) agree with their torch modules",
        description="Build each op from its example arguments on a few input shapes and compare "
                    "the static rule (output shape, parameters, MACs) with the torch module. "
                    "Exit status 1 when an op breaks its contract.")
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help="ops to check (default: every registered op, plugins' included)")
    parser.add_argument("--example", metavar="CALL",
                        help="the call to check instead of the op's example, e.g. 'conv(8, k=5, s=2)' "
                             "(one NAME only)")
    parser.add_argument("--shape", action="append", metavar="C,H,W",
                        help="an input shape without the batch (repeatable; default: "
                             "8,9,9 16,12,10 24,1,1 32)")
    parser.add_argument("--quiet", action="store_true", help="print only the ops that break their contract")
    parser.set_defaults(run=run)


def _shape(text: str) -> tuple[int, ...]:
    from nas.errors import ConfigError

    try:
        shape = tuple(int(part) for part in text.replace("x", ",").split(","))
    except ValueError:
        shape = ()
    if not shape or len(shape) > 3 or min(shape) < 1 or max(shape) > 4096:
        raise ConfigError(f"expected C,H,W or C with sizes 1 to 4096, got {text!r}", path="--shape")
    return shape


def run(args: argparse.Namespace) -> int:
    from nas.errors import ConfigError
    from nas.ops import get, names
    from nas.ops._check import check_op
    from nas.plugins import load_installed

    if args.example is not None and len(args.names) != 1:
        raise ConfigError("give exactly one NAME with --example", path="--example")
    shapes = [_shape(text) for text in args.shape] if args.shape else None
    if not args.names:
        load_installed()
    ops = [get(name) for name in args.names] if args.names else [get(name) for name in names()]
    broken = []
    for op in ops:
        report = check_op(op, example=args.example, shapes=shapes)
        if not report.ok:
            broken.append(op.name)
        if not args.quiet or not report.ok:
            print("\n".join(report.lines()))
    if len(ops) > 1:
        print(f"{len(ops) - len(broken)} of {len(ops)} ops keep their contract"
              + (f"; broken: {', '.join(broken)}" if broken else ""))
    return 1 if broken else 0
