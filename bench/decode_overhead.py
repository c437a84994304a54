"""Overhead of a decoded genotype against torchvision's hand-written module.

For each network, builds our module from its genotype and torchvision's, copies the weights
(so both compute the same thing), and times one forward + backward pass on the same batch,
alternating ours and theirs in each repetition so drifts in machine load hit both. Prints the
median times and the median of the per-repetition ratios (ours / torchvision). Target: at most
1.03 for each network.

    python bench/decode_overhead.py [--batch 4] [--size 224] [--repeats 9] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torchvision

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
    model.zero_grad(set_to_none=True)
    start = time.perf_counter()
    model(batch).sum().backward()
    return time.perf_counter() - start


def measure(name: str, batch: torch.Tensor, repeats: int) -> tuple[float, float, float]:
    ours = nas.build_model(nas.load_genotype(name))
    theirs = NETWORKS[name]()
    nas.load_torchvision_weights(ours, theirs)
    ours.train()
    theirs.train()
    for _ in range(2):  # warm-up: allocator, kernels, first-call paths
        step_time(ours, batch)
        step_time(theirs, batch)
    our_times, their_times, ratios = [], [], []
    for repeat in range(repeats):
        pair = [(ours, our_times), (theirs, their_times)]
        if repeat % 2:
            pair.reverse()
        for model, times in pair:
            times.append(step_time(model, batch))
        ratios.append(our_times[-1] / their_times[-1])
    return statistics.median(our_times), statistics.median(their_times), statistics.median(ratios)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--networks", nargs="*", default=list(NETWORKS), choices=list(NETWORKS))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    batch = torch.randn(args.batch, 3, args.size, args.size)
    print(f"forward+backward, batch {args.batch}x3x{args.size}x{args.size}, CPU, {args.threads} threads, "
          f"median of {args.repeats} interleaved repetitions")
    print(f"{'network':<14}{'ours (ms)':>11}{'torchvision (ms)':>18}{'ratio':>8}  target <= {TARGET}")
    for name in args.networks:
        ours, theirs, ratio = measure(name, batch, args.repeats)
        verdict = "ok" if ratio <= TARGET else "over"
        print(f"{name:<14}{ours * 1e3:>11.1f}{theirs * 1e3:>18.1f}{ratio:>8.3f}  {verdict}")


if __name__ == "__main__":
    main()
