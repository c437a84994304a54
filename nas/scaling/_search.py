"""``nas scale-search``: the compound-scaling coefficient search (Tan and Le, 2019, step 1),
then the family they give (step 2).

Step 1 fixes phi = 1 and grid-searches alpha (depth), beta (width) and gamma (resolution)
with ``alpha * beta**2 * gamma**2`` within ``tolerance`` of ``target`` (2: each step of phi
doubles the MACs). Every candidate ``scale(base, depth=alpha, width=beta)`` is trained at the
resolution ``gamma * dataset.resolution`` by the search engine itself: each candidate is a
one-trial ``nas search`` run (:func:`nas.search.run_search`), so training, trial records and
failure handling are exactly those of ``nas search``. The candidate with the best validation
accuracy wins (ties: fewer MACs). Step 2 writes ``scale(base, phi=k)`` for ``k = 0..family``
with the winning coefficients, at the base genotype's own input size.

Config keys (``genotype``, ``dataset.resolution`` and ``grid`` are required)::

    name: scale_digits           # runs/NAME; default: the file's stem
    doc: free text
    genotype: FILE | ZOO_NAME    # must declare scaling: {depth: [...], width: [...]}
    params: {widths: [16, 32, 64]}                 # fixed replacements of its defaults
    dataset: {name: digits, resolution: 16, ...}   # resolution: the size gamma multiplies
    train: {epochs: 1, ...}      # as in nas search
    width_multiplier: 1.0        # as in nas search (proxy width on top of beta)
    constraints: {macs: {max: 2.0e7}}              # as in a search space; checked before training
    grid:                        # values to try: a list, or {low, high, step}
      alpha: [1.0, 1.1, 1.2]
      beta: {low: 1.0, high: 1.2, step: 0.05}
      gamma: [1.0, 1.1, 1.15]
    target: 2.0                  # alpha * beta**2 * gamma**2 ...
    tolerance: 0.1               # ... within this of the target
    max_candidates: null         # keep the N candidates whose product is nearest the target
    width_divisor: 8             # rounding of scaled widths (nas.scaling.scale)
    resolution_divisor: 8        # rounding of the scaled training resolution and family inputs
    family: 4                    # step 2: phi = 0..4 (0: skip step 2)
    seed: 0
    threads: null                # torch threads (default: all cores)

Run folder ``runs/NAME/``::

    config.yaml                  the config as given (paths absolute)
    base_genotype.yaml           the base genotype (params applied), canonical
    candidates/aA_bB_gG/         one ``nas search`` run folder per candidate (config.yaml,
                                 run.json, journal.log, trials/0000/{genotype.yaml, log.txt,
                                 metrics.json})
    report.json, report.md       every candidate, the best coefficients and the family table
    family/NAME_phiK.yaml        step 2's genotypes

Errors are :class:`~nas.errors.ConfigError` naming the file and key, raised before any
training starts.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nas import _checks
from nas._yaml import dump_yaml, load_yaml_file, read_text
from nas.errors import ConfigError, NasError
from nas.genotype import Genotype
from nas.io import atomic_write_text
from nas.scaling._family import Member, family, family_table, write_family
from nas.scaling._scale import MAX_MULTIPLIER, check_divisor, scale

__all__ = ["Candidate", "ScaleSearchConfig", "ScaleSearchResult", "load_scale_config", "run_scale_search"]

_KEYS = ("name", "doc", "genotype", "params", "dataset", "train", "width_multiplier", "constraints",
         "grid", "target", "tolerance", "max_candidates", "width_divisor", "resolution_divisor",
         "family", "seed", "threads")
_COEFFICIENTS = ("alpha", "beta", "gamma")
_MAX_GRID = 10_000


@dataclass(frozen=True)
class Candidate:
    """One (alpha, beta, gamma) of the grid."""

    alpha: float
    beta: float
    gamma: float

    @property
    def product(self) -> float:
        return self.alpha * self.beta ** 2 * self.gamma ** 2

    @property
    def label(self) -> str:
        return f"a{self.alpha:g}_b{self.beta:g}_g{self.gamma:g}"


@dataclass(frozen=True)
class ScaleSearchConfig:
    """A validated ``nas scale-search`` config (keys in the module docstring)."""

    file: str
    name: str
    genotype: Genotype
    candidates: tuple[Candidate, ...]
    dataset: Mapping[str, Any]
    resolution: int
    target: float
    tolerance: float
    width_divisor: int
    resolution_divisor: int
    family: int
    data: Mapping[str, Any] = field(repr=False, default_factory=dict)

    def run_config(self, candidate: Candidate) -> Any:
        """The one-trial :class:`nas.search.RunConfig` that trains ``candidate``."""
        from nas.search._config import parse_config

        genotype = scale(self.genotype, depth=candidate.alpha, width=candidate.beta,
                         width_divisor=self.width_divisor)
        data = {key: copy.deepcopy(self.data[key])
                for key in ("doc", "train", "width_multiplier", "seed", "threads") if key in self.data}
        space: dict[str, Any] = {"genotype": genotype.name}
        if "constraints" in self.data:
            space["constraints"] = copy.deepcopy(self.data["constraints"])
        data.update(name=candidate.label, space=space,
                    dataset=dict(self.dataset, resolution=self.candidate_resolution(candidate)),
                    objectives=["val_accuracy"], sampler="random", trials=1, workers=1)
        return parse_config(data, file=self.file, base=Path(self.file).resolve().parent,
                            genotype=genotype)

    def candidate_resolution(self, candidate: Candidate) -> int:
        from nas.genotype import MATH_FUNCTIONS

        if candidate.gamma == 1:
            return self.resolution
        return MATH_FUNCTIONS["divisible"](self.resolution * candidate.gamma, self.resolution_divisor)


@dataclass(frozen=True)
class ScaleSearchResult:
    """What :func:`run_scale_search` returns: the run folder, every candidate's row (grid
    order), the best one (None when no candidate completed) and step 2's family."""

    run_dir: Path
    rows: list[dict[str, Any]]
    best: dict[str, Any] | None
    family: list[Member]
    elapsed: float


def _error(message: str, file: str, path: str) -> ConfigError:
    return ConfigError(message, file=file, path=path)


def _number(data: Mapping, key: str, file: str, default: Any, *, low: float, integer: bool = False) -> Any:
    value = data.get(key, default)
    kinds = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not math.isfinite(value) or value < low:
        kind = "an integer" if integer else "a number"
        raise _error(f"must be {kind} >= {low:g}, got {value!r}", file, key)
    return value


def _is_coefficient(value: Any) -> bool:
    """A number (not a bool) in [1, MAX_MULTIPLIER]: NaN and infinities fail the comparison."""
    return not isinstance(value, bool) and isinstance(value, (int, float)) and 1 <= value <= MAX_MULTIPLIER


def _grid_values(spec: Any, file: str, path: str) -> list[float]:
    """The distinct coefficients of one grid key (a list, or ``{low, high, step}``), each a
    number in [1, MAX_MULTIPLIER]; raises ConfigError naming ``path`` otherwise."""
    if isinstance(spec, Mapping):
        extra = set(spec) - {"low", "high", "step"}
        if extra or not {"low", "high", "step"} <= set(spec):
            raise _error("must be a list of values or {low, high, step}", file, path)
        low, high, step = (spec[k] for k in ("low", "high", "step"))
        if not (_is_coefficient(low) and _is_coefficient(high)) or high < low \
                or isinstance(step, bool) or not isinstance(step, (int, float)) \
                or not 0 < step < math.inf:
            raise _error(f"needs numbers 1 <= low <= high <= {MAX_MULTIPLIER:g} and a finite step > 0, "
                         f"got {dict(spec)!r}", file, path)
        steps = (high - low) / step + 1e-9  # finite or inf: compared before int() sees it
        if steps >= 1000:
            raise _error(f"more than 1000 values (low {low:g} to high {high:g} in steps of {step:g})",
                         file, path)
        spec = [round(low + i * step, 10) for i in range(int(math.floor(steps)) + 1)]
    if not isinstance(spec, list) or not spec:
        raise _error("must be a non-empty list of values or {low, high, step}", file, path)
    for value in spec:
        if not _is_coefficient(value):
            raise _error(f"coefficients are finite numbers in [1, {MAX_MULTIPLIER:g}] (phi = 1 must "
                         f"not shrink the network), got {value!r}", file, path)
    return [float(v) for v in dict.fromkeys(spec)]


def load_scale_config(path: str | Path) -> ScaleSearchConfig:
    """Read and validate a ``nas scale-search`` config.

    Raises:
        ConfigError: the first problem, naming the file and the key.
    """
    path = Path(path)
    data = load_yaml_file(path, error=ConfigError)
    file, base = str(path), path.resolve().parent
    if not isinstance(data, Mapping):
        raise _error("a scale-search config must be a mapping", file, "")
    for key in data:
        if key not in _KEYS:
            raise _error(f"unknown key {key!r}; valid: {', '.join(_KEYS)}", file, str(key))
    frozen = copy.deepcopy(dict(data))
    name = _checks.folder_name(data.get("name", path.stem), file=file, path="name")
    frozen["name"] = name

    genotype = _load_base(data, file, base)
    frozen["genotype"] = genotype.source or data["genotype"]
    for kind in ("depth", "width"):
        if not genotype.scaling.get(kind):
            raise _error(f"genotype '{genotype.name}' declares no {kind} parameters to scale; add "
                         f"'scaling: {{depth: [...], width: [...]}}' to it", file, "genotype")

    dataset = data.get("dataset")
    resolution = dataset.get("resolution") if isinstance(dataset, Mapping) else None
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 1:
        raise _error(f"scale-search needs dataset.resolution, a positive integer: the training "
                     f"size gamma multiplies (got {resolution!r})", file, "dataset.resolution")
    dataset = _checks.dataset(dataset, base=base, file=file)
    frozen["dataset"] = dataset

    grid = data.get("grid")
    if not isinstance(grid, Mapping) or set(grid) != set(_COEFFICIENTS):
        raise _error("must be a mapping with alpha, beta and gamma (each a list or {low, high, "
                     "step})", file, "grid")
    values = {k: _grid_values(grid[k], file, f"grid.{k}") for k in _COEFFICIENTS}
    if math.prod(len(v) for v in values.values()) > _MAX_GRID:
        raise _error(f"the grid has more than {_MAX_GRID:,} points", file, "grid")
    target = float(_number(data, "target", file, 2.0, low=1.0))
    if target > MAX_MULTIPLIER:
        raise _error(f"must be a number in [1, {MAX_MULTIPLIER:g}] (the growth of each phi step), "
                     f"got {data['target']!r}", file, "target")
    tolerance = float(_number(data, "tolerance", file, 0.1, low=0.0))
    candidates = [Candidate(a, b, g) for a in values["alpha"] for b in values["beta"]
                  for g in values["gamma"]]
    candidates = [c for c in candidates if abs(c.product - target) <= tolerance + 1e-12]
    if not candidates:
        raise _error(f"no grid point has alpha * beta**2 * gamma**2 within {tolerance:g} of "
                     f"{target:g}; widen the grid or the tolerance", file, "grid")
    limit = data.get("max_candidates")
    if limit is not None:
        limit = _number(data, "max_candidates", file, None, low=1, integer=True)
        candidates = sorted(candidates, key=lambda c: abs(c.product - target))[:limit]
    family_size = _number(data, "family", file, 4, low=0, integer=True)
    if family_size > 20:
        raise _error(f"at most 20, got {family_size}", file, "family")
    config = ScaleSearchConfig(
        file=file, name=name, genotype=genotype, candidates=tuple(candidates), dataset=dataset,
        resolution=resolution, target=target, tolerance=tolerance,
        width_divisor=check_divisor(data.get("width_divisor", 8), path="width_divisor", file=file),
        resolution_divisor=check_divisor(data.get("resolution_divisor", 8), path="resolution_divisor",
                                         file=file),
        family=family_size, data=frozen,
    )
    # Validate every candidate's genotype and search config now, before any training.
    for candidate in candidates:
        try:
            config.run_config(candidate)
        except NasError as error:
            if error.file not in (None, file):  # the genotype's file: this config's grid scaled it
                raise _error(error.message, file, "grid") from None
            raise error.located(file=file, path="grid") from None
    return config


def _load_base(data: Mapping, file: str, base: Path) -> Genotype:
    genotype = _checks.genotype(data.get("genotype"), base=base, file=file, path="genotype")
    params = data.get("params") or {}
    if not isinstance(params, Mapping):
        raise _error("must be a mapping of parameter values", file, "params")
    _checks.text_keys(params, what="a parameter name", path="params", file=file)
    try:
        genotype = genotype.with_params(**params)
        genotype.graph  # noqa: B018 - the base must expand
    except NasError as error:
        raise _error(error.message, file, "params") from None
    return genotype


def _candidate_row(config: ScaleSearchConfig, candidate: Candidate, run_dir: Path) -> dict[str, Any]:
    from nas.analysis import analyze

    full = scale(config.genotype, depth=candidate.alpha, width=candidate.beta,
                 resolution=candidate.gamma, width_divisor=config.width_divisor,
                 resolution_divisor=config.resolution_divisor)
    return {"alpha": candidate.alpha, "beta": candidate.beta, "gamma": candidate.gamma,
            "product": round(candidate.product, 6), "resolution": config.candidate_resolution(candidate),
            "params_at_phi1": {k: _plain(full.params[k]) for k in
                               (*full.scaling.get("depth", ()), *full.scaling.get("width", ()))},
            "macs_ratio": analyze(full).macs / max(1, analyze(config.genotype).macs),
            "run": f"candidates/{candidate.label}"}


def _plain(value: Any) -> Any:
    return [_plain(v) for v in value] if isinstance(value, (list, tuple)) else value


def _train_candidate(config: ScaleSearchConfig, candidate: Candidate, folder: Path, *,
                     resume: bool) -> dict[str, Any]:
    """Run (or reuse) the candidate's one-trial search; returns its trial record."""
    from nas.search import read_trials, run_search

    done = [r for r in read_trials(folder) if r.get("counted", True)] if folder.is_dir() else []
    if not (resume and done):
        run_search(config.run_config(candidate), runs_dir=folder.parent, progress=False,
                   resume=resume and (folder / "config.yaml").is_file())
        done = [r for r in read_trials(folder) if r.get("counted", True)]
    return done[-1] if done else {"state": "fail", "status": "error", "end_reason": "no trial ran"}


def run_scale_search(
    config: ScaleSearchConfig | str | Path,
    *,
    runs_dir: str | Path = "runs",
    name: str | None = None,
    resume: bool = False,
    on_candidate: Callable[[dict[str, Any]], None] | None = None,
) -> ScaleSearchResult:
    """Step 1 (train every candidate at phi = 1), then step 2 (write the family).

    Args:
        config: A :class:`ScaleSearchConfig` or the path of its YAML file.
        runs_dir: Where run folders live. Default: ``runs``.
        name: The run's name. Default: the config's.
        resume: Continue ``runs_dir/NAME``: finished candidates are reused.
        on_candidate: Called with each candidate's row when it is done (for printing).

    Raises:
        ConfigError: a bad config, an existing run folder without ``resume`` or a missing
            one with it; before any training.
    """
    started = time.time()
    if not isinstance(config, ScaleSearchConfig):
        config = load_scale_config(config)
    if name is not None:
        _checks.folder_name(name, path="--name")
        config = dataclasses.replace(config, name=name, data={**config.data, "name": name})
    run_dir = Path(runs_dir) / config.name
    frozen = dump_yaml(dict(config.data))
    if resume:
        if not (run_dir / "config.yaml").is_file():
            raise ConfigError(f"nothing to resume: {run_dir} holds no scale-search run",
                              file=config.file, path="name")
        if read_text(run_dir / "config.yaml", error=ConfigError) != frozen:
            raise ConfigError(f"the config differs from the run being resumed ({run_dir / 'config.yaml'}); "
                              "start a new run with --name", file=config.file, path="name")
    elif run_dir.exists():
        raise ConfigError(f"run folder {run_dir} exists; use --resume to continue it or --name to "
                          "start another", file=config.file, path="name")
    atomic_write_text(run_dir / "config.yaml", frozen)
    atomic_write_text(run_dir / "base_genotype.yaml", config.genotype.dump())

    rows = []
    for candidate in config.candidates:
        row = _candidate_row(config, candidate, run_dir)
        record = _train_candidate(config, candidate, run_dir / row["run"], resume=resume)
        row.update(state=record.get("state"), status=record.get("status"),
                   end_reason=record.get("end_reason"),
                   val_accuracy=(record.get("objectives") or {}).get("val_accuracy"),
                   proxy_params=(record.get("static") or {}).get("params"),
                   proxy_macs=(record.get("static") or {}).get("macs"))
        rows.append(row)
        _write_report(config, run_dir, rows, None, [], started)
        if on_candidate is not None:
            on_candidate(row)

    done = [r for r in rows if r["state"] == "complete" and r["val_accuracy"] is not None]
    best = max(done, key=lambda r: (r["val_accuracy"], -(r["proxy_macs"] or 0))) if done else None
    members: list[Member] = []
    if best is not None and config.family:
        members = family(config.genotype, range(config.family + 1), alpha=best["alpha"],
                         beta=best["beta"], gamma=best["gamma"], width_divisor=config.width_divisor,
                         resolution_divisor=config.resolution_divisor)
        write_family(members, run_dir / "family")
    _write_report(config, run_dir, rows, best, members, started)
    return ScaleSearchResult(run_dir=run_dir, rows=rows, best=best, family=members,
                             elapsed=time.time() - started)


def _write_report(config: ScaleSearchConfig, run_dir: Path, rows: list[dict[str, Any]],
                  best: dict[str, Any] | None, members: list[Member], started: float) -> None:
    report = {
        "schema": 1, "name": config.name, "genotype": config.genotype.name, "phi": 1,
        "target": config.target, "tolerance": config.tolerance,
        "dataset": dict(config.dataset), "base_resolution": config.resolution,
        "candidates": rows,
        "best": None if best is None else {k: best[k] for k in ("alpha", "beta", "gamma", "product",
                                                                  "val_accuracy", "run")},
        "family": [dict(m.row(), file=f"family/{m.file_name()}") for m in members],
        "elapsed": round(time.time() - started, 1),
    }
    atomic_write_text(run_dir / "report.json", json.dumps(report, indent=2) + "\n")
    atomic_write_text(run_dir / "report.md", _markdown(config, rows, best, members))


def _markdown(config: ScaleSearchConfig, rows: list[dict[str, Any]], best: dict[str, Any] | None,
              members: list[Member]) -> str:
    lines = [f"# Scale search {config.name}", "",
             f"Base genotype `{config.genotype.name}`, phi = 1, alpha * beta^2 * gamma^2 within "
             f"{config.tolerance:g} of {config.target:g}; trained on {config.dataset['name']} at "
             f"{config.resolution} px times gamma.", "",
             "| alpha | beta | gamma | product | resolution | MACs ratio (full size) | val accuracy | status | run |",
             "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |"]
    for r in rows:
        accuracy = "" if r["val_accuracy"] is None else f"{r['val_accuracy']:.4f}"
        lines.append(f"| {r['alpha']:g} | {r['beta']:g} | {r['gamma']:g} | {r['product']:.3f} | "
                     f"{r['resolution']} | {r['macs_ratio']:.3f} | {accuracy} | {r['status']} | "
                     f"{r['run']} |")
    lines.append("")
    if best is None:
        lines.append("No candidate completed: no coefficients and no family.")
    else:
        lines.append(f"**Best: alpha = {best['alpha']:g}, beta = {best['beta']:g}, gamma = "
                     f"{best['gamma']:g}** (val accuracy {best['val_accuracy']:.4f}).")
    if members:
        lines += ["", "## Family (step 2)", "", "```", family_table(members), "```", "",
                  f"Files: `family/` ({', '.join(m.file_name() for m in members)})."]
    return "\n".join(lines) + "\n"
