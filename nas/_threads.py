"""Torch's intra-op thread count, set for a block of work and restored after it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["torch_threads"]


@contextmanager
def torch_threads(count: int | None) -> Iterator[None]:
    """Torch's intra-op threads set to ``count`` inside the block (``None``: left as they are),
    and restored after it, however the block ends.

    Torch is imported only when ``count`` is given, so a tabular run never pays for it.
    """
    if count is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)
