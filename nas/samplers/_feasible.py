"""A sampler wrapper that proposes only candidates passing a static feasibility check.

A constraint that is known before training (params or MACs under a ceiling, activation memory)
costs milliseconds to check. Recording a candidate that fails it as a pruned trial spends a
trial of the budget on it and, worse, teaches the sampler that its region is bad: TPE puts
pruned trials in its "bad" density, so it drifts away from the ceiling, where the most accurate
feasible networks usually are. :class:`FeasibleSampler` asks its base sampler again (up to
``max_tries`` proposals) until ``feasible(params)`` holds, so infeasible candidates never
become trials and never enter the sampler's model; only when every proposal fails does the last
one go ahead (and is then recorded as its constraint says).

Contract: as :mod:`nas.samplers._resample`. ``space`` (optional) is the full search space
(label -> distribution) of an unconditional space: with it, every trial from the first one is
checked; without it, only parameters in the intersection search space of completed trials
(plus the base sampler's relative space) are, as for :class:`DeduplicatingSampler`. Enqueued
trials (seeds) are never changed. ``feasible`` receives the trial's full parameter set (fixed
ones included) and must return True when it cannot tell (e.g. an invalid genotype, which the
trial then reports). How many proposals were rejected for trial ``n`` is ``rejected[n]``
(in this process).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from nas.errors import ConfigError
from nas.samplers._resample import ResamplingSampler

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution
    from optuna.samplers import BaseSampler
    from optuna.study import Study
    from optuna.trial import FrozenTrial

__all__ = ["FeasibleSampler"]

#: ``feasible(params)``: False when the parameter set is known to violate a constraint.
FeasibleFunction = Callable[[Mapping[str, Any]], bool]


class FeasibleSampler(ResamplingSampler):
    """Wrap ``base`` so that it proposes only parameter sets for which ``feasible`` holds.

    Args:
        base: the sampler that proposes parameters.
        feasible: the static check (see the module docstring).
        space: the full search space of an unconditional space (label -> distribution), or None.
        max_tries: proposals asked for at most; the last one is kept even when infeasible.

    Raises:
        ConfigError: if ``max_tries`` is less than 1.
    """

    def __init__(self, base: BaseSampler, feasible: FeasibleFunction, *,
                 space: Mapping[str, BaseDistribution] | None = None, max_tries: int = 200):
        if max_tries < 1:
            raise ConfigError(f"max_tries must be at least 1, got {max_tries}")
        super().__init__(base)
        self.feasible = feasible
        self.space = dict(space or {})
        self.max_tries = max_tries
        self.rejected: dict[int, int] = {}

    def __str__(self) -> str:
        return f"Feasible({self.base})"

    def infer_relative_search_space(
        self, study: Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return {**self.space, **super().infer_relative_search_space(study, trial)}

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        params, rejected = self._resample(study, trial, search_space, self.feasible, self.max_tries)
        self.rejected[trial.number] = rejected
        return params
