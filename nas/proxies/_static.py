"""Static scores from the genotype alone: parameter count and multiply-accumulates.

Both come from :func:`nas.analyze` (no model is built); their functions take the genotype. Larger networks rank higher, which is
the baseline every zero-cost score must beat (on NAS-Bench-201, the parameter count alone
reaches a Spearman correlation of about 0.75 with CIFAR-10 test accuracy).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nas.proxies._registry import register_proxy

if TYPE_CHECKING:
    from nas.genotype import Genotype

__all__: list[str] = []


@register_proxy("params", needs_data=False, static=True)
def params(genotype: Genotype) -> float:
    """Parameter count of the genotype (static analysis, :func:`nas.analyze`)."""
    from nas.analysis import analyze

    return float(analyze(genotype).params)


@register_proxy("macs", needs_data=False, static=True)
def macs(genotype: Genotype) -> float:
    """Multiply-accumulate count of one forward pass on one input (static analysis,
    :func:`nas.analyze`)."""
    from nas.analysis import analyze

    return float(analyze(genotype).macs)
