"""A five-minute check of a GPU machine: searches on ``cuda`` with bf16 autocast and
channels-last, one worker process per device, each seeing only its own.

Runs, as is, with the checkout and the shared data next to it:

1. the quickstart (``search_spaces/quickstart.yaml``: digits, tiny CIFAR ResNets), on
   ``cuda`` instead of the CPU, ``devices: auto``, 60 s;
2. the CIFAR-10 quick search of ``bench/cifar10_search.py`` (``search_spaces/resnet.yaml`` on the
   shared CIFAR-10 archive, its ``("cuda", quick)`` budget), ``devices: auto``, 150 s.

Printed per search: the devices (``torch.cuda.get_device_name`` of each, and the
``CUDA_VISIBLE_DEVICES`` each trial's worker saw, from the trial records), trials finished and
per minute, training images per second (summed over the trials' epochs and training time),
and the best validation accuracy. Without a CUDA device it says so and exits with status 1:
nothing is checked on a CPU.

    python bench/gpu_check.py [--runs DIR] [--data CIFAR10_ARCHIVE] [--trials-per-device N]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

DATA = ROOT.parent / "shared" / "data" / "cifar10" / "cifar10-jpeg.tar.gz"
GPU_TRAIN = {"device": "cuda", "amp": True, "channels_last": True}


def quickstart_config(out: Path) -> Path:
    import yaml

    shipped = ROOT / "search_spaces" / "quickstart.yaml"
    config = yaml.safe_load(shipped.read_text())
    config["space"]["genotype"] = str((shipped.parent / config["space"]["genotype"]).resolve())
    config.update(name="gpu_quickstart", train={**config["train"], **GPU_TRAIN}, devices="auto",
                  trials=200, timeout=60, threads=None)
    config.pop("workers", None)
    path = out / "gpu_quickstart.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def cifar10_config(out: Path, data: Path) -> Path:
    import yaml

    from cifar10_search import BUDGETS, bench_config

    budget = dict(BUDGETS[("cuda", True)], trials=200, timeout=150)
    path = bench_config("resnet", data, budget, "cuda", out)
    config = yaml.safe_load(path.read_text())
    config.update(name="gpu_cifar10", train={**config["train"], **GPU_TRAIN}, devices="auto")
    config.pop("workers", None)
    config.pop("retrain", None)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def report(title: str, run_dir: Path, elapsed: float, train_images: int) -> None:
    from nas.search import read_trials

    records = [r for r in read_trials(run_dir) if r["counted"]]
    trained = [r for r in records if r.get("train_time")]
    images = sum(r["epochs"] * train_images for r in trained)
    seconds = sum(r["train_time"] for r in trained)
    seen = Counter(r.get("cuda_visible_devices") for r in records)
    accuracies = [r["objectives"].get("val_accuracy") for r in records if r["state"] == "complete"]
    best = max((a for a in accuracies if a is not None), default=None)
    print(f"\n{title}: {len(records)} trials in {elapsed:.0f} s ({60 * len(records) / elapsed:.1f} per minute), "
          f"{len(trained)} trained")
    print(f"  CUDA_VISIBLE_DEVICES seen by the workers (trials each): {dict(seen)}")
    print(f"  training throughput: {images / seconds:,.0f} images/s per worker on average "
          f"({images:,} images in {seconds:.0f} s of training)" if seconds else "  no trial trained")
    print(f"  best validation accuracy: {best:.4f}" if best is not None else "  no complete trial")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "gpu_check")
    parser.add_argument("--data", type=Path, default=DATA, help=f"CIFAR-10 archive (default {DATA})")
    parser.add_argument("--trials-per-device", type=int, default=1)
    args = parser.parse_args()

    import torch

    if not torch.cuda.is_available() or torch.cuda.device_count() == 0:
        print("no CUDA GPU visible (torch.cuda.is_available() is False): nothing was checked. "
              "Run this on a machine with a GPU and a CUDA build of torch.")
        return 1
    count = torch.cuda.device_count()
    print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, {count} device(s):")
    for i in range(count):
        print(f"  cuda:{i}: {torch.cuda.get_device_name(i)}, bf16 "
              f"{'native' if torch.cuda.is_bf16_supported() else 'emulated'}")
    print(f"one worker per device x {args.trials_per_device}; bf16 autocast, channels-last")

    from nas.search import load_config, run_search
    from nas.search._evaluate import load_run_dataset

    shutil.rmtree(args.runs, ignore_errors=True)
    args.runs.mkdir(parents=True)
    searches = [("quickstart on cuda", quickstart_config(args.runs))]
    if args.data.exists():
        searches.append(("CIFAR-10 quick search on cuda", cifar10_config(args.runs, args.data)))
    else:
        print(f"{args.data}: not found; the CIFAR-10 search is left out (pass --data)")
    for title, path in searches:
        config = load_config(path)
        train_images = int(load_run_dataset(config).train_images.shape[0])
        started = time.time()
        summary = run_search(config, runs_dir=args.runs, trials_per_device=args.trials_per_device,
                             progress=False)
        report(title, summary.run_dir, time.time() - started, train_images)
    return 0


if __name__ == "__main__":
    sys.exit(main())
