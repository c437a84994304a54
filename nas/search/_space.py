"""The search-space language: distributions over a genotype's parameters.

Grammar of a ``space:`` mapping (every key optional except ``genotype``)::

    genotype: FILE | ZOO_NAME        # relative to the config file, else cwd, else genotypes/
    params: {PARAM: VALUE, ...}      # fixed replacements of defaults (not searched)
    choices:                         # LABEL: SPEC, in order; LABEL is the Optuna parameter name
      LABEL:
        param: NAME | NAME[i]        # target; default: LABEL. NAME[i] is one list element
        int: [LOW, HIGH]             # exactly one of int / float / choices
        float: [LOW, HIGH]
        choices: [VALUE, ...]        # numbers, strings (op and block names), booleans, lists
        step: STEP                   # int and float only
        log: true | false            # int and float only
        per_stage: true              # NAME is a list: one choice per element, labelled
                                     #   stage1.LABEL, stage2.LABEL, ...
        when: {LABEL: VALUE | [VALUE, ...], ...}
                                     # active only when earlier choices took these values; in a
                                     # per_stage choice a per_stage LABEL means the same stage
    seeds:                           # NAME: {PARAM: VALUE}, genotype params over the defaults
      resnet20: {}
    constraints:                     # METRIC: {max: X, min: Y}, checked before training
      params: {max: 1.0e6}           # METRIC: params, macs, activation_bytes,
                                     #   peak_activation_bytes

An inactive choice leaves its target at the default. Validation happens in
:func:`parse_space`: every error is a :class:`~nas.errors.ConfigError` naming the file and
the key path (``space.choices.stage2.depth.int``). The module never imports torch or Optuna
at the top; :meth:`Space.suggest` takes any object with Optuna's ``suggest_*`` methods.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nas import _checks
from nas.errors import ConfigError, NasError
from nas.genotype import Genotype

__all__ = ["CONSTRAINT_METRICS", "Choice", "Space", "parse_space"]

CONSTRAINT_METRICS = ("params", "macs", "activation_bytes", "peak_activation_bytes")

_SPACE_KEYS = ("genotype", "params", "choices", "seeds", "constraints", "doc")
_CHOICE_KEYS = ("param", "int", "float", "choices", "step", "log", "per_stage", "when", "doc")
# Largest bound of an int or float choice: Optuna holds parameters as float64, exact up to 2**53.
_MAX_BOUND = 2**53
_TARGET = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(?:\[(\d+)\])?$")
MAX_CHOICES = 1_000
"""Most labels a space samples per trial, each stage of a per_stage choice counted (a per_stage
choice over a 4,096-element list made every trial of a tiny network take 15 s and 860 MB)."""
MAX_SEEDS = 1_000
"""Most seeds a space names: each is expanded when the config is read (40,000 took 36 s)."""
# Labels nas retrain gives other rows (nas.retrain._select): a searched trial, a grown network.
_RETRAIN_LABELS = re.compile(r"trial_\d+|.*_grown")


def _plain(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class Choice:
    """One searched decision: an Optuna distribution bound to a genotype parameter.

    Attributes:
        label: The stable Optuna parameter name (``stage2.depth``).
        param: The genotype parameter it sets.
        index: The list element it sets, or None for the whole parameter.
        kind: ``"int"``, ``"float"`` or ``"categorical"``.
        low, high, step, log: Numeric range (int and float).
        options: Categorical values.
        when: ``((label, allowed values), ...)``: active only when all hold.
    """

    label: str
    param: str
    index: int | None
    kind: str
    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False
    options: tuple[Any, ...] = ()
    when: tuple[tuple[str, tuple[Any, ...]], ...] = ()

    def active(self, values: Mapping[str, Any]) -> bool:
        return all(label in values and _plain(values[label]) in [_plain(v) for v in allowed]
                   for label, allowed in self.when)

    def suggest(self, trial: Any) -> Any:
        if self.kind == "int":
            return trial.suggest_int(self.label, int(self.low), int(self.high),
                                     step=int(self.step or 1), log=self.log)
        if self.kind == "float":
            return trial.suggest_float(self.label, self.low, self.high, step=self.step, log=self.log)
        # Optuna's categorical choices must be None, bool, int, float or str: lists are
        # passed by their index and decoded here.
        if all(not isinstance(v, (list, tuple)) for v in self.options):
            return trial.suggest_categorical(self.label, list(self.options))
        return self.options[trial.suggest_categorical(self.label, list(range(len(self.options))))]

    def encode(self, value: Any) -> Any:
        """The Optuna parameter value for a genotype value (lists become their index)."""
        if self.kind == "categorical" and any(isinstance(v, (list, tuple)) for v in self.options):
            return [_plain(v) for v in self.options].index(_plain(value))
        return value

    def decode(self, value: Any) -> Any:
        """The genotype value for an Optuna parameter value (inverse of :meth:`encode`)."""
        if self.kind == "categorical" and any(isinstance(v, (list, tuple)) for v in self.options):
            return self.options[value]
        return value

    def contains(self, value: Any) -> bool:
        if self.kind == "categorical":
            return _plain(value) in [_plain(v) for v in self.options]
        if not _is_number(value) or not (self.low <= value <= self.high):
            return False
        if self.kind == "int" and not float(value).is_integer():
            return False
        if self.step:
            k = (value - self.low) / self.step
            return abs(k - round(k)) < 1e-9
        return True

    def describe(self) -> str:
        if self.kind == "categorical":
            return "one of " + ", ".join(repr(_plain(v)) for v in self.options)
        step = f" step {self.step:g}" if self.step else ""
        return f"{self.kind} in [{self.low:g}, {self.high:g}]{step}{' (log)' if self.log else ''}"

    def distribution(self) -> Any:
        """The Optuna distribution (imports Optuna)."""
        from optuna.distributions import (
            CategoricalDistribution,
            FloatDistribution,
            IntDistribution,
        )

        if self.kind == "int":
            return IntDistribution(int(self.low), int(self.high), log=self.log, step=int(self.step or 1))
        if self.kind == "float":
            return FloatDistribution(self.low, self.high, log=self.log, step=self.step)
        return CategoricalDistribution([self.encode(v) for v in self.options])


@dataclass(frozen=True)
class Space:
    """A parameterised genotype with choices, seeds and static constraints.

    Attributes:
        genotype: The base genotype with the fixed ``params`` applied.
        choices: The searched decisions, in declaration order (conditions refer backwards).
        seeds: Seed name -> Optuna parameters (labels -> values), in file order.
        constraints: Metric -> (min or None, max or None).
        file: The file the space was read from, for messages.
    """

    genotype: Genotype
    choices: tuple[Choice, ...]
    seeds: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    constraints: Mapping[str, tuple[float | None, float | None]] = field(default_factory=dict)
    file: str | None = None

    @property
    def labels(self) -> list[str]:
        return [c.label for c in self.choices]

    @property
    def conditional(self) -> bool:
        return any(c.when for c in self.choices)

    def choice(self, label: str) -> Choice:
        for c in self.choices:
            if c.label == label:
                return c
        raise KeyError(label)

    def suggest(self, trial: Any) -> dict[str, Any]:
        """Ask ``trial`` for every active choice; returns label -> genotype value."""
        values: dict[str, Any] = {}
        for c in self.choices:
            if c.active(values):
                values[c.label] = c.suggest(trial)
        return values

    def decode(self, optuna_params: Mapping[str, Any]) -> dict[str, Any]:
        """Optuna parameters (e.g. a finished trial's ``params``) -> label -> genotype value."""
        return {c.label: c.decode(optuna_params[c.label]) for c in self.choices
                if c.label in optuna_params}

    def encode(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """label -> genotype value -> the Optuna parameters (for ``enqueue_trial``)."""
        return {c.label: c.encode(values[c.label]) for c in self.choices if c.label in values}

    def genotype_params(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """The full genotype parameter mapping for the choices' values (label -> value)."""
        params = {k: _plain(v) for k, v in self.genotype.params.items()}
        for c in self.choices:
            if c.label not in values:
                continue
            if c.index is None:
                params[c.param] = _plain(values[c.label])
            else:
                params[c.param][c.index] = _plain(values[c.label])
        return params

    def make_genotype(self, values: Mapping[str, Any]) -> Genotype:
        """The genotype for the choices' values. Raises GenotypeError if it is invalid."""
        changed = {k: v for k, v in self.genotype_params(values).items()
                   if _plain(self.genotype.params[k]) != v}
        return self.genotype.with_params(**changed) if changed else self.genotype

    def values_of(self, params: Mapping[str, Any], *, where: str) -> dict[str, Any]:
        """The choices' values that give the genotype ``params`` (a seed), label -> value.

        Raises:
            ConfigError: a value is not in its choice's range, or a parameter differs from
                what the space can produce (it is not searched, or its choice is inactive).
        """
        full = {k: _plain(v) for k, v in self.genotype.params.items()}
        for key, value in params.items():
            if key not in full:
                raise ConfigError(f"genotype {self.genotype.name!r} has no parameter {key!r}; "
                                  f"parameters: {', '.join(full)}", file=self.file, path=f"{where}.{key}")
            full[key] = _plain(value)
        values: dict[str, Any] = {}
        for c in self.choices:
            if not c.active(values):
                continue
            value = full[c.param]
            if c.index is not None:
                if not isinstance(value, list) or c.index >= len(value):
                    raise ConfigError(f"{c.param} must be a list of at least {c.index + 1} values, "
                                      f"got {value!r}", file=self.file, path=f"{where}.{c.param}")
                value = value[c.index]
            if not c.contains(value):
                raise ConfigError(f"{value!r} is outside the space: choice {c.label!r} is "
                                  f"{c.describe()}", file=self.file, path=f"{where}.{c.param}")
            values[c.label] = value
        produced = self.genotype_params(values)
        for key, value in full.items():
            if produced[key] != value:
                raise ConfigError(
                    f"{value!r} is outside the space: the space gives {key} = {produced[key]!r} "
                    "(that parameter, or that part of it, is not searched here)",
                    file=self.file, path=f"{where}.{key}")
        return values

    def check_some_valid(self, draws: int = 32, seed: int = 0) -> None:
        """Refuse a space none of whose ``draws`` random candidates (uniform over each
        choice, seeded) expands: fixed ``params`` that no choice can mend make every trial
        invalid, and a search would spend its whole budget finding that out. A space with
        seeds has a valid point already (each seed was expanded) and is not drawn from.

        Raises:
            ConfigError: naming the file and the first candidate's problem.
        """
        if self.seeds:
            return
        draw = _RandomDraw(random.Random(seed))
        first = None
        for _ in range(draws):
            try:
                self.make_genotype(self.suggest(draw)).graph  # noqa: B018 - it must expand
                return
            except NasError as error:
                first = first or error.message
        raise ConfigError(f"none of {draws} candidates drawn from the space is a valid genotype "
                          f"(the first: {first}); check space.params and space.choices",
                          file=self.file, path="space")

    def check_constraints(self, stats: Any) -> str | None:
        """The first violated constraint as one line, or None when ``stats`` is feasible."""
        for metric, (low, high) in self.constraints.items():
            value = getattr(stats, metric)
            if high is not None and value > high:
                return f"{metric} {value:,} > max {high:,.0f}"
            if low is not None and value < low:
                return f"{metric} {value:,} < min {low:,.0f}"
        return None


class _RandomDraw:
    """The ``suggest_*`` calls of an Optuna trial, answered uniformly at random (log-uniform
    for ``log`` ranges), for :meth:`Space.check_some_valid`."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int:
        return self.rng.randrange(low, high + 1, step)

    def suggest_float(self, name: str, low: float, high: float, *, step: float | None = None,
                      log: bool = False) -> float:
        if step:
            return low + step * self.rng.randint(0, int((high - low) / step + 1e-9))
        if log:
            return math.exp(self.rng.uniform(math.log(low), math.log(high)))
        return self.rng.uniform(low, high)

    def suggest_categorical(self, name: str, choices: list[Any]) -> Any:
        return self.rng.choice(choices)


def parse_space(data: Any, *, file: str | None = None, base: Path | None = None,
                genotype: Genotype | None = None) -> Space:
    """Validate a ``space:`` mapping and build the :class:`Space`.

    Args:
        data: The mapping (see the module docstring for its grammar).
        file: The file it came from, for error messages.
        base: The folder relative genotype paths start from. Default: the working folder.
        genotype: Use this genotype instead of resolving ``data["genotype"]``.

    Raises:
        ConfigError: naming ``file`` and the key path of the first problem.
    """
    base = base or Path.cwd()
    if not isinstance(data, Mapping):
        raise ConfigError("must be a mapping", file=file, path="space")
    for key in data:
        if key not in _SPACE_KEYS:
            raise ConfigError(f"unknown key {key!r}; valid: {', '.join(_SPACE_KEYS)}",
                              file=file, path=f"space.{key}")
    if genotype is None:
        if "genotype" not in data:
            raise ConfigError("missing key 'genotype'", file=file, path="space.genotype")
        genotype = _checks.genotype(data["genotype"], base=base, file=file, path="space.genotype")
    fixed = _checks.section(data.get("params"), path="space.params", file=file,
                            what="a mapping of parameter values")
    _checks.text_keys(fixed, what="a parameter name", path="space.params", file=file)
    for key, value in fixed.items():
        try:
            genotype = genotype.with_params(**{key: value})
        except NasError as error:
            raise ConfigError(error.message, file=file, path=f"space.params.{key}") from None
    choices = _parse_choices(data.get("choices"), genotype, file)
    space = Space(genotype=genotype, choices=tuple(choices), file=file,
                  constraints=_parse_constraints(data.get("constraints"), file))
    seeds_data = _checks.section(data.get("seeds"), path="space.seeds", file=file,
                                 what="a mapping of seed names to parameter sets")
    if len(seeds_data) > MAX_SEEDS:
        raise ConfigError(f"more than {MAX_SEEDS:,} seeds", file=file, path="space.seeds")
    seeds: dict[str, dict[str, Any]] = {}
    for name, params in seeds_data.items():
        where = f"space.seeds.{name}"
        _seed_name(name, file=file, path=where)
        if params is None:
            params = {}
        if not isinstance(params, Mapping):
            raise ConfigError("must be a mapping of genotype parameters", file=file, path=where)
        values = space.values_of(params, where=where)
        try:
            space.make_genotype(values).graph  # noqa: B018 - the seed must expand
        except NasError as error:
            raise ConfigError(f"the seed's genotype is invalid: {error.message}", file=file,
                              path=where) from None
        seeds[str(name)] = values
    return Space(genotype=genotype, choices=space.choices, seeds=seeds,
                 constraints=space.constraints, file=file)


def _seed_name(name: Any, *, file: str | None, path: str) -> str:
    """A seed's name: a folder name (:func:`nas._checks.folder_name`), since ``nas retrain``
    writes ``OUT/NAME/``, and none of the labels it gives other rows (``trial_12``,
    ``X_grown``). A seed named ``../../x`` was retrained outside ``OUT``; one named
    ``trial_0003`` shared trial 3's folder.

    Raises:
        ConfigError: naming ``file`` and ``path``.
    """
    _checks.folder_name(name, file=file, path=path)
    if _RETRAIN_LABELS.fullmatch(name):
        raise ConfigError(f"{name!r} is the kind of name nas retrain gives a searched trial or a "
                          "grown network (trial_N, NAME_grown); rename the seed", file=file, path=path)
    return name


def _parse_constraints(data: Any, file: str | None) -> dict[str, tuple[float | None, float | None]]:
    data = _checks.section(data, path="space.constraints", file=file)
    out: dict[str, tuple[float | None, float | None]] = {}
    for metric, bounds in data.items():
        where = f"space.constraints.{metric}"
        if metric not in CONSTRAINT_METRICS:
            raise ConfigError(f"unknown metric {metric!r}; valid: {', '.join(CONSTRAINT_METRICS)}",
                              file=file, path=where)
        if not isinstance(bounds, Mapping) or not bounds:
            raise ConfigError("must be a mapping with max and/or min", file=file, path=where)
        for key, value in bounds.items():
            if key not in ("max", "min"):
                raise ConfigError(f"unknown key {key!r}; valid: max, min", file=file, path=f"{where}.{key}")
            _checks.number(value, path=f"{where}.{key}", file=file, low=0)
        low, high = bounds.get("min"), bounds.get("max")
        if low is not None and high is not None and low > high:
            raise ConfigError(f"min {low:g} is above max {high:g}: no candidate can meet it", file=file,
                              path=where)
        out[metric] = (low, high)
    return out


def _parse_choices(data: Any, genotype: Genotype, file: str | None) -> list[Choice]:
    data = _checks.section(data, path="space.choices", file=file, what="a mapping of labels to distributions")
    choices: list[Choice] = []
    per_stage: dict[str, int] = {}  # base label -> number of stages
    for label, spec in data.items():
        where = f"space.choices.{label}"
        if not isinstance(label, str) or not re.match(r"^[A-Za-z_][A-Za-z0-9_.]*$", label):
            raise ConfigError("a label is letters, digits, '_' and '.'", file=file, path=where)
        if not isinstance(spec, Mapping):
            raise ConfigError("must be a mapping (int / float / choices, param, ...)", file=file, path=where)
        for key in spec:
            if key not in _CHOICE_KEYS:
                raise ConfigError(f"unknown key {key!r}; valid: {', '.join(_CHOICE_KEYS)}",
                                  file=file, path=f"{where}.{key}")
        target = spec.get("param", label)
        match = _TARGET.match(target) if isinstance(target, str) else None
        if not match:
            raise ConfigError(f"must be a parameter name or NAME[i], got {target!r}", file=file,
                              path=f"{where}.param")
        param, index = match.group(1), None if match.group(2) is None else int(match.group(2))
        if param not in genotype.params:
            raise ConfigError(f"genotype {genotype.name!r} has no parameter {param!r}; parameters: "
                              f"{', '.join(genotype.params)}", file=file,
                              path=f"{where}.param" if "param" in spec else where)
        default = _plain(genotype.params[param])
        stages = spec.get("per_stage", False)
        if not isinstance(stages, bool):
            raise ConfigError("must be true or false", file=file, path=f"{where}.per_stage")
        if (index is not None or stages) and not isinstance(default, list):
            raise ConfigError(f"parameter {param!r} is not a list (its default is {default!r})",
                              file=file, path=f"{where}.param")
        if index is not None and index >= len(default):
            raise ConfigError(f"{param} has {len(default)} elements; index {index} is out of range",
                              file=file, path=f"{where}.param")
        if stages and index is not None:
            raise ConfigError("per_stage applies to a whole list; drop the [i]", file=file,
                              path=f"{where}.param")
        kind, numbers = _parse_distribution(spec, where, file)
        when = _parse_when(spec.get("when"), where, file, choices, per_stage)
        targets = [(label, index, when)]
        if stages:
            per_stage[label] = len(default)
            targets = []
            for i in range(len(default)):
                stage_when = tuple(
                    ((f"stage{i + 1}.{name}" if name in per_stage and name != label else name), allowed)
                    for name, allowed in when)
                targets.append((f"stage{i + 1}.{label}", i, stage_when))
        if len(choices) + len(targets) > MAX_CHOICES:
            raise ConfigError(f"more than {MAX_CHOICES:,} choices (each stage of a per_stage choice "
                              "counts)", file=file, path=where)
        for stage_label, stage_index, stage_when in targets:
            if any(c.label == stage_label for c in choices):
                raise ConfigError(f"label {stage_label!r} is defined twice", file=file, path=where)
            choice = Choice(label=stage_label, param=param, index=stage_index, kind=kind,
                            when=stage_when, **numbers)
            current = default if stage_index is None else default[stage_index]
            if choice.kind == "categorical":
                _checks.callable_names(param, [choice.options], genotype, file=file,
                                       path=f"{where}.choices")
                for value in choice.options:
                    if isinstance(current, list) != isinstance(_plain(value), list):
                        raise ConfigError(f"{value!r} does not fit parameter {param!r} (default "
                                          f"{current!r})", file=file, path=f"{where}.choices")
            elif isinstance(current, (list, str, bool)):
                raise ConfigError(f"parameter {param!r} holds {current!r}, not a number: use "
                                  "choices", file=file, path=f"{where}.{choice.kind}")
            choices.append(choice)
        # Fail early on values the genotype rejects by kind (a string for an int, ...).
        probe_space = Space(genotype=genotype, choices=tuple(choices), file=file)
        for c in choices[len(choices) - len(targets):]:
            for value in (c.options if c.kind == "categorical" else (c.low, c.high)):
                changed = probe_space.genotype_params({c.label: value})[param]
                try:
                    genotype.with_params(**{param: changed})
                except NasError as error:
                    raise ConfigError(error.message, file=file, path=where) from None
    return choices


def _parse_distribution(spec: Mapping[str, Any], where: str, file: str | None) -> tuple[str, dict[str, Any]]:
    kinds = [k for k in ("int", "float", "choices") if k in spec]
    if len(kinds) != 1:
        raise ConfigError("needs exactly one of int: [low, high], float: [low, high], choices: [...]",
                          file=file, path=where)
    kind = kinds[0]
    if kind == "choices":
        options = spec["choices"]
        if not isinstance(options, list) or not options:
            raise ConfigError("must be a non-empty list", file=file, path=f"{where}.choices")
        for key in ("step", "log"):
            if key in spec:
                raise ConfigError(f"{key} applies to int and float only", file=file, path=f"{where}.{key}")
        seen: list[Any] = []
        for value in options:
            if not (value is None or isinstance(value, (str, int, float, bool, list))):
                raise ConfigError(f"a choice must be a number, string, boolean or list, got {value!r}",
                                  file=file, path=f"{where}.choices")
            if value in seen:
                raise ConfigError(f"{value!r} is listed twice", file=file, path=f"{where}.choices")
            seen.append(value)
        frozen = tuple(tuple(v) if isinstance(v, list) else v for v in options)
        return "categorical", {"options": frozen}
    bounds = spec[kind]
    if (not isinstance(bounds, list) or len(bounds) != 2
            or not all(_checks.finite(b) and abs(b) <= _MAX_BOUND for b in bounds)
            or (kind == "int" and not all(_is_int(b) for b in bounds)) or bounds[0] > bounds[1]):
        raise ConfigError(f"must be [low, high] with low <= high ({kind}s, finite, at most 2**53 "
                          f"in size), got {bounds!r}", file=file, path=f"{where}.{kind}")
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise ConfigError("must be true or false", file=file, path=f"{where}.log")
    step = spec.get("step")
    if step is not None:
        if (not _checks.finite(step) or step <= 0
                or (kind == "int" and not _is_int(step))):
            raise ConfigError(f"must be a positive {kind}, got {step!r}", file=file, path=f"{where}.step")
        if log and (kind == "float" or step != 1):
            raise ConfigError("log and step cannot be combined", file=file, path=f"{where}.step")
    if log and bounds[0] <= 0:
        raise ConfigError("a log range needs low > 0", file=file, path=f"{where}.{kind}")
    low, high = bounds
    if kind == "float":
        low, high = float(low), float(high)
    if step is not None and not math.isclose(((high - low) / step) % 1, 0, abs_tol=1e-9) \
            and not math.isclose(((high - low) / step) % 1, 1, abs_tol=1e-9):
        raise ConfigError(f"the range {high - low:g} is not a multiple of step {step:g}",
                          file=file, path=f"{where}.step")
    return kind, {"low": low, "high": high, "step": step, "log": log}


def _parse_when(data: Any, where: str, file: str | None, earlier: list[Choice],
                per_stage: Mapping[str, int]) -> tuple[tuple[str, tuple[Any, ...]], ...]:
    if data is None:
        return ()
    if not isinstance(data, Mapping) or not data:
        raise ConfigError("must be a mapping of earlier labels to values", file=file, path=f"{where}.when")
    known = {c.label: c for c in earlier}
    out = []
    for label, allowed in data.items():
        allowed = tuple(allowed) if isinstance(allowed, list) else (allowed,)
        probe = known.get(f"stage1.{label}") if label in per_stage else known.get(label)
        if probe is None:
            raise ConfigError(f"{label!r} is not a choice defined above this one", file=file,
                              path=f"{where}.when.{label}")
        for value in allowed:
            if not probe.contains(value):
                raise ConfigError(f"{value!r} is never taken by {label!r} ({probe.describe()})",
                                  file=file, path=f"{where}.when.{label}")
        out.append((label, allowed))
    return tuple(out)
