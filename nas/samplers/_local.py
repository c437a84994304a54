"""Best-first local search as an Optuna sampler.

White, Nolen and Savani, "Exploring the Loss Landscape in Neural Architecture Search", UAI 2021,
found that plain local search over one-change neighbourhoods is hard to beat on cell-based
benchmarks. This sampler runs its best-first form: each new trial is an untried neighbour of the
best completed trials that still have untried neighbours (the best ``n_parents`` of them), chosen
at random or, with ``guided=True``, by a ridge-regression surrogate. A neighbour differs in
exactly one parameter: another choice of a categorical, one step up or down of an int (or of a
float with a step), or a Gaussian step of a continuous float (:func:`mutate_value`). So when a
neighbour improves on the best, the search moves there at once; when the best's neighbourhood is
exhausted it continues from the next best, and so on. Before ``n_startup_trials`` trials have
completed (enqueued seed trials count), and when nothing untried is left, it samples at random.

All state is read from the study's trials, so several processes sharing one storage run one
search; the sampler object holds only its random generator.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.study import StudyDirection
from optuna.trial import TrialState

from nas.errors import ConfigError
from nas.samplers._base import StudyStateSampler
from nas.search._storage import fixed_params, trials
from nas.samplers._mutation import mutable, mutate_value
from nas.samplers._surrogate import RidgeSurrogate

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution
    from optuna.study import Study
    from optuna.trial import FrozenTrial

__all__ = ["LocalSearchSampler"]

_TRIED_STATES = (TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING, TrialState.PRUNED,
                 TrialState.FAIL)


class LocalSearchSampler(StudyStateSampler):
    """Best-first local search over one-parameter changes (see the module docstring).

    Args:
        n_startup_trials: completed trials (seeds included) sampled at random before the
            local search starts.
        key: optional equivalence key of a full parameter set (``None`` when it cannot tell);
            with it, a neighbour counts as tried when an equivalent set was tried, so the search
            does not spend trials on duplicates. Without it, equal parameters are the test.
        guided: choose among the untried neighbours the one a ridge-regression surrogate
            (:class:`RidgeSurrogate`, fitted to the ranks of completed trials' values) rates
            best, instead of one at random.
        n_parents: how many of the best trials with untried neighbours pool their untried
            neighbours; the choice (surrogate's best, or random) is made over the pool. 1 is
            strict best-first search; 2 let the surrogate look a little wider, which helped on
            NAS-Bench-201.
        alpha: the surrogate's L2 penalty (see :class:`RidgeSurrogate`).
        float_neighbours: how many Gaussian steps stand for the neighbourhood of a continuous
            float parameter.
        mutation_scale: standard deviation of such a step as a fraction of the range.
        seed: seed of the random generator.

    Raises:
        ConfigError: for a negative ``n_startup_trials``, ``n_parents`` or ``float_neighbours``
            below 1, or a non-positive ``mutation_scale`` or ``alpha``.
    """

    def __init__(
        self,
        *,
        n_startup_trials: int = 10,
        key: Callable[[Mapping[str, Any]], Hashable | None] | None = None,
        guided: bool = False,
        n_parents: int = 2,
        alpha: float = 1.0,
        float_neighbours: int = 4,
        mutation_scale: float = 0.1,
        seed: int | None = None,
    ):
        if n_startup_trials < 0:
            raise ConfigError(f"n_startup_trials must be at least 0, got {n_startup_trials}")
        if n_parents < 1:
            raise ConfigError(f"n_parents must be at least 1, got {n_parents}")
        if float_neighbours < 1:
            raise ConfigError(f"float_neighbours must be at least 1, got {float_neighbours}")
        if not mutation_scale > 0:
            raise ConfigError(f"mutation_scale must be positive, got {mutation_scale}")
        if not alpha > 0:
            raise ConfigError(f"alpha must be positive, got {alpha}")
        self.n_startup_trials = n_startup_trials
        self.key = key
        self.guided = guided
        self.n_parents = n_parents
        self.alpha = alpha
        self.float_neighbours = float_neighbours
        self.mutation_scale = mutation_scale
        super().__init__(seed=seed)

    def _identity(self, params: Mapping[str, Any], names: tuple[str, ...]) -> Hashable | None:
        if self.key is not None:
            return self.key(params)
        if any(n not in params for n in names):
            return None
        return tuple(params[n] for n in names)

    def neighbours(
        self, params: Mapping[str, Any], search_space: dict[str, BaseDistribution],
        frozen: set[str],
    ) -> Iterator[dict[str, Any]]:
        """Every one-parameter change of ``params`` (over ``search_space`` less ``frozen``)."""
        for name, dist in search_space.items():
            if name in frozen or not mutable(dist):
                continue
            for value in self._values_near(dist, params[name]):
                yield {**params, name: value}

    def _values_near(self, dist: BaseDistribution, value: Any) -> list[Any]:
        if isinstance(dist, CategoricalDistribution):
            return [c for c in dist.choices if c != value]
        if isinstance(dist, (IntDistribution, FloatDistribution)) and dist.step is not None:
            near = (value - dist.step, value + dist.step)
            return [v for v in near if dist.low <= v <= dist.high]
        return [mutate_value(dist, value, self._rng, scale=self.mutation_scale)
                for _ in range(self.float_neighbours)]

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        frozen = set(fixed_params(trial))
        if not search_space or frozen.issuperset(search_space):
            return {}
        completed = [t for t in trials(study, (TrialState.COMPLETE,), cached=True)
                     if all(n in t.params for n in search_space)]
        if len(completed) < self.n_startup_trials:
            return {}
        names = tuple(search_space)
        tried = set()
        for t in trials(study, _TRIED_STATES, cached=True):
            if t.number != trial.number:
                tried.add(self._identity({**t.params, **fixed_params(t)}, names))
        tried.discard(None)  # trials whose parameters do not tell
        sign = -1.0 if study.direction == StudyDirection.MAXIMIZE else 1.0
        fixed = fixed_params(trial)
        ranked = sorted(completed, key=lambda t: (sign * float(t.value), t.number))
        surrogate = self._fit(ranked, search_space) if self.guided else None
        pool: list[dict[str, Any]] = []
        parents = 0
        for parent in ranked:
            start = {**{n: parent.params[n] for n in names}, **{n: fixed[n] for n in frozen
                                                              if n in search_space}}
            fresh = [p for p in self.neighbours(start, search_space, frozen)
                     if self._identity(p, names) not in tried]
            if fresh:
                pool.extend(fresh)
                parents += 1
                if parents == self.n_parents:
                    break
        if not pool:
            return {}  # every neighbourhood is exhausted: sample at random
        child = pool[self._choose(pool, surrogate)]
        return {n: v for n, v in child.items() if n not in frozen}

    def _fit(
        self, ranked: list[FrozenTrial], search_space: dict[str, BaseDistribution]
    ) -> RidgeSurrogate | None:
        """The surrogate fitted to ``ranked`` (best first), on scores ``1 - rank / n``."""
        if len(ranked) < 2:
            return None
        scores = 1.0 - np.arange(len(ranked)) / len(ranked)
        return RidgeSurrogate(search_space, alpha=self.alpha).fit([t.params for t in ranked], scores)

    def _choose(self, fresh: list[dict[str, Any]], surrogate: RidgeSurrogate | None) -> int:
        """Index of the candidate to try: the surrogate's best (ties at random), or random."""
        if surrogate is None:
            return int(self._rng.randint(len(fresh)))
        predicted = surrogate.predict(fresh)
        best = np.flatnonzero(predicted >= predicted.max() - 1e-12)
        return int(best[self._rng.randint(len(best))])
