"""Helpers for the hand-designed genotypes in ``genotypes/`` (the zoo).

Public API:

- :func:`nb201_params`: a NAS-Bench-201 cell string -> the ``nb201`` genotype's edge parameters.
- :func:`nb201_arch`: the inverse, edge parameters -> the benchmark's cell string.

No torch import.
"""

from __future__ import annotations

from nas.zoo.nb201 import NB201_EDGE_PARAMS, nb201_arch, nb201_params

__all__ = ["NB201_EDGE_PARAMS", "nb201_arch", "nb201_params"]
