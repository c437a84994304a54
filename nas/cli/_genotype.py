"""Commands on one genotype: ``summary``, ``validate``, ``graph`` and ``decode``.

``summary``, ``validate`` and ``graph`` never import torch: analysis is static.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from typing import Any

from nas.cli import output_file, seed_option
from nas.errors import ConfigError, NasError

_PARAM_HELP = "replace a parameter default, e.g. --set width=32 --set 'depths=[1, 1, 1, 1]'"
_MEMORY_HELP = (
    "refuse networks whose parameters plus activations in training (of one sample; nas score: "
    "of its largest batch) need more than SIZE: bytes, or with K, M, G, T (powers of 1024); default 4G"
)
_SIZE = re.compile(r"\s*(\d+(?:\.\d*)?)\s*([KMGT]?)(?:i?B)?\s*\Z", re.IGNORECASE)


def memory_size(text: str) -> int:
    """``"8G"`` → ``8 * 2**30``; argparse type of ``--max-memory``."""
    match = _SIZE.match(text)
    if not match:
        raise argparse.ArgumentTypeError(f"expected a size such as 8G or 512M, got '{text}'")
    number, unit = match.groups()
    return int(float(number) * 1024 ** "_KMGT".index(unit.upper() or "_"))


def _add_max_memory(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--max-memory", type=memory_size, default=None, metavar="SIZE", help=_MEMORY_HELP)


def register(subparsers: argparse._SubParsersAction) -> None:
    summary = subparsers.add_parser("summary", help="per-node shapes, params and MACs of a genotype")
    summary.add_argument("file", help="genotype YAML file (or a zoo name)")
    summary.add_argument("--set", dest="params", action="append", default=[], metavar="KEY=VALUE", help=_PARAM_HELP)
    summary.add_argument("--input", metavar="C,H,W", help="input shape, e.g. 3,32,32")
    summary.add_argument("--json", action="store_true", help="print one JSON object with the totals")
    _add_max_memory(summary)
    summary.set_defaults(run=run_summary)

    validate = subparsers.add_parser("validate", help="check genotype files; one line per file")
    validate.add_argument("files", nargs="+", help="genotype YAML files")
    _add_max_memory(validate)
    validate.set_defaults(run=run_validate)

    graph = subparsers.add_parser(
        "graph", help="draw the network: SVG, PNG (with Graphviz's dot), DOT or Mermaid text",
        description="Draw the network, blocks collapsed to one box each (--depth opens them), "
        "repeated blocks shortened to 'x N', norms and activations fused into the op before them.",
    )
    graph.add_argument("file")
    graph.add_argument("--set", dest="params", action="append", default=[], metavar="KEY=VALUE", help=_PARAM_HELP)
    graph.add_argument("--input", metavar="C,H,W")
    graph.add_argument(
        "--format", choices=("svg", "png", "dot", "mermaid"),
        help="default: from the suffix of --out (.svg, .png, .dot or .gv, .mmd); DOT on standard output",
    )
    graph.add_argument("--out", help="write to this file instead of standard output")
    graph.add_argument(
        "--depth", type=int, default=0, metavar="N",
        help="open N levels of blocks (default 0: each block of the network is one box)",
    )
    graph.set_defaults(run=run_graph)

    decode = subparsers.add_parser("decode", help="build the PyTorch model and save it")
    decode.add_argument("file")
    decode.add_argument("--set", dest="params", action="append", default=[], metavar="KEY=VALUE", help=_PARAM_HELP)
    decode.add_argument("--input", metavar="C,H,W")
    decode.add_argument(
        "--out", required=True,
        help="model.onnx (ONNX), model.pt (TorchScript), model.pt2 (torch.export) "
        "or weights.pth (state_dict)",
    )
    decode.add_argument(
        "--weights", metavar="FILE",
        help="load this state_dict (a .pth from decode or training; read with weights_only=True) "
        "instead of initialising",
    )
    decode.add_argument(
        "--seed", type=seed_option, default=0, metavar="N",
        help="seed of the initial weights (default 0: two calls write the same weights)",
    )
    _add_max_memory(decode)
    decode.set_defaults(run=run_decode)


def parse_assignments(items: list[str], flag: str = "--set") -> dict[str, Any]:
    """``["a=1", "b=[1, 2]"]`` → ``{"a": 1, "b": [1, 2]}``; values are read as YAML. Errors
    name ``flag``, the option the items came from (``--data-set`` was reported as ``--set``)."""
    from nas._yaml import load_yaml

    params = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{flag} expects KEY=VALUE, got '{item}'")
        params[key.strip()] = load_yaml(value, error=ConfigError, file=f"{flag} {key.strip()}")
    return params


def _input_shape(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        shape = tuple(int(part) for part in text.split(","))
    except ValueError:
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        raise ConfigError(f"--input expects C,H,W with positive integers, got '{text}'")
    return shape


def load(args: argparse.Namespace):
    """The genotype named by ``args.file`` with ``--set`` and ``--input`` applied."""
    from nas.genotype import load_genotype

    genotype = load_genotype(args.file)
    params = parse_assignments(args.params)
    if params:
        genotype = genotype.with_params(**params)
    shape = _input_shape(getattr(args, "input", None))
    if shape is not None:
        genotype = genotype.with_input(shape)
    genotype.graph  # noqa: B018 - expand now so errors name the file
    return genotype


def _count(value: int) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if value >= size:
            return f"{value / size:.2f}{unit}"
    return str(value)


def _max_memory(args: argparse.Namespace) -> int:
    from nas.analysis import MAX_MEMORY

    return MAX_MEMORY if args.max_memory is None else args.max_memory


def run_summary(args: argparse.Namespace) -> int:
    from nas.analysis import check_memory

    genotype = load(args)
    stats = check_memory(genotype, _max_memory(args))
    if args.json:
        print(json.dumps({**stats.to_dict(), "hash": genotype.hash}))
        return 0
    rows = [("node", "op", "output", "params", "MACs")]
    for node in stats.nodes:
        shape = "x".join(map(str, node.output_shape))
        rows.append((node.path, node.op, shape, f"{node.params:,}", _count(node.macs)))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    for index, row in enumerate(rows):
        print("  ".join(
            cell.ljust(width) if i < 3 else cell.rjust(width) for i, (cell, width) in enumerate(zip(row, widths))
        ))
        if index == 0:
            print("  ".join("-" * width for width in widths))
    print()
    print(f"{genotype.name}: input {'x'.join(map(str, stats.input_shape))}, "
          f"output {'x'.join(map(str, stats.output_shape))}, {len(stats.nodes)} primitives")
    print(f"params {stats.params:,} | MACs {stats.macs:,} ({stats.macs / 1e9:.3f} G) | "
          f"activations {stats.activation_bytes / 2**20:.1f} MiB (training, per sample), "
          f"peak {stats.peak_activation_bytes / 2**20:.1f} MiB (inference)")
    print(f"hash {genotype.hash}")
    return 0


def run_validate(args: argparse.Namespace) -> int:
    from nas.analysis import check_memory
    from nas.genotype import load_genotype

    failed = 0
    for file in args.files:
        try:
            stats = check_memory(load_genotype(file), _max_memory(args))
        except NasError as error:
            failed += 1
            print(error, file=sys.stderr)
            continue
        except (RecursionError, MemoryError) as error:  # a limit the checks did not foresee
            from nas.cli import exhausted_message

            failed += 1
            print(NasError(exhausted_message(error), file=file), file=sys.stderr)
            continue
        print(f"{file}: ok ({stats.params:,} params, {stats.macs / 1e9:.3f} GMACs)")
    return 2 if failed else 0


def run_graph(args: argparse.Namespace) -> int:
    from nas.drawing import format_for, render

    if args.depth < 0:
        raise ConfigError(f"--depth must be >= 0, got {args.depth}")
    out = output_file(args.out) if args.out is not None else None
    fmt = format_for(args.out, args.format)
    if args.out is None and fmt == "png" and sys.stdout.isatty():
        raise ConfigError("PNG is binary: give --out FILE.png (or redirect standard output)")
    genotype = load(args)
    data = render(genotype.graph, fmt, args.depth)
    if out is not None:
        from nas.io import atomic_write_bytes

        atomic_write_bytes(out, data)
        print(f"wrote {args.out}")
    elif fmt == "png":
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    else:
        sys.stdout.write(data.decode())
    return 0


def run_decode(args: argparse.Namespace) -> int:
    out = output_file(args.out)
    if out.suffix not in (".onnx", ".pt", ".pt2", ".pth"):
        raise ConfigError(f"--out must end in .onnx, .pt, .pt2 or .pth, got '{out.name}'")
    genotype = load(args)
    from nas.analysis import check_memory

    stats = check_memory(genotype, _max_memory(args))
    import torch

    from nas.build import build_model
    from nas.export import export_model

    torch.manual_seed(args.seed)
    model = build_model(genotype, max_memory=_max_memory(args))
    if args.weights is not None:
        from nas.weights import load_state_dict_file

        load_state_dict_file(model, args.weights, max_bytes=2 * stats.param_bytes + (64 << 20))
    export_model(genotype, out, model=model)
    print(f"wrote {out}")
    return 0
