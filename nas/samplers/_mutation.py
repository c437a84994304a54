"""Change one parameter value: the mutation operator shared by the evolutionary samplers.

Contract: :func:`mutate_value` returns a value that ``distribution`` contains and that differs
from ``value`` whenever the distribution has more than one value. It never reads trials.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from nas.errors import ConfigError

__all__ = ["mutable", "mutate_value", "random_value"]


def mutable(distribution: BaseDistribution) -> bool:
    """Whether ``distribution`` has more than one value, so that a mutation can change it."""
    return not distribution.single()


def random_value(distribution: BaseDistribution, rng: np.random.RandomState) -> Any:
    """A value drawn uniformly from ``distribution`` (log-uniformly when it is log-scaled)."""
    if isinstance(distribution, CategoricalDistribution):
        return distribution.choices[rng.randint(len(distribution.choices))]
    if isinstance(distribution, (IntDistribution, FloatDistribution)):
        lo, hi = _bounds(distribution)
        return _snap(distribution, _from_unit(distribution, rng.uniform(lo, hi)))
    raise ConfigError(f"cannot sample a {type(distribution).__name__}")


def mutate_value(
    distribution: BaseDistribution, value: Any, rng: np.random.RandomState, *, scale: float
) -> Any:
    """A new value for a parameter that had ``value``.

    Categorical: another choice, uniformly. Int and float: ``value`` plus a Gaussian step with a
    standard deviation of ``scale`` times the range (in log space for log-scaled distributions),
    clipped to the range and rounded to the step; a stepped value (every int) that would round
    back to ``value`` moves one step in the direction drawn. A continuous float equals ``value``
    only with probability zero.

    Raises:
        ConfigError: for a distribution type this module does not know.
    """
    if not mutable(distribution):
        return value
    if isinstance(distribution, CategoricalDistribution):
        index = distribution.to_internal_repr(value)
        other = rng.randint(len(distribution.choices) - 1)
        return distribution.choices[other + (other >= index)]
    if isinstance(distribution, (IntDistribution, FloatDistribution)):
        lo, hi = _bounds(distribution)
        step = rng.normal(0.0, scale * (hi - lo))
        x = min(max(_to_unit(distribution, value) + step, lo), hi)
        new = _snap(distribution, _from_unit(distribution, x))
        if new == value and distribution.step is not None:
            up, down = value + distribution.step, value - distribution.step
            can_up, can_down = up <= distribution.high, down >= distribution.low
            new = _snap(distribution, up if can_up and (step > 0 or not can_down) else down)
        return new
    raise ConfigError(f"cannot mutate a {type(distribution).__name__}")


def _bounds(distribution: IntDistribution | FloatDistribution) -> tuple[float, float]:
    if distribution.log:
        return math.log(distribution.low), math.log(distribution.high)
    return float(distribution.low), float(distribution.high)


def _to_unit(distribution: IntDistribution | FloatDistribution, value: float) -> float:
    return math.log(value) if distribution.log else float(value)


def _from_unit(distribution: IntDistribution | FloatDistribution, x: float) -> float:
    return math.exp(x) if distribution.log else x


def _snap(distribution: IntDistribution | FloatDistribution, value: float) -> Any:
    """Round ``value`` to the distribution's step and clip it to its range."""
    low, high = distribution.low, distribution.high
    step = distribution.step
    if step is not None:
        value = low + round((value - low) / step) * step
        # Keep the largest on-grid value within the range.
        value = min(value, low + math.floor((high - low) / step + 1e-9) * step)
    value = min(max(value, low), high)
    return int(round(value)) if isinstance(distribution, IntDistribution) else float(value)
