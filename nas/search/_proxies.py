"""Zero-cost proxies in a run: the ``proxies`` config section, scoring a trial's network, and
pre-screening.

The section (every key optional)::

    proxies:
      record: [naswot, synflow]    # scored for every evaluated trial (metrics.json "proxies",
                                   # user attribute nas.proxies; nas analyze correlates them)
      data: {name: cifar10, ...}   # images for data-dependent proxies (nas.data options);
                                   # default: the run's dataset (a tabular run must give it)
      batch: 64                    # images per score
      constraints: {naswot: {min: 700}}    # a candidate outside is pruned before training
      prescreen: {proxy: naswot, candidates: 200, top: 5}   # see below
                                   # (optional shortlist: {proxy: params, keep: 50})

A proxy is an objective by naming it ``proxy.NAME`` in ``objectives`` (maximised). Every proxy
an objective, a constraint or the pre-screen uses is recorded too.

Pre-screening (:func:`prescreen`): before the first trial, ``candidates`` distinct candidates
(by the run's equivalence key) are drawn at random from the space (seeded with the run's seed),
scored with ``proxy`` (a name, or a list combined by their rank ensemble, ``method`` mean or
log), and the ``top`` best are enqueued, best first, right after the space's seeds, with the
user attribute ``nas.prescreen`` (their rank, 1 = best). With ``shortlist: {proxy: params,
keep: 150}``, every candidate is first scored with the shortlist's proxy (or rank ensemble:
best a static one, milliseconds a candidate) and only the best ``keep`` are scored with
``proxy``; a proxy both lists name is not computed twice. So a cheap score screens thousands
of candidates and the costly one reads only the few that survive. With ``first: true`` the top
are enqueued before the space's seeds instead (the first trials are the pre-screen's). It runs once per study (a resumed run
does not repeat it); what it did and the seconds it took are the study's user attribute
``nas.prescreen`` and ``runs/NAME/prescreen.json``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nas import _checks
from nas._threads import torch_threads
from nas.errors import ConfigError

if TYPE_CHECKING:
    import optuna

    from nas.genotype import Genotype
    from nas.search._config import RunConfig

__all__ = ["PRESCREEN_ATTR", "PROXIES_ATTR", "PROXY_OBJECTIVE", "Prescreen", "ProxySettings",
           "parse_proxies", "prescreen", "run_prescreen", "sample_candidates", "TrialScorer"]

#: Prefix of an objective that is a proxy's score (``proxy.naswot``).
PROXY_OBJECTIVE = "proxy."
#: A trial's recorded scores ({name: value or None}); a pre-screened trial's rank; the study's
#: pre-screen summary.
PROXIES_ATTR = "nas.proxies"
PRESCREEN_ATTR = "nas.prescreen"
_KEYS = ("record", "data", "batch", "constraints", "prescreen")
_PRESCREEN_KEYS = ("proxy", "candidates", "top", "method", "shortlist", "first")
_SHORTLIST_KEYS = ("proxy", "keep")


@dataclass(frozen=True)
class Prescreen:
    """The ``prescreen`` subsection: score ``candidates`` random candidates with ``proxies``
    (combined by their rank ensemble ``method`` when several) and enqueue the ``top``; with a
    shortlist, only the best ``keep`` by ``shortlist`` (a rank ensemble the same way) are
    scored with ``proxies``."""

    proxies: tuple[str, ...]
    candidates: int
    top: int
    method: str = "mean"
    shortlist: tuple[str, ...] = ()
    keep: int | None = None
    first: bool = False


@dataclass(frozen=True)
class ProxySettings:
    """The validated ``proxies`` section. ``record`` lists every proxy a trial is scored with
    (recorded ones, objectives, constraints)."""

    record: tuple[str, ...]
    data: Mapping[str, Any] | None
    batch: int
    constraints: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    prescreen: Prescreen | None = None

    @property
    def needs_data(self) -> bool:
        from nas.proxies import get_proxy

        names = {*self.record, *(self.prescreen.proxies if self.prescreen else ())}
        return any(get_proxy(n).needs_data for n in names)


def _names(value: Any, file: str, where: str) -> tuple[str, ...]:
    from nas.proxies import get_proxy

    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not names:
        raise ConfigError("must be a proxy name or a list of them", file=file, path=where)
    for i, name in enumerate(names):
        try:
            get_proxy(name)
        except ConfigError as error:
            raise error.located(file=file, path=f"{where}[{i}]" if isinstance(value, list) else where)
    return tuple(names)


MAX_COUNT = 1_000_000
"""Most candidates a pre-screen scores or keeps: a bound on its work."""


def _count(value: Any, low: int, file: str, where: str, high: int = MAX_COUNT) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ConfigError(f"must be an integer from {low} to {high:,}, got {value!r}", file=file,
                          path=where)
    return value


def parse_proxies(value: Any, *, objectives: Sequence[str], file: str, base: Path,
                  trained: bool, paths: Sequence[str] = ("root",)) -> ProxySettings | None:
    """Validate the ``proxies`` section (``None`` when absent and no objective is a proxy).
    Dataset options named in ``paths`` are made absolute, relative to ``base``.

    Raises:
        ConfigError: naming the key, for an unknown key or proxy, a bad count or bound, or a
            tabular run whose data-dependent proxies have no ``data``.
    """
    objective_proxies = [o[len(PROXY_OBJECTIVE):] for o in objectives if o.startswith(PROXY_OBJECTIVE)]
    if value is None and not objective_proxies:
        return None
    value = {} if value is None else value
    if not isinstance(value, Mapping):
        raise ConfigError("must be a mapping", file=file, path="proxies")
    _checks.known_keys(value, _KEYS, path="proxies", file=file)
    record = list(_names(value["record"], file, "proxies.record")) if "record" in value else []
    for i, objective in enumerate(objectives):
        if objective.startswith(PROXY_OBJECTIVE):
            record += _names(objective[len(PROXY_OBJECTIVE):], file, f"objectives[{i}]")
    constraints: dict[str, dict[str, float]] = {}
    bounded = _checks.section(value.get("constraints"), path="proxies.constraints", file=file)
    for name, bounds in bounded.items():
        where = f"proxies.constraints.{name}"
        _names(name, file, where)
        if not isinstance(bounds, Mapping) or not bounds or set(bounds) - {"min", "max"}:
            raise ConfigError("must be a mapping with min and/or max", file=file, path=where)
        for k, v in bounds.items():
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ConfigError(f"must be a finite number, got {v!r}", file=file, path=f"{where}.{k}")
        constraints[name] = {k: float(v) for k, v in bounds.items()}
        if constraints[name].get("min", -math.inf) > constraints[name].get("max", math.inf):
            raise ConfigError("min is above max: no candidate can meet it", file=file, path=where)
        record.append(name)
    screen = None
    if value.get("prescreen") is not None:
        raw = value["prescreen"]
        if not isinstance(raw, Mapping) or "proxy" not in raw:
            raise ConfigError("must be a mapping with proxy, candidates and top", file=file,
                              path="proxies.prescreen")
        for key in raw:
            if key not in _PRESCREEN_KEYS:
                raise ConfigError(f"unknown key {key!r}; valid: {', '.join(_PRESCREEN_KEYS)}",
                                  file=file, path=f"proxies.prescreen.{key}")
        names = _names(raw["proxy"], file, "proxies.prescreen.proxy")
        candidates = _count(raw.get("candidates", 100), 1, file, "proxies.prescreen.candidates")
        top = _count(raw.get("top", 5), 1, file, "proxies.prescreen.top")
        if top > candidates:
            raise ConfigError(f"must be at most candidates ({candidates}), got {top}", file=file,
                              path="proxies.prescreen.top")
        method = raw.get("method", "mean")
        from nas.proxies import ENSEMBLE_METHODS

        if method not in ENSEMBLE_METHODS:
            raise ConfigError(f"unknown method {method!r}; valid: {', '.join(ENSEMBLE_METHODS)}",
                              file=file, path="proxies.prescreen.method")
        shortlist, keep = (), None
        if raw.get("shortlist") is not None:
            shortlist, keep = _shortlist(raw["shortlist"], top, candidates, file)
        first = raw.get("first", False)
        if not isinstance(first, bool):
            raise ConfigError(f"must be true or false, got {first!r}", file=file,
                              path="proxies.prescreen.first")
        screen = Prescreen(names, candidates, top, method, shortlist, keep, first)
        record += [*names, *shortlist]
    data = value.get("data")
    if data is not None:
        if isinstance(data, str):
            data = {"name": data}
        if not isinstance(data, Mapping) or not isinstance(data.get("name"), str):
            raise ConfigError("must be a dataset name or a mapping with 'name' and options",
                              file=file, path="proxies.data")
        data = dict(data)
        for key in paths:
            if isinstance(data.get(key), str):
                data[key] = str(_checks.dataset_path(data[key], key, base, file=file,
                                                     path=f"proxies.data.{key}"))
    batch = _count(value.get("batch", 64), 2, file, "proxies.batch", _checks.MAX_BATCH)
    settings = ProxySettings(tuple(dict.fromkeys(record)), data, batch, constraints, screen)
    if data is None and not trained and settings.needs_data:
        raise ConfigError("a tabular run has no dataset: give proxies.data for the proxies "
                          "that read images", file=file, path="proxies.data")
    return settings


def _shortlist(raw: Any, top: int, candidates: int, file: str) -> tuple[tuple[str, ...], int]:
    where = "proxies.prescreen.shortlist"
    if not isinstance(raw, Mapping) or "proxy" not in raw or "keep" not in raw:
        raise ConfigError("must be a mapping with proxy and keep", file=file, path=where)
    _checks.known_keys(raw, _SHORTLIST_KEYS, path=where, file=file)
    names = _names(raw["proxy"], file, f"{where}.proxy")
    keep = _count(raw["keep"], 1, file, f"{where}.keep")
    if not top <= keep <= candidates:
        raise ConfigError(f"must be between top ({top}) and candidates ({candidates}), got {keep}",
                          file=file, path=f"{where}.keep")
    return names, keep


class TrialScorer:
    """Scores genotypes with a run's proxies, loading the images once (lazily).

    Args:
        config: The run config (its ``proxies`` section must be set).
        dataset: Returns the run's own dataset (used when the section has no ``data``).
    """

    def __init__(self, config: RunConfig, dataset: Callable[[], Any] | None = None):
        self.config = config
        self.settings: ProxySettings = config.proxies
        self._dataset = dataset
        self._batch: Any = None

    def batch(self) -> Any:
        """The image batch proxies read (``None`` when no proxy reads images)."""
        if self._batch is None and self.settings.needs_data:
            from nas.proxies import image_batch

            if self.settings.data is not None:
                from nas.data import load_dataset

                options = dict(self.settings.data)
                data = load_dataset(options.pop("name"), **options)
            else:
                data = self._dataset()
            self._batch = image_batch(data, batch_size=self.settings.batch, seed=self.config.seed)
        return self._batch

    def score(self, genotype: Genotype, names: Sequence[str] | None = None) -> dict[str, Any]:
        """``{name: ProxyScore}`` for ``names`` (default: every recorded proxy).

        Raises:
            ConfigError: when the images do not fit the genotype's input.
            GenotypeError: when the proxies' largest batch needs more memory than the machine
                has available (:func:`nas.train._memory.check_batch_memory`; on the CPU the
                out-of-memory killer would end the search), rather than the 4 GiB default of
                :func:`nas.proxies.score`, which a search has no flag to raise.
        """
        import torch

        from nas.proxies import score
        from nas.proxies._network import RANDOM_BATCH
        from nas.train._memory import check_batch_memory

        self.check_images(genotype.input_shape)
        check_batch_memory(genotype, max(RANDOM_BATCH, self.settings.batch), torch.device("cpu"))
        return score(genotype, self.batch(), list(names or self.settings.record), seed=self.config.seed,
                     batch_size=self.settings.batch, max_memory=math.inf)

    def check_images(self, input_shape: Sequence[int], classes: int | None = None) -> None:
        """Refuse proxy images (loaded first, when a proxy reads images) of another shape than
        ``input_shape``, the networks' input, or (given ``classes``) labelled beyond the
        networks' classes.

        Raises:
            ConfigError: naming ``proxies.data``.
        """
        batch = self.batch()
        if batch is None:
            return
        images, labels = batch
        if tuple(images.shape[1:]) != tuple(input_shape):
            raise ConfigError(f"proxy images are {tuple(images.shape[1:])} but the network "
                              f"takes {tuple(input_shape)}", file=self.config.file,
                              path="proxies.data")
        if classes is not None and len(labels) and not 0 <= int(labels.min()) <= int(labels.max()) < classes:
            raise ConfigError(f"proxy images are labelled {int(labels.min())} to {int(labels.max())} "
                              f"but the networks have {classes} classes", file=self.config.file,
                              path="proxies.data")

    def violated(self, scores: Mapping[str, Any]) -> str | None:
        """The first constraint ``scores`` break (an undefined score breaks any), else None."""
        for name, bounds in self.settings.constraints.items():
            s = scores[name]
            if not s.defined:
                return f"{name} undefined ({s.reason})"
            if "min" in bounds and s.value < bounds["min"]:
                return f"{name} {s.value:.6g} < min {bounds['min']:g}"
            if "max" in bounds and s.value > bounds["max"]:
                return f"{name} {s.value:.6g} > max {bounds['max']:g}"
        return None


def sample_candidates(config: RunConfig, count: int, *, seed: int) -> list[dict[str, Any]]:
    """``count`` candidates (label -> value) drawn at random from the space, distinct by the
    run's equivalence key and valid (fewer when the space has fewer).

    At most ``50 * count`` draws, and it stops once ``50 * (found + 1)`` draws in a row gave
    nothing new: a space of 16 candidates asked for 2,000 would otherwise be drawn 100,000
    times (minutes) before the first trial.
    """
    import optuna

    from nas.search._study import equivalence_key

    key = equivalence_key(config)
    scratch = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    seen: set[str] = set()
    out: list[dict[str, Any]] = []
    fruitless = 0  # draws since the last new candidate
    for _ in range(50 * count):
        if len(out) == count or fruitless >= 50 * (len(out) + 1):
            break
        trial = scratch.ask()
        values = config.space.suggest(trial)
        scratch.tell(trial, 0.0)
        k = key(config.space.encode(values))
        if k is not None and k not in seen:
            seen.add(k)
            out.append(values)
            fruitless = 0
        else:
            fruitless += 1
    return out


def prescreen(study: optuna.Study, config: RunConfig, run_dir: Path | None, *,
              genotype: Callable[[dict[str, Any]], Any],
              scorer: Callable[[Any, Sequence[str]], Mapping[str, float]] | None = None,
              candidates: Sequence[dict[str, Any]] | None = None) -> dict[str, Any] | None:
    """Pre-screen (see the module docstring) once per study; returns its summary, or ``None``
    when the config has no pre-screen or the study was pre-screened before.

    Args:
        genotype: What a candidate (label -> value) is scored as: the trained genotype (a
            benchmark may pass any key its ``scorer`` understands).
        scorer: ``scorer(genotype(values), names) -> {proxy: value}`` for the proxies
            ``names`` (NaN when undefined); default: the run's :class:`TrialScorer`. A
            benchmark may pass cached scores.
        candidates: The candidates to score; default: ``candidates`` of them drawn by
            :func:`sample_candidates` with the run's seed.
    """
    screen = config.proxies.prescreen if config.proxies is not None else None
    if screen is None or study.user_attrs.get(PRESCREEN_ATTR):
        return None
    started = time.perf_counter()
    if scorer is None:
        trial_scorer = TrialScorer(config)

        def scorer(g: Genotype, names: Sequence[str]) -> Mapping[str, float]:
            return {n: s.value for n, s in trial_scorer.score(g, names).items()}

    if candidates is None:
        candidates = sample_candidates(config, screen.candidates, seed=config.seed)
    candidates = list(candidates)
    columns: dict[str, list[float]] = {}
    kept = list(range(len(candidates)))
    if screen.shortlist:
        _score_into(columns, candidates, kept, screen.shortlist, scorer, genotype)
        kept = _best(columns, screen.shortlist, screen.method, kept, screen.keep)
    rest = [n for n in screen.proxies if n not in columns]
    _score_into(columns, candidates, kept, rest, scorer, genotype)
    final = {n: [columns[n][i] for i in kept] for n in screen.proxies}
    order = [kept[j] for j in _best(final, screen.proxies, screen.method, range(len(kept)), screen.top)]
    for rank, i in enumerate(order, 1):
        study.enqueue_trial(config.space.encode(candidates[i]), user_attrs={PRESCREEN_ATTR: rank})
    seconds = time.perf_counter() - started
    names = list(dict.fromkeys([*screen.shortlist, *screen.proxies]))
    summary = {"proxy": list(screen.proxies), "method": screen.method, "candidates": len(candidates),
               **({"shortlist": list(screen.shortlist), "kept": len(kept)} if screen.shortlist else {}),
               **({"first": True} if screen.first else {}),
               "top": len(order), "seconds": seconds,
               "enqueued": [{"rank": r, "values": {k: _plain(v) for k, v in candidates[i].items()},
                             "scores": {n: _plain(columns[n][i]) for n in names}}
                            for r, i in enumerate(order, 1)]}
    study.set_user_attr(PRESCREEN_ATTR, {k: v for k, v in summary.items() if k != "enqueued"})
    if run_dir is not None:
        from nas.search._records import write_json

        write_json(run_dir / "prescreen.json", summary)
    return summary


def _score_into(columns: dict[str, list[float]], candidates: Sequence[dict[str, Any]],
                which: Sequence[int], names: Sequence[str],
                scorer: Callable[[Any, Sequence[str]], Mapping[str, float]],
                genotype: Callable[[dict[str, Any]], Any]) -> None:
    """Score ``candidates[i]`` for ``i`` in ``which`` with ``names`` into ``columns[name][i]``
    (NaN elsewhere, and for a candidate that does not make a network)."""
    from nas.errors import NasError

    if not names:
        return
    for n in names:
        columns[n] = [math.nan] * len(candidates)
    for i in which:
        try:
            scores = scorer(genotype(candidates[i]), names)
        except NasError:  # a candidate that does not make a network ranks last
            scores = {}
        for n in names:
            columns[n][i] = float(scores.get(n, math.nan))


def _best(columns: Mapping[str, Sequence[float]], names: Sequence[str], method: str,
          which: Sequence[int], count: int) -> list[int]:
    """The ``count`` best of ``which`` by the rank ensemble of ``names`` (one proxy: by its
    value), best first; NaN ranks last, ties keep ``which``'s order."""
    from nas.proxies import rank_ensemble

    which = list(which)
    if len(names) > 1:
        combined = rank_ensemble({n: [columns[n][i] for i in which] for n in names}, method=method)
    else:
        combined = [-math.inf if math.isnan(columns[names[0]][i]) else columns[names[0]][i]
                    for i in which]
    return [which[j] for j in sorted(range(len(which)), key=lambda j: -combined[j])[:count]]


def run_prescreen(study: optuna.Study, config: RunConfig, run_dir: Path) -> dict[str, Any] | None:
    """:func:`prescreen` as ``nas search`` runs it: candidates scored as the trials will be
    trained (the dataset's input and classes, the proxy width; a tabular run's genotype as
    it is), with the run's :class:`TrialScorer`, on as many torch threads as a trial's worker
    (``threads``, default the cores shared among the workers: ``RunConfig.torch_threads``;
    torch's setting is restored afterwards)."""
    # prescreen() checks this too; here, so that a resumed, pre-screened study imports no torch
    if config.proxies is None or config.proxies.prescreen is None or study.user_attrs.get(PRESCREEN_ATTR):
        return None
    from nas.search._evaluate import Evaluator

    evaluator = Evaluator(config, run_dir, "prescreen", halving=None, deadline=None)
    def genotype(values: dict[str, Any]) -> Genotype:
        made = config.space.make_genotype(values)
        return made if config.tabular is not None else evaluator.proxy(made)

    def scorer(g: Genotype, names: Sequence[str]) -> Mapping[str, float]:
        return {n: s.value for n, s in evaluator.scorer().score(g, names).items()}

    with torch_threads(config.torch_threads()):
        return prescreen(study, config, run_dir, genotype=genotype, scorer=scorer)


def _plain(value: Any) -> Any:
    from nas.search._space import _plain as plain

    value = plain(value)
    return None if isinstance(value, float) and math.isnan(value) else value
