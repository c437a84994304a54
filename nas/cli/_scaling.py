"""Commands of compound scaling: ``scale`` and ``scale-search``.

Thin: parsing and printing only; the work is in :mod:`nas.scaling`, imported when a command
runs (``scale`` is static; ``scale-search`` trains, through :mod:`nas.search`).
"""

from __future__ import annotations

import argparse
import sys

from nas.cli import output_file
from nas.errors import ConfigError

_MAX_FAMILY = 20


def register(subparsers: argparse._SubParsersAction) -> None:
    from nas.cli._genotype import _PARAM_HELP

    scale = subparsers.add_parser(
        "scale", help="compound-scale a genotype (depth, width, resolution) or write a family")
    scale.add_argument("file", help="genotype YAML file (or a zoo name); must declare scaling:")
    scale.add_argument("--set", dest="params", action="append", default=[], metavar="KEY=VALUE",
                       help=_PARAM_HELP)
    scale.add_argument("--input", metavar="C,H,W", help="base input shape, e.g. 3,32,32")
    scale.add_argument("--phi", type=float, help="compound coefficient: d, w, r = alpha**phi, "
                       "beta**phi, gamma**phi")
    scale.add_argument("--family", type=int, metavar="N", help="write phi = 0..N into --out DIR "
                       "and print a table")
    scale.add_argument("--alpha", type=float, default=1.2, help="depth coefficient (default 1.2)")
    scale.add_argument("--beta", type=float, default=1.1, help="width coefficient (default 1.1)")
    scale.add_argument("--gamma", type=float, default=1.15,
                       help="resolution coefficient (default 1.15)")
    scale.add_argument("--depth", type=float, help="depth multiplier (wins over --phi)")
    scale.add_argument("--width", type=float, help="width multiplier (wins over --phi)")
    scale.add_argument("--resolution", type=float, help="resolution multiplier (wins over --phi)")
    scale.add_argument("--width-divisor", type=int, default=8, metavar="N",
                       help="widths round to a multiple of N (default 8)")
    scale.add_argument("--resolution-divisor", type=int, default=8, metavar="N",
                       help="input sizes round to a multiple of N (default 8)")
    scale.add_argument("--out", metavar="PATH", help="the scaled genotype's YAML file (with "
                       "--family: a folder); default: print the YAML (with --family: only the table)")
    scale.set_defaults(run=run_scale)

    search = subparsers.add_parser(
        "scale-search", help="grid-search compound-scaling coefficients at phi = 1, then write the family")
    search.add_argument("config", help="scale-search config YAML, or the name of a shipped one "
                                             "(`nas configs` lists them), e.g. scale_digits")
    search.add_argument("--resume", action="store_true", help="continue runs/NAME, reusing finished candidates")
    search.add_argument("--name", help="run name (folder under --runs); default: the config's")
    search.add_argument("--runs", default="runs", metavar="DIR", help="folder of run folders (default: runs)")
    search.set_defaults(run=run_scale_search)


def _options(args: argparse.Namespace) -> dict:
    """The scaling options of ``nas scale``; a divisor out of range is refused at its flag."""
    from nas.scaling._scale import check_divisor

    return {"alpha": args.alpha, "beta": args.beta, "gamma": args.gamma,
            "width_divisor": check_divisor(args.width_divisor, path="--width-divisor"),
            "resolution_divisor": check_divisor(args.resolution_divisor, path="--resolution-divisor")}


def run_scale(args: argparse.Namespace) -> int:
    from nas.cli._genotype import load
    from nas.io import atomic_write_text
    from nas.scaling import family, family_table, scale, write_family

    explicit = {"depth": args.depth, "width": args.width, "resolution": args.resolution}
    if args.family is not None:
        if args.phi is not None or any(v is not None for v in explicit.values()):
            raise ConfigError("--family takes phi = 0..N: drop --phi, --depth, --width and "
                              "--resolution", path="--family")
        if not 0 <= args.family <= _MAX_FAMILY:
            raise ConfigError(f"must be 0..{_MAX_FAMILY}, got {args.family}", path="--family")
    elif args.phi is None and all(v is None for v in explicit.values()):
        raise ConfigError("give --phi, --family N or a multiplier (--depth, --width, --resolution)")
    genotype = load(args)
    if args.family is not None:
        members = family(genotype, range(args.family + 1), **_options(args))
        paths = write_family(members, args.out) if args.out else []  # first: a failure prints no table
        print(f"{genotype.name}: alpha {args.alpha:g}, beta {args.beta:g}, gamma {args.gamma:g}")
        print(family_table(members))
        if args.out:
            print(f"wrote {len(paths)} genotypes to {args.out}")
        return 0
    out = output_file(args.out) if args.out else None
    scaled = scale(genotype, phi=args.phi, **explicit, **_options(args))
    if out is None:
        sys.stdout.write(scaled.dump())
        return 0
    from nas.analysis import analyze

    atomic_write_text(out, scaled.dump())
    stats = analyze(scaled)
    print(f"wrote {args.out}: {scaled.name}, input {'x'.join(map(str, scaled.input_shape))}, "
          f"{stats.params:,} params, {stats.macs / 1e9:.4g} GMACs")
    return 0


def run_scale_search(args: argparse.Namespace) -> int:
    from nas._shipped import find_config
    from nas.scaling import family_table, run_scale_search as search

    def show(row: dict) -> None:
        accuracy = "-" if row["val_accuracy"] is None else f"{row['val_accuracy']:.4f}"
        print(f"alpha {row['alpha']:g} beta {row['beta']:g} gamma {row['gamma']:g} "
              f"(product {row['product']:.3f}, {row['resolution']} px): val_accuracy {accuracy} "
              f"[{row['status']}]", flush=True)

    result = search(find_config(args.config), runs_dir=args.runs, name=args.name, resume=args.resume,
                    on_candidate=show)
    print(f"{len(result.rows)} candidates in {result.elapsed:.0f} s")
    if result.best is None:
        print(f"no candidate completed; see {result.run_dir / 'report.md'}")
        return 1
    best = result.best
    print(f"best: alpha {best['alpha']:g}, beta {best['beta']:g}, gamma {best['gamma']:g} "
          f"(val_accuracy {best['val_accuracy']:.4f})")
    if result.family:
        print(family_table(result.family))
    print(f"report: {result.run_dir / 'report.md'}")
    return 0
