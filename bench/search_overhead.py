"""What a search costs per trial beyond the objective: ``nas`` next to Optuna's own loop.

A trivial objective (a NAS-Bench-201 table lookup) is searched for N trials on one storage
twice, side by side in one process:

* **optuna**: ``study.optimize`` with a random sampler, the six edges suggested and looked up;
* **nas**: :func:`nas.search.run_search` of the same space (``search_spaces/nb201.yaml`` with a
  random sampler, one worker): budget counted in the storage, dedup reservations, heartbeats,
  a record per trial in the storage, the trial folder (genotype, log, metrics.json).

Both open the storage the same way (:func:`nas.search._storage.open_storage`: the journal
file backend that repairs torn records, SQLite, PostgreSQL). Printed: a line per measurement
as it ends, then a table with a row per N and, per storage, seconds per trial for each and
their ratio, the ratio of processor time (this process's; the wall ratio moves with the
machine's load, as the two runs are timed one after the other), and the growth of the cost
per trial from one N to the next (target: ratio at most 2, and growth no larger than Optuna's
own). The machine's load
average is printed with the table: the figures are wall times.

Usage::

    python bench/search_overhead.py [--quick] [--trials 100 1000 5000]
                                    [--storages journal sqlite postgresql]
                                    [--postgres URL]  (default: $NAS_TEST_POSTGRES_URL)

Each measurement gets a fresh storage (a new journal file or SQLite database; new studies in
the PostgreSQL database), ours first, then Optuna's; one 5-trial measurement per storage
first, not shown (imports, the table's first load and a database's schema are not a cost per
trial).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import NamedTuple

if __package__ in (None, ""):  # run as a script from a checkout: make `nas` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ROOT = Path(__file__).resolve().parents[1]
TABLE = ROOT.parent / "shared" / "data" / "nasbench201" / "nb201_cifar.csv"


class Cost(NamedTuple):
    """Seconds per trial: wall, and this process's processor time (a database server's is
    not in it). Processor time hardly moves with the machine's load; wall time does."""

    wall: float
    cpu: float


def optuna_per_trial(url: str, trials: int) -> Cost:
    import optuna

    from nas.search._storage import open_storage
    from nas.nb201 import NB201Table, suggest_cell

    table = NB201Table.load(TABLE)
    study = optuna.create_study(study_name=f"optuna-{uuid.uuid4().hex[:8]}", direction="maximize",
                                storage=open_storage(url), sampler=optuna.samplers.RandomSampler(seed=0))
    started, cpu = time.perf_counter(), time.process_time()
    study.optimize(lambda trial: table.accuracy(suggest_cell(trial), "cifar10"), n_trials=trials)
    return Cost((time.perf_counter() - started) / trials, (time.process_time() - cpu) / trials)


def nas_per_trial(url: str, trials: int, runs: Path) -> Cost:
    import yaml

    from nas.search import run_search

    data = yaml.safe_load((ROOT / "search_spaces" / "nb201.yaml").read_text())
    data["space"]["genotype"] = str(ROOT / "genotypes" / "nb201.yaml")
    data.update(name=f"nas-{uuid.uuid4().hex[:8]}", sampler="random", trials=trials,
                tabular={"table": str(TABLE), "dataset": "cifar10"})
    config = runs / f"{data['name']}.yaml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(yaml.safe_dump(data))
    started, cpu = time.perf_counter(), time.process_time()
    summary = run_search(config, runs_dir=runs, storage=url, workers=1, progress=False)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    if sum(summary.counts.values()) != trials:
        raise RuntimeError(f"{trials} trials asked, {summary.counts} run")
    return Cost(elapsed / trials, cpu / trials)


def measure(kind: str, n: int, tmp: Path, postgres: str | None, *,
            who: str = "") -> tuple[Cost, Cost]:
    """(Optuna's, ours) seconds per trial for ``n`` trials on a fresh storage of ``kind`` (a
    new file for the journal and SQLite; new studies in the PostgreSQL database)."""
    def url(name: str) -> str:
        return {"journal": str(tmp / f"{name}{who}-{n}.log"),
                "sqlite": f"sqlite:///{tmp / f'{name}{who}-{n}.db'}",
                "postgresql": postgres or ""}[kind]

    ours = nas_per_trial(url("nas"), n, tmp / "runs")
    theirs = optuna_per_trial(url("optuna"), n)
    return theirs, ours


def table(results: dict[str, dict[int, tuple[Cost, Cost]]], sizes: list[int]) -> list[str]:
    """The side-by-side table: one row per trial count, per storage Optuna's and our seconds
    per trial and their ratio; then the growth of each from the first size to the last."""
    kinds = list(results)
    lines = ["| trials | " + " | ".join(f"{k} optuna | {k} nas | {k} ratio | {k} cpu ratio" for k in kinds) + " |",
             "|---:|" + "---:|---:|---:|---:|" * len(kinds)]
    for n in sizes:
        cells = []
        for k in kinds:
            if n in results[k]:
                theirs, ours = results[k][n]
                cells += [f"{theirs.wall:.4f}", f"{ours.wall:.4f}", f"{ours.wall / theirs.wall:.2f}",
                          f"{ours.cpu / theirs.cpu:.2f}"]
            else:
                cells += ["-"] * 4
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    for k in kinds:
        done = [n for n in sizes if n in results[k]]
        for a, b in zip(done, done[1:]):
            (t0, o0), (t1, o1) = results[k][a], results[k][b]
            lines.append(f"{k}: growth of the cost per trial {a} -> {b}: optuna {t1.wall / t0.wall:.2f}x, "
                         f"nas {o1.wall / o0.wall:.2f}x (processor time: optuna {t1.cpu / t0.cpu:.2f}x, "
                         f"nas {o1.cpu / o0.cpu:.2f}x; target: nas no more than optuna's)")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, nargs="+", default=[100, 1000, 5000])
    parser.add_argument("--quick", action="store_true", help="100 and 300 trials only")
    parser.add_argument("--postgres", default=os.environ.get("NAS_TEST_POSTGRES_URL"),
                        help="PostgreSQL URL (default: $NAS_TEST_POSTGRES_URL; left out when unset)")
    parser.add_argument("--storages", nargs="+", default=["journal", "sqlite", "postgresql"],
                        choices=["journal", "sqlite", "postgresql"])
    args = parser.parse_args()
    if not TABLE.is_file():
        print(f"no NAS-Bench-201 table at {TABLE}; nothing to measure")
        return 1
    sizes = [100, 300] if args.quick else sorted(args.trials)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    kinds = [k for k in args.storages if k != "postgresql" or args.postgres]
    if len(kinds) < len(args.storages):
        print("postgresql: no URL (--postgres or NAS_TEST_POSTGRES_URL); left out")
    print(f"load average at start: {os.getloadavg()[0]:.1f} ({os.cpu_count()} CPUs)", flush=True)
    results: dict[str, dict[int, tuple[Cost, Cost]]] = {k: {} for k in kinds}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in kinds:  # imports, the table's first load, the storage's schema: not timed
            measure(kind, 5, Path(tmp), args.postgres, who="-warm-up")
        for n in sizes:  # every storage at a size before the next size: the table fills by rows
            for kind in kinds:
                started = time.time()
                results[kind][n] = measure(kind, n, Path(tmp), args.postgres)
                theirs, ours = results[kind][n]
                print(f"{kind:<11} {n:>6} trials: optuna {theirs.wall:.4f} s/trial, nas {ours.wall:.4f} s/trial, "
                      f"ratio {ours.wall / theirs.wall:.2f}, processor time ratio {ours.cpu / theirs.cpu:.2f} "
                      f"({time.time() - started:.0f} s, load "
                      f"{os.getloadavg()[0]:.1f})", flush=True)
    print(f"load average at end: {os.getloadavg()[0]:.1f}")
    print("\n".join(table(results, sizes)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
