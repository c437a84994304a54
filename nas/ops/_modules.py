"""Torch modules and functions for primitives that ``torch.nn`` does not have.

Every module here is scriptable, traceable by ``torch.fx`` and exportable to ONNX.
"""

from __future__ import annotations

from typing import List, Tuple

import torch
from torch import Tensor, nn
from torch.nn import functional as F


def drop_path(x: Tensor, p: float, training: bool) -> Tensor:
    """Zero whole samples with probability ``p`` and rescale the rest by ``1 / (1 - p)``
    (torchvision's ``stochastic_depth`` in ``row`` mode)."""
    if not training or p == 0.0:
        return x
    keep = 1.0 - p
    size = [x.shape[0]] + [1] * (x.dim() - 1)
    noise = torch.empty(size, dtype=x.dtype, device=x.device).bernoulli_(keep)
    return x * noise.div_(keep)


torch.fx.wrap("drop_path")  # its size arithmetic is not symbolically traceable


class Add(nn.Module):
    """Sum of the inputs; with ``inplace`` the first input is overwritten."""

    def __init__(self, inplace: bool = False):
        super().__init__()
        self.inplace = inplace

    def forward(self, inputs: List[Tensor]) -> Tensor:
        out = inputs[0]
        if self.inplace:
            for other in inputs[1:]:
                out += other
        else:
            for other in inputs[1:]:
                out = out + other
        return out


class Mean(nn.Module):
    """Element-wise mean of the inputs."""

    def forward(self, inputs: List[Tensor]) -> Tensor:
        out = inputs[0]
        for other in inputs[1:]:
            out = out + other
        return out / len(inputs)


class Join(nn.Module):
    """Mean of the inputs; while training each is dropped with probability ``p`` and the mean
    is taken over the survivors (one input, drawn at random, survives when none would)."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, inputs: List[Tensor]) -> Tensor:
        first = inputs[0]
        count = len(inputs)
        if self.training and self.p > 0.0:
            keep = (torch.rand(count, device=first.device) >= self.p).to(first.dtype)
            pick = torch.randint(count, (1,), device=first.device)
            fallback = (torch.arange(count, device=first.device) == pick).to(first.dtype)
            keep = torch.where(keep.sum() > 0, keep, fallback)
            weights = keep / keep.sum()
        else:
            weights = torch.full((count,), 1.0 / count, dtype=first.dtype, device=first.device)
        out = first * weights[0]
        for index in range(1, count):
            out = out + inputs[index] * weights[index]
        return out

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Multiply(nn.Module):
    """Element-wise product of the inputs (broadcasting gates)."""

    def forward(self, inputs: List[Tensor]) -> Tensor:
        out = inputs[0]
        for other in inputs[1:]:
            out = out * other
        return out


class Concat(nn.Module):
    """Concatenation along channels."""

    def forward(self, inputs: List[Tensor]) -> Tensor:
        return torch.cat(inputs, 1)


class SeparableConv2d(nn.Module):
    """Depthwise convolution followed by a pointwise one."""

    def __init__(self, cin: int, cout: int, kernel, stride, padding, dilation, bias: bool):
        super().__init__()
        self.depthwise = nn.Conv2d(cin, cin, kernel, stride, padding, dilation, groups=cin, bias=bias)
        self.pointwise = nn.Conv2d(cin, cout, 1, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.pointwise(self.depthwise(x))


class GlobalAvgPool2d(nn.Module):
    """``(N, C, H, W) -> (N, C)``."""

    def forward(self, x: Tensor) -> Tensor:
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)


def adaptive_bins(size: int, out: int) -> List[Tuple[int, int]]:
    """The ``(start, end)`` of each of ``out`` bins over ``size`` positions, as
    ``adaptive_avg_pool2d`` takes them (``floor(i * size / out)`` to ``ceil((i + 1) * size /
    out)``: neighbouring bins overlap when ``out`` does not divide ``size``)."""
    return [((i * size) // out, -((-(i + 1) * size) // out)) for i in range(out)]


class AdaptiveAvgPool2d(nn.Module):
    """``F.adaptive_avg_pool2d`` to ``size`` for a fixed input ``(H, W)``, computed as the mean
    of each row bin, then of each column bin (the mean over a rectangle). The ONNX exporter
    refuses torch's operator when the output size does not divide the input size
    (AlexNet's 6 x 6 from 11 x 11); these slices and means export at any size. An input of
    another size goes to torch's operator (the slices hold for ``input_size`` only)."""

    def __init__(self, size: Tuple[int, int], input_size: Tuple[int, int]):
        super().__init__()
        self.size = size
        self.input_size = input_size
        self.rows = adaptive_bins(input_size[0], size[0])
        self.cols = adaptive_bins(input_size[1], size[1])

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-2] != self.input_size[0] or x.shape[-1] != self.input_size[1]:
            return F.adaptive_avg_pool2d(x, self.size)
        rows: List[Tensor] = []
        for start, end in self.rows:
            rows.append(x[:, :, start:end].mean(dim=2, keepdim=True))
        x = torch.cat(rows, dim=2)
        cols: List[Tensor] = []
        for start, end in self.cols:
            cols.append(x[:, :, :, start:end].mean(dim=3, keepdim=True))
        return torch.cat(cols, dim=3)

    def extra_repr(self) -> str:
        return f"output_size={self.size}"


class DropPath(nn.Module):
    """Drop whole samples with probability ``p`` while training, rescaling the survivors."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        return drop_path(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Zero(nn.Module):
    """Zeros shaped like the input, sub-sampled by ``stride``, with ``channels`` channels."""

    def __init__(self, stride: int, channels: int):
        super().__init__()
        self.stride = stride
        self.channels = channels

    def forward(self, x: Tensor) -> Tensor:
        x = x[:, :1, :: self.stride, :: self.stride]
        return x.mul(0.0).expand(-1, self.channels, -1, -1).contiguous()

    def extra_repr(self) -> str:
        return f"stride={self.stride}, channels={self.channels}"


class Chunk(nn.Module):
    """The ``index``-th of ``chunks`` equal channel groups."""

    def __init__(self, chunks: int, index: int):
        super().__init__()
        self.chunks = chunks
        self.index = index

    def forward(self, x: Tensor) -> Tensor:
        return x.chunk(self.chunks, 1)[self.index]


class Crop(nn.Module):
    """Rows ``top:bottom`` and columns ``left:right`` of the input."""

    def __init__(self, top: int, bottom: int, left: int, right: int):
        super().__init__()
        self.top, self.bottom, self.left, self.right = top, bottom, left, right

    def forward(self, x: Tensor) -> Tensor:
        return x[:, :, self.top : self.bottom, self.left : self.right]

    def extra_repr(self) -> str:
        return f"rows={self.top}:{self.bottom}, columns={self.left}:{self.right}"


class Scale(nn.Module):
    def __init__(self, factor: float):
        super().__init__()
        self.factor = factor

    def forward(self, x: Tensor) -> Tensor:
        return x * self.factor

    def extra_repr(self) -> str:
        return f"factor={self.factor}"


class ChannelShuffle(nn.Module):
    def __init__(self, groups: int):
        super().__init__()
        self.groups = groups

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.size(0), x.size(1), x.size(2), x.size(3)
        x = x.view(n, self.groups, c // self.groups, h, w)
        return torch.transpose(x, 1, 2).contiguous().view(n, c, h, w)

    def extra_repr(self) -> str:
        return f"groups={self.groups}"


class SqueezeExcite(nn.Module):
    """Channel gating from globally pooled features (Hu et al., 2018)."""

    def __init__(self, channels: int, squeeze: int, activation: nn.Module, gate: nn.Module):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.act = activation
        self.fc2 = nn.Conv2d(squeeze, channels, 1)
        self.gate = gate

    def forward(self, x: Tensor) -> Tensor:
        scale = F.adaptive_avg_pool2d(x, 1)
        scale = self.gate(self.fc2(self.act(self.fc1(scale))))
        return x * scale
