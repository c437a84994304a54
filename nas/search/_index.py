"""An index of a journal's trial user attributes, kept up to date as the journal is replayed.

An Optuna journal storage answers "which trials have attribute K" only by reading every trial
of the study. :class:`AttrIndex` watches the log records a journal backend reads (each
process replays the whole journal once, then only what other processes appended since), and
keeps, for the attributes it is told to watch and for each step of intermediate values, the
trial ids that set them in log order. A query then touches the trials listed, not the whole
study.

Contract: the index lists candidates, in log order. The storage may have ignored a record
(the trial had already finished when its record was replayed), and trial ids are the
journal's, across all its studies: a reader checks each candidate against the replayed trial
(:mod:`nas.search._storage` does).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from optuna.storages.journal._storage import JournalOperation

__all__ = ["AttrIndex"]


class AttrIndex:
    """Trial ids by user attribute key, for the keys ``watch(key)`` is true of, and by
    intermediate value step (key ``step:STEP``), from the journal's records."""

    def __init__(self, watch: Callable[[str], bool]):
        self._watch = watch
        self._next = 0  # the number of the next record to index
        self._by_key: dict[str, dict[int, None]] = {}  # key -> trial ids (an ordered set)
        self.complete = True  # False if a record was skipped: readers then scan the study

    def feed(self, number: int, log: Mapping[str, Any]) -> None:
        """Index record ``number`` of the journal (records already indexed are ignored)."""
        if number < self._next:
            return
        if number > self._next:
            self.complete = False
        self._next = number + 1
        op = log.get("op_code")
        if op == JournalOperation.SET_TRIAL_INTERMEDIATE_VALUE:
            self._by_key.setdefault(f"step:{log['step']}", {})[log["trial_id"]] = None
        elif op == JournalOperation.SET_TRIAL_USER_ATTR:
            for key in log["user_attr"]:
                if self._watch(key):
                    self._by_key.setdefault(key, {})[log["trial_id"]] = None

    def with_key(self, key: str) -> list[int]:
        """Ids of the trials that set ``key`` (a watched key), each once, in the order of their
        first record (a trial may have several: a write the storage ignored, e.g. two processes
        failing one trial)."""
        return list(self._by_key.get(key, ()))
