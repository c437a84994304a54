"""Run configurations: one YAML file, validated strictly when loaded.

Top-level keys (only ``space`` is required)::

    name: quickstart             # runs/NAME; default: the file's stem
    plugins: [ghost.py, my_pkg.ops]   # user modules registering ops, datasets, samplers, block
                                 # libraries (nas.plugins): files relative to this file, or
                                 # module names; loaded first, here and in every worker
    doc: free text
    space: {...} | FILE          # the search space (see nas.search._space), inline or a file
    dataset: {name: digits, subset: 600, resolution: 16, ...}   # nas.data.load_dataset options;
                                 # root, val_root, cache: relative to this file (root and
                                 # val_root, when not found there: to the working folder)
    train: {epochs: 4, lr: 0.05, ...}                           # nas.train.TrainConfig fields
    width_multiplier: 1.0        # proxy scale: multiplies the genotype's scaling.width params
    objectives: [val_accuracy]   # and/or params, macs, latency (minimised); several = Pareto
    sampler: tpe | {name: tpe, options: {...}}   # tpe random nsga2 cmaes gp evolution local,
                                 # or a plugin's (nas.samplers.register_sampler)
    pruner: none | {name: halving, rungs: [1, 2], reduction: 3}  # none median hyperband halving
    trials: 20                   # trial budget (counts every trial started, seeds included)
    timeout: 240                 # wall-clock budget in seconds; no new trial starts after it
    seed: 0                      # seeds training, and the samplers (mixed with the machine and
                                 # the worker index: see nas.search._study.worker_seed)
    storage: null                # default: the journal file runs/NAME/journal.log; or an RDB URL
    workers: 1                   # processes on this machine (ignored when devices are given)
    threads: null                # torch threads per worker and the pre-screen; default: cores // workers
    devices: null                # [cuda:0, cuda:1] or auto: one worker per device, each seeing
                                 # only its own (CUDA_VISIBLE_DEVICES) and training on "cuda"
    trials_per_device: 1         # workers per device (small proxy models leave a GPU idle)
    heartbeat: 10                # seconds between a running trial's heartbeats; a trial whose
                                 # worker missed 3 is re-queued by any other worker
    dedup: true                  # reuse the result of an isomorphic genotype (equal hash)
    latency: {batch_size: 1, repeats: 20, warmup: 5}   # when latency is an objective
    tabular:                     # NAS-Bench-201 lookup instead of training
      table: FILE                # a CSV with index, arch and <dataset>_<metric> columns
      objective: cifar10_valid   # the column to optimise (default cifar10_valid)
      report: [cifar10_test]     # columns recorded and reported with every trial
      # (dataset: cifar10 is the older shorthand for objective: cifar10_test)
    keep_weights: {select: auto, top: 3, max_mb: 200}  # trained weights kept (nas.search._keep)
    retrain: {top: 3, seeds: 2, epochs: 20, ...}       # defaults of `nas retrain` (nas.retrain)
    proxies: {record: [naswot], prescreen: {proxy: naswot, candidates: 200, top: 5}, ...}
                                 # zero-cost proxies (nas.search._proxies); objectives may
                                 # name proxy.NAME (maximised)

Everything is checked here, before a run folder is made (the shared checks are
:mod:`nas._checks`): numbers finite and in range (``trials`` up to 1,000,000, ``timeout`` up to
1e7 s, ``workers`` up to max(4, cores), ``threads`` up to the cores, ``seed + workers - 1 <
2**32``), the dataset's options and files, sampler and pruner options against their signatures
and types (then both are built once), op-valued choices against the op registry.

Errors are :class:`~nas.errors.ConfigError` with the file and the key path. Imports torch
(training and dataset checks) and Optuna (sampler checks) inside :func:`parse_config` only.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nas import _checks
from nas._yaml import load_yaml_file
from nas.errors import ConfigError, NasError
from nas.genotype import Genotype
from nas.genotype._model import require_genotype
from nas.search._keep import KeepPolicy, parse_keep
from nas.search._proxies import PROXY_OBJECTIVE, ProxySettings, parse_proxies
from nas.search._space import Space, parse_space
from nas.train import TrainConfig  # no torch: nas.train loads the loop on first use

__all__ = [
    "DIRECTIONS",
    "PRUNERS",
    "SAMPLERS",
    "RunConfig",
    "load_config",
    "parse_config",
    "with_overrides",
]

SAMPLERS = ("tpe", "random", "nsga2", "cmaes", "gp", "evolution", "local")
PRUNERS = ("none", "median", "hyperband", "halving")
#: Objective -> Optuna direction. ``table_accuracy`` is the tabular benchmark's accuracy.
DIRECTIONS = {
    "val_accuracy": "maximize",
    "table_accuracy": "maximize",
    "params": "minimize",
    "macs": "minimize",
    "latency": "minimize",
}
_KEYS = ("name", "doc", "space", "dataset", "train", "width_multiplier", "objectives", "sampler",
         "pruner", "trials", "timeout", "seed", "storage", "workers", "threads", "dedup", "latency", "tabular",
         "keep_weights", "retrain", "proxies", "devices", "trials_per_device", "heartbeat", "plugins")
_LATENCY_KEYS = {"batch_size": 1, "repeats": 20, "warmup": 5}
_TABULAR_KEYS = ("table", "objective", "report", "dataset")
#: The column a tabular run optimises by default: NAS-Bench-201's published protocol selects on
#: validation accuracy and reports test accuracy.
DEFAULT_OBJECTIVE = "cifar10_valid"
#: Dataset options that name files or folders: made absolute, relative to the config file.
_DATASET_PATHS = _checks.DATASET_PATHS
DEFAULT_TABLE = "../shared/data/nasbench201/nb201_cifar.csv"


@dataclass(frozen=True)
class RunConfig:
    """A validated run configuration (see the module docstring for the keys).

    ``data`` is the plain mapping as validated, with ``space`` inlined and paths made absolute:
    what ``runs/NAME/config.yaml`` freezes.
    """

    file: str
    name: str
    space: Space
    dataset: Mapping[str, Any]
    train: Mapping[str, Any]
    width_multiplier: float
    objectives: tuple[str, ...]
    sampler: str
    sampler_options: Mapping[str, Any]
    pruner: str
    pruner_options: Mapping[str, Any]
    trials: int | None
    timeout: float | None
    seed: int
    storage: str | None
    workers: int
    threads: int | None
    dedup: bool
    latency: Mapping[str, int]
    tabular: Mapping[str, Any] | None
    keep_weights: KeepPolicy | None = None
    retrain: Mapping[str, Any] = field(default_factory=dict)
    proxies: ProxySettings | None = None
    devices: tuple[str, ...] | None = None
    trials_per_device: int = 1
    heartbeat: int = 10
    plugins: tuple[str, ...] = ()
    data: Mapping[str, Any] = field(repr=False, default_factory=dict)

    @property
    def directions(self) -> list[str]:
        """Optuna's direction per objective; a proxy's score (``proxy.NAME``) is maximised."""
        return [DIRECTIONS.get(o, "maximize") for o in self.objectives]

    @property
    def multi_objective(self) -> bool:
        return len(self.objectives) > 1

    @property
    def n_workers(self) -> int:
        """Worker processes on this machine: one per device and trial slot, else ``workers``."""
        return len(self.devices) * self.trials_per_device if self.devices else self.workers

    def torch_threads(self) -> int:
        """Torch threads per worker: ``threads``, else the CPU cores shared among workers
        (one thread per worker on 2 cores: tiny proxy models gain nothing from more)."""
        import os

        return self.threads or max(1, (os.cpu_count() or 1) // self.n_workers)

    def train_config(self) -> Any:
        """The :class:`nas.train.TrainConfig` (imports torch)."""
        from nas.train import TrainConfig

        values = dict(self.train)
        values.setdefault("seed", self.seed)
        return TrainConfig.from_dict(values)


def _error(message: str, file: str | None, path: str) -> ConfigError:
    return ConfigError(message, file=file, path=path)


def load_config(path: str | Path, *, genotype: Genotype | None = None) -> RunConfig:
    """Read and validate a run configuration file.

    Args:
        path: The YAML file.
        genotype: Use this genotype for the space (how a frozen run folder is reloaded).

    Raises:
        ConfigError: the first problem, naming the file and the key path.
        TypeError: ``genotype`` is given and is not a :class:`~nas.Genotype`.
    """
    if genotype is not None:
        require_genotype(genotype)
    path = Path(path)
    data = load_yaml_file(path, error=ConfigError)
    return parse_config(data, file=str(path), base=path.resolve().parent, genotype=genotype)


def with_overrides(config: RunConfig, *, name: str | None = None, trials: int | None = None,
                   workers: int | None = None, storage: str | None = None,
                   seed: int | None = None, devices: Any = None,
                   trials_per_device: int | None = None,
                   plugins: list[str] | None = None) -> RunConfig:
    """``config`` with the given keys replaced (``None`` keeps the config's), validated as the
    config file's keys are; ``data`` (what a run folder freezes) follows every key but
    ``storage``. ``plugins`` (paths relative to the working folder, or module names) are
    loaded and added to the config's, so the run's workers load them too.

    Raises:
        ConfigError: a value the config file could not hold, naming the key.
    """
    changes: dict[str, Any] = {}
    if name is not None:
        changes["name"] = _checks.folder_name(name, path="name")
    for key, value in (("trials", trials), ("workers", workers), ("trials_per_device", trials_per_device)):
        if value is not None:
            changes[key] = _checks.number(value, path=key, integer=True, **_LIMITS[key])
    if seed is not None:
        changes["seed"] = _checks.seed(seed, path="seed", span=changes.get("workers", config.workers))
    if devices is not None:
        changes["devices"] = parse_devices(devices)
    if storage is not None:
        _check_storage(storage, None)
        changes["storage"] = storage
    if plugins:
        added = parse_plugins(list(plugins), base=Path.cwd(), file=None, path="--plugin")
        merged = tuple(dict.fromkeys((*config.plugins, *added)))
        if merged != config.plugins:
            changes["plugins"] = merged
    if not changes:
        return config
    if "trials" in changes:
        _check_bootstrap(config.pruner, config.pruner_options, changes["trials"], config.file,
                         budget="--trials")
    if "workers" in changes and "seed" not in changes:
        _checks.seed(config.seed, path="seed", file=config.file, span=changes["workers"])
    data = dict(config.data)
    data.update({k: list(v) if k in ("devices", "plugins") and v else v
                 for k, v in changes.items() if k != "storage"})
    return dataclasses.replace(config, data=data, **changes)


# Bounds of the run's numbers (nas._checks.number); the upper ones turn typos into errors.
_LIMITS: dict[str, dict[str, Any]] = {
    "trials": {"low": 1, "high": 1_000_000},
    "timeout": {"low": 0.0, "high": 1e7, "low_open": True},  # seconds: about 115 days
    "workers": {"low": 1, "high": _checks.max_processes()},
    "width_multiplier": {"low": 0.0, "high": 16.0, "low_open": True},
    "trials_per_device": {"low": 1, "high": 64},
    "heartbeat": {"low": 1, "high": 3600},  # seconds between a running trial's heartbeats
}


def parse_config(data: Any, *, file: str, base: Path, genotype: Genotype | None = None) -> RunConfig:
    """Validate a run configuration mapping (see :func:`load_config`)."""
    if not isinstance(data, Mapping):
        raise _error("a run configuration must be a mapping", file, "")
    for key in data:
        if key not in _KEYS:
            raise _error(f"unknown key {key!r}; valid: {', '.join(_KEYS)}", file, str(key))
    frozen: dict[str, Any] = copy.deepcopy(dict(data))
    plugins = parse_plugins(data.get("plugins"), base=base, file=file)  # before the space: its ops
    if plugins:
        frozen["plugins"] = list(plugins)
    else:
        frozen.pop("plugins", None)
    name = _checks.folder_name(data.get("name", Path(file).stem), file=file, path="name")
    if not isinstance(data.get("doc", ""), str):
        raise _error("must be text", file, "doc")
    frozen["name"] = name

    if "space" not in data:
        raise _error("missing key 'space'", file, "space")
    space_data, space_file, space_base = data["space"], file, base
    if isinstance(space_data, str):
        space_path = base / space_data
        if not _checks.resolved_path(space_path, file=file, path="space").is_file():
            raise _error(f"no space file {space_data!r} (relative to {base})", file, "space")
        loaded = load_yaml_file(space_path, error=ConfigError)
        space_data = loaded.get("space", loaded) if isinstance(loaded, Mapping) else loaded
        space_file, space_base = str(space_path), space_path.resolve().parent
    space = parse_space(space_data, file=space_file, base=space_base, genotype=genotype)
    frozen["space"] = copy.deepcopy(dict(space_data))

    tabular = data.get("tabular")
    if tabular is not None:
        tabular = _parse_tabular(tabular, file, base)
        frozen["tabular"] = dict(tabular)
        for key in ("dataset", "train", "width_multiplier", "latency"):
            if key in data:
                raise _error("a tabular run does not train: remove this key", file, key)
        objectives_default: list[str] = ["table_accuracy"]
        from nas.nb201 import EDGES

        missing = [edge for edge in EDGES if edge not in space.labels]
        if missing:
            raise _error(f"a tabular space needs the NAS-Bench-201 edge labels "
                         f"{', '.join(EDGES)}; missing {', '.join(missing)}", file, "space.choices")
        _check_tabular_ops(space, file)
    else:
        objectives_default = ["val_accuracy"]

    train = _checks.section(data.get("train"), path="train", file=file, what="a mapping of training options")
    if tabular is None:
        _check_train(train, file)

    width = _number(data, "width_multiplier", file, 1.0)

    objectives = data.get("objectives", objectives_default)
    if isinstance(objectives, str):
        objectives = [objectives]
    if not isinstance(objectives, list) or not objectives:
        raise _error("must be a list of objectives", file, "objectives")
    allowed = ["table_accuracy"] if tabular is not None else [o for o in DIRECTIONS if o != "table_accuracy"]
    for i, objective in enumerate(objectives):
        if objective not in allowed and not str(objective).startswith(PROXY_OBJECTIVE):
            raise _error(f"unknown objective {objective!r}; valid here: {', '.join(allowed)} "
                         f"or {PROXY_OBJECTIVE}NAME (a zero-cost proxy)", file, f"objectives[{i}]")
    if len(set(objectives)) != len(objectives):
        raise _error("an objective is listed twice", file, "objectives")
    if objectives[0] not in ("val_accuracy", "table_accuracy"):
        raise _error("the first objective must be the accuracy", file, "objectives[0]")

    sampler, sampler_options = _named(data.get("sampler", "tpe"), SAMPLERS, file, "sampler",
                                      plugin=_plugin_sampler)
    pruner, pruner_options = _named(data.get("pruner", "none"), PRUNERS, file, "pruner")
    multi = len(objectives) > 1
    if multi and (sampler in ("cmaes", "evolution")
                  or sampler not in SAMPLERS and not _plugin_sampler(sampler).multi_objective):
        raise _error(f"sampler {sampler!r} is single-objective; with several objectives use "
                     "tpe, nsga2, random or gp", file, "sampler")
    if multi and pruner in ("median", "hyperband"):
        raise _error(f"Optuna's {pruner} pruner refuses multi-objective studies; use "
                     "pruner: halving", file, "pruner")
    if tabular is not None and pruner != "none":
        raise _error("a tabular run has no epochs to prune", file, "pruner")
    if sampler == "cmaes":
        for choice in space.choices:
            if choice.kind == "categorical" or choice.when:
                raise _error(f"cmaes needs a space of unconditional int and float choices; "
                             f"{choice.label!r} is {'conditional' if choice.when else 'categorical'}",
                             file, "sampler")
    _check_pruner_options(pruner, pruner_options, file, epochs=train.get("epochs"))

    trials = _number(data, "trials", file, None, integer=True)
    _check_bootstrap(pruner, pruner_options, trials, file)
    timeout = _number(data, "timeout", file, None)
    if trials is None and timeout is None:
        raise _error("give a budget: trials, timeout or both", file, "trials")
    workers = _number(data, "workers", file, 1, integer=True)
    seed = _checks.seed(data.get("seed", 0), file=file, path="seed", span=workers)
    threads = _checks.threads(data.get("threads"), file=file, path="threads")
    devices = parse_devices(data.get("devices"), file)
    trials_per_device = _number(data, "trials_per_device", file, 1, integer=True)
    heartbeat = _number(data, "heartbeat", file, 10, integer=True)
    storage = data.get("storage")
    if storage is not None:
        _check_storage(storage, file)
    dedup = data.get("dedup", True)
    if not isinstance(dedup, bool):
        raise _error("must be true or false", file, "dedup")
    latency = _checks.section(data.get("latency"), path="latency", file=file)
    for key, value in latency.items():
        if key not in _LATENCY_KEYS:
            raise _error(f"unknown key {key!r}; valid: {', '.join(_LATENCY_KEYS)}", file, f"latency.{key}")
        low, high = _checks.LATENCY_BOUNDS[key]
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise _error(f"must be an integer from {low} to {high:,}, got {value!r}", file, f"latency.{key}")
    latency = {**_LATENCY_KEYS, **latency}
    keep = None if tabular is not None else parse_keep(data.get("keep_weights"), file=file)
    from nas.retrain._options import parse_retrain

    retrain = parse_retrain(data.get("retrain"), file=file)
    if tabular is None and retrain.get("train"):
        _check_train({**train, **retrain["train"]}, file, prefix="retrain.")
    proxies = parse_proxies(data.get("proxies"), objectives=objectives, file=file, base=base,
                            trained=tabular is None, paths=_DATASET_PATHS)
    if proxies is not None and "proxies" in data and proxies.data is not None:
        frozen["proxies"] = {**dict(data["proxies"]), "data": dict(proxies.data)}

    dataset: dict[str, Any] = {"name": "digits"}
    if tabular is None:  # last of the file's checks: it loads torch (seconds), the others do not
        dataset = _checks.dataset(data.get("dataset", "digits"), base=base, file=file)
    if proxies is not None and proxies.data is not None:  # the proxies' images: likewise
        _checks.dataset(dict(proxies.data), base=base, file=file, path="proxies.data")
    config = RunConfig(
        file=file, name=name, space=space, dataset=dataset, train=dict(train),
        width_multiplier=float(width), objectives=tuple(objectives), sampler=sampler,
        sampler_options=sampler_options, pruner=pruner, pruner_options=pruner_options,
        trials=trials, timeout=None if timeout is None else float(timeout), seed=seed,
        storage=storage, workers=workers, threads=threads, dedup=dedup, latency=latency, tabular=tabular,
        keep_weights=keep, retrain=retrain, proxies=proxies, devices=devices,
        trials_per_device=trials_per_device, heartbeat=heartbeat, plugins=plugins, data=frozen,
    )
    _check_sampler_and_pruner(config)
    return config


def flag_limits(key: str) -> dict[str, Any]:
    """The bounds of the run's number ``key`` (``trials``, ``timeout``, ``workers``), for
    :func:`nas._checks.number`: command-line overrides take the same as the file."""
    return dict(_LIMITS[key])


def _number(data: Mapping, key: str, file: str, default: Any, *, integer: bool = False) -> Any:
    """``data[key]`` (or ``default``; ``None`` stays ``None``) checked against :data:`_LIMITS`."""
    value = data.get(key, default)
    if value is None and default is None:
        return None
    return _checks.number(value, path=key, file=file, integer=integer, **_LIMITS[key])


def _check_sampler_and_pruner(config: RunConfig) -> None:
    """Options against the sampler's and pruner's signatures and types, then both built once
    (as every worker will), so a bad option fails here and not inside a trial. Imports Optuna."""
    from nas.search._study import (
        SAMPLER_OWN_OPTIONS,
        HalvingRule,
        make_pruner,
        make_sampler,
        pruner_class,
        sampler_class,
    )

    options = dict(config.sampler_options)
    avoid = options.pop("avoid_duplicates", False)
    if not isinstance(avoid, bool):
        raise _error(f"must be true or false, got {avoid!r}", config.file, "sampler.avoid_duplicates")
    reject = options.pop("reject_infeasible", True)
    if not isinstance(reject, bool):
        raise _error(f"must be true or false, got {reject!r}", config.file, "sampler.reject_infeasible")
    try:
        _checks.check_options(sampler_class(config.sampler), options, path="sampler",
                              file=config.file, skip=SAMPLER_OWN_OPTIONS)
        if config.sampler in SAMPLERS:  # a plugin's sampler may take negative numbers
            _checks.check_not_negative(options, path="sampler", file=config.file)
    except ConfigError as error:
        raise error.located(file=config.file)
    cls = pruner_class(config.pruner)
    if cls is not None:
        _checks.check_options(cls, config.pruner_options, path="pruner", file=config.file)
    make_sampler(config)
    make_pruner(config)
    if config.pruner == "halving":
        HalvingRule.from_config(config)


def _check_tabular_ops(space: Space, file: str) -> None:
    """Every option of a NAS-Bench-201 edge choice is one of the table's ops."""
    from nas.nb201 import EDGES, OPS

    for edge in EDGES:
        choice = space.choice(edge)
        for value in choice.options:
            if value not in OPS:
                raise _error(f"{value!r} is not a NAS-Bench-201 op; valid: {', '.join(OPS)}",
                             file, f"space.choices.{edge}.choices")


def parse_devices(value: Any, file: str | None = None, path: str = "devices") -> tuple[str, ...] | None:
    """``None``, ``"auto"`` (every CUDA device torch sees; none: ``None``), a list of device
    names or one comma-separated string (``cuda:0,cuda:1``). A device is ``cpu`` or
    ``cuda:N``.

    Raises:
        ConfigError: any other value, naming ``file`` and ``path``.
    """
    if value is None:
        return None
    if value == "auto":
        import torch

        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        return tuple(f"cuda:{i}" for i in range(count)) or None
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",")]
    if not isinstance(value, list) or not value:
        raise _error("must be auto or a list of devices (cuda:0, cuda:1, cpu)", file, path)
    for i, device in enumerate(value):
        if not isinstance(device, str) or not (device == "cpu" or (
                device.startswith("cuda:") and device[5:].isdigit())):
            raise _error(f"must be cpu or cuda:N, got {device!r}", file, f"{path}[{i}]")
    return tuple(value)


def check_devices(config: RunConfig, *, overridden: bool = False) -> None:
    """The devices the search's trials would train on exist here: each of ``devices``
    (``cuda:N`` below this machine's GPU count), else the training device (``cuda`` needs
    one GPU); a tabular search trains nothing and is not checked. Checked before the run
    folder is made: otherwise every trial fails alike.

    Raises:
        ConfigError: naming the config file and the key (``devices`` alone when
            ``overridden``: they were given apart from the file).
    """
    if config.tabular is not None:  # table lookups train nothing: devices only spread workers
        return
    wanted = [(f"devices[{i}]", d) for i, d in enumerate(config.devices or ())]
    if not wanted:
        wanted = [("train.device", config.train.get("device", "auto"))]
    for path, device in wanted:
        if device != "auto":
            file = None if overridden and path.startswith("devices") else config.file
            _checks.device(device, path=path, file=file)


def parse_plugins(value: Any, *, base: Path, file: str | None,
                  path: str = "plugins") -> tuple[str, ...]:
    """A config's ``plugins``: a list of file paths (relative to ``base``) and module names,
    each loaded (:func:`nas.plugins.load_plugins`); returns them resolved, as frozen.

    Raises:
        ConfigError: not a list, or a plugin that cannot be loaded (naming it).
    """
    if value is None:
        return ()
    if not isinstance(value, list):
        raise _error("must be a list of plugin files or module names", file, path)
    from nas.plugins import load_plugins

    return tuple(load_plugins(value, base=base, path=path, file=file))


def _plugin_sampler(name: str) -> Any:
    from nas.samplers._registry import find_sampler

    return find_sampler(name)


def _named(value: Any, valid: tuple[str, ...], file: str, key: str, *,
           plugin: Any = None) -> tuple[str, dict[str, Any]]:
    """``(name, options)`` of a named section (``sampler``, ``pruner``): one of ``valid``, or
    a name ``plugin(name)`` finds."""
    if isinstance(value, str):
        name, options = value, {}
    elif isinstance(value, Mapping) and isinstance(value.get("name"), str):
        options = {k: v for k, v in value.items() if k != "name"}
        name = value["name"]
        extra = _checks.section(options.pop("options", None), path=f"{key}.options", file=file)
        options.update(extra)
    else:
        raise _error(f"must be a name ({', '.join(valid)}) or a mapping with 'name'", file, key)
    if name not in valid and (plugin is None or plugin(name) is None):
        if plugin is not None:
            from nas.samplers._registry import plugin_sampler_names

            valid = (*valid, *plugin_sampler_names())
        raise _error(f"unknown {key} {name!r}; valid: {', '.join(valid)}", file, f"{key}.name"
                     if isinstance(value, Mapping) else key)
    return name, options


def _check_pruner_options(pruner: str, options: Mapping[str, Any], file: str, *, epochs: Any) -> None:
    if pruner != "halving":
        return
    epochs = epochs if isinstance(epochs, int) and not isinstance(epochs, bool) else 10
    for key, value in options.items():
        where = f"pruner.{key}"
        if key == "rungs":
            if (not isinstance(value, list) or not value
                    or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value)
                    or sorted(set(value)) != value):
                raise _error(f"must be increasing epoch numbers, got {value!r}", file, where)
            if value[-1] > epochs:
                raise _error(f"rung {value[-1]} is after the last epoch ({epochs}): no trial "
                             "reaches it", file, where)
        elif key == "reduction":
            _checks.number(value, path=where, file=file, low=1, high=1000, low_open=True)
        elif key == "min_trials":
            _checks.number(value, path=where, file=file, low=1, high=1_000_000, integer=True)
        else:
            raise _error(f"unknown key {key!r}; valid: rungs, reduction, min_trials", file, where)


def _check_bootstrap(pruner: str, options: Mapping[str, Any], trials: Any, file: str | None, *,
                     budget: str = "trials") -> None:
    """Refuse a hyperband ``bootstrap_count`` that is not below the trial budget: Optuna prunes
    a trial at a rung while at most ``bootstrap_count`` trials (itself included) reached it, so
    with ``trials`` or fewer trials every trial is pruned at its first rung.

    Raises:
        ConfigError: at ``pruner.bootstrap_count``, naming the budget (``budget``: where it
            was given).
    """
    count = options.get("bootstrap_count")
    if (pruner == "hyperband" and isinstance(count, int) and not isinstance(count, bool)
            and isinstance(trials, int) and count >= trials):
        raise _error(f"{count} is not below the trial budget ({budget}: {trials}): Optuna's hyperband "
                     "prunes a trial at a rung until more than bootstrap_count trials reached it, so "
                     "every trial would be pruned", file, "pruner.bootstrap_count")


def _check_storage(storage: Any, file: str | None) -> None:
    """A storage URL or journal path: non-empty text without a NUL byte, not an in-memory
    database."""
    if not isinstance(storage, str) or not storage or "\0" in storage:
        raise _error("must be a storage URL or a journal file path", file, "storage")
    if _in_memory(storage):
        raise _error("an in-memory SQLite database is lost when the run ends and is not shared "
                     "between worker processes; give a file (sqlite:///path/run.db) or a journal "
                     "file path", file, "storage")


def _in_memory(url: str) -> bool:
    """True for SQLAlchemy's in-memory SQLite URLs: ``sqlite://``, ``sqlite:///:memory:``,
    ``sqlite+pysqlite:///file::memory:?cache=shared``, ``...?mode=memory``."""
    scheme, separator, rest = url.partition("://")
    if not separator or scheme.split("+")[0].lower() != "sqlite":
        return False
    database = rest.removeprefix("/").split("?")[0]
    return database == "" or ":memory:" in rest or "mode=memory" in rest


def _check_train(train: Mapping[str, Any], file: str, *, prefix: str = "") -> None:
    try:
        TrainConfig.from_dict(train)
    except NasError as error:
        error.file = file
        error.path = prefix + error.path if error.path else error.path
        raise


def _parse_tabular(value: Any, file: str, base: Path) -> dict[str, Any]:
    """``{table: absolute path, objective: column, report: [columns]}``; column names are
    checked against the table file's header."""
    if not isinstance(value, Mapping):
        raise _error("must be a mapping with table, objective and report", file, "tabular")
    for key in value:
        if key not in _TABULAR_KEYS:
            raise _error(f"unknown key {key!r}; valid: {', '.join(_TABULAR_KEYS)}", file, f"tabular.{key}")
    table = value.get("table", DEFAULT_TABLE)
    if not isinstance(table, str):
        raise _error("must be a file path", file, "tabular.table")
    candidates = [base / table, Path.cwd() / table]
    found = next((p for p in candidates if _checks.resolved_path(p, file=file, path="tabular.table").is_file()),
                 None)
    if found is None:
        raise _error(f"no table file {table!r} (relative to {base} or the working folder)",
                     file, "tabular.table")
    from nas.nb201 import TableError, read_columns, resolve_column

    try:
        columns = read_columns(found)
    except TableError as error:
        raise _error(error.message, file, "tabular.table") from None
    if "dataset" in value and "objective" in value:
        raise _error("give objective (dataset is its older shorthand), not both", file, "tabular.dataset")
    key = "dataset" if "dataset" in value else "objective"
    objective = value.get(key, DEFAULT_OBJECTIVE)
    report = value.get("report", [])
    if isinstance(report, str):
        report = [report]
    if not isinstance(report, list):
        raise _error("must be a list of column names", file, "tabular.report")
    named: list[str] = []
    for where, name in ((f"tabular.{key}", objective), *((f"tabular.report[{i}]", r) for i, r in enumerate(report))):
        try:
            named.append(resolve_column(name, columns))
        except TableError as error:
            raise _error(error.message, file, where) from None
    if len(set(named)) != len(named):
        raise _error("a column is named twice (the objective is always reported)", file, "tabular.report")
    return {"table": str(found.resolve()), "objective": named[0], "report": named[1:]}

