"""``run_search``: one search run on this machine, from a config to a summary.

Contract: :func:`run_search` validates everything (config, storage, run folder) before the
first trial starts, so user errors surface as :class:`~nas.errors.ConfigError`. Inside a
trial nothing a candidate does stops the search (:mod:`nas.search._evaluate`). The pieces it
orchestrates each have a module: the run folder (:mod:`~nas.search._folder`), the storage and
study (:mod:`~nas.search._storage`), workers, budget and crash recovery
(:mod:`~nas.search._workers`), evaluation (:mod:`~nas.search._evaluate`) and the progress bar
(:mod:`~nas.search._progress`).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nas import _checks
from nas.errors import ConfigError
from nas.search._config import RunConfig, check_devices, load_config, with_overrides
from nas.search._evaluate import load_run_dataset
from nas.search._folder import (RESUMABLE, check_trial_folders, freeze, load_run_config, prepare_run_dir,
                                write_run_info)
from nas.search._progress import Progress
from nas.search._proxies import TrialScorer, run_prescreen
from nas.search._records import best_trials
from nas.search._storage import (
    check_frozen_config,
    enqueue_seeds,
    name_metrics,
    open_storage,
    open_study,
    quiet_optuna,
    state_counts,
)
from nas.search._study import make_sampler
from nas.search._workers import recover_stale, spawn_workers, worker_loop

__all__ = ["SearchSummary", "load_run_config", "run_search"]


@dataclass(frozen=True)
class SearchSummary:
    """What :func:`run_search` returns.

    Attributes:
        run_dir: The run folder.
        counts: Trials per state (``complete``, ``pruned``, ``fail``) over the whole study.
        best: The best trial's ``metrics.json`` (one objective) or the Pareto set.
        objectives: The objective names, in order.
        elapsed: Seconds this call took.
        prescreen: What pre-screening did this call (proxies, candidates, top, seconds), or
            ``None``.
    """

    run_dir: Path
    counts: Mapping[str, int]
    best: list[dict[str, Any]]
    objectives: tuple[str, ...]
    elapsed: float
    prescreen: Mapping[str, Any] | None = None


def _check_table(config: RunConfig) -> None:
    """Load a tabular run's table as every worker will (the config check reads its header
    only).

    Raises:
        ConfigError: naming the table file (and the row) and the config key ``tabular.table``.
    """
    from nas.nb201 import make_nb201_objective

    tabular = config.tabular
    try:
        make_nb201_objective(tabular["table"], tabular["objective"], report=tabular["report"])
    except ConfigError as error:
        raise error.located(path="tabular.table") from None


def run_search(
    config: RunConfig | str | Path,
    *,
    resume: bool = False,
    workers: int | None = None,
    storage: str | None = None,
    name: str | None = None,
    trials: int | None = None,
    seed: int | None = None,
    runs_dir: str | Path = "runs",
    progress: bool = True,
    devices: str | list[str] | None = None,
    trials_per_device: int | None = None,
    plugins: list[str] | None = None,
) -> SearchSummary:
    """Run (or resume) the search a config describes, in ``runs_dir/NAME/``.

    Args:
        config: A :class:`RunConfig` or the path of its YAML file.
        resume: Continue the run in ``runs_dir/NAME`` (its config must match).
        workers: Processes on this machine. Default: the config's ``workers``.
        storage: An Optuna RDB URL or a journal file path. Default: the config's, else
            ``runs_dir/NAME/journal.log``.
        name: The run's name. Default: the config's ``name``.
        trials: The trial budget. Default: the config's ``trials``.
        seed: Seeds the sampler and training. Default: the config's ``seed``.
        runs_dir: Where run folders live. Default: ``runs``.
        progress: Show a progress bar on stderr.
        devices: ``"auto"``, ``"cuda:0,cuda:1"`` or a list: one worker process per device
            (``trials_per_device`` per device), each seeing only its own. Default: the config's.
        trials_per_device: Worker processes per device. Default: the config's (1).
        plugins: Plugins to load besides the config's (paths relative to the working folder,
            or module names; :mod:`nas.plugins`): loaded before the config is read, and by
            every worker.

    Joining: with a storage other machines use, the study of the same name is joined: its
    frozen config must match (up to this machine's choices: budget, workers, devices...), the
    budget is shared, and the trials of workers that died are re-run.

    Raises:
        ConfigError: for a bad config or override, an existing run folder without ``resume``,
            a missing one with it, or a storage that cannot be opened; before any trial starts.
    """
    started = time.time()
    if plugins:
        from nas.plugins import load_plugins

        load_plugins(plugins, path="--plugin")  # the config may use what they register
    if not isinstance(config, RunConfig):
        config = load_config(config)
    config = with_overrides(config, name=name, trials=trials, workers=workers, storage=storage,
                            seed=seed, devices=devices, trials_per_device=trials_per_device,
                            plugins=plugins)
    storage_path = "storage" if storage is None else "--storage"
    run_dir = Path(runs_dir) / config.name
    storage_url = config.storage or str(run_dir / "journal.log")
    if config.storage and "://" not in config.storage:
        storage_url = str(_checks.resolved_path(config.storage, file=config.file, path=storage_path))

    quiet_optuna()
    make_sampler(config)  # a sampler this install lacks, or a bad option: fail before the folder
    check_devices(config, overridden=devices is not None)  # a GPU this machine lacks: one line now, not a failure in every trial
    config.space.check_some_valid()  # fixed params that make every candidate invalid: likewise
    if "://" in storage_url:
        open_storage(storage_url, file=config.file, path=storage_path)  # fail before the folder
    if config.tabular is None:
        data = load_run_dataset(config)  # a bad dataset: one line now, not a failure in every trial
        input_shape, classes = data.input_shape, data.num_classes
        try:  # likewise training options its images cannot take
            config.train_config().check_images(input_shape)
        except ConfigError as error:
            raise error.located(file=config.file) from None
    else:  # likewise a damaged table (every trial failed with 'internal error: TableError')
        _check_table(config)
        input_shape, classes = config.space.genotype.input_shape, None
    if config.proxies is not None and config.proxies.data is not None:
        TrialScorer(config).check_images(input_shape, classes)  # likewise images the networks cannot take
    fresh = not run_dir.exists()
    prepare_run_dir(config, run_dir, resume=resume)
    try:
        study = open_study(config, storage_url, create=True, storage_path=storage_path,
                           heartbeat=config.heartbeat)
        data, genotype_text = freeze(config)
        # the reads before the first write (the frozen config stored in a new study): a refused
        # resume leaves the storage as it was (a torn journal uncut: nas.search._journal)
        check_trial_folders(run_dir, len(study.get_trials(deepcopy=False)))
        check_frozen_config(study, {"config": data, "genotype": genotype_text},
                            resumable=RESUMABLE, file=config.file)
        name_metrics(study, config)
    except ConfigError:
        if fresh:  # a refused join leaves no folder behind
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    write_run_info(run_dir, config, storage_url)
    recover_stale(study, run_dir, heartbeat=config.heartbeat)
    # Each once per study; the pre-screen's top after the seeds unless it comes first.
    first = config.proxies is not None and config.proxies.prescreen is not None \
        and config.proxies.prescreen.first
    screened = run_prescreen(study, config, run_dir) if first else None
    enqueue_seeds(study, config)
    if not first:
        screened = run_prescreen(study, config, run_dir)

    deadline = None if config.timeout is None else started + config.timeout
    bar = Progress(study, config, enabled=progress)
    try:
        if config.n_workers == 1 and not config.devices:
            worker_loop(config, run_dir, storage_url, index=0, deadline=deadline, on_trial=bar.update,
                        shared_with=study)
        else:
            spawn_workers(config, run_dir, storage_url, deadline, bar.update)
    finally:
        bar.close()
    _, best = best_trials(run_dir, study=study)
    return SearchSummary(run_dir=run_dir, counts=state_counts(study), best=best,
                         objectives=config.objectives, elapsed=time.time() - started,
                         prescreen=screened)
