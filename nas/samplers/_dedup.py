"""A sampler wrapper that avoids parameter sets equivalent to ones already tried.

Many parameter sets describe the same network (a NAS-Bench-201 cell with a dangling edge, two
ops that commute, ...). A search that proposes them again learns nothing; a dedup cache makes
them free but the sampler still wastes a proposal. :class:`DeduplicatingSampler` asks its base
sampler for a full parameter set, computes its key with a user function, and asks again (up to
``max_retries`` times) while the key belongs to a trial that is complete, running or waiting.

Contract: the base sampler's own relative sampling is kept; parameters it leaves out are filled
by its ``sample_independent`` before the key is computed, so every base sampler works (random,
TPE with or without ``multivariate``, regularized evolution, ...). Only parameters in the
intersection search space of completed trials (plus the base sampler's relative space) are
deduplicated; others are sampled by the base sampler as usual. All bookkeeping is read from the
study, so several processes sharing one storage see each other's keys.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from typing import TYPE_CHECKING, Any

from optuna.trial import TrialState

from nas.errors import ConfigError
from nas.samplers._resample import ResamplingSampler
from nas.search._storage import fixed_params, trials

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution
    from optuna.samplers import BaseSampler
    from optuna.study import Study
    from optuna.trial import FrozenTrial

__all__ = ["DeduplicatingSampler"]

#: ``key(params)`` returns the equivalence key of a parameter set, or ``None`` when the
#: parameters are not enough to tell (such sets are never treated as duplicates).
KeyFunction = Callable[[Mapping[str, Any]], Hashable | None]

_SEEN_STATES = (TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING, TrialState.PRUNED)


class DeduplicatingSampler(ResamplingSampler):
    """Wrap ``base`` so that it skips parameter sets whose key was already tried.

    Args:
        base: the sampler that proposes parameters.
        key: maps a full parameter set to its equivalence key (or ``None``, see ``KeyFunction``).
        max_retries: how many extra proposals to ask for before accepting a duplicate (which a
            dedup cache then answers at no cost).

    Raises:
        ConfigError: if ``max_retries`` is negative.
    """

    def __init__(self, base: BaseSampler, key: KeyFunction, *, max_retries: int = 50):
        if max_retries < 0:
            raise ConfigError(f"max_retries must be at least 0, got {max_retries}")
        super().__init__(base)
        self.key = key
        self.max_retries = max_retries

    def __str__(self) -> str:
        return f"Deduplicating({self.base})"

    def seen_keys(self, study: Study, exclude: int | None = None) -> set[Hashable]:
        """Keys of trials that are complete, pruned, running or waiting (except ``exclude``)."""
        keys: set[Hashable] = set()
        for t in trials(study, _SEEN_STATES, cached=False):
            if t.number == exclude:
                continue
            params = {**t.params, **fixed_params(t)}
            k = self.key(params)
            if k is not None:
                keys.add(k)
        return keys

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        seen: set[Hashable] | None = None

        def new(params: dict[str, Any]) -> bool:
            nonlocal seen
            if seen is None:  # read once, and only when there is something to check
                seen = self.seen_keys(study, exclude=trial.number)
            return self.key(params) not in seen

        return self._resample(study, trial, search_space, new, self.max_retries + 1)[0]
