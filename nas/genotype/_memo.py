"""Block expansions kept across the expansions of one genotype's variants.

A search expands many variants of one genotype (``with_params``, ``with_input``, or
``load_genotype`` of one file with other parameters); most of their blocks are applied to the
same arguments at the same input shapes, and expand the same way. The variants share one
:class:`ExpansionMemo` (copied along by :func:`dataclasses.replace`), which keeps recorded
block expansions (``nas.genotype._expand._Replay``) under:

- the block call's replay key (block name, resolved arguments, input shapes) and the limits
  the expansion ran under, and
- the genotype parameters the block's expansion read, with their values (typed: ``1``,
  ``1.0`` and ``True`` differ), so a block that reads a parameter is reused only where that
  parameter has the value it had.

It also keeps each body's expansion plan (statement names, inputs and order:
``nas.genotype._expand._Plan``), by the body object.

The memo serves only genotypes whose blocks are the very objects it was first used with
(:meth:`ExpansionMemo.serves`); anything else expands without it. It holds at most
:data:`MAX_NODES` recorded nodes, the least recently used expansion leaving first. Pickling
or copying a genotype gives it an empty memo. Thread-safe.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from typing import Any

__all__ = ["ExpansionMemo", "MAX_NODES"]

MAX_NODES = 10_000
"""Most recorded nodes (all expansions together) one memo keeps."""
_MAX_READ_SETS = 8  # distinct sets of parameters read under one key, beyond which none is added


class ExpansionMemo:
    """Recorded block expansions; see the module docstring."""

    def __init__(self, max_nodes: int = MAX_NODES) -> None:
        self.max_nodes = max_nodes
        self._blocks: tuple[tuple[str, Any], ...] | None = None
        self._read_sets: dict[Hashable, list[tuple[str, ...]]] = {}
        self._entries: OrderedDict[Hashable, Any] = OrderedDict()
        self._nodes = 0
        self._lock = threading.Lock()
        #: bodies' expansion plans (``nas.genotype._expand._Expander._plan``), by body
        self.plans: dict[Hashable, Any] = {}

    def __reduce__(self) -> tuple[type, tuple]:
        return (ExpansionMemo, (self.max_nodes,))

    def __copy__(self) -> ExpansionMemo:
        return ExpansionMemo(self.max_nodes)

    def __deepcopy__(self, memo: dict) -> ExpansionMemo:
        return ExpansionMemo(self.max_nodes)

    def serves(self, blocks: Mapping[str, Any]) -> bool:
        """True when ``blocks`` are the block objects this memo is for (the first caller's)."""
        current = tuple(blocks.items())
        with self._lock:
            if self._blocks is None:
                self._blocks = current
            mine = self._blocks
        return len(mine) == len(current) and all(
            name == other and block is theirs for (name, block), (other, theirs) in zip(mine, current)
        )

    def find(self, key: Hashable, values: Callable[[tuple[str, ...]], tuple | None]) -> Any:
        """The expansion kept under ``key`` whose parameters read have the values
        ``values(names)`` gives now (``None``: a value that cannot be compared), or ``None``."""
        for names in self._read_sets.get(key, ()):
            current = values(names)
            if current is None:
                continue
            entry = (key, names, current)
            with self._lock:
                found = self._entries.get(entry)
                if found is not None:
                    self._entries.move_to_end(entry)
                    return found[0]
        return None

    def keep(self, key: Hashable, reads: tuple[tuple[str, Any], ...], expansion: Any, size: int) -> None:
        """Keep ``expansion`` (``size`` nodes) under ``key`` for the parameter values ``reads``
        (sorted ``(name, typed value)`` pairs)."""
        if size > self.max_nodes:
            return
        names = tuple(name for name, _ in reads)
        entry = (key, names, tuple(value for _, value in reads))
        with self._lock:
            read_sets = self._read_sets.setdefault(key, [])
            if names not in read_sets:
                if len(read_sets) >= _MAX_READ_SETS:
                    return
                read_sets.append(names)
            if entry in self._entries:
                return
            self._entries[entry] = (expansion, size)
            self._nodes += size
            while self._nodes > self.max_nodes:
                _, (_, dropped) = self._entries.popitem(last=False)
                self._nodes -= dropped
            if len(self._read_sets) > 4 * max(len(self._entries), 1024):  # drop keys left empty
                self._read_sets = {}
                for kept, kept_names, _ in self._entries:
                    known = self._read_sets.setdefault(kept, [])
                    if kept_names not in known:
                        known.append(kept_names)
