"""How long ``nas.results.load`` takes on a run folder with 1,000 trials (target: under 2 s).

The run folder is made by a real search over the NAS-Bench-201 space with the tabular
objective (no training: each trial looks its cell up in the benchmark's table), so it has the
journal, the trial folders and the metrics files of any run, duplicates included. Making it
takes a couple of minutes (the search itself, not the loading); ``--runs DIR`` keeps it, and a
second call with the same ``--runs`` reuses it.

Printed: the time to make the folder, the import time of pandas + Optuna + nas.results (paid
once per process, not part of loading), the first ``load`` and the best of ``--repeats``, and
with ``--analyze`` the time of ``nas analyze`` (CSV, Parquet, plots, importances, report).

Usage::

    python bench/load_results.py [--trials 1000] [--runs DIR] [--table CSV] [--analyze]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script from a checkout: make `nas` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ROOT = Path(__file__).resolve().parents[1]
SPACE = ROOT / "search_spaces" / "nb201.yaml"
DEFAULT_TABLE = ROOT.parent / "shared" / "data" / "nasbench201" / "nb201_cifar.csv"


def make_run(runs: Path, name: str, trials: int, table: Path) -> Path:
    """A NAS-Bench-201 run folder with ``trials`` trials in ``runs/name`` (reused if complete)."""
    import dataclasses

    from nas.search import load_config, run_search

    run_dir = runs / name
    if (run_dir / "trials").is_dir() and len(list((run_dir / "trials").iterdir())) >= trials:
        print(f"reusing {run_dir}")
        return run_dir
    config = load_config(SPACE)
    config = dataclasses.replace(config, tabular=dict(config.tabular, table=str(table)))
    started = time.perf_counter()
    run_search(config, name=name, trials=trials, runs_dir=runs, workers=1, progress=False,
               resume=(run_dir / "config.yaml").is_file())
    print(f"made {run_dir} ({trials} trials) in {time.perf_counter() - started:.1f} s")
    return run_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--runs", type=Path, help="folder for the run (kept); default: a temporary one")
    parser.add_argument("--table", type=Path, default=DEFAULT_TABLE, help="NAS-Bench-201 CSV")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--analyze", action="store_true", help="also time nas analyze")
    args = parser.parse_args(argv)
    if not args.table.is_file():
        print(f"no NAS-Bench-201 table at {args.table} (--table)", file=sys.stderr)
        return 2

    started = time.perf_counter()
    import optuna  # noqa: F401
    import pandas  # noqa: F401

    from nas import results
    imports = time.perf_counter() - started

    with tempfile.TemporaryDirectory() as tmp:
        runs = args.runs or Path(tmp)
        run_dir = make_run(runs, f"nb201_{args.trials}", args.trials, args.table)
        times = []
        for _ in range(max(1, args.repeats)):
            t0 = time.perf_counter()
            frame = results.load(run_dir)
            times.append(time.perf_counter() - t0)
        print(f"imports (pandas, optuna, nas.results): {imports:.2f} s, once per process")
        print(f"load: {len(frame)} trials x {frame.shape[1]} columns; first {times[0]:.3f} s, "
              f"best of {len(times)} {min(times):.3f} s (target < 2 s)")
        print("states: " + ", ".join(f"{s} {n}" for s, n in frame["status"].value_counts().items()))
        if args.analyze:
            t0 = time.perf_counter()
            analysis = results.analyze(run_dir, Path(tmp) / "analysis")
            print(f"analyze: {len(analysis.files)} files in {time.perf_counter() - t0:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
