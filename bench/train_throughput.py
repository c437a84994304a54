"""Training throughput: our proxy loop against a plain ``torch.utils.data.DataLoader`` loop.

Both train the same CIFAR ResNet-20 (3 stages of 3 basic blocks, 16/32/64 channels) from the
same initial weights with the same optimizer (SGD, Nesterov momentum 0.9, weight decay 5e-4)
on the same synthetic 3x32x32 images, batch 256, with the same augmentation: random crop 32
with 4 pixels of padding, random horizontal flip, normalisation.

- DataLoader loop: a map-style dataset over the uint8 tensor applying torchvision's
  per-sample transforms (ConvertImageDtype, RandomCrop(32, padding=4), RandomHorizontalFlip,
  Normalize), ``num_workers=0``, NCHW float32 model: the textbook loop.
- Proxy loop: ``nas.train.train_model`` itself (device-resident uint8 data, batched on-device
  crop/flip, fused normalisation), once in NCHW float32 to isolate the data pipeline, once
  channels-last float32, and once with its defaults (channels-last, and bf16 autocast where
  the hardware computes bf16 natively: CUDA, or a CPU with AMX; float32 elsewhere).

Both validate on the same 256 images after each epoch (the DataLoader loop as torchvision's
reference training script does: a DataLoader with the Normalize transform, no autograd), and
the epoch time includes it: the same work on both sides.

Each run trains two epochs and times the second (the first warms up oneDNN's kernels); the
loops run interleaved in a rotating order, ``--runs`` times, and the table shows the median
images per second, and the median and range over the runs of the ratio to the DataLoader loop
measured in the same run (paired, so a change of machine load between runs cancels out). The "data only" rows time producing the batches without
training. All use the same number of threads (``--threads``, default torch's).

Usage::

    python bench/train_throughput.py [--runs 5] [--images 1536] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

if __package__ in (None, ""):  # run as a script from a checkout: make `nas` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nas.data import Dataset, DeviceLoader, load_dataset
from nas.train import TrainConfig, train_model
from nas.train._loop import native_bf16
from nas.train._optim import make_optimizer

BATCH = 256


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


def resnet20(in_channels: int = 3, classes: int = 10) -> nn.Module:
    """He et al.'s CIFAR ResNet-20 (1x1-conv shortcuts where the shape changes)."""
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False),
        nn.BatchNorm2d(16),
        nn.ReLU(),
    ]
    cin = 16
    for cout, stride in ((16, 1), (32, 2), (64, 2)):
        for i in range(3):
            layers.append(BasicBlock(cin, cout, stride if i == 0 else 1))
            cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, classes)]
    return nn.Sequential(*layers)


class _TransformedTensors(torch.utils.data.Dataset):
    """A TensorDataset whose images go through per-sample transforms."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform: Callable):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.transform(self.images[i]), self.labels[i]


def dataloader(data: Dataset, seed: int) -> torch.utils.data.DataLoader:
    import torchvision.transforms as T

    transform = T.Compose(
        [
            T.ConvertImageDtype(torch.float32),
            T.RandomCrop(32, padding=4),
            T.RandomHorizontalFlip(),
            T.Normalize(data.mean, data.std),
        ]
    )
    dataset = _TransformedTensors(data.train_images, data.train_labels, transform)
    generator = torch.Generator().manual_seed(seed)
    return torch.utils.data.DataLoader(
        dataset, batch_size=BATCH, shuffle=True, drop_last=True, num_workers=0, generator=generator
    )


def val_dataloader(data: Dataset) -> torch.utils.data.DataLoader:
    """The validation images, normalised, in batches of twice the training batch (as the proxy
    loop validates)."""
    import torchvision.transforms as T

    transform = T.Compose([T.ConvertImageDtype(torch.float32), T.Normalize(data.mean, data.std)])
    dataset = _TransformedTensors(data.val_images, data.val_labels, transform)
    return torch.utils.data.DataLoader(dataset, batch_size=2 * BATCH, num_workers=0)


def config(**changes: object) -> TrainConfig:
    base = TrainConfig(
        epochs=2, batch_size=BATCH, lr=0.1, schedule="constant", device="cpu", seed=0
    )
    return base.replace(**changes)


def plain_loop(model: nn.Module, data: Dataset) -> float:
    """Images per second of the second of two epochs (each validated) of the textbook loop."""
    loader, val_loader = dataloader(data, seed=0), val_dataloader(data)
    optimizer = make_optimizer(model, config())
    seconds = 0.0
    for epoch in range(2):
        start = time.perf_counter()
        model.train()
        for x, y in loader:
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            sum(int((model(x).argmax(1) == y).sum()) for x, y in val_loader)  # right answers
        seconds = time.perf_counter() - start
    return len(loader) * BATCH / seconds


def proxy_loop(model: nn.Module, data: Dataset, **changes: object) -> float:
    """Images per second of the second of two epochs of ``train_model``."""
    result = train_model(model, data, config(**changes))
    steps = len(data.train_labels) // BATCH
    return steps * BATCH / result.history[-1].seconds


def data_only_dataloader(data: Dataset) -> float:
    loader = dataloader(data, seed=0)
    start = time.perf_counter()
    count = sum(len(y) for _, y in loader)
    return count / (time.perf_counter() - start)


def data_only_proxy(data: Dataset) -> float:
    loader = DeviceLoader(
        data.train_images,
        data.train_labels,
        batch_size=BATCH,
        mean=data.mean,
        std=data.std,
        shuffle=True,
        crop_padding=4,
        flip=True,
        drop_last=True,
    )
    start = time.perf_counter()
    count = sum(len(y) for _, y in loader)
    return count / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="interleaved runs (default 5)")
    parser.add_argument("--images", type=int, default=6 * BATCH, help="training images")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    data = load_dataset(
        "synthetic",
        num_images=args.images,
        test_images=256,
        shape=(3, 32, 32),
        val_split="test",
    )
    torch.manual_seed(0)
    initial = resnet20().state_dict()

    def fresh() -> nn.Module:
        model = resnet20()
        model.load_state_dict(initial)
        return model

    loops: dict[str, Callable[[], float]] = {
        "DataLoader loop (per-sample transforms)": lambda: plain_loop(fresh(), data),
        "proxy loop, NCHW float32": lambda: proxy_loop(fresh(), data, channels_last=False, amp=False),
        "proxy loop, channels-last float32": lambda: proxy_loop(fresh(), data, amp=False),
        f"proxy loop, default ({'bf16' if native_bf16(torch.device('cpu')) else 'float32'} here)":
            lambda: proxy_loop(fresh(), data),
        "data only: DataLoader": lambda: data_only_dataloader(data),
        "data only: DeviceLoader": lambda: data_only_proxy(data),
    }
    rates: dict[str, list[float]] = {name: [] for name in loops}
    names = list(loops)
    for run in range(args.runs):
        # Rotate the order each run, so no loop always runs first (or after the same one).
        for name in names[run % len(names) :] + names[: run % len(names)]:
            rates[name].append(loops[name]())
    print(
        f"ResNet-20, synthetic 3x32x32, batch {BATCH}, {len(data.train_labels)} images/epoch, "
        f"CPU, {args.threads} threads, {args.runs} interleaved runs; load average "
        f"{os.getloadavg()[0]:.1f} at the end"
    )
    width = max(map(len, loops))
    print(f"{'loop':<{width}}  {'images/s':>9}  {'ratio':>6}  {'per run':>13}")
    baselines = {"DataLoader loop": "DataLoader loop (per-sample transforms)",
                 "data only": "data only: DataLoader"}
    for name, values in rates.items():
        base = rates[baselines["data only" if name.startswith("data only") else "DataLoader loop"]]
        ratios = [value / reference for value, reference in zip(values, base)]  # paired: same run
        print(f"{name:<{width}}  {statistics.median(values):>9.0f}  {statistics.median(ratios):>5.2f}x"
              f"  {min(ratios):>5.2f}-{max(ratios):.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
