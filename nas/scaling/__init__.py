"""Compound scaling: grow (or shrink) a genotype's depth, width and input resolution together.

Public API::

    from nas.scaling import scale, family, family_table, run_scale_search
    b0 = nas.load_genotype("efficientnet_b0")
    b3 = scale(b0, phi=3)                          # alpha, beta, gamma = 1.2, 1.1, 1.15
    b1 = scale(b0, width=1.0, depth=1.1)           # explicit multipliers win over phi
    members = family(b0, range(8))                 # phi = 0..7 with params and MACs
    print(family_table(members)); write_family(members, "family/")
    result = run_scale_search("search_spaces/scale_digits.yaml")   # grid search at phi = 1

What a genotype scales is declared in its ``scaling:`` key; the rounding rules are in
:mod:`nas.scaling._scale`, the coefficient search in :mod:`nas.scaling._search`. Scaling and
families are static (no torch); the coefficient search trains through :mod:`nas.search`.
"""

from nas.scaling._family import Member, family, family_table, write_family
from nas.scaling._scale import DEFAULT_COEFFICIENTS, Multipliers, multipliers, scale
from nas.scaling._search import (
    Candidate,
    ScaleSearchConfig,
    ScaleSearchResult,
    load_scale_config,
    run_scale_search,
)

__all__ = [
    "DEFAULT_COEFFICIENTS",
    "Candidate",
    "Member",
    "Multipliers",
    "ScaleSearchConfig",
    "ScaleSearchResult",
    "family",
    "family_table",
    "load_scale_config",
    "multipliers",
    "run_scale_search",
    "scale",
    "write_family",
]
