"""Shared plumbing of the samplers that keep all their state in the study.

Such a sampler samples the intersection search space of completed trials jointly (relative
sampling) and every other parameter at random (independent sampling); its only state is its
random generator, so several processes on one storage act as one sampler.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from optuna.samplers import BaseSampler, RandomSampler
from optuna.search_space import IntersectionSearchSpace

from nas import _checks

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution
    from optuna.study import Study
    from optuna.trial import FrozenTrial

__all__ = ["StudyStateSampler"]


class StudyStateSampler(BaseSampler):
    """Base of single-objective samplers whose state is the study (see the module docstring).

    Subclasses implement :meth:`sample_relative`; this class gives them ``self._rng`` (a NumPy
    ``RandomState``), the relative search space and the random fallback.
    """

    def __init__(self, *, seed: int | None = None):
        """Raises :class:`~nas.errors.ConfigError` for a ``seed`` other than ``None`` or an
        integer in ``[0, 2**32 - 2]`` (the random fallback takes ``seed + 1``)."""
        if seed is not None:
            _checks.seed(seed, path="seed", span=2)
        self._rng = np.random.RandomState(seed)
        self._random = RandomSampler(seed=None if seed is None else seed + 1)
        self._search_space = IntersectionSearchSpace()

    def reseed_rng(self) -> None:
        self._rng.seed()
        self._random.reseed_rng()

    def infer_relative_search_space(
        self, study: Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        """The intersection search space of completed trials.

        Raises:
            ValueError: for a multi-objective study (Optuna's own error for this case).
        """
        self._raise_error_if_multi_objective(study)
        return dict(self._search_space.calculate(study))

    def sample_independent(
        self,
        study: Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        """A random value: for parameters outside the relative search space, and at startup."""
        return self._random.sample_independent(study, trial, param_name, param_distribution)
