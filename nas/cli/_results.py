"""Command of the results package: ``nas analyze``.

Thin: parsing and printing only; the work is in :mod:`nas.results`, imported when the command
runs (it loads pandas, Optuna and matplotlib). ``nas best --export`` lives next to ``nas best``
in :mod:`nas.cli._search` and calls :func:`nas.results.export_best`.
"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    analyze = subparsers.add_parser(
        "analyze", help="tables, plots and a Markdown report of one or several run folders")
    analyze.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run folders, e.g. runs/quickstart")
    analyze.add_argument("--out", metavar="DIR",
                         help="output folder (default: the run folder; for several runs "
                              "compare-A-B next to the first)")
    analyze.add_argument("--no-importance", action="store_true",
                         help="skip Optuna's parameter importances (slow on large runs)")
    analyze.add_argument("--storage", metavar="URL",
                         help="the study's storage, when run.json cannot say (a masked password) "
                              "or the run folder is another machine's")
    analyze.set_defaults(run=run_analyze)


def run_analyze(args: argparse.Namespace) -> int:
    from nas.results import analyze

    result = analyze(args.run_dirs, args.out, importance=not args.no_importance,
                     storage=args.storage)
    frame = result.frame
    print(f"{len(frame)} trials from {frame['run'].nunique()} run(s)")
    for path in result.files:
        print(f"wrote {path}")
    for note in result.notes:
        print(f"note: {note}")
    return 0
