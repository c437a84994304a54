"""Samplers that plugins add, by name, next to the built-in ones of a run config's ``sampler``.

A registered sampler is an Optuna sampler class (or a function returning one) called as
``factory(seed=SEED, **options)``: ``seed`` is each worker's own (see
:func:`nas.search._study.worker_seed`), the options are the config's ``sampler.options``,
checked against the factory's signature before a run folder is made.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["PluginSampler", "find_sampler", "plugin_sampler_names", "register_sampler"]


@dataclass(frozen=True)
class PluginSampler:
    """A registered sampler: its factory and whether it handles several objectives."""

    name: str
    factory: Callable[..., Any]
    multi_objective: bool = False


_SAMPLERS: dict[str, PluginSampler] = {}


def register_sampler(name: str, *, multi_objective: bool = False) -> Callable[[Any], Any]:
    """Decorator adding a sampler class or factory under ``name``.

    Args:
        name: What a run config's ``sampler`` names.
        multi_objective: True when it samples for several objectives (Pareto searches).

    Raises:
        ValueError: ``name`` is taken (by a built-in sampler or another plugin).
    """

    def add(factory: Any) -> Any:
        from nas.plugins import check_registration
        from nas.search._config import SAMPLERS

        check_registration("sampler", name, factory, {*SAMPLERS, *_SAMPLERS}, what="class or function")
        _SAMPLERS[name] = PluginSampler(name, factory, multi_objective)
        return factory

    return add


def find_sampler(name: str) -> PluginSampler | None:
    """The plugin sampler called ``name``, or ``None``; the first miss loads the installed
    plugins (:mod:`nas.plugins`)."""
    if name not in _SAMPLERS:
        from nas.plugins import load_installed

        load_installed()
    return _SAMPLERS.get(name)


def plugin_sampler_names() -> list[str]:
    """The names plugins registered, sorted."""
    return sorted(_SAMPLERS)
