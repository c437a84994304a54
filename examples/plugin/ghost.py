"""An example nas plugin: GhostNet's ghost module as an op, a stripes dataset, and a block
library using the op.

Load it from a run config (``plugins: [ghost.py]``, as ``search.yaml`` here does) or on the
command line (``nas COMMAND ... --plugin examples/plugin/ghost.py``); ``nas check-op ghost
--plugin examples/plugin/ghost.py`` checks the op's static rule against its torch module.

- op ``ghost(c, k=1, s=1, ratio=2, dw=3, relu=True)``: a ``k x k`` convolution makes
  ``ceil(c / ratio)`` "intrinsic" channels, a cheap ``dw x dw`` depthwise convolution makes
  ``ratio - 1`` "ghosts" of each, and the first ``c`` channels of both are the output; each
  convolution has batch norm and (with ``relu``) ReLU (Han et al., GhostNet, CVPR 2020).
- dataset ``stripes``: seeded grey images of stripes in one of four orientations (the class),
  at a random frequency and phase, with pixel noise; no download (ghostnet_tiny.yaml reaches
  100% validation accuracy in two epochs on 600 images).
- block library folder ``blocks/`` (``imports: [ghost_blocks.yaml]`` finds it).
- sampler ``quick_tpe(startup=2)``: Optuna's multivariate TPE modelling after ``startup``
  trials instead of ten, for budgets of a handful of trials.
"""

from __future__ import annotations

import math
from pathlib import Path

import optuna
import torch
from torch import nn

from nas.data import RawData, register_dataset
from nas.errors import ConfigError, GenotypeError
from nas.genotype import register_library
from nas.ops import Arg, Example, Op, OpInfo, register
from nas.samplers import register_sampler


@register
class Ghost(Op):
    """GhostNet's ghost module: intrinsic channels by a convolution, ghosts by a cheap
    depthwise one, concatenated and cut to ``c`` channels."""

    name = "ghost"
    args = (
        Arg("c", "int", doc="output channels"),
        Arg("k", "int", 1, doc="kernel of the primary convolution"),
        Arg("s", "int", 1, doc="stride of the primary convolution"),
        Arg("ratio", "int", 2, minimum=2, doc="output channels per intrinsic channel"),
        Arg("dw", "int", 3, doc="kernel of the cheap depthwise convolution"),
        Arg("relu", "bool", True, doc="ReLU after each convolution"),
    )
    example = Example({"c": 16, "k": 1, "ratio": 2}, ((8, 9, 9),))

    def infer(self, args, shapes):
        if len(shapes[0]) != 3:
            raise GenotypeError(f"ghost needs a (C, H, W) input, got {shapes[0]}")
        cin, height, width = shapes[0]
        k, s = args["k"], args["s"]
        if k > height + 2 * (k // 2) or k > width + 2 * (k // 2):
            raise GenotypeError(f"ghost: kernel {k} does not fit a {height}x{width} input")
        height, width = (height + 2 * (k // 2) - k) // s + 1, (width + 2 * (k // 2) - k) // s + 1
        intrinsic = math.ceil(args["c"] / args["ratio"])
        ghosts = intrinsic * (args["ratio"] - 1)
        primary, cheap = cin * intrinsic * k * k, ghosts * args["dw"] ** 2
        params = primary + cheap + 2 * (intrinsic + ghosts)  # two batch norms
        return OpInfo((args["c"], height, width), params, (primary + cheap) * height * width)

    def build(self, args, shapes, context):
        return GhostModule(shapes[0][0], args["c"], args["k"], args["s"], args["ratio"],
                           args["dw"], args["relu"])


class GhostModule(nn.Module):
    """The ghost op's torch module (arguments as the op's)."""

    def __init__(self, cin: int, cout: int, k: int, s: int, ratio: int, dw: int, relu: bool):
        super().__init__()
        intrinsic = math.ceil(cout / ratio)
        ghosts = intrinsic * (ratio - 1)
        act = [nn.ReLU(inplace=True)] if relu else []
        self.cout = cout
        self.primary = nn.Sequential(nn.Conv2d(cin, intrinsic, k, s, k // 2, bias=False),
                                     nn.BatchNorm2d(intrinsic), *act)
        self.cheap = nn.Sequential(nn.Conv2d(intrinsic, ghosts, dw, 1, dw // 2, groups=intrinsic,
                                             bias=False), nn.BatchNorm2d(ghosts), *act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.primary(x)
        return torch.cat([y, self.cheap(y)], dim=1)[:, : self.cout]


def _check_stripes(*, num_images: int = 600, size: int = 12, noise: float = 40.0,
                   data_seed: int = 0) -> None:
    if not 8 <= num_images <= 100_000:
        raise ConfigError(f"must be 8 to 100,000, got {num_images!r}", path="num_images")
    if not 4 <= size <= 256:
        raise ConfigError(f"must be 4 to 256, got {size!r}", path="size")


_ORIENTATIONS = ("horizontal", "vertical", "diagonal", "antidiagonal")


@register_dataset("stripes", check=_check_stripes)
def load_stripes(*, num_images: int = 600, size: int = 12, noise: float = 40.0,
                 data_seed: int = 0) -> RawData:
    """``num_images`` grey ``size x size`` images of stripes, one of four orientations (the
    class), at a random frequency and phase, plus Gaussian noise (0..255 scale); seeded by
    ``data_seed``. No official test split."""
    import torch

    _check_stripes(num_images=num_images, size=size, noise=noise, data_seed=data_seed)
    generator = torch.Generator().manual_seed(data_seed)
    labels = torch.arange(num_images) % len(_ORIENTATIONS)
    labels = labels[torch.randperm(num_images, generator=generator)]
    rows, cols = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    directions = torch.stack([rows, cols, rows + cols, rows - cols]).float()  # per orientation
    frequency = 0.6 + 0.8 * torch.rand(num_images, 1, 1, generator=generator)
    phase = 2 * math.pi * torch.rand(num_images, 1, 1, generator=generator)
    wave = torch.sin(directions[labels] * frequency + phase)
    pixels = 127.5 + 100 * wave + noise * torch.randn(num_images, size, size, generator=generator)
    images = pixels.round().clamp(0, 255).to(torch.uint8).unsqueeze(1)
    return RawData(images, labels.to(torch.int64), len(_ORIENTATIONS), classes=_ORIENTATIONS)


@register_sampler("quick_tpe", multi_objective=True)
def quick_tpe(*, seed: int | None = None, startup: int = 2) -> optuna.samplers.TPESampler:
    """Multivariate TPE that models the results after ``startup`` trials (Optuna's default
    waits for ten); ``seed`` is each worker's own."""
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup, multivariate=True,
                                      constant_liar=True)


register_library(Path(__file__).resolve().parent / "blocks")
