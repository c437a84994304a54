"""Milliseconds to make one search candidate's genotype, next to the time to analyse it.

For random NAS-Bench-201 cells and random candidates of the CIFAR ResNet space
(``genotypes/search/resnet_cifar.yaml``: block type, per-stage depths in [1, 18] and widths),
times, per candidate:

- ``load+params``: ``nas.load_genotype(file, **params)`` and ``.hash`` (the file and its
  imports are read to check they are unchanged, and parsed once per process);
- ``with_params``: ``base.with_params(**params)`` on a loaded genotype, then ``.graph``
  (expansion) and ``.hash`` (what a search does for every candidate: dedup needs the hash);
- of which ``expand`` and ``hash`` separately;
- ``analyze``: ``nas.analyze`` on the expanded genotype (the baseline of the ratio column).

The two columns time different candidates (drawn from one seeded generator), so neither finds
the other's candidate already expanded (variants share block expansions: nas.genotype._memo).
Prints medians (ms) and ``with_params / analyze``. Budget (issue 15): a median under 5 ms per
NB201 cell and under 10 ms per ResNet candidate for ``with_params``.

``--clock cpu`` times with the process's CPU clock instead of the wall clock: on a busy
machine a 10 ms step is preempted several times while a 1 ms one mostly is not, so wall-clock
medians there say more about the scheduler than about the code (the CPU clock still runs a
little slower on a loaded machine: shared caches).

    python bench/genotype_speed.py [--candidates 200] [--seed 0] [--clock wall|cpu]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script from a checkout: make `nas` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import nas
from nas.nb201 import nb201_params

NB201_OPS = ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"]
RESNET = "genotypes/search/resnet_cifar.yaml"
BUDGETS = {"nb201": 5.0, "resnet": 10.0}


def nb201_candidate(rng: random.Random) -> dict[str, Any]:
    e = [rng.choice(NB201_OPS) for _ in range(6)]
    return nb201_params(f"|{e[0]}~0|+|{e[1]}~0|{e[2]}~1|+|{e[3]}~0|{e[4]}~1|{e[5]}~2|")


def resnet_candidate(rng: random.Random) -> dict[str, Any]:
    return {
        "block": rng.choice(["cifar_basic", "basic_se", "bottleneck"]),
        "depths": [rng.randint(1, 18) for _ in range(3)],
        "widths": [rng.choice([16, 24, 32, 48, 64, 96, 128]) for _ in range(3)],
    }


CLOCK = time.perf_counter


def _ms(function: Callable[[], Any]) -> tuple[float, Any]:
    start = CLOCK()
    value = function()
    return (CLOCK() - start) * 1e3, value


def measure(source: str, candidates: list[tuple[dict[str, Any], dict[str, Any]]]) -> dict[str, float]:
    base = nas.load_genotype(source)
    times: dict[str, list[float]] = {"load+params": [], "with_params": [], "expand": [], "hash": [], "analyze": []}
    for loaded, params in candidates:
        times["load+params"].append(_ms(lambda: nas.load_genotype(source, **loaded).hash)[0])
        made, genotype = _ms(lambda: base.with_params(**params))
        expand, _ = _ms(lambda: genotype.graph)
        hashing, _ = _ms(lambda: genotype.hash)
        times["with_params"].append(made + expand + hashing)
        times["expand"].append(expand)
        times["hash"].append(hashing)
        times["analyze"].append(_ms(lambda: nas.analyze(genotype))[0])
    return {key: statistics.median(values) for key, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--candidates", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall")
    args = parser.parse_args()
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    rng = random.Random(args.seed)
    spaces = {
        "nb201": ("nb201", [(nb201_candidate(rng), nb201_candidate(rng)) for _ in range(args.candidates)]),
        "resnet": (RESNET, [(resnet_candidate(rng), resnet_candidate(rng)) for _ in range(args.candidates)]),
    }
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; {args.candidates} candidates each; "
          f"medians in ms of {args.clock} time")
    print(f"{'space':8} {'load+params':>11} {'with_params':>11} {'expand':>7} {'hash':>7} {'analyze':>8} {'x analyze':>9} {'budget':>7}")
    for name, (source, candidates) in spaces.items():
        row = measure(source, candidates)
        verdict = "ok" if row["with_params"] <= BUDGETS[name] else "over"
        print(
            f"{name:8} {row['load+params']:>11.1f} {row['with_params']:>11.1f} {row['expand']:>7.1f} "
            f"{row['hash']:>7.1f} {row['analyze']:>8.2f} {row['with_params'] / row['analyze']:>9.1f} "
            f"{BUDGETS[name]:>5.0f} {verdict}"
        )


if __name__ == "__main__":
    main()
