"""Datasets by name: one registry of source loaders, and :func:`load_dataset`.

A source loader is a function taking keyword-only options and returning
:class:`~nas.data._dataset.RawData`. :func:`load_dataset` checks the options against the
loader's signature, so an unknown option is an error that lists the valid ones, then applies
the shared steps (split, subset, resolution) of :func:`~nas.data._dataset.prepare`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from nas.data._dataset import Dataset, RawData, ValSplit, check_split_options, prepare
from nas.errors import ConfigError

__all__ = [
    "check_dataset",
    "check_dataset_options",
    "dataset_names",
    "load_dataset",
    "register_dataset",
    "retrain_options",
]

# Options that shape a search's proxy splits and that retraining drops.
_PROXY_OPTIONS = ("val_split", "val_fraction", "subset", "val_subset")

SourceLoader = Callable[..., RawData]

_LOADERS: dict[str, SourceLoader] = {}
_CHECKS: dict[str, Callable[..., None]] = {}

# Options handled by `prepare` for every source; a loader may also accept `resolution`
# (an image folder resizes while reading, since its images may differ in size).
_SHARED_OPTIONS = ("val_split", "val_fraction", "subset", "val_subset", "resolution", "seed")


def register_dataset(
    name: str, *, check: Callable[..., None] | None = None
) -> Callable[[SourceLoader], SourceLoader]:
    """Decorator adding a source loader under ``name``.

    Args:
        name: The dataset's name.
        check: Called by :func:`check_dataset` with the source's options (as the loader
            takes them) to say whether its files are there (or can be downloaded), without
            reading them or writing anything; raises :class:`~nas.errors.ConfigError`.

    Raises:
        ValueError: ``name`` is not a non-empty string or is already registered, or ``loader``
            is not callable (a programming error, not user input).
    """

    def add(loader: SourceLoader) -> SourceLoader:
        from nas.plugins import check_registration

        check_registration("dataset", name, loader, _LOADERS)
        _LOADERS[name] = loader
        if check is not None:
            _CHECKS[name] = check
        return loader

    return add


def dataset_names() -> list[str]:
    """The registered dataset names, sorted."""
    return sorted(_LOADERS)


def _loader_options(loader: SourceLoader) -> list[str]:
    return [
        p.name
        for p in inspect.signature(loader).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    ]


def check_dataset_options(name: str, options: Iterable[str]) -> None:
    """Check a dataset name and its option names without loading anything.

    ``options`` may include the shared options of :func:`load_dataset` (``subset``,
    ``val_split``, ...) besides the source's own.

    Raises:
        ConfigError: an unknown name or option (listing the valid ones), located at
            ``dataset`` or ``dataset.OPTION``; ``options`` given as one string.
    """
    from nas._checks import name_list

    name_list(options, path="options")
    loader = _LOADERS.get(name)
    if loader is None:
        from nas.plugins import load_installed

        if load_installed():  # the first miss loads the installed plugins
            return check_dataset_options(name, options)
        raise ConfigError(
            f"unknown dataset {name!r}; valid: {', '.join(dataset_names())}", path="dataset"
        )
    valid = {*_loader_options(loader), *_SHARED_OPTIONS}
    unknown = sorted(set(options) - valid)
    if unknown:
        raise ConfigError(
            f"unknown option {unknown[0]!r} for dataset {name!r}; valid: {', '.join(sorted(valid))}",
            path=f"dataset.{unknown[0]}",
        )


def load_dataset(
    name: str,
    *,
    val_split: ValSplit = "holdout",
    val_fraction: float = 0.2,
    subset: int | None = None,
    val_subset: int | None = None,
    resolution: int | None = None,
    seed: int = 0,
    **options: Any,
) -> Dataset:
    """Load the dataset ``name`` on the CPU, split and ready to move to a device.

    Args:
        name: A registered name (see :func:`dataset_names`): ``digits``, ``mnist``,
            ``fashion_mnist``, ``cifar10``, ``cifar100``, ``idx``, ``npz``, ``folder``,
            ``synthetic``.
        val_split: ``"holdout"`` (default) holds out a stratified ``val_fraction`` of the
            training images; ``"test"`` validates on the source's official test split.
        val_fraction: Fraction held out for validation with ``val_split="holdout"``.
            Default: 0.2.
        subset: Keep this many training images (stratified). Default: all.
        val_subset: Keep this many validation images (stratified). Default: all.
        resolution: Resize images once, on load, to ``resolution x resolution``.
        seed: Seed of the split and subsets. Default: 0.
        **options: Options of the source, e.g. ``root`` for the torchvision datasets.

    Raises:
        ConfigError: unknown name or option, missing files, or a bad option value.
    """
    shared = check_dataset(name, val_split=val_split, val_fraction=val_fraction, subset=subset,
                           val_subset=val_subset, resolution=resolution, seed=seed, **options)
    loader = _LOADERS[name]
    if "resolution" in _loader_options(loader):
        options["resolution"] = shared["resolution"]
    raw = loader(**options)
    return prepare(raw, name=name, **shared)


def check_dataset(name: str, **options: Any) -> dict[str, Any]:
    """Check what :func:`load_dataset` would be given, without loading or writing anything:
    the name, every option against the source's signature and annotated types (numbers must
    not be negative), the shared options' ranges, and the source's files (there, or for a
    torchvision dataset, downloadable: a reachable server, unless ``NAS_OFFLINE`` is set).

    Returns:
        The shared options (``val_split``, ``val_fraction``, ``subset``, ``val_subset``,
        ``resolution``, ``seed``), normalised.

    Raises:
        ConfigError: naming the option (``path`` is the option's name).
    """
    from nas._checks import check_not_negative, check_options

    check_dataset_options(name, options)
    loader = _LOADERS[name]
    shared = check_split_options(**{k: v for k, v in options.items() if k in _SHARED_OPTIONS})
    own = {k: v for k, v in options.items() if k not in _SHARED_OPTIONS}
    check_options(loader, own, path=None)
    missing = [p.name for p in inspect.signature(loader).parameters.values()
               if p.default is inspect.Parameter.empty and p.name not in own
               and p.kind is inspect.Parameter.KEYWORD_ONLY]
    if missing:
        raise ConfigError(f"dataset {name!r} needs option {missing[0]!r}", path=missing[0])
    check_not_negative(own, path=None)
    if name in _CHECKS:
        _CHECKS[name](**own)
    return shared


def retrain_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """A search's dataset options made into those of retraining and final evaluation.

    The same source, resolution and source options (``root``, ``resolution``, ...), but the
    whole training split for training and the test split for evaluation: ``subset``,
    ``val_subset`` and ``val_fraction`` are dropped and ``val_split`` is ``"test"``. The
    mapping may hold ``name`` (kept). ``load_dataset(**retrain_options(run.dataset))``
    then gives ``dataset.val_split == "test"``.
    """
    kept = {k: v for k, v in options.items() if k not in _PROXY_OPTIONS}
    return {**kept, "val_split": "test"}
