"""nas: neural architecture search over a YAML genotype language.

The public API::

    g = nas.load_genotype("genotypes/resnet18.yaml", width=32)   # or YAML text, or a zoo name
    g.dump(), g.hash, g.with_params(depths=[1, 1, 1, 1])
    stats = nas.analyze(g)            # params, MACs, shapes, memory: no torch needed
    model = nas.build_model(g)        # a torch.nn.Module (a torch.fx.GraphModule)
    b3 = nas.scale(g, phi=3)          # compound scaling of depth, width and resolution

Torch is imported only when a model is built. ``nas.__version__`` is the installed
distribution's version (the checkout's ``pyproject.toml`` when run from source).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nas.errors import ConfigError, GenotypeError, NasError
from nas.genotype import Genotype, load_genotype, zoo_dir

if TYPE_CHECKING:
    from nas.analysis import Stats, analyze
    from nas.build import build_model
    from nas.scaling import scale
    from nas.weights import load_torchvision_weights

__all__ = [
    "ConfigError",
    "Genotype",
    "GenotypeError",
    "NasError",
    "Stats",
    "analyze",
    "build_model",
    "load_genotype",
    "load_torchvision_weights",
    "scale",
    "zoo_dir",
]

_LAZY = {
    "analyze": "nas.analysis",
    "Stats": "nas.analysis",
    "build_model": "nas.build",
    "load_torchvision_weights": "nas.weights",
    "scale": "nas.scaling",
}


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from nas._version import version

        return version()
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'nas' has no attribute '{name}'")
    import importlib

    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    """The module's names, including those imported on first use (``build_model``, ...)."""
    return sorted(set(globals()) | set(__all__) | {"__version__"})
