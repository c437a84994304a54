"""The proxy registry: one :class:`Proxy` per name, duplicates rejected.

A proxy is a function of a :class:`~nas.proxies._network.Network` (a seeded, freshly
initialised model, its input batch and its genotype) returning one float, larger meaning
"predicted better". A proxy that is undefined for the network it is given raises
:class:`Undefined` with the reason; :func:`nas.proxies.score` turns that into a NaN with the
reason, so no caller ever sees an exception for an unscorable network.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nas.errors import ConfigError

__all__ = ["Proxy", "Undefined", "get_proxy", "proxy_names", "register_proxy"]


class Undefined(Exception):
    """Raised by a proxy when its score does not exist for this network; the message says why.

    Not a user error: :func:`nas.proxies.score` records it as a NaN score with this reason.
    """


@dataclass(frozen=True)
class Proxy:
    """A registered zero-cost score.

    Attributes:
        name: Registry key (``synflow``).
        fn: Computes the score from a :class:`~nas.proxies._network.Network` (a static
            proxy: from the :class:`~nas.genotype.Genotype`).
        needs_data: Whether it reads the real image batch (``False``: it makes its own input
            from the genotype's input shape, or reads no input at all).
        static: Computed from the genotype alone, without building a model.
        doc: The first line of ``fn``'s docstring (its definition).
    """

    name: str
    fn: Callable[[Any], float]
    needs_data: bool
    static: bool = False

    @property
    def doc(self) -> str:
        return (self.fn.__doc__ or "").strip().split("\n")[0]


_REGISTRY: dict[str, Proxy] = {}


def register_proxy(name: str, *, needs_data: bool, static: bool = False
                   ) -> Callable[[Callable[[Any], float]], Callable[[Any], float]]:
    """Decorator registering ``fn`` as the proxy ``name``.

    Raises:
        ValueError: ``name`` is not a non-empty string or is already registered, or ``fn`` is
            not callable.
    """

    def decorate(fn: Callable[[Any], float]) -> Callable[[Any], float]:
        from nas.plugins import check_registration

        check_registration("proxy", name, fn, _REGISTRY)
        _REGISTRY[name] = Proxy(name, fn, needs_data, static)
        return fn

    return decorate


def proxy_names() -> tuple[str, ...]:
    """Every registered proxy name, in registration order."""
    return tuple(_REGISTRY)


def get_proxy(name: str) -> Proxy:
    """The proxy registered as ``name``.

    Raises:
        ConfigError: for an unknown name or one that is not a string (a list or mapping from
            YAML was 'unexpected TypeError: unhashable type'), listing the valid ones.
    """
    proxy = _REGISTRY.get(name) if isinstance(name, str) else None
    if proxy is None:
        raise ConfigError(f"unknown proxy {name!r}; valid: {', '.join(_REGISTRY)}")
    return proxy
