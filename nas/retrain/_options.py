"""Options of ``nas retrain``: the run config's ``retrain`` key, then command-line overrides.

Run config key (every entry optional)::

    retrain:
      select: top          # top: the K best by the search's validation accuracy; pareto: the
                           # Pareto set over the run's objectives
      top: 3               # K
      seeds: 2             # training seeds per architecture (S), 0..S-1
      epochs: null         # default: 4 x the search's train.epochs
      width_multiplier: 1.0   # 1.0 = the architecture itself (the search may train narrower)
      subset: null         # training images (stratified); default: the FULL training split
      grow: false          # also retrain each searched architecture widened to the seeds' MACs
                           # (nas.retrain._select.widen_to_macs)
      train: {}            # TrainConfig fields replacing the search's (lr, batch_size, ...)

Imports neither torch nor Optuna (the run config is validated with it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from nas import _checks
from nas.errors import ConfigError

__all__ = ["RetrainOptions", "parse_retrain"]

_KEYS = ("select", "top", "seeds", "epochs", "width_multiplier", "subset", "grow", "train")


@dataclass(frozen=True)
class RetrainOptions:
    """Resolved options (see the module docstring). ``epochs`` is always set here."""

    select: str = "top"
    top: int = 3
    seeds: int = 2
    epochs: int = 20
    width_multiplier: float = 1.0
    subset: int | None = None
    grow: bool = False
    train: Mapping[str, Any] = field(default_factory=dict)


# Upper bounds: far beyond any real retraining, they turn a typo (seeds: 10**9) into an error.
_HIGH = {"top": 1_000, "seeds": 1_000, "epochs": 100_000, "subset": 10**9}


def _positive_int(value: Any, path: str, file: str | None, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= high:
        raise ConfigError(f"must be an integer from 1 to {high:,}, got {value!r}", file=file, path=path)
    return value


def parse_retrain(value: Any, *, file: str | None) -> dict[str, Any]:
    """Validate the ``retrain`` mapping of a run config; returns it as a plain dict.

    Raises:
        ConfigError: an unknown key or a bad value, naming ``retrain.KEY``.
    """
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError("must be a mapping", file=file, path="retrain")
    _checks.known_keys(value, _KEYS, path="retrain", file=file)
    if value.get("select", "top") not in ("top", "pareto"):
        raise ConfigError(f"must be top or pareto, got {value['select']!r}", file=file,
                          path="retrain.select")
    for key, high in _HIGH.items():
        if value.get(key) is not None:
            _positive_int(value[key], f"retrain.{key}", file, high)
    width = value.get("width_multiplier", 1.0)
    if isinstance(width, bool) or not isinstance(width, (int, float)) or not 0 < width <= 16:
        raise ConfigError(f"must be a number in (0, 16], got {width!r}", file=file,
                          path="retrain.width_multiplier")
    if not isinstance(value.get("grow", False), bool):
        raise ConfigError(f"must be true or false, got {value['grow']!r}", file=file, path="retrain.grow")
    _checks.section(value.get("train"), path="retrain.train", file=file, what="a mapping of training options")
    return dict(value)


def resolve(config_retrain: Mapping[str, Any], search_train: Mapping[str, Any], *,
            file: str | None = None, **overrides: Any) -> RetrainOptions:
    """The options for one ``nas retrain`` call: ``overrides`` (None = not given) over the
    run config's ``retrain`` mapping over the defaults.

    Raises:
        ConfigError: an override out of range.
    """
    merged = {**parse_retrain(config_retrain, file=file)}
    for key, value in overrides.items():
        if value is not None:
            try:  # a bad value given as an argument is the argument's, not the config file's
                parse_retrain({key: value}, file=None)
            except ConfigError as error:
                raise ConfigError(error.message, path=key) from None
            merged[key] = value
    epochs = merged.get("epochs") or 4 * int(search_train.get("epochs", 10))
    return RetrainOptions(
        select=merged.get("select", "top"), top=merged.get("top", 3), seeds=merged.get("seeds", 2),
        epochs=epochs, width_multiplier=float(merged.get("width_multiplier", 1.0)),
        subset=merged.get("subset"), grow=merged.get("grow", False), train=dict(merged.get("train") or {}),
    )
