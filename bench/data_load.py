"""Loading an image-folder archive: the first decode, and every load after it from the cache.

Decodes the archive (default: the shared CIFAR-10 JPEGs) into a fresh cache folder with each
number of decoding processes given, then times cached loads: ``load_dataset("folder", ...)``
as a search worker calls it (holdout validation split carved from the training images), as
retraining calls it (``val_split="test"``), and the cache read alone. A cached-load time is
the median of ``--repeats`` runs in one process (the page cache warm, as for a search's
workers). Budget: a cached load under 1 s; the first decode is reported (no budget).
Decoding while reading, in one process (``--workers 0``), is the baseline of the ratio
column; N > 0 decodes in N forked processes while the main one reads the archive.

    python bench/data_load.py [--archive FILE] [--workers 0,1,2] [--repeats 5] [--cache DIR]

``--cache DIR`` keeps the cache in DIR (else a temporary folder, removed at the end);
``--workers ''`` then times only the cached loads of an existing entry.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

if __package__ in (None, ""):  # run as a script from a checkout: make `nas` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nas.data import load_dataset
from nas.data._folder import load_folder

ARCHIVE = Path(__file__).resolve().parents[1].parent / "shared/data/cifar10/cifar10-jpeg.tar.gz"
BUDGET = 1.0


def timed(call) -> tuple[float, object]:
    start = time.perf_counter()
    result = call()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--archive", type=Path, default=ARCHIVE)
    parser.add_argument("--workers", default="0,1,2",
                        help="decoding processes besides the reading one to try, e.g. 0,1,2")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--cache", type=Path,
                        help="cache folder to use and keep (emptied before each first decode)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if not args.archive.is_file():
        raise SystemExit(f"{args.archive}: not found (the shared CIFAR-10 archive)")
    cache = args.cache or Path(tempfile.mkdtemp(prefix="nas-data-bench-"))
    print(f"archive: {args.archive} ({args.archive.stat().st_size / 1e6:.1f} MB); "
          f"cores: {os.cpu_count()}; load average before: {os.getloadavg()[0]:.2f}; "
          f"torch threads: {args.threads}")
    try:
        rows = []
        for workers in [int(w) for w in args.workers.split(",") if w.strip()]:
            shutil.rmtree(cache, ignore_errors=True)
            seconds, _ = timed(lambda: load_folder(root=args.archive, cache=cache,
                                                   decode_workers=workers))
            rows.append((f"first decode, {workers} decoding process(es)", seconds))
        baseline = rows[0][1] if rows else 0.0
        cases = {
            "cached: cache read only (load_folder)":
                lambda: load_folder(root=args.archive, cache=cache),
            "cached: search (train/val holdout)":
                lambda: load_dataset("folder", root=args.archive, cache=cache),
            "cached: retrain (train + test)":
                lambda: load_dataset("folder", root=args.archive, cache=cache, val_split="test"),
        }
        data = None
        for label, call in cases.items():
            times = []
            for _ in range(args.repeats):
                seconds, data = timed(call)
                times.append(seconds)
            rows.append((label, statistics.median(times)))
        print(f"{'what':44} {'seconds':>8} {'vs 0 processes':>17} {'budget':>8}")
        for label, seconds in rows:
            budget = f"< {BUDGET:g} s" if label.startswith("cached") else "report"
            ratio = f"{seconds / baseline:17.3f}" if rows[0][0].startswith("first") else f"{'-':>17}"
            print(f"{label:44} {seconds:8.2f} {ratio} {budget:>8}")
        print(f"{data!r}; classes {', '.join(data.classes)}")
        print(f"load average after: {os.getloadavg()[0]:.2f}")
    finally:
        if args.cache is None:
            shutil.rmtree(cache, ignore_errors=True)


if __name__ == "__main__":
    main()
