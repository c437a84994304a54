"""A ridge-regression surrogate over encoded parameters, to rank candidate parameter sets.

Encoding: a categorical parameter becomes one indicator per choice; an int or float parameter
becomes its position in its range, in ``[0, 1]`` (in log space when log-scaled). The model is
linear in that encoding (each choice of each parameter adds its own amount), fitted in closed
form with an L2 penalty; it is cheap enough to refit for every trial. It ranks candidates; its
values are not meant as predictions to report.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from nas.errors import ConfigError

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution

__all__ = ["RidgeSurrogate", "encode"]


def encode(params: Mapping[str, Any], search_space: Mapping[str, BaseDistribution]) -> np.ndarray:
    """The feature vector of ``params`` (which must hold every parameter of ``search_space``).

    Raises:
        ConfigError: for a distribution type this module does not know.
    """
    features: list[float] = []
    for name, dist in search_space.items():
        value = params[name]
        if isinstance(dist, CategoricalDistribution):
            index = dist.to_internal_repr(value)
            features.extend(1.0 if i == index else 0.0 for i in range(len(dist.choices)))
        elif isinstance(dist, (IntDistribution, FloatDistribution)):
            lo, hi, x = float(dist.low), float(dist.high), float(value)
            if dist.log:
                lo, hi, x = math.log(lo), math.log(hi), math.log(x)
            features.append((x - lo) / (hi - lo) if hi > lo else 0.0)
        else:
            raise ConfigError(f"cannot encode a {type(dist).__name__}")
    return np.asarray(features)


class RidgeSurrogate:
    """Linear model of the objective on :func:`encode` features, fitted by ridge regression.

    Args:
        search_space: the parameters the model sees, in a fixed order.
        alpha: the L2 penalty (on standardised targets); larger is smoother.
    """

    def __init__(self, search_space: Mapping[str, BaseDistribution], *, alpha: float = 1.0):
        if not alpha > 0:
            raise ConfigError(f"alpha must be positive, got {alpha}")
        self.search_space = dict(search_space)
        self.alpha = alpha
        self._weights: np.ndarray | None = None
        self._bias = 0.0

    def fit(self, params: Sequence[Mapping[str, Any]], values: Sequence[float]) -> RidgeSurrogate:
        """Fit to ``values`` observed at ``params``; returns ``self``. Needs at least one point."""
        if len(params) == 0 or len(params) != len(values):
            raise ConfigError("fit needs as many values as parameter sets, and at least one")
        x = np.stack([encode(p, self.search_space) for p in params])
        y = np.asarray(values, dtype=float)
        mean, std = float(y.mean()), float(y.std()) or 1.0
        z = (y - mean) / std
        gram = x.T @ x + self.alpha * np.eye(x.shape[1])
        self._weights = np.linalg.solve(gram, x.T @ z) * std
        self._bias = mean
        return self

    def predict(self, params: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Predicted values at ``params`` (call :meth:`fit` first)."""
        if self._weights is None:
            raise ConfigError("predict called before fit")
        if len(params) == 0:
            return np.zeros(0)
        x = np.stack([encode(p, self.search_space) for p in params])
        return x @ self._weights + self._bias
