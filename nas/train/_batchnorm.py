"""Batch-norm recalibration: re-estimate running statistics from a few training batches.

After a short proxy run (tens of steps) a batch norm's running statistics, updated with
momentum 0.1 from their initial values (mean 0, variance 1), still hold a large share of
those initial values, so eval-mode outputs can be nearly constant and the validation
accuracy noise. Recalibrating replaces them with the statistics of the trained weights.
Does not change any weight: only the running buffers of batch norms.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

import torch
from torch import nn

__all__ = ["recalibrate_batchnorm"]


def recalibrate_batchnorm(
    model: nn.Module, batches: Iterable[torch.Tensor], *, amp: bool = False
) -> int:
    """Re-estimate the running statistics of every batch norm in ``model`` from ``batches``.

    Every batch-norm module that tracks running statistics (``BatchNorm1d/2d/3d``,
    ``SyncBatchNorm``, lazy variants) has its statistics reset and its momentum set to
    ``None`` (a cumulative average); the model then runs forward in train mode, without
    autograd, over ``batches``; afterwards each module's momentum and train/eval mode are
    restored. The new ``running_mean`` is the mean over the batches of each batch's mean, and
    ``running_var`` the mean of each batch's unbiased variance (torch's cumulative rule);
    ``num_batches_tracked`` is the number of batches.

    Weights do not change. Other modules run in train mode too (dropout is active but its
    output only feeds the statistics); the global RNG is restored afterwards, so the caller's
    random stream is the same with or without recalibration.

    Args:
        model: The network; batches are fed to it as they are (same device and layout).
        batches: Input tensors, or ``(input, label)`` pairs (the label is ignored). Each
            batch needs at least two images (a batch norm in train mode rejects one).
        amp: Run the forward passes under bf16 autocast (as the training did).

    Returns:
        The number of batches used. With no batches, or no batch norm that tracks running
        statistics, nothing changes and the result is 0.

    Raises:
        TypeError: ``batches`` is one tensor (iterating it would feed single images: for one
            batch, pass ``[batch]``).
    """
    if isinstance(batches, torch.Tensor):
        raise TypeError(f"batches must be an iterable of batches, got one tensor of shape {tuple(batches.shape)} "
                        "(for one batch: [batch])")
    norms = [
        m for m in model.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats
    ]
    iterator = iter(batches)
    first = next(iterator, None)
    if not norms or first is None:
        return 0
    modes = [(m, m.training) for m in model.modules()]
    momenta = [(m, m.momentum) for m in norms]
    device = next(iter(model.parameters()), norms[0].running_mean).device
    devices = [device.index or 0] if device.type == "cuda" else []
    count = 0
    try:
        for norm in norms:
            norm.reset_running_stats()
            norm.momentum = None
        model.train()
        with torch.random.fork_rng(devices=devices), torch.no_grad():
            for batch in _chain(first, iterator):
                x = batch[0] if isinstance(batch, (tuple, list)) else batch
                autocast = (
                    torch.autocast(x.device.type, dtype=torch.bfloat16)
                    if amp else contextlib.nullcontext()
                )
                with autocast:
                    model(x)
                count += 1
    finally:
        for norm, momentum in momenta:
            norm.momentum = momentum
        for module, training in modes:
            module.training = training
    return count


def _chain(first: object, rest: Iterable[object]) -> Iterable[object]:
    yield first
    yield from rest
