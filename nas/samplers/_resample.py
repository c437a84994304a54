"""Shared plumbing of sampler wrappers that ask their base sampler again until a proposal
passes a test (:class:`~nas.samplers.DeduplicatingSampler`,
:class:`~nas.samplers.FeasibleSampler`).

A wrapper samples every parameter in ``sample_relative``: the base sampler's own relative
sampling is kept, and the parameters it leaves out are filled by its ``sample_independent``,
so that a whole parameter set can be tested before the trial sees any of it. Every base sampler
works (random, TPE with or without ``multivariate``, regularized evolution, ...).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from optuna.samplers import BaseSampler
from optuna.search_space import IntersectionSearchSpace

from nas.search._storage import fixed_params

if TYPE_CHECKING:
    from collections.abc import Sequence

    from optuna.distributions import BaseDistribution
    from optuna.study import Study
    from optuna.trial import FrozenTrial, TrialState

__all__ = ["ResamplingSampler"]


class ResamplingSampler(BaseSampler):
    """Base of wrappers around ``base``: the relative search space (the intersection search
    space of completed trials plus the base sampler's own), :meth:`_resample`, and every other
    sampler call passed on to ``base``."""

    def __init__(self, base: BaseSampler):
        self.base = base
        self._search_space = IntersectionSearchSpace()

    def infer_relative_search_space(
        self, study: Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        base_space = self.base.infer_relative_search_space(study, trial)
        return {**self._search_space.calculate(study), **base_space}

    def _resample(
        self,
        study: Study,
        trial: FrozenTrial,
        search_space: dict[str, BaseDistribution],
        accept: Callable[[dict[str, Any]], bool],
        tries: int,
    ) -> tuple[dict[str, Any], int]:
        """Propose up to ``tries`` full parameter sets until ``accept`` (given the trial's
        fixed parameters too) holds; returns the last proposal without the fixed parameters,
        and how many proposals were turned down (``tries - 1`` when none passed). Enqueued
        trials whose parameters are all fixed, and an empty space, go to the base sampler."""
        # The base sampler's own relative space (a subset of ``search_space``), recomputed here
        # rather than kept from infer_relative_search_space so that threads may share self.
        base_space = self.base.infer_relative_search_space(study, trial)
        fixed = fixed_params(trial)
        if not search_space or set(fixed).issuperset(search_space):
            return self.base.sample_relative(study, trial, base_space), 0
        params: dict[str, Any] = {}
        rejected = 0
        while True:
            params = self._propose(study, trial, search_space, base_space)
            if accept({**params, **fixed}) or rejected + 1 >= tries:
                break
            rejected += 1
        return {name: value for name, value in params.items() if name not in fixed}, rejected

    def _propose(
        self,
        study: Study,
        trial: FrozenTrial,
        search_space: dict[str, BaseDistribution],
        base_space: dict[str, BaseDistribution],
    ) -> dict[str, Any]:
        """One full proposal over ``search_space`` (``base_space``: the base sampler's own
        relative space, recomputed by the caller so that threads may share ``self``)."""
        params = dict(self.base.sample_relative(study, trial, base_space))
        for name, dist in search_space.items():
            if name not in params:
                params[name] = self.base.sample_independent(study, trial, name, dist)
        return params

    def sample_independent(
        self,
        study: Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        return self.base.sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        self.base.before_trial(study, trial)

    def after_trial(
        self,
        study: Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        self.base.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.base.reseed_rng()
