"""Zero-cost proxies: scores of untrained networks that predict their trained accuracy.

Public API::

    scores = nas.proxies.score(genotype, data, ["synflow", "naswot"], seed=0)
    scores["naswot"].value, scores["naswot"].reason    # NaN and why, when undefined
    nas.proxies.rank_ensemble({"naswot": [...], "synflow": [...]})   # one score per network
    nas.proxies.spearman(scores, accuracies), nas.proxies.kendall(...)

Proxies (each function's docstring gives its definition and paper): ``snip``, ``grad_norm``,
``grasp``, ``fisher``, ``synflow`` (pruning-at-initialisation saliencies), ``naswot``,
``jacov``, ``zen``, ``meco`` (activations and Jacobians), ``params`` and ``macs`` (static).
Larger always predicts better. Every score is deterministic given the seed, runs on any torch
device, and is NaN with a reason where it is undefined. Proxies never train.
"""

from __future__ import annotations

from nas.proxies import _activation, _saliency, _static  # noqa: F401  (register the proxies)
from nas.proxies._network import Network
from nas.proxies._ranks import ENSEMBLE_METHODS, kendall, rank_ensemble, ranks, spearman
from nas.proxies._registry import Proxy, Undefined, get_proxy, proxy_names, register_proxy
from nas.proxies._score import DISCONNECTED, ProxyScore, image_batch, score

__all__ = [
    "DISCONNECTED",
    "ENSEMBLE_METHODS",
    "Network",
    "Proxy",
    "ProxyScore",
    "Undefined",
    "get_proxy",
    "image_batch",
    "kendall",
    "proxy_names",
    "rank_ensemble",
    "ranks",
    "register_proxy",
    "score",
    "spearman",
]
