"""Compound scaling of one genotype (Tan and Le, 2019): depth, width and input resolution.

Contract: the genotype declares what scaling multiplies (``scaling: {depth: [...], width:
[...], resolution: [...]}``, see ``genotypes/README.md``); nothing is guessed from names.
Rounding rules, applied to every integer of every declared parameter (an int or a list of
ints):

- depth: ``ceil(v * d)`` (torchvision's ``_MBConvConfig.adjust_depth``);
- width: ``divisible(v * w, width_divisor)``: the nearest multiple of the divisor, never below
  90% of ``v * w`` (the language's ``divisible``, torchvision's ``_make_divisible``);
- resolution: the declared resolution parameters, or else the input's H and W, become
  ``divisible(v * r, resolution_divisor)``.

A multiplier of exactly 1 leaves its parameters untouched (no rounding). Does not import
torch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from nas._checks import number, plain_number
from nas.errors import ConfigError, GenotypeError, NasError
from nas.genotype import LIMITS, MATH_FUNCTIONS, Genotype
from nas.genotype._model import require_genotype

__all__ = ["DEFAULT_COEFFICIENTS", "Multipliers", "multipliers", "scale"]

#: The paper's coefficients for EfficientNet: alpha (depth), beta (width), gamma (resolution).
DEFAULT_COEFFICIENTS = {"alpha": 1.2, "beta": 1.1, "gamma": 1.15}

_divisible = MATH_FUNCTIONS["divisible"]


class Multipliers(tuple):
    """``(depth, width, resolution)`` as a named triple of positive floats."""

    __slots__ = ()

    def __new__(cls, depth: float, width: float, resolution: float) -> Multipliers:
        return super().__new__(cls, (depth, width, resolution))

    depth = property(lambda self: self[0])
    width = property(lambda self: self[1])
    resolution = property(lambda self: self[2])


MAX_MULTIPLIER = 1000.0
"""Largest multiplier of one axis (far past any network that fits the expansion limits; a
larger one overflowed the widths to integers beyond 2**53)."""
MIN_MULTIPLIER = 1 / MAX_MULTIPLIER
"""Smallest multiplier of one axis (a smaller one rounds every depth, width and input size
to its floor: ``--width 1e-300`` made a network of one-channel layers)."""


MAX_DIVISOR = 1 << 16
"""Largest width or resolution divisor. Every scaled width (input side) is a multiple of it,
so at least it: a larger one makes layers of more channels (images of more pixels a side) than
any network within the size limits uses, and one past 2**53 made widths the genotype cannot
hold (reported at the genotype's parameter, not at the divisor)."""


def check_divisor(value: Any, *, path: str, file: str | None = None) -> int:
    """``value`` as a divisor: an integer from 1 to :data:`MAX_DIVISOR`.

    Raises:
        ConfigError: naming ``file`` and ``path`` (the flag or key it came from).
    """
    return number(value, path=path, file=file, low=1, high=MAX_DIVISOR, integer=True)


def _positive(value: Any, name: str) -> float:
    value = plain_number(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{name} must be a number, got {value!r}")
    if not MIN_MULTIPLIER <= value <= MAX_MULTIPLIER:  # NaN and inf fail it too
        raise ConfigError(f"{name} must be a multiplier in [{MIN_MULTIPLIER:g}, {MAX_MULTIPLIER:g}], got {value!r}")
    return float(value)


def multipliers(
    *,
    phi: float | None = None,
    alpha: float = 1.2,
    beta: float = 1.1,
    gamma: float = 1.15,
    depth: float | None = None,
    width: float | None = None,
    resolution: float | None = None,
) -> Multipliers:
    """The (depth, width, resolution) multipliers: explicit ones win, the others are
    ``alpha**phi``, ``beta**phi``, ``gamma**phi`` (1 without ``phi``).

    Raises:
        ConfigError: a multiplier or coefficient outside ``[MIN_MULTIPLIER, MAX_MULTIPLIER]``,
            or a ``phi`` whose powers overflow or fall below ``MIN_MULTIPLIER`` (a finite one
            past the genotype's limits fails when the genotype is scaled, naming the limit).
    """
    phi = plain_number(phi)
    if phi is not None and (isinstance(phi, bool) or not isinstance(phi, (int, float))
                            or not math.isfinite(phi)):
        raise ConfigError(f"phi must be a finite number, got {phi!r}")
    values = []
    for name, explicit, coefficient, coefficient_name in (
        ("depth", depth, alpha, "alpha"), ("width", width, beta, "beta"),
        ("resolution", resolution, gamma, "gamma"),
    ):
        if explicit is not None:
            values.append(_positive(explicit, name))
            continue
        coefficient = _positive(coefficient, coefficient_name)
        if phi is None:
            values.append(1.0)
            continue
        try:
            value = coefficient ** phi
        except OverflowError:
            value = math.inf
        if not math.isfinite(value) or value < MIN_MULTIPLIER:  # a large one meets the limits
            raise ConfigError(f"phi={phi:g} is out of range: {coefficient_name}**phi = "
                              f"{coefficient:g}**{phi:g} is not a usable {name} multiplier")
        values.append(value)
    return Multipliers(*values)


def _ints(genotype: Genotype, name: str, kind: str) -> list[int] | int:
    value = genotype.params[name]
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    for item in items:
        if isinstance(item, bool) or not isinstance(item, int):
            raise GenotypeError(
                f"{kind} scaling needs an int or a list of ints in parameter '{name}', got "
                f"{_plain(value)!r}", file=genotype.source, path=f"scaling.{kind}")
    return list(value) if isinstance(value, (list, tuple)) else value


def _plain(value: Any) -> Any:
    return [_plain(v) for v in value] if isinstance(value, (list, tuple)) else value


def _apply(value: list[int] | int, rule) -> list[int] | int:
    return [rule(v) for v in value] if isinstance(value, list) else rule(value)


def _declared(genotype: Genotype, kind: str) -> tuple[str, ...]:
    names = genotype.scaling.get(kind, ())
    if not names:
        declared = ", ".join(k for k, v in genotype.scaling.items() if v) or "nothing"
        raise GenotypeError(
            f"genotype '{genotype.name}' declares no {kind} parameters to scale (its scaling "
            f"declares {declared}); declare them, or pass {kind}=1 to leave its {kind} as is",
            file=genotype.source, path="scaling")
    return names


def _label(genotype: Genotype, phi: float | None, coefficients: Mapping[str, float],
           explicit: Mapping[str, float | None]) -> str:
    parts = []
    if phi is not None and any(v is None for v in explicit.values()):
        parts.append(f"phi={phi:g}")
        parts += [f"{k}={v:g}" for k, v in coefficients.items() if v != DEFAULT_COEFFICIENTS[k]]
    parts += [f"{k}={v:g}" for k, v in explicit.items() if v is not None]
    return f"{genotype.name}@{','.join(parts) or 'x1'}"


def scale(
    genotype: Genotype,
    *,
    phi: float | None = None,
    alpha: float = 1.2,
    beta: float = 1.1,
    gamma: float = 1.15,
    depth: float | None = None,
    width: float | None = None,
    resolution: float | None = None,
    width_divisor: int = 8,
    resolution_divisor: int = 8,
) -> Genotype:
    """Compound-scale ``genotype``: depth ``d``, width ``w`` and resolution ``r``.

    ``d, w, r = alpha**phi, beta**phi, gamma**phi``; an explicit ``depth``, ``width`` or
    ``resolution`` multiplier wins over ``phi``. Rounding rules are in the module docstring.
    The result is named ``NAME@phi=3`` (or ``NAME@depth=1.1,width=1``) and records the
    multipliers in ``meta["scaled"]``; ``meta`` keys ``reference_*`` (facts about the
    unscaled network) are dropped.

    torchvision's EfficientNet-B1..B7 are ``scale(b0, width=w, depth=d)`` with their
    published ``(w, d)``; for their resolutions (240, 260, ...) pass ``resolution=260 / 224,
    resolution_divisor=4`` or set the input directly (``g.with_input((3, 260, 260))``).

    Example::

        b3 = nas.scale(nas.load_genotype("efficientnet_b0"), phi=3)   # ~2**3 times the MACs

    Raises:
        ConfigError: a zero, negative or non-finite multiplier or coefficient, or a divisor
            that is not an integer from 1 to :data:`MAX_DIVISOR` (:func:`check_divisor`).
        GenotypeError: the genotype declares no parameter for a multiplier other than 1, a
            declared parameter is not an int or a list of ints, or the scaled network exceeds
            the size limits (:data:`nas.genotype.LIMITS`) or does not expand.
        TypeError: ``genotype`` is not a :class:`~nas.Genotype`.
    """
    require_genotype(genotype)
    width_divisor = check_divisor(width_divisor, path="width_divisor")
    resolution_divisor = check_divisor(resolution_divisor, path="resolution_divisor")
    d, w, r = multipliers(phi=phi, alpha=alpha, beta=beta, gamma=gamma, depth=depth, width=width,
                          resolution=resolution)
    if not genotype.scaling:
        raise GenotypeError(
            f"genotype '{genotype.name}' declares no scaling; add e.g. 'scaling: {{depth: "
            "[depths], width: [widths]}' naming the parameters compound scaling multiplies",
            file=genotype.source, path="scaling")
    changes: dict[str, Any] = {}
    if d != 1:
        for name in _declared(genotype, "depth"):
            value = _ints(genotype, name, "depth")
            # The epsilon keeps float noise (3 * 1.1 = 3.3000000000000003 is fine; 5 * 1.2 =
            # 6.000000000000001 must stay 6) from adding a layer.
            changes[name] = _apply(value, lambda v: math.ceil(v * d - 1e-9))
            too_deep = max(changes[name] if isinstance(value, list) else [changes[name]], default=0)
            if too_deep > LIMITS.max_repeat:
                raise _too_large(genotype, (d, w, r), f"'{name}' becomes {float(too_deep):.4g} "
                                 f"layers, over the limit of {LIMITS.max_repeat:,}")
    if w != 1:
        for name in _declared(genotype, "width"):
            value = _ints(genotype, name, "width")
            changes[name] = _apply(value, lambda v: _divisible(v * w, width_divisor) if v else 0)
    scaled = genotype
    if r != 1:
        names = genotype.scaling.get("resolution", ())
        for name in names:
            value = _ints(genotype, name, "resolution")
            changes[name] = _apply(value, lambda v: _divisible(v * r, resolution_divisor))
        if not names:
            shape = genotype.input_shape
            if len(shape) != 3:
                raise GenotypeError(f"resolution scaling needs an input (C, H, W), got {shape}",
                                    file=genotype.source, path="input")
            c, h, wd = shape
            scaled = scaled.with_input((c, _divisible(h * r, resolution_divisor),
                                        _divisible(wd * r, resolution_divisor)))
    if changes:
        scaled = scaled.with_params(**changes)
    coefficients = {"alpha": alpha, "beta": beta, "gamma": gamma}
    explicit = {"depth": depth, "width": width, "resolution": resolution}
    record: dict[str, Any] = {"from": genotype.name}
    if phi is not None:
        record.update(phi=int(phi) if float(phi).is_integer() else phi, **coefficients)
    record.update(depth=round(d, 6), width=round(w, 6), resolution=round(r, 6))
    meta = {k: v for k, v in genotype.meta.items() if not str(k).startswith("reference_")}
    meta["scaled"] = record
    from dataclasses import replace

    scaled = replace(scaled, name=_label(genotype, phi, coefficients, explicit), meta=meta)
    try:
        scaled.graph  # noqa: B018 - expand now: limits and shapes are checked here
    except NasError as error:
        raise _too_large(genotype, (d, w, r), error.message) from None
    return scaled


def _too_large(genotype: Genotype, factors: tuple[float, float, float], problem: str) -> GenotypeError:
    d, w, r = factors
    return GenotypeError(
        f"scaling '{genotype.name}' by depth {d:.4g}, width {w:.4g}, resolution {r:.4g} gives "
        f"an invalid network: {problem}", file=genotype.source)
