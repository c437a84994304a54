"""What a search costs per trial beyond the objective: ``nas`` next to Optuna's own loop.

A trivial objective (a NAS-Bench-201 table lookup) is searched for N trials on one storage
twice, side by side in one process:

* **optuna**: ``study.optimize`` with a random sampler, the six edges suggested and looked up;
* **nas**: :func:`nas.search.run_search` of the same space (``search_spaces/nb201.yaml`` with a
  random sampler, one worker): budget counted in the storage, dedup reservations, heartbeats,
  a record per trial in the storage, the trial folder (genotype, log, metrics.json).

Both open the storage the same way (:func:`nas.search._storage.open_storage`: the journal
file backend that repairs torn records, SQLite, PostgreSQL). Printed per storage and N: seconds
per trial for each, their ratio, and the growth of the cost per trial from the first N to the
last (target: ratio at most 2, and growth no larger than Optuna's own). The machine's load
average is printed with the table: the figures are wall times.

Usage::

    python bench/search_overhead.py [--quick] [--trials 100 1000 5000]
                                    [--postgres URL]  (default: $NAS_TEST_POSTGRES_URL)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

if __package__ in (None, ""):  # run as a script from a checkout: make `nas` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ROOT = Path(__file__).resolve().parents[1]
TABLE = ROOT.parent / "shared" / "data" / "nasbench201" / "nb201_cifar.csv"


def optuna_per_trial(url: str, trials: int) -> float:
    import optuna

    from nas.search._storage import open_storage
    from nas.nb201 import NB201Table, suggest_cell

    table = NB201Table.load(TABLE)
    study = optuna.create_study(study_name=f"optuna-{uuid.uuid4().hex[:8]}", direction="maximize",
                                storage=open_storage(url), sampler=optuna.samplers.RandomSampler(seed=0))
    started = time.perf_counter()
    study.optimize(lambda trial: table.accuracy(suggest_cell(trial), "cifar10"), n_trials=trials)
    return (time.perf_counter() - started) / trials


def nas_per_trial(url: str, trials: int, runs: Path) -> float:
    import yaml

    from nas.search import run_search

    data = yaml.safe_load((ROOT / "search_spaces" / "nb201.yaml").read_text())
    data["space"]["genotype"] = str(ROOT / "genotypes" / "nb201.yaml")
    data.update(name=f"nas-{uuid.uuid4().hex[:8]}", sampler="random", trials=trials,
                tabular={"table": str(TABLE), "dataset": "cifar10"})
    config = runs / f"{data['name']}.yaml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(yaml.safe_dump(data))
    started = time.perf_counter()
    summary = run_search(config, runs_dir=runs, storage=url, workers=1, progress=False)
    elapsed = time.perf_counter() - started
    if sum(summary.counts.values()) != trials:
        raise RuntimeError(f"{trials} trials asked, {summary.counts} run")
    return elapsed / trials


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, nargs="+", default=[100, 1000, 5000])
    parser.add_argument("--quick", action="store_true", help="100 and 300 trials only")
    parser.add_argument("--postgres", default=os.environ.get("NAS_TEST_POSTGRES_URL"),
                        help="PostgreSQL URL (default: $NAS_TEST_POSTGRES_URL; left out when unset)")
    parser.add_argument("--storages", nargs="+", default=["journal", "sqlite", "postgresql"])
    args = parser.parse_args()
    if not TABLE.is_file():
        print(f"no NAS-Bench-201 table at {TABLE}; nothing to measure")
        return 1
    sizes = [100, 300] if args.quick else args.trials
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    print(f"load average at start: {os.getloadavg()[0]:.1f} ({os.cpu_count()} CPUs)")
    print(f"{'storage':<11} {'trials':>6} {'optuna s/trial':>15} {'nas s/trial':>12} {'ratio':>6}")
    with tempfile.TemporaryDirectory() as tmp:
        for kind in args.storages:
            if kind == "postgresql" and not args.postgres:
                print("postgresql: no URL (--postgres or NAS_TEST_POSTGRES_URL); left out")
                continue
            rows = []
            for n in sizes:
                url = {"journal": str(Path(tmp) / f"{kind}-{n}.log"),
                       "sqlite": f"sqlite:///{Path(tmp) / f'{kind}-{n}.db'}",
                       "postgresql": args.postgres}[kind]
                ours = nas_per_trial(url, n, Path(tmp) / "runs")
                theirs = optuna_per_trial(url, n)
                rows.append((n, theirs, ours))
                print(f"{kind:<11} {n:>6} {theirs:>15.4f} {ours:>12.4f} {ours / theirs:>6.2f}", flush=True)
            if len(rows) > 1:
                (n0, t0, o0), (n1, t1, o1) = rows[-2], rows[-1]
                print(f"{kind:<11} growth of the cost per trial {n0} -> {n1}: optuna {t1 / t0:.2f}x, "
                      f"nas {o1 / o0:.2f}x (target: nas no more than optuna's)")
    print(f"load average at end: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
