"""Overhead of a decoded genotype against torchvision's hand-written module.

For each network, builds our module from its genotype and torchvision's, copies the weights
(so both compute the same thing), and times one forward + backward pass on the same batch,
alternating ours and theirs in each repetition (which goes first alternates too) so drifts in
machine load hit both. Each repetition gives one paired ratio, ours / torchvision.

Prints the median times, the median ratio and a 95% bootstrap interval for that median
(resampling the paired ratios, ``--bootstrap`` times, fixed seed). The verdict against the
target (at most 1.03) is given only when the interval is clear of it: ``ok`` when its upper
bound is at most the target, ``over`` when its lower bound is above, ``unsure`` otherwise (more
repetitions, or a quieter machine, are needed to tell). ``--control`` adds a row per network
timing torchvision's module against a second copy of itself: the ratio the bench reports
when there is nothing to find (it should be 1, and its interval shows the noise).

    python bench/decode_overhead.py [--batch 4] [--size 224] [--repeats 21] [--threads N]
                                    [--device cpu|cuda] [--networks resnet50 ...] [--control]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path

import torch
import torchvision

if __package__ in (None, ""):  # run as a script from a checkout: make `nas` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import nas

NETWORKS = {
    "resnet18": lambda: torchvision.models.resnet18(),
    "resnet50": lambda: torchvision.models.resnet50(),
    "mobilenet_v2": lambda: torchvision.models.mobilenet_v2(),
    "densenet121": lambda: torchvision.models.densenet121(),
    "googlenet": lambda: torchvision.models.googlenet(aux_logits=False, init_weights=False),
}
TARGET = 1.03


def step_time(model: torch.nn.Module, batch: torch.Tensor) -> float:
    """Seconds for one forward + backward pass (the device synchronised before and after)."""
    model.zero_grad(set_to_none=True)
    cuda = batch.device.type == "cuda"
    if cuda:
        torch.cuda.synchronize(batch.device)
    start = time.perf_counter()
    model(batch).sum().backward()
    if cuda:
        torch.cuda.synchronize(batch.device)
    return time.perf_counter() - start


def bootstrap_median(values: list[float], resamples: int, seed: int = 0) -> tuple[float, float]:
    """95% percentile-bootstrap interval of the median of ``values``."""
    rng = random.Random(seed)
    medians = sorted(
        statistics.median(rng.choices(values, k=len(values))) for _ in range(resamples)
    )
    return medians[int(0.025 * resamples)], medians[min(resamples - 1, int(0.975 * resamples))]


def verdict(low: float, high: float, target: float = TARGET) -> str:
    """``ok`` / ``over`` only when the interval ``[low, high]`` is clear of ``target``."""
    if high <= target:
        return "ok"
    if low > target:
        return "over"
    return "unsure"


def paired(ours: torch.nn.Module, theirs: torch.nn.Module, batch: torch.Tensor, repeats: int) -> tuple[list[float], list[float]]:
    """Interleaved step times of two modules, which runs first alternating per repetition."""
    ours.train()
    theirs.train()
    for _ in range(2):  # warm-up: allocator, kernels, first-call paths
        step_time(ours, batch)
        step_time(theirs, batch)
    our_times: list[float] = []
    their_times: list[float] = []
    for repeat in range(repeats):
        pair = [(ours, our_times), (theirs, their_times)]
        if repeat % 2:
            pair.reverse()
        for model, times in pair:
            times.append(step_time(model, batch))
    return our_times, their_times


def row(name: str, ours: list[float], theirs: list[float], resamples: int) -> str:
    ratios = [a / b for a, b in zip(ours, theirs)]
    low, high = bootstrap_median(ratios, resamples)
    return (
        f"{name:<22}{statistics.median(ours) * 1e3:>10.1f}{statistics.median(theirs) * 1e3:>18.1f}"
        f"{statistics.median(ratios):>8.3f}  [{low:.3f}, {high:.3f}]  {verdict(low, high)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--bootstrap", type=int, default=10_000, help="bootstrap resamples")
    parser.add_argument("--networks", nargs="*", default=list(NETWORKS), choices=list(NETWORKS))
    parser.add_argument("--control", action="store_true", help="also time torchvision against itself")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.exit(2, "decode_overhead.py: --device cuda: no CUDA device here\n")
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    batch = torch.randn(args.batch, 3, args.size, args.size, device=device)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {args.threads} threads"
    print(f"forward+backward, batch {args.batch}x3x{args.size}x{args.size}, {where}, {args.repeats} interleaved "
          f"repetitions; load average {os.getloadavg()[0]:.1f} at the start")
    print(f"{'network':<22}{'ours (ms)':>10}{'torchvision (ms)':>18}{'ratio':>8}  95% interval     target <= {TARGET}")
    for name in args.networks:
        make = NETWORKS[name]
        theirs = make().to(device)
        ours = nas.build_model(nas.load_genotype(name))
        nas.load_torchvision_weights(ours, theirs.cpu())
        ours, theirs = ours.to(device), theirs.to(device)
        print(row(name, *paired(ours, theirs, batch, args.repeats), args.bootstrap), flush=True)
        if args.control:
            twin = make()
            twin.load_state_dict(theirs.state_dict())
            twin = twin.to(device)
            print(row("  control: tv / tv", *paired(twin, theirs, batch, args.repeats), args.bootstrap), flush=True)
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
