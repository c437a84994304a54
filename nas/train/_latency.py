"""Measured latency: the median wall-clock time of one forward pass."""

from __future__ import annotations

import statistics
import time

import torch
from torch import nn

from nas import _checks
from nas.errors import ConfigError
from nas.train._config import resolve_device

__all__ = ["measure_latency"]


@torch.no_grad()
def measure_latency(
    model: nn.Module,
    input_shape: tuple[int, int, int],
    *,
    batch_size: int = 1,
    device: str = "auto",
    warmup: int = 10,
    repeats: int = 30,
    channels_last: bool = False,
) -> float:
    """Median seconds per forward pass of ``model`` on a random ``[batch_size, *input_shape]``
    batch, in eval mode without gradients, after ``warmup`` untimed passes.

    On CUDA each pass is bracketed by ``torch.cuda.synchronize`` so the time is the
    device's, not the launch's. The model is moved to ``device``; its train/eval mode is
    restored afterwards.

    Raises:
        ConfigError: a ``batch_size``, ``repeats`` or ``warmup`` that is not an integer
            within :data:`nas._checks.LATENCY_BOUNDS` (a batch of 1 to 1,024 images, 1 to
            1,000 timed and 0 to 1,000 untimed passes: a run's ``latency`` section's bounds),
            an unusable device, or an ``input_shape`` other than the genotype's of a model
            built by :func:`nas.build_model`.
        TypeError: ``model`` is not a torch module.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    expected = getattr(getattr(model, "genotype", None), "input_shape", None)
    if expected is not None and tuple(input_shape) != tuple(expected):
        raise ConfigError(f"the model takes {tuple(expected)}, got {tuple(input_shape)}", path="input_shape")
    given = {"batch_size": batch_size, "repeats": repeats, "warmup": warmup}
    for key, (low, high) in _checks.LATENCY_BOUNDS.items():
        given[key] = _checks.number(given[key], path=key, low=low, high=high, integer=True)
    batch_size, repeats, warmup = given["batch_size"], given["repeats"], given["warmup"]
    target = resolve_device(device)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model.to(device=target, memory_format=memory_format)
    x = torch.randn(batch_size, *input_shape, device=target).contiguous(memory_format=memory_format)
    sync = torch.cuda.synchronize if target.type == "cuda" else (lambda: None)
    was_training = model.training
    model.eval()
    try:
        for _ in range(warmup):
            model(x)
        times = []
        for _ in range(repeats):
            sync()
            start = time.perf_counter()
            model(x)
            sync()
            times.append(time.perf_counter() - start)
    finally:
        model.train(was_training)
    return statistics.median(times)
