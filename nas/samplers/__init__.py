"""Optuna samplers for architecture search.

Public API:

- :class:`RegularizedEvolutionSampler`: aging evolution (Real et al. 2019) over categorical,
  int and float parameters.
- :class:`LocalSearchSampler`: best-first local search over one-parameter changes.
- :class:`DeduplicatingSampler`: wraps any sampler so that it does not propose a parameter set
  equivalent (by a user key, e.g. :func:`nas.nb201.cell_key`) to one already tried.
- :class:`FeasibleSampler`: wraps any sampler so that it proposes only candidates passing a
  static check (a MACs or params ceiling), instead of spending trials on infeasible ones.
- :func:`register_sampler`: a plugin's sampler, named by run configs (:mod:`nas.plugins`).
"""

from __future__ import annotations

from nas.samplers._dedup import DeduplicatingSampler
from nas.samplers._feasible import FeasibleSampler
from nas.samplers._evolution import RegularizedEvolutionSampler
from nas.samplers._local import LocalSearchSampler
from nas.samplers._registry import register_sampler

__all__ = [
    "DeduplicatingSampler",
    "FeasibleSampler",
    "LocalSearchSampler",
    "RegularizedEvolutionSampler",
    "register_sampler",
]
