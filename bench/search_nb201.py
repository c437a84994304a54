"""Search strategies on NAS-Bench-201 under the published protocol, with the table standing in
for training.

For each sampler and seed, one Optuna study maximises the shipped config's objective column
(``search_spaces/nb201.yaml``: ``cifar10_valid``, validation accuracy) over the six edge ops of
the cell, and the best-by-validation cell's test accuracy (the config's ``report`` column,
``cifar10_test``) is what gets reported: a search never sees the test column. Every evaluation
goes through :class:`nas.nb201.NB201Objective`, whose dedup cache answers a cell equivalent to
one already evaluated (same isomorphism key) at no cost; **queries** are the evaluations that
look the table up (non-duplicates), and the budget counts queries for every sampler alike. A
study stops after ``--max-trials`` queries, or earlier once every measure below is known.

The headline row, ``shipped``, is exactly the shipped config: its sampler and options (built by
``nas.search``'s own ``make_sampler``), its seeds enqueued first, its objective column.

Printed per sampler: median queries until the best-by-validation cell is in the top 0.1% of
the table by validation (at least the 16th best value; '>N' when fewer than half of the seeds
got there), and the mean (± standard error over seeds) test accuracy of the best-by-validation
cell after 25, 50 and 100 queries.

Usage::

    python bench/search_nb201.py [--config search_spaces/nb201.yaml] [--seeds 50] [--workers 2]
"""

from __future__ import annotations

import argparse
import dataclasses
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
from nas.search import RunConfig, load_config
from nas.search._study import make_sampler
from nas.nb201 import Cell, NB201Objective, NB201Table, cell_key

ROOT = Path(__file__).resolve().parents[1]
TOP_K = 16  # the top 0.1% of 15,625 cells
AT = (25, 50, 100)  # report the best-by-validation cell's test accuracy after these many queries
DEFAULT_CONFIG = ROOT / "search_spaces" / "nb201.yaml"


@dataclass(frozen=True)
class Config:
    """A search configuration: how to build the sampler for a seed, and options around it.

    ``before`` runs on the fresh study before the search (enqueueing seeds, pre-screening) and
    returns the seconds it spent that are not table queries (e.g. scoring candidates): one
    number, or wall and CPU seconds.
    """

    name: str
    make: Callable[[int], optuna.samplers.BaseSampler]
    before: Callable[[optuna.Study, int], float | tuple[float, float]] | None = None
    max_trials: int | None = None  # a tighter budget than --max-trials (slow samplers)
    max_runs: int | None = None  # fewer seeds than --seeds (slow samplers)


def _dedup(base: optuna.samplers.BaseSampler) -> DeduplicatingSampler:
    return DeduplicatingSampler(base, cell_key)


def _rea(seed: int) -> RegularizedEvolutionSampler:
    return RegularizedEvolutionSampler(population_size=20, sample_size=5, seed=seed)


def shipped_sampler(run: RunConfig) -> Callable[[int], optuna.samplers.BaseSampler]:
    """The run config's own sampler (``nas.search`` builds it), seeded with ``seed``."""
    return lambda seed: make_sampler(dataclasses.replace(run, seed=seed))


def enqueue_space_seeds(run: RunConfig) -> Callable[[optuna.Study, int], float]:
    """Enqueue the run config's seeds, as ``nas search`` does."""

    def before(study: optuna.Study, seed: int) -> float:
        for values in run.space.seeds.values():
            study.enqueue_trial(run.space.encode(values))
        return 0.0

    return before


def configs(args: argparse.Namespace, run: RunConfig) -> dict[str, Config]:
    """Every configuration the benchmark knows, by name."""
    s = optuna.samplers
    seeds = enqueue_space_seeds(run)
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
            Config("tpe+dedup+seeds", lambda seed: _dedup(s.TPESampler(seed=seed)), seeds),
            Config("rea+dedup", lambda seed: _dedup(_rea(seed))),
            Config("ls+key", lambda seed: LocalSearchSampler(key=cell_key, seed=seed)),
            Config("shipped", shipped_sampler(run), seeds),
        ]
    }


NOT_APPLICABLE = {
    "cmaes": "CmaEsSampler samples only int and float parameters; the six edges are "
             "categorical, so it would fall back to random sampling for all of them",
}


@dataclass(frozen=True)
class Outcome:
    """One study: queries to the top 0.1% (inf if never), test accuracy of the best-by-
    objective cell after each of :data:`AT` queries, (wall, CPU) seconds spent outside
    queries."""

    config: str
    seed: int
    to_top: float
    reported_at: tuple[float, ...]
    before_seconds: tuple[float, float]


# Per worker process, set by init_worker: the table, run config and configurations (which hold
# lambdas, so they reach the workers by fork rather than by pickling).
_STATE: dict = {}


def init_worker(table: NB201Table, run: RunConfig, known: dict[str, Config]) -> None:
    _STATE.update(table=table, run=run, configs=known)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:  # GPSampler runs on torch; one thread per worker process is faster on 2 cores
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def run_one(task: tuple[str, int, int, float]) -> Outcome:
    """One study of configuration ``name`` with ``seed``, at most ``budget`` queries."""
    name, seed, budget, threshold = task
    config, run, table = _STATE["configs"][name], _STATE["run"], _STATE["table"]
    objective = NB201Objective(table, run.tabular["objective"], report=run.tabular["report"])
    reported_column = objective.report[0]
    trace: list[tuple[float, float]] = []  # (objective, reported) of each query, in order

    def evaluate(trial: optuna.Trial) -> float:
        result = objective.evaluate(Cell.from_params(run.space.suggest(trial)))
        if not result.duplicate:
            trace.append((result.accuracy, result.report[reported_column]))
        return result.accuracy

    def stop(study: optuna.Study, _trial: optuna.trial.FrozenTrial) -> None:
        if len(trace) >= budget or (len(trace) >= max(AT) and max(t[0] for t in trace) >= threshold):
            study.stop()

    study = optuna.create_study(direction="maximize", sampler=config.make(seed))
    before = config.before(study, seed) if config.before is not None else 0.0
    before = (before, before) if isinstance(before, (int, float)) else tuple(before)
    # Duplicates are free, so bound the Optuna trials too, in case a sampler only repeats.
    study.optimize(evaluate, n_trials=budget * 20, callbacks=[stop])
    values = np.array([t[0] for t in trace])
    best = np.maximum.accumulate(values)
    hits = np.nonzero(best >= threshold)[0]
    to_top = float(hits[0] + 1) if len(hits) else math.inf
    reported = []
    for at in AT:
        n = min(at, len(trace))
        reported.append(trace[int(np.argmax(values[:n]))][1])  # first best-by-objective cell
    return Outcome(name, seed, to_top, tuple(reported), before)


def summary(outcomes: list[Outcome], budget: int) -> tuple[str, list[str]]:
    """Median queries to the top (">N" when most runs never got there) and mean ± s.e. of the
    reported accuracy at each of :data:`AT`."""
    median = statistics.median(o.to_top for o in outcomes)
    med = f">{budget}" if math.isinf(median) else f"{median:g}"
    cells = []
    for i in range(len(AT)):
        values = [o.reported_at[i] for o in outcomes]
        se = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else 0.0
        cells.append(f"{statistics.fmean(values):.2f} ± {se:.2f}")
    return med, cells


def run_all(known: dict[str, Config], names: list[str], table: NB201Table, run: RunConfig,
            *, seeds: int, max_trials: int, workers: int) -> dict[str, list[Outcome]]:
    """Every configuration in ``names`` over ``seeds`` seeds, on ``workers`` processes."""
    threshold = table.top_k_threshold(run.tabular["objective"], TOP_K)
    tasks = []
    for name in names:
        config = known[name]
        budget = min(max_trials, config.max_trials or max_trials)
        for seed in range(min(seeds, config.max_runs or seeds)):
            tasks.append((name, seed, budget, threshold))
    with multiprocessing.get_context("fork").Pool(
        workers, initializer=init_worker, initargs=(table, run, known)
    ) as pool:
        results = pool.map(run_one, tasks, chunksize=1)
    return {name: [r for r in results if r.config == name] for name in names}


def print_table(known: dict[str, Config], results: dict[str, list[Outcome]], run: RunConfig,
                table: NB201Table, max_trials: int) -> None:
    objective, reported = run.tabular["objective"], run.tabular["report"][0]
    threshold = table.top_k_threshold(objective, TOP_K)
    print(f"NAS-Bench-201; objective {objective} (what the search sees), reported {reported}; "
          f"table {table.source}")
    print(f"top 0.1% = at least the {TOP_K}th best {objective}: {threshold:.2f}; queries = table "
          f"look-ups (an equivalent cell is a free cache hit)")
    head = (f"{'sampler':<44} {'runs':>4} {'budget':>6} {'med queries':>11} | "
            + " | ".join(f"{reported + ' @' + str(a):>19}" for a in AT) + f" | {'extra wall':>10} {'CPU s':>6}")
    print(head)
    print("-" * len(head))
    for name, outcomes in results.items():
        budget = min(max_trials, known[name].max_trials or max_trials)
        med, cells = summary(outcomes, budget)
        wall = statistics.fmean(o.before_seconds[0] for o in outcomes)
        cpu = statistics.fmean(o.before_seconds[1] for o in outcomes)
        print(f"{name:<44} {len(outcomes):>4} {budget:>6} {med:>11} | "
              + " | ".join(f"{c:>19}" for c in cells) + f" | {wall:10.1f} {cpu:6.1f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG,
                        help="the run config whose sampler, seeds and columns are 'shipped'")
    parser.add_argument("--seeds", type=int, default=50, help="runs per sampler")
    parser.add_argument("--max-trials", type=int, default=300, help="queries per run")
    parser.add_argument("--workers", type=int, default=2, help="processes")
    parser.add_argument("--gp-seeds", type=int, default=2, help="runs for the slow GP sampler")
    parser.add_argument("--gp-max-trials", type=int, default=100, help="budget of a GP run")
    parser.add_argument("--samplers", nargs="+", default=None, help="configurations to run")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    run = load_config(args.config)
    if run.tabular is None or not run.tabular["report"]:
        parser.error(f"{args.config} must be a tabular run config with a reported column")
    table = NB201Table.load(run.tabular["table"])
    known = configs(args, run)
    names = args.samplers or list(known)
    unknown = [n for n in names if n not in known and n not in NOT_APPLICABLE]
    if unknown:
        parser.error(f"unknown sampler(s) {', '.join(unknown)}; known: {', '.join(known)}")
    runnable = [n for n in names if n in known]
    results = run_all(known, runnable, table, run, seeds=args.seeds, max_trials=args.max_trials,
                      workers=args.workers)
    print_table(known, results, run, table, args.max_trials)
    for name in names:
        if name in NOT_APPLICABLE:
            print(f"{name}: not applicable: {NOT_APPLICABLE[name]}")
    print(f"shipped = {args.config.name}: sampler {run.sampler} {dict(run.sampler_options)}, "
          f"seeds {', '.join(run.space.seeds)} enqueued first")
    print(f"wall time {time.perf_counter() - start:.1f} s on {args.workers} worker(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
