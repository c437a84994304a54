"""``nas zoo``: a table of every hand-designed genotype in :func:`nas.zoo_dir`.

Static analysis only: never imports torch. A file that does not load is reported on stderr
(one line) and makes the exit status 1; the others are still listed.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from collections.abc import Mapping
from dataclasses import astuple, dataclass, fields
from pathlib import Path
from typing import Any

_SORT_KEYS = ("name", "family", "year", "params", "macs")


@dataclass(frozen=True)
class ZooRow:
    """One genotype's line of the table."""

    name: str
    family: str
    year: int | str
    input: str
    params: int
    macs: int


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("zoo", help="list the hand-designed genotypes with params and MACs")
    parser.add_argument("--csv", metavar="FILE", help="also write the table as CSV (raw numbers)")
    parser.add_argument("--sort", choices=_SORT_KEYS, default="name", help="row order (default: name)")
    parser.set_defaults(run=run_zoo)


def zoo_rows(folder: Path) -> tuple[list[ZooRow], list[str]]:
    """A row for every ``*.yaml`` directly in ``folder`` (not ``lib/``), sorted by name, and
    the one-line errors of the files that do not load."""
    from nas.analysis import analyze
    from nas.errors import NasError
    from nas.genotype import load_genotype

    rows, errors = [], []
    for path in sorted(folder.glob("*.yaml")):
        try:
            genotype = load_genotype(path)
            stats = analyze(genotype)
            family, year = _family_and_year(genotype.meta)
        except NasError as error:
            errors.append(str(error.located(file=str(path))))
            continue
        rows.append(
            ZooRow(
                name=genotype.name,
                family=family,
                year=year,
                input="x".join(map(str, stats.input_shape)),
                params=stats.params,
                macs=stats.macs,
            )
        )
    return rows, errors


def _family_and_year(meta: Mapping[str, Any]) -> tuple[str, int | str]:
    """The zoo's columns from a genotype's free-form ``meta``: ``family`` printable text
    (:func:`nas.genotype._model.printable_line`) and ``year`` an integer, each ``""`` when
    left out (a year of "2015" beside 2013 failed the sort: 'unexpected TypeError').

    Raises:
        GenotypeError: at ``meta.family`` or ``meta.year``.
    """
    from nas.errors import GenotypeError
    from nas.genotype._model import printable_line

    family, year = meta.get("family", ""), meta.get("year", "")
    if family != "":
        printable_line(family, path="meta.family")
    if year != "" and (isinstance(year, bool) or not isinstance(year, int)):
        raise GenotypeError(f"must be an integer, got {year!r}", path="meta.year")
    return family, year


def _sort_key(key: str):
    def by(row: ZooRow):
        value = getattr(row, key)
        # rows without a year sort last; ties fall back to the name
        return (value == "", value if value != "" else 0, row.name)

    return by


def format_table(rows: list[ZooRow]) -> str:
    """Aligned text: text columns left, numbers right; params in full, MACs in billions to
    four significant digits (torchvision's "GFLOPS" column)."""
    header = ("name", "family", "year", "input", "params", "GMACs")
    cells = [header] + [
        (r.name, r.family, str(r.year), r.input, f"{r.params:,}", f"{r.macs / 1e9:.4g}") for r in rows
    ]
    widths = [max(len(line[i]) for line in cells) for i in range(len(header))]
    numeric = {2, 4, 5}

    def line(values) -> str:
        return "  ".join(
            v.rjust(w) if i in numeric else v.ljust(w) for i, (v, w) in enumerate(zip(values, widths))
        ).rstrip()

    lines = [line(cells[0]), "  ".join("-" * w for w in widths)]
    lines += [line(values) for values in cells[1:]]
    return "\n".join(lines)


def format_csv(rows: list[ZooRow]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([f.name for f in fields(ZooRow)])
    writer.writerows(astuple(row) for row in rows)
    return buffer.getvalue()


def run_zoo(args: argparse.Namespace) -> int:
    from nas.genotype import zoo_dir

    folder = zoo_dir()
    rows, errors = zoo_rows(folder)
    rows.sort(key=_sort_key(args.sort))
    if args.csv:  # first: a --csv that cannot be written prints only its error
        from nas.io import atomic_write_text

        atomic_write_text(args.csv, format_csv(rows))
    for error in errors:
        print(error, file=sys.stderr)
    print(format_table(rows))
    print(f"\n{len(rows)} genotypes in {folder}" + (f", {len(errors)} failed to load" if errors else ""))
    if args.csv:
        print(f"wrote {args.csv}")
    return 1 if errors else 0
