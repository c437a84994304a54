"""``nas retrain RUN``: retrain a search's best architectures and its seeds; print the table.

Thin: parsing and printing only; the work is in :mod:`nas.retrain` (imported when the
command runs: it loads torch).
"""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "retrain", help="retrain a search's top architectures and its seeds; test-split table",
        description="Train the top K architectures of a search and its seed architectures with "
        "one longer schedule and S training seeds on the full training split; score them on "
        "the test split. Resumes when run again. Defaults come from the run config's retrain key.")
    parser.add_argument("run_dir", help="a run folder, e.g. runs/resnet")
    parser.add_argument("--top", type=int, metavar="K", help="how many searched architectures")
    parser.add_argument("--pareto", action="store_true",
                        help="take the Pareto set over the run's objectives instead of the top K")
    parser.add_argument("--seeds", type=int, metavar="S", help="training seeds per architecture")
    parser.add_argument("--epochs", type=int, help="epochs of the retraining schedule")
    parser.add_argument("--width-multiplier", type=float, metavar="W",
                        help="width of the retrained networks (default 1.0: the architecture itself)")
    parser.add_argument("--subset", type=int, metavar="N",
                        help="train on N images (default: the full training split)")
    parser.add_argument("--grow", action="store_true",
                        help="also retrain each searched architecture widened to the seed architectures' "
                             "MACs (compound scaling's width axis), labelled LABEL_grown")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--threads", type=int, help="torch threads per process")
    parser.add_argument("--workers", type=int, default=1, metavar="N",
                        help="processes training models side by side (default 1)")
    parser.add_argument("--out", metavar="DIR", help="output folder (default: RUN/retrain)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or per-model lines")
    parser.set_defaults(run=run_retrain)


def run_retrain(args: argparse.Namespace) -> int:
    from nas.results import analyze
    from nas.retrain import retrain
    from nas.retrain._table import markdown_table

    summary = retrain(args.run_dir, select="pareto" if args.pareto else None, top=args.top,
                      seeds=args.seeds, epochs=args.epochs, width_multiplier=args.width_multiplier,
                      subset=args.subset, grow=args.grow or None, device=args.device, threads=args.threads,
                      workers=args.workers, out=args.out,
                      progress=not args.quiet and sys.stderr.isatty(),
                      log=None if args.quiet else lambda line: print(line, flush=True))
    print(markdown_table(summary.table))
    tau = "n/a" if summary.tau is None else f"{summary.tau:.3f}"
    print(f"Kendall's tau (proxy vs retrained rank): {tau}")
    if args.out is None:
        report = analyze(args.run_dir)
        print(f"report: {report.out / 'report.md'}")
    others = (f", {len(summary.by_others)} trained meanwhile by another nas retrain on this folder"
              if summary.by_others else "")
    print(f"retrained {len(summary.trained)} models{others}, {len(summary.skipped)} already done, in "
          f"{summary.elapsed:.0f} s; outputs in {summary.out}")
    return 0
