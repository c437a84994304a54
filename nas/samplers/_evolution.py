"""Regularized evolution (aging evolution) as an Optuna sampler.

Real, Aggarwal, Huang and Le, "Regularized Evolution for Image Classifier Architecture Search",
AAAI 2019. The population is the ``population_size`` most recently completed trials (older ones
"die" however good they are: that is the ageing that regularises the search). Each new trial
picks ``sample_size`` members of the population at random, takes the best of them as parent and
changes exactly one of its parameters (see :func:`nas.samplers._mutation.mutate_value`).
Until the population is full, trials are sampled at random.

All state is read from the study's trials, so several processes sharing one storage run one
evolution; the sampler object holds only its random generator.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from optuna.study import StudyDirection
from optuna.trial import TrialState

from nas.errors import ConfigError
from nas.samplers._base import StudyStateSampler
from nas.search._storage import fixed_params, trials
from nas.samplers._mutation import mutable, mutate_value, random_value

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution
    from optuna.study import Study
    from optuna.trial import FrozenTrial

__all__ = ["RegularizedEvolutionSampler", "completed_by_age"]


def completed_by_age(study: Study) -> list[FrozenTrial]:
    """Completed trials, oldest first (by completion time, then trial number)."""
    complete = trials(study, (TrialState.COMPLETE,), cached=True)
    return sorted(complete, key=lambda t: (t.datetime_complete is None, t.datetime_complete,
                                         t.number))


class RegularizedEvolutionSampler(StudyStateSampler):
    """Regularized evolution: tournament selection, one-parameter mutation and ageing.

    Works with categorical, int and float distributions (int and float take a Gaussian step,
    see ``mutation_scale``). Parameters in the intersection search space of completed trials
    are sampled jointly (relative sampling); any other parameter, e.g. one that exists only under
    some choice, is sampled at random. Enqueued trials keep their fixed values; the evolution
    treats them as ordinary members once they complete, which is how seed architectures enter
    the population. Failed and pruned trials are ignored. Single-objective studies only.

    Args:
        population_size: how many of the most recently completed trials form the population
            (Real et al.: 100 for 20k-trial searches; tens for a few hundred trials).
        sample_size: tournament size; larger means greedier (must not exceed the population).
        mutation_scale: standard deviation of a numeric mutation as a fraction of the range.
        seed: seed of the random generator.

    Raises:
        ConfigError: for sizes below 1, a ``sample_size`` above ``population_size`` or a
            non-positive ``mutation_scale``.
    """

    def __init__(
        self,
        *,
        population_size: int = 20,
        sample_size: int = 5,
        mutation_scale: float = 0.1,
        seed: int | None = None,
    ):
        if population_size < 1 or sample_size < 1:
            raise ConfigError("population_size and sample_size must be at least 1")
        if sample_size > population_size:
            raise ConfigError(
                f"sample_size ({sample_size}) must not exceed population_size ({population_size})"
            )
        if not mutation_scale > 0:
            raise ConfigError(f"mutation_scale must be positive, got {mutation_scale}")
        self.population_size = population_size
        self.sample_size = sample_size
        self.mutation_scale = mutation_scale
        super().__init__(seed=seed)

    def population(self, study: Study) -> list[FrozenTrial]:
        """The current population: the ``population_size`` most recently completed trials."""
        return completed_by_age(study)[-self.population_size:]

    def select_parent(self, population: Sequence[FrozenTrial], study: Study) -> FrozenTrial:
        """Tournament selection: the best of ``sample_size`` members drawn without replacement."""
        picks = self._rng.choice(len(population), size=self.sample_size, replace=False)
        contenders = [population[i] for i in sorted(picks)]
        sign = 1.0 if study.direction == StudyDirection.MAXIMIZE else -1.0
        return max(contenders, key=lambda t: sign * float(t.value))

    def mutate(
        self, parent: dict[str, Any], search_space: dict[str, BaseDistribution], frozen: set[str]
    ) -> dict[str, Any]:
        """``parent`` with one parameter not in ``frozen`` changed (a copy; unchanged if none
        can change). Parameters of ``search_space`` missing from ``parent`` are drawn at random.
        """
        child = {name: parent[name] if name in parent else random_value(dist, self._rng)
                 for name, dist in search_space.items()}
        candidates = [n for n, d in search_space.items() if n not in frozen and mutable(d)]
        if candidates:
            name = candidates[self._rng.randint(len(candidates))]
            child[name] = mutate_value(search_space[name], child[name], self._rng,
                                       scale=self.mutation_scale)
        return child

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        if not search_space:
            return {}
        frozen = set(fixed_params(trial))
        if frozen.issuperset(search_space):
            return {}
        population = self.population(study)
        if len(population) < self.population_size:
            return {}  # still filling the population: independent (random) sampling
        parent = self.select_parent(population, study)
        child = self.mutate(parent.params, search_space, frozen)
        return {name: value for name, value in child.items() if name not in frozen}
