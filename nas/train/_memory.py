"""Training memory checked against the machine's before a run on the CPU starts.

On the CPU, running out of memory is not always an error a run can catch: past what the
kernel can give, Linux's out-of-memory killer ends the process (a search with it, and a
resumed search meets the same candidate again). So a batch whose static estimate
(:meth:`nas.analysis.Stats.training_bytes`, a lower bound) exceeds the memory the kernel
reports available is refused before the model is built. On CUDA an out-of-memory error is
raised and handled by the run (half the batch, then status ``oom``); nothing is checked there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nas.errors import GenotypeError

if TYPE_CHECKING:
    import torch

    from nas.data import Dataset
    from nas.genotype import Genotype
    from nas.train._config import TrainConfig

__all__ = ["available_memory", "check_batch_memory", "check_training_memory"]


def available_memory() -> int | None:
    """Bytes the kernel estimates a process can still take without swapping (Linux's
    ``MemAvailable``), or ``None`` where it does not say."""
    try:
        with open("/proc/meminfo", "rb") as info:
            for line in info:
                if line.startswith(b"MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def check_batch_memory(genotype: Genotype, batch_size: int, device: torch.device) -> None:
    """Refuse running ``genotype`` in training on a batch of ``batch_size`` on ``device`` when
    it is the CPU and the batch's estimate exceeds :func:`available_memory` (see the module
    docstring).

    Raises:
        GenotypeError: one line: the estimate, the batch size and the memory available.
    """
    from nas.analysis import analyze, format_bytes

    if device.type != "cpu":
        return
    available = available_memory()
    if available is None:
        return
    needed = analyze(genotype).training_bytes(batch_size)
    if needed > available:
        raise GenotypeError(
            f"training at batch size {batch_size:,} needs at least {format_bytes(needed)} of memory, more "
            f"than the {format_bytes(available)} this machine has available: lower the batch size",
            file=genotype.source,
        )


def check_training_memory(genotype: Genotype, config: TrainConfig, data: Dataset) -> None:
    """:func:`check_batch_memory` at the batch and on the device training ``genotype`` with
    ``config`` on ``data`` takes: ``config.batch_size``, or every training image if fewer.

    Raises:
        GenotypeError: see :func:`check_batch_memory`.
        ConfigError: ``config.device`` is not available (:func:`resolve_device`).
    """
    from nas.train._config import resolve_device

    check_batch_memory(genotype, min(config.batch_size, len(data.train_labels)), resolve_device(config.device))
