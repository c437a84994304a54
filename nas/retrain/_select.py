"""Which architectures a retraining trains: the search's best and its seed architectures.

Candidates come from the run folder alone (frozen config, ``trials/*/metrics.json``): the top
K complete trials by the search's validation accuracy (or the Pareto set over the run's
objectives) that are not seed architectures, then every seed architecture of the space (the
hand-designed points, whether or not their seed trial finished). Isomorphic genotypes are
listed once: a searched trial equal to a seed (or to a better trial) is skipped. Genotypes are rebuilt from
the trials' parameters at ``width_multiplier`` (1.0: the architecture itself, not the
search's proxy width).

With ``grow``, each searched architecture is also retrained widened to the seeds' MACs
(:func:`widen_to_macs`): a search on a short proxy favours small networks that learn fast, so the fair
question at equal cost is whether the searched shape, grown as compound scaling grows a
network, beats the seed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nas.analysis import analyze
from nas.errors import ConfigError, GenotypeError, NasError
from nas.genotype import Genotype

__all__ = ["Candidate", "select_candidates"]


@dataclass(frozen=True)
class Candidate:
    """One architecture to retrain.

    Attributes:
        label: Folder name and table row: the seed's name, or ``trial_NNNN``.
        trial: The search trial it comes from (the seed's trial for a seed), or None.
        seed: The seed's name for a seed architecture, else None.
        genotype: The genotype as retrained (dataset input, classes, width multiplier).
        proxy_val_accuracy: The search's validation accuracy (proxy training), or None.
        selected_by: Why it is here: ``"top"``, ``"pareto"`` or ``"seed"``.
    """

    label: str
    trial: int | None
    seed: str | None
    genotype: Genotype
    proxy_val_accuracy: float | None
    selected_by: str


def _dominated(r: Mapping, others: Sequence[Mapping], objectives: Sequence[str],
               signs: Sequence[int]) -> bool:
    a = [r["objectives"][o] for o in objectives]
    for other in others:
        b = [other["objectives"][o] for o in objectives]
        if all(s * y >= s * x for x, y, s in zip(a, b, signs)) and \
                any(s * y > s * x for x, y, s in zip(a, b, signs)):
            return True
    return False


def select_candidates(run_dir: str | Path, config: Any, *, select: str, top: int,
                      input_shape: Sequence[int], num_classes: int,
                      width_multiplier: float, grow: bool = False) -> list[Candidate]:
    """The architectures to retrain, searched ones first (best first), then (with ``grow``)
    each searched one widened to the seeds' MACs (:func:`widen_to_macs`), then the seeds.

    Args:
        run_dir: The search's run folder.
        config: Its frozen :class:`~nas.search.RunConfig`.
        select: ``"top"`` (the ``top`` best by validation accuracy) or ``"pareto"``.
        input_shape, num_classes: Of the retraining dataset.
        width_multiplier: Width of the retrained genotypes.
        grow: Add the grown searched architectures.

    Raises:
        ConfigError: a tabular run, a trial whose parameters no longer make a genotype, or
            ``grow`` where there is no seed or a genotype declares no width scaling.
    """
    from nas.search import read_trials
    from nas.search._proxy import fit_to_data

    if config.tabular is not None:
        raise ConfigError("a tabular run looks accuracies up; it has no architectures to retrain",
                          file=str(run_dir))
    space = config.space
    records = read_trials(run_dir)
    accuracy = config.objectives[0]

    def genotype_of(params: Mapping[str, Any], where: str) -> Genotype:
        try:
            genotype = space.make_genotype(space.decode(params))
            return fit_to_data(genotype, input_shape, num_classes, width_multiplier)
        except NasError as error:
            raise ConfigError(f"cannot rebuild the genotype: {error}", file=str(run_dir),
                              path=where) from None

    seed_records: dict[str, Mapping] = {}
    for r in records:
        if r.get("seed") and r.get("state") == "complete" and r["seed"] not in seed_records:
            seed_records[r["seed"]] = r
    seeds = [
        Candidate(label=name, trial=seed_records.get(name, {}).get("trial"), seed=name,
                  genotype=genotype_of(params, f"space.seeds.{name}"),
                  proxy_val_accuracy=(seed_records.get(name, {}).get("objectives") or {}).get(accuracy),
                  selected_by="seed")
        for name, params in space.seeds.items()
    ]
    taken = {c.genotype.hash for c in seeds}
    done = [r for r in records if r.get("state") == "complete" and r.get("duplicate_of") is None
            and all((r.get("objectives") or {}).get(o) is not None for o in config.objectives)]
    done.sort(key=lambda r: (-r["objectives"][accuracy], r["trial"]))
    if select == "pareto":
        signs = [1 if d == "maximize" else -1 for d in config.directions]
        done = [r for r in done if not _dominated(r, done, config.objectives, signs)]
    searched = []
    for r in done:
        if select == "top" and len(searched) == top:
            break
        genotype = genotype_of(r["params"], f"trials/{r['trial']:04d}")
        if genotype.hash in taken:  # a seed architecture, or one already listed
            continue
        taken.add(genotype.hash)
        searched.append(Candidate(label=f"trial_{r['trial']:04d}", trial=r["trial"], seed=None,
                                  genotype=genotype, proxy_val_accuracy=r["objectives"][accuracy],
                                  selected_by=select))
    grown: list[Candidate] = []
    if grow:
        if not seeds:
            raise ConfigError("growing needs a seed architecture whose MACs to grow to; the space "
                              "has none", file=str(run_dir), path="retrain.grow")
        budget = max(analyze(s.genotype).macs for s in seeds)
        for candidate in searched:
            wider = widen_to_macs(candidate, budget, where=str(run_dir))
            if wider is not None and wider.genotype.hash not in taken:
                taken.add(wider.genotype.hash)
                grown.append(wider)
    return searched + grown + seeds


GROWTH_STEPS = 12
"""Bisection steps of :func:`widen_to_macs` (the multiplier to within 16 / 2**12, finer than rounding)."""


def widen_to_macs(candidate: Candidate, macs: int, *, where: str | None = None) -> Candidate | None:
    """``candidate`` widened to the largest width multiplier whose MACs are at most ``macs``:
    :func:`nas.scaling.scale` along the width axis its genotype declares, widths rounded to
    multiples of 8 as ``nas scale`` rounds them, or finer for a narrow network
    (:func:`width_divisor`: 2 for widths 4/8/16, which could otherwise only double).
    Labelled ``LABEL_grown``, selected by ``"grown"``, with no proxy accuracy (the search never
    trained it). ``None`` when it already has ``macs`` or more, or no rounded width fits between.

    Raises:
        ConfigError: the genotype declares no width to scale, naming the candidate.
    """
    from nas.scaling import scale

    if not (candidate.genotype.scaling or {}).get("width"):
        raise ConfigError(f"cannot grow {candidate.label}: its genotype '{candidate.genotype.name}' "
                          "declares no width parameters to scale (scaling: {width: [...]})",
                          file=where, path="retrain.grow")

    divisor = width_divisor(candidate.genotype)

    def widened(multiplier: float) -> Genotype | None:
        try:
            genotype = scale(candidate.genotype, width=multiplier, width_divisor=divisor)
        except GenotypeError:
            return None  # past the size limits: too wide
        return genotype if analyze(genotype).macs <= macs else None

    if analyze(candidate.genotype).macs >= macs:
        return None
    low, high = 1.0, 16.0
    best = None
    for _ in range(GROWTH_STEPS):
        middle = (low + high) / 2
        genotype = widened(middle)
        if genotype is None:
            high = middle
        else:
            low, best = middle, genotype
    if best is None or best.hash == candidate.genotype.hash:
        return None
    return Candidate(label=f"{candidate.label}_grown", trial=candidate.trial, seed=None, genotype=best,
                     proxy_val_accuracy=None, selected_by="grown")


def width_divisor(genotype: Genotype, most: int = 8) -> int:
    """The multiple widths round to when ``genotype`` grows: the largest power of two up to
    ``most`` that divides every width its ``scaling: width`` parameters hold now and is at most
    half the narrowest (so the narrowest can grow by half, not only double)."""
    widths: list[int] = []
    for name in genotype.scaling.get("width", ()):
        value = genotype.params.get(name)
        widths += [v for v in (value if isinstance(value, (list, tuple)) else [value])
                   if isinstance(v, int) and not isinstance(v, bool) and v > 0]
    divisor = most
    while divisor > 1 and (any(w % divisor for w in widths) or 2 * divisor > min(widths, default=2 * most)):
        divisor //= 2
    return divisor
