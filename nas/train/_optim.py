"""Optimizer and per-step learning-rate schedule from a :class:`TrainConfig`."""

from __future__ import annotations

import math

import torch
from torch import nn

from nas.train._config import TrainConfig

__all__ = ["make_optimizer", "make_schedule", "schedule_factor"]


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """SGD or AdamW over ``model``'s trainable parameters.

    Weight decay applies to tensors with two or more dimensions (conv and linear weights),
    not to biases or normalisation parameters. The update runs as one fused kernel per step
    where torch has one for the parameters' device (CPU and CUDA), else as ``foreach`` ops:
    either way a few calls per step instead of several per tensor (the per-tensor loop cost
    ~90 ms a step for ResNet-20 on a busy 2-core CPU, the fused step ~1 ms).
    """
    decay, no_decay = [], []
    for param in model.parameters():
        if param.requires_grad:
            (decay if param.dim() >= 2 else no_decay).append(param)
    groups = [
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    if config.optimizer == "adamw":
        make = lambda **kind: torch.optim.AdamW(groups, lr=config.lr, **kind)  # noqa: E731
    else:
        make = lambda **kind: torch.optim.SGD(  # noqa: E731
            groups, lr=config.lr, momentum=config.momentum, nesterov=config.nesterov, **kind
        )
    devices = {param.device.type for group in groups for param in group["params"]}
    if devices <= _FUSED_DEVICES:
        try:
            return make(fused=True)
        except RuntimeError:  # a device or dtype this torch build has no fused kernel for
            pass
    return make(foreach=True)


_FUSED_DEVICES = frozenset({"cpu", "cuda"})


def schedule_factor(config: TrainConfig, step: int, total_steps: int) -> float:
    """Multiplier of ``config.lr`` at ``step`` (0-based) of ``total_steps``.

    ``onecycle``: linear from 1/25 to 1 over the warm-up steps, then half a cosine to 0;
    ``cosine``: half a cosine from 1 to 0; ``constant``: 1.
    """
    if config.schedule == "constant":
        return 1.0
    warmup = round(config.warmup * total_steps) if config.schedule == "onecycle" else 0
    if step < warmup:
        start = 1.0 / 25.0
        return start + (1.0 - start) * step / warmup
    progress = (step - warmup) / max(1, total_steps - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def make_schedule(
    optimizer: torch.optim.Optimizer, config: TrainConfig, total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """A scheduler to step once per training step, following :func:`schedule_factor`."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: schedule_factor(config, step, total_steps)
    )
