"""The Optuna side of a run: sampler, pruner, and successive halving.

Opening storages and studies is :mod:`nas.search._storage`'s.

Successive halving (``pruner: halving``) is ours, because Optuna's pruners refuse
multi-objective studies. At each rung (an epoch number) a trial goes on only if its
validation accuracy (its intermediate value at that epoch) is in the top ``1 / reduction`` of
the accuracies every trial of the study reported at that rung
(asynchronous successive halving: no trial waits for others). Until ``min_trials`` trials have
reached a rung, everyone goes on.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from nas.errors import ConfigError

if TYPE_CHECKING:
    import optuna

    from nas.search._config import RunConfig

__all__ = ["HalvingRule", "equivalence_key", "make_pruner", "make_sampler", "pruner_class", "sampler_class"]


def sampler_class(name: str) -> type:
    """The class (or a plugin's factory) of the sampler a config names (imports Optuna;
    ``cmaes`` needs the package).

    Raises:
        ConfigError: a sampler this install lacks.
    """
    import optuna

    if name == "cmaes":
        try:
            import cmaes  # noqa: F401
        except ImportError:
            raise ConfigError("cmaes needs the 'cmaes' package (pip install cmaes)",
                              path="sampler") from None
    if name in ("evolution", "local"):
        from nas.samplers import LocalSearchSampler, RegularizedEvolutionSampler

        return {"evolution": RegularizedEvolutionSampler, "local": LocalSearchSampler}[name]
    samplers = optuna.samplers
    classes = {"tpe": samplers.TPESampler, "random": samplers.RandomSampler,
               "nsga2": samplers.NSGAIISampler, "gp": samplers.GPSampler,
               "cmaes": samplers.CmaEsSampler}
    if name in classes:
        return classes[name]
    from nas.samplers._registry import find_sampler

    plugin = find_sampler(name)
    if plugin is None:  # pragma: no cover - validated in the config
        raise ConfigError(f"unknown sampler {name!r}", path="sampler")
    return plugin.factory


#: Options that :func:`make_sampler` sets itself (never from the config).
SAMPLER_OWN_OPTIONS = ("seed", "key")


def worker_seed(config: RunConfig, *, machine: str, worker: int) -> int:
    """The sampler seed of worker ``worker`` on ``machine`` (a host and run folder, or ``""``
    for a run folder's own storage): the config's ``seed`` mixed with both, so workers of one
    machine and of different machines joining one study sample differently, and a rerun on
    the same machine repeats itself."""
    import zlib

    return (config.seed * 1_000_003 + zlib.crc32(f"{machine}|{worker}".encode())) % 2**31


def make_sampler(config: RunConfig, *, seed: int | None = None,
                 feasible: Callable[[Mapping[str, Any]], bool] | None = None) -> optuna.samplers.BaseSampler:
    """The configured sampler, seeded with ``seed`` (default: the config's).

    With ``feasible`` (a worker's static check of a parameter set against the space's
    ``constraints``) and constraints in the space, the sampler is wrapped in a
    :class:`~nas.samplers.FeasibleSampler`: candidates over a static ceiling are proposed
    again instead of becoming pruned trials that would steer the sampler away from the ceiling
    (sampler option ``reject_infeasible: false`` turns it off).

    Raises:
        ConfigError: an option the sampler does not take or refuses, or a sampler this
            install lacks.
    """
    seed = config.seed if seed is None else seed
    options = dict(config.sampler_options)
    avoid = options.pop("avoid_duplicates", False)
    reject = options.pop("reject_infeasible", True)
    name = config.sampler
    try:
        cls = sampler_class(name)
        if name == "tpe":
            options.setdefault("multivariate", True)
            options.setdefault("group", config.space.conditional)
            options.setdefault("constant_liar", True)
            options.setdefault("n_startup_trials", max(1, min(10, (config.trials or 30) // 3)))
        elif name == "local":
            options["key"] = equivalence_key(config)
        sampler = cls(seed=seed, **options)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"{name}: {' '.join(str(error).split())}", file=config.file,
                          path="sampler") from None
    except ConfigError as error:
        raise error.located(file=config.file, path="sampler")
    if avoid:
        from nas.samplers import DeduplicatingSampler

        sampler = DeduplicatingSampler(sampler, equivalence_key(config))
    space = config.space
    if reject and feasible is not None and config.tabular is None and space.constraints:
        from nas.samplers import FeasibleSampler

        full = None if space.conditional else {c.label: c.distribution() for c in space.choices}
        sampler = FeasibleSampler(sampler, feasible, space=full)
    return sampler


def equivalence_key(config: RunConfig) -> Callable[[Mapping[str, Any]], str | None]:
    """A function of a trial's parameters that is equal for equivalent candidates: the
    NAS-Bench-201 cell key for tabular runs (it also merges cells that differ only in edges
    that cannot reach the output), else the genotype's isomorphism hash; ``None`` when the
    parameters do not make a valid candidate."""
    if config.tabular is not None:
        from nas.nb201 import cell_key

        return cell_key
    space = config.space

    def key(params: Mapping[str, Any]) -> str | None:
        try:
            return space.make_genotype(space.decode(params)).hash
        except Exception:  # noqa: BLE001 - an invalid genotype is never a duplicate
            return None

    return key


def pruner_class(name: str) -> type | None:
    """Optuna's pruner class for ``median`` and ``hyperband``; ``None`` for ``none`` and
    ``halving`` (ours: :class:`HalvingRule`)."""
    import optuna

    return {"median": optuna.pruners.MedianPruner,
            "hyperband": optuna.pruners.HyperbandPruner}.get(name)


def make_pruner(config: RunConfig) -> optuna.pruners.BasePruner:
    """Optuna's pruner for ``median`` and ``hyperband``, else a no-op (halving is ours).

    Raises:
        ConfigError: an option the pruner does not take or refuses.
    """
    import optuna

    options = dict(config.pruner_options)
    cls = pruner_class(config.pruner)
    if cls is None:
        return optuna.pruners.NopPruner()
    if config.pruner == "hyperband":
        options.setdefault("min_resource", 1)
        options.setdefault("max_resource", int(config.train.get("epochs", 10)))
    try:
        return cls(**options)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"{config.pruner}: {' '.join(str(error).split())}", file=config.file,
                          path="pruner") from None


class HalvingRule:
    """Asynchronous successive halving on validation accuracy at fixed epoch rungs.

    Args:
        rungs: Epoch numbers at which trials are compared. Default: every epoch but the last.
        reduction: Keep the top ``1 / reduction`` at each rung. Default: 3.
        min_trials: Trials that must have reached a rung before it prunes. Default: reduction.
    """

    def __init__(self, *, rungs: list[int], reduction: float = 3, min_trials: int | None = None):
        self.rungs = tuple(rungs)
        self.reduction = float(reduction)
        self.min_trials = min_trials if min_trials is not None else math.ceil(reduction)

    @classmethod
    def from_config(cls, config: RunConfig) -> HalvingRule:
        options = dict(config.pruner_options)
        epochs = int(config.train.get("epochs", 10))
        options.setdefault("rungs", list(range(1, epochs)) or [1])
        return cls(**options)

    def keep(self, accuracy: float, others: list[float]) -> bool:
        """Whether a trial with ``accuracy`` at a rung goes on, given the others' there."""
        values = sorted([*others, accuracy], reverse=True)
        if len(values) < self.min_trials:
            return True
        keep = max(1, math.floor(len(values) / self.reduction))
        return accuracy >= values[keep - 1]
