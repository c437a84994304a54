"""Time to accept or refuse hostile genotype files just under the 1 MiB cap.

For each generated file, runs ``python -m nas validate FILE`` in a subprocess and reports its
wall and CPU time (user + system of the child), the outcome, and the CPU time relative to the
baseline measured in the same run: ``python -m nas validate`` of a 3-line genotype (start-up
and imports, which every call pays). Budget: at most 5 s of CPU per file on one core (the
issue's target; before the fix, a 116,000-primitive chain took 224 s).

    python bench/hostile_files.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUDGET = 5.0

HEADER = "input: [3, 8, 8]\n"


def _call_tree(blocks: int, fanout: int) -> str:
    lines = ["blocks:"]
    for index in range(blocks):
        body = f"seq({', '.join([f'b{index + 1}'] * fanout)})" if index + 1 < blocks else "seq()"
        lines.append(f"  b{index}:\n    nodes: ['{body}']")
    return HEADER + "\n".join(lines) + "\nnetwork: [b0, relu]\n"


FILES = {
    "baseline (3 lines)": HEADER + "network: [relu]\n",
    "chain of 116,000 relu": "input: [1, 1, 1]\nnetwork:\n" + "  - relu\n" * 116_000,
    "chain of 49,000 conv (valid)": "input: [1, 1, 1]\nnetwork:\n" + "  - conv(1, k=1)\n" * 49_000,
    "fan-out of 69,000 relu": HEADER + "network:\n" + "  - relu <- in\n" * 69_000,
    "flow list of 520,000 ints": "params: {a: [" + ",".join(["1"] * 520_000) + "]}\nnetwork: [relu]\n",
    "named DAG of 40,000 nodes (valid)": "input: [1, 1, 1]\nnetwork:\n"
    + "".join(f"  n{i}: relu <- {'in' if i == 0 else f'n{i - 1}'}\n" for i in range(40_000)),
    "2^30 block calls": _call_tree(30, 2),
    "repeats of empty repeats": HEADER + "network: ['repeat(999, repeat(999, repeat(999, seq())))']\n",
    "YAML nested 500,000 deep": "[" * 500_000 + "]" * 500_000 + "\n",
    "block mapping of 30,000 blocks": "blocks:\n"
    + "".join(f"  b{i}: [relu]\n" for i in range(30_000)) + "network: [relu]\n",
}


def run(path: Path) -> tuple[float, float, int, str]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "nas", "validate", str(path)], capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=600,
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    line = (result.stderr or result.stdout).strip().splitlines()[-1]
    outcome = "ok" if result.returncode == 0 else line.split(": ", 1)[-1][:60]
    return wall, cpu, result.returncode, outcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; budget {BUDGET:.0f} s CPU per file")
    print(f"{'file':34} {'bytes':>9} {'wall s':>7} {'cpu s':>6} {'x base':>6} {'exit':>4}  outcome")
    base = None
    with tempfile.TemporaryDirectory() as folder:
        for name, text in FILES.items():
            assert len(text.encode()) <= 1 << 20, name
            path = Path(folder) / "file.yaml"
            path.write_text(text)
            runs = [run(path) for _ in range(args.repeats)]
            wall = statistics.median(r[0] for r in runs)
            cpu = statistics.median(r[1] for r in runs)
            base = cpu if base is None else base
            flag = "" if cpu <= BUDGET else "  OVER BUDGET"
            print(f"{name:34} {len(text):>9,} {wall:>7.2f} {cpu:>6.2f} {cpu / base:>6.1f} {runs[0][2]:>4}  {runs[0][3]}{flag}")


if __name__ == "__main__":
    main()
