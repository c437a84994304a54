"""Search strategies on NAS-Bench-201, with the tabular table standing in for training.

For each sampler, dataset and seed, one Optuna study maximises test accuracy over the six edge
ops of the cell. Every evaluation goes through :class:`nas.tabular.NB201Objective`, whose dedup
cache answers a cell equivalent to one already evaluated (same isomorphism key) at no cost; the
trial budget counts *trained* cells only, for every sampler alike. A study stops after
``--max-trials`` trained cells, or earlier once both measures below are known (100 trained cells
done and the top-0.1% threshold reached), since later trials cannot change them.

Printed per sampler: mean and standard error over seeds of the best test accuracy after 100
trained cells, and the median number of trained cells until the best reaches the top 0.1% of
the table (at least the accuracy of the 16th best cell; '>N' when fewer than half of the seeds
got there within the budget).

Usage::

    python bench/search_nb201.py [--table CSV] [--seeds 50] [--workers 2] [--samplers ...]
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import optuna

if __package__ in (None, ""):  # run as a script from a checkout: make `nas` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nas.samplers import DeduplicatingSampler, LocalSearchSampler, RegularizedEvolutionSampler
from nas.tabular import DATASETS, Cell, NB201Objective, NB201Table, cell_key, suggest_cell

TOP_K = 16  # the top 0.1% of 15,625 cells
AT = 100  # report the best accuracy after this many trained cells
DEFAULT_TABLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "nasbench201" / (
    "nb201_cifar.csv"
)

# Hand-designed cells, enqueued first by the configurations that use seeds. They are the
# classic designs expressible in the cell, chosen before looking at any accuracy: the ResNet
# basic block (3x3 conv, 3x3 conv, identity shortcut; the only hand-designed cell the
# NAS-Bench-201 paper places in the space), the ResNet bottleneck (1x1, 3x3, 1x1 convs plus the
# shortcut) and the plain cell with a 3x3 conv on every edge (a VGG/DenseNet-like dense cell).
SEED_CELLS: dict[str, str] = {
    "resnet_basic": "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|skip_connect~2|",
    "resnet_bottleneck": "|nor_conv_1x1~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|nor_conv_1x1~2|",
    "all_conv3x3": "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|",
}


@dataclass(frozen=True)
class Config:
    """A search configuration: how to build the sampler for a seed, and options around it."""

    name: str
    make: Callable[[int], optuna.samplers.BaseSampler]
    seeds: bool = False  # enqueue SEED_CELLS first
    max_trials: int | None = None  # a tighter budget than --max-trials (slow samplers)
    max_runs: int | None = None  # fewer seeds than --seeds (slow samplers)


def _dedup(base: optuna.samplers.BaseSampler) -> DeduplicatingSampler:
    return DeduplicatingSampler(base, cell_key)


def _rea(seed: int) -> RegularizedEvolutionSampler:
    return RegularizedEvolutionSampler(population_size=20, sample_size=5, seed=seed)


def _ours(seed: int, *, n_startup_trials: int) -> LocalSearchSampler:
    """Our best configuration: guided best-first local search over isomorphism keys."""
    return LocalSearchSampler(key=cell_key, guided=True, n_parents=2, alpha=0.3,
                              n_startup_trials=n_startup_trials, seed=seed)


def configs(args: argparse.Namespace) -> dict[str, Config]:
    """Every configuration the benchmark knows, by name."""
    s = optuna.samplers
    return {
        c.name: c
        for c in [
            Config("random", lambda seed: s.RandomSampler(seed=seed)),
            Config("tpe", lambda seed: s.TPESampler(seed=seed)),
            Config("nsga2", lambda seed: s.NSGAIISampler(seed=seed)),
            Config("gp", lambda seed: s.GPSampler(seed=seed, warn_independent_sampling=False),
                   max_trials=args.gp_max_trials, max_runs=args.gp_seeds),
            Config("rea", _rea),
            Config("tpe+dedup", lambda seed: _dedup(s.TPESampler(seed=seed))),
            Config("tpe+dedup+seeds", lambda seed: _dedup(s.TPESampler(seed=seed)), seeds=True),
            Config("rea+dedup", lambda seed: _dedup(_rea(seed))),
            Config("ls+key", lambda seed: LocalSearchSampler(key=cell_key, seed=seed)),
            Config("ours-noseeds", lambda seed: _ours(seed, n_startup_trials=10)),
            Config("ours", lambda seed: _ours(seed, n_startup_trials=len(SEED_CELLS)),
                   seeds=True),
        ]
    }


NOT_APPLICABLE = {
    "cmaes": "CmaEsSampler samples only int and float parameters; the six edges are "
             "categorical, so it would fall back to random sampling for all of them",
}


# Per worker process, set by _init_worker: the table and the configurations (which hold
# lambdas, so they reach the workers by fork rather than by pickling).
_TABLE: NB201Table | None = None
_CONFIGS: dict[str, Config] = {}


def _init_worker(table_path: str, known: dict[str, Config]) -> None:
    global _TABLE, _CONFIGS
    _TABLE = NB201Table.load(table_path)
    _CONFIGS = known
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:  # GPSampler runs on torch; one thread per worker process is faster on 2 cores
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def run_one(task: tuple[str, str, int, int, float]) -> tuple[str, str, float, float]:
    """One study; returns (config, dataset, best after AT trained, trained cells to threshold)."""
    name, dataset, seed, budget, threshold = task
    config = _CONFIGS[name]
    if _TABLE is None:
        raise RuntimeError("run_one needs a worker started with _init_worker")
    objective = NB201Objective(_TABLE, dataset)
    trace: list[float] = []  # accuracy of each trained (non-duplicate) cell, in order

    def evaluate(trial: optuna.Trial) -> float:
        result = objective.evaluate(suggest_cell(trial))
        if not result.duplicate:
            trace.append(result.accuracy)
        return result.accuracy

    def stop(study: optuna.Study, _trial: optuna.trial.FrozenTrial) -> None:
        if len(trace) >= budget or (len(trace) >= AT and max(trace) >= threshold):
            study.stop()

    study = optuna.create_study(direction="maximize", sampler=config.make(seed))
    if config.seeds:
        for text in SEED_CELLS.values():
            study.enqueue_trial(Cell.parse(text).params())
    # Duplicates are free, so bound the Optuna trials too, in case a sampler only repeats.
    study.optimize(evaluate, n_trials=budget * 20, callbacks=[stop])
    best = np.maximum.accumulate(trace)
    best_at = float(best[min(AT, len(best)) - 1])
    hits = np.nonzero(best >= threshold)[0]
    to_top = float(hits[0] + 1) if len(hits) else math.inf
    return config.name, dataset, best_at, to_top


def _summary(best: list[float], to_top: list[float], budget: int) -> tuple[str, str]:
    mean = statistics.fmean(best)
    se = statistics.stdev(best) / math.sqrt(len(best)) if len(best) > 1 else 0.0
    median = statistics.median(to_top)
    med = f">{budget}" if math.isinf(median) else f"{median:g}"
    return f"{mean:.2f} ± {se:.2f}", med


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", default=str(DEFAULT_TABLE), help="NAS-Bench-201 CSV file")
    parser.add_argument("--seeds", type=int, default=50, help="runs per sampler and dataset")
    parser.add_argument("--max-trials", type=int, default=300, help="trained cells per run")
    parser.add_argument("--workers", type=int, default=2, help="processes")
    parser.add_argument("--gp-seeds", type=int, default=2, help="runs for the slow GP sampler")
    parser.add_argument("--gp-max-trials", type=int, default=100, help="budget of a GP run")
    parser.add_argument("--samplers", nargs="+", default=None, help="configurations to run")
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    args = parser.parse_args(argv)

    start = time.perf_counter()
    table = NB201Table.load(args.table)
    thresholds = {d: table.top_k_threshold(d, TOP_K) for d in args.datasets}
    known = configs(args)
    names = args.samplers or list(known)
    unknown = [n for n in names if n not in known and n not in NOT_APPLICABLE]
    if unknown:
        parser.error(f"unknown sampler(s) {', '.join(unknown)}; known: {', '.join(known)}")
    runnable = [known[n] for n in names if n in known]

    tasks = []
    for config in runnable:
        budget = min(args.max_trials, config.max_trials or args.max_trials)
        for dataset in args.datasets:
            for seed in range(min(args.seeds, config.max_runs or args.seeds)):
                tasks.append((config.name, dataset, seed, budget, thresholds[dataset]))
    with multiprocessing.get_context("fork").Pool(
        args.workers, initializer=_init_worker, initargs=(args.table, known)
    ) as pool:
        results = pool.map(run_one, tasks, chunksize=1)

    print(f"NAS-Bench-201, test accuracy as objective; table {args.table}")
    print(f"top 0.1% = at least the {TOP_K}th best cell: "
          + ", ".join(f"{d} {t:.2f}" for d, t in thresholds.items()))
    print("trials count trained cells only (an equivalent cell is a free cache hit)")
    head = f"{'sampler':<18} {'runs':>4} {'budget':>6}"
    for d in args.datasets:
        head += f" | {d + ' best@' + str(AT):>16} {'med to top':>10}"
    print(head)
    print("-" * len(head))
    for config in runnable:
        budget = min(args.max_trials, config.max_trials or args.max_trials)
        row = f"{config.name:<18} {min(args.seeds, config.max_runs or args.seeds):>4} {budget:>6}"
        for d in args.datasets:
            best = [r[2] for r in results if r[0] == config.name and r[1] == d]
            to_top = [r[3] for r in results if r[0] == config.name and r[1] == d]
            acc, med = _summary(best, to_top, budget)
            row += f" | {acc:>16} {med:>10}"
        print(row)
    for name in names:
        if name in NOT_APPLICABLE:
            print(f"{name}: not applicable: {NOT_APPLICABLE[name]}")
    print("seed cells (enqueued first by '+seeds' configurations):")
    for name, text in SEED_CELLS.items():
        print(f"  {name:<18} {text}")
    print(f"wall time {time.perf_counter() - start:.1f} s on {args.workers} worker(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
