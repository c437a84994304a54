"""Ranks of scores over a population: the rank-aggregating ensemble and rank correlations.

Both treat NaN (an undefined score) as worse than every defined score, tied with the other
NaNs: a network a proxy cannot score is ranked last by it. Ties share their average rank.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from nas.errors import ConfigError

__all__ = ["ENSEMBLE_METHODS", "ranks", "rank_ensemble", "spearman", "kendall"]

#: How :func:`rank_ensemble` combines normalised ranks ``r`` in (0, 1].
ENSEMBLE_METHODS = ("mean", "log")


def ranks(values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Ranks 1..N (average for ties) of ``values`` in increasing order, NaN ranked lowest."""
    from scipy.stats import rankdata

    array = np.asarray(values, dtype=float)
    return rankdata(np.where(np.isnan(array), -np.inf, array), method="average")


def rank_ensemble(scores: Mapping[str, Sequence[float]], *, method: str = "mean") -> np.ndarray:
    """Combine several proxies' scores of the same N networks into one score per network.

    Each proxy's scores become normalised ranks ``r = rank / N`` in (0, 1] (larger is
    better, NaN lowest); the ensemble is ``mean(r)`` over proxies (``method='mean'``, Borda
    count), or ``sum(log r)`` (``method='log'``, the non-linear aggregation of Lee and Ham,
    "AZ-NAS: Assembling Zero-Cost Proxies for Network Architecture Search", CVPR 2024, which
    punishes a network that any proxy ranks low).

    Raises:
        ConfigError: for no proxies, columns of different lengths or an unknown method.
    """
    if method not in ENSEMBLE_METHODS:
        raise ConfigError(f"unknown ensemble method {method!r}; valid: {', '.join(ENSEMBLE_METHODS)}")
    if not scores:
        raise ConfigError("an ensemble needs at least one proxy")
    lengths = {len(v) for v in scores.values()}
    if len(lengths) != 1:
        raise ConfigError("every proxy must score the same networks (columns differ in length)")
    n = lengths.pop()
    if n == 0:
        return np.zeros(0)
    normalised = np.stack([ranks(v) / n for v in scores.values()])
    return normalised.mean(0) if method == "mean" else np.log(normalised).sum(0)


def _paired_ranks(x: Sequence[float], y: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """The :func:`ranks` of ``x`` and of ``y``, which must score the same networks.

    Raises:
        ValueError: ``x`` and ``y`` differ in length.
    """
    a, b = ranks(x), ranks(y)
    if len(a) != len(b):
        raise ValueError(f"x and y must be equally long (one score per network each), got {len(a)} and {len(b)}")
    return a, b


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation of ``x`` and ``y`` (NaN ranked lowest in either).

    Raises:
        ValueError: ``x`` and ``y`` differ in length.
    """
    a, b = _paired_ranks(x, y)
    if len(a) < 2 or a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def kendall(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's tau-b of ``x`` and ``y`` (NaN ranked lowest in either).

    Raises:
        ValueError: ``x`` and ``y`` differ in length.
    """
    from scipy.stats import kendalltau

    return float(kendalltau(*_paired_ranks(x, y)).statistic)
