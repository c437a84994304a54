"""The cyclic garbage collector paused for a block of work, and resumed after it."""

from __future__ import annotations

import gc
from types import TracebackType

__all__ = ["gc_paused"]


class gc_paused:  # noqa: N801 - a context manager, named like contextlib.suppress
    """``with gc_paused():`` runs its block with no automatic collection; the collector is
    enabled again after it, however it ends, unless it was already disabled when the block
    began.

    For work that allocates thousands of containers that outlive it and makes no reference
    cycles, such as expanding a genotype and hashing its graph: the collector starts a pass
    after every 700 net container allocations and scans the young survivors each time (about
    15% of a NAS-Bench-201 candidate's time, sampled with py-spy). Paused through the
    expansion and the hash, the survivors are scanned once, after the block: a candidate's
    median time fell 3-4% and its mean 6-9% (``bench/genotype_speed.py``'s loop, 600 cells).
    Nothing is left uncollected: the next pass after the block collects as usual. Mercurial's
    ``util.nogc`` does the same for the same reason. (A class: entering and leaving it takes
    0.2 us, a ``contextlib.contextmanager`` generator 0.8 us, twice per candidate.)

    The collector's switch is global: another thread's allocations in the meantime are not
    collected either until the block ends, and a ``gc.disable()`` made by another thread
    inside the block is undone when the block ends."""

    __slots__ = ("_pausing",)

    def __enter__(self) -> None:
        self._pausing = gc.isenabled()
        if self._pausing:
            gc.disable()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if self._pausing:
            gc.enable()
