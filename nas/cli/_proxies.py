"""``nas score``: zero-cost proxy scores of one or more genotypes (printing only; the scores are
:func:`nas.proxies.score`'s)."""

from __future__ import annotations

import argparse
import json
import math

from nas import _checks
from nas.cli import seed_option
from nas.cli._genotype import _add_max_memory, _max_memory
from nas.errors import ConfigError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "score", help="zero-cost proxy scores of untrained genotypes (larger predicts better)")
    parser.add_argument("files", nargs="+", metavar="GENOTYPE", help="genotype YAML files or zoo names")
    parser.add_argument("--proxy", dest="proxies", action="append", metavar="NAME",
                        help="a proxy to compute (repeat for several; default: every proxy the "
                             "data allows)")
    parser.add_argument("--dataset", metavar="NAME",
                        help="dataset whose training images the data-dependent proxies read "
                             "(e.g. digits, cifar10); without it only synflow, zen, params, macs")
    parser.add_argument("--data-set", dest="data_options", action="append", default=[],
                        metavar="KEY=VALUE", help="a dataset option, e.g. --data-set resolution=16")
    parser.add_argument("--batch", type=int, default=64, help=f"images in the batch, 2 to {_checks.MAX_BATCH:,} (default 64)")
    parser.add_argument("--seed", type=seed_option, default=0, metavar="N",
                        help="seeds weights, inputs and the batch")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument("--ensemble", choices=("mean", "log"),
                        help="add the rank ensemble of the proxies over the given genotypes")
    parser.add_argument("--json", action="store_true", help="one JSON object per genotype")
    _add_max_memory(parser)
    parser.set_defaults(run=run_score)


def run_score(args: argparse.Namespace) -> int:
    from nas.cli._genotype import parse_assignments
    from nas.genotype import load_genotype
    from nas.proxies import get_proxy, proxy_names, rank_ensemble, score

    _checks.batch_size(args.batch, path="--batch")
    _checks.device(args.device, path="--device")
    names = args.proxies or [n for n in proxy_names()
                             if args.dataset is not None or not get_proxy(n).needs_data]
    for name in names:
        get_proxy(name)
    data = None
    if args.dataset is not None:
        from nas.data import load_dataset

        data = load_dataset(args.dataset, **parse_assignments(args.data_options, "--data-set"))
    elif args.data_options:  # options of no dataset: never silently ignored
        raise ConfigError("a dataset option needs --dataset NAME", path="--data-set")
    genotypes = [load_genotype(f) for f in args.files]
    results = [score(g, data, names, seed=args.seed, device=args.device, batch_size=args.batch,
                     max_memory=_max_memory(args)) for g in genotypes]
    ensemble = None
    if args.ensemble:
        ensemble = rank_ensemble({n: [r[n].value for r in results] for n in names},
                                 method=args.ensemble)
    if args.json:
        for i, (file, result) in enumerate(zip(args.files, results)):
            record = {"genotype": file, "scores": {n: _plain(s.value) for n, s in result.items()},
                      "reasons": {n: s.reason for n, s in result.items() if s.reason}}
            if ensemble is not None:
                record["ensemble"] = float(ensemble[i])
            print(json.dumps(record))
        return 0
    columns = [*names, *(["ensemble"] if ensemble is not None else [])]
    rows = [["genotype", *columns]]
    for i, (file, result) in enumerate(zip(args.files, results)):
        cells = [_fmt(result[n].value) for n in names]
        if ensemble is not None:
            cells.append(_fmt(float(ensemble[i])))
        rows.append([file, *cells])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for index, row in enumerate(rows):
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
        if index == 0:
            print("  ".join("-" * w for w in widths))
    for file, result in zip(args.files, results):
        for name, s in result.items():
            if s.reason:
                print(f"{file}: {name} is NaN: {s.reason}")
    return 0


def _plain(value: float) -> float | None:
    return None if math.isnan(value) else value


def _fmt(value: float) -> str:
    return "nan" if math.isnan(value) else f"{value:.6g}"
