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

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nas.search._config import RunConfig, load_config, with_overrides
from nas.search._evaluate import load_run_dataset
from nas.search._folder import load_run_config, prepare_run_dir, write_run_info
from nas.search._progress import Progress
from nas.search._proxies import run_prescreen
from nas.search._records import best_trials
from nas.search._storage import enqueue_seeds, open_storage, open_study, quiet_optuna, state_counts
from nas.search._study import make_sampler
from nas.search._workers import recover_interrupted, spawn_workers, worker_loop

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

    Raises:
        ConfigError: for a bad config or override, an existing run folder without ``resume``,
            a missing one with it, or a storage that cannot be opened; before any trial starts.
    """
    started = time.time()
    if not isinstance(config, RunConfig):
        config = load_config(config)
    config = with_overrides(config, name=name, trials=trials, workers=workers, storage=storage,
                            seed=seed)
    storage_path = "storage" if storage is None else "--storage"
    run_dir = Path(runs_dir) / config.name
    storage_url = config.storage or str(run_dir / "journal.log")
    if config.storage and "://" not in config.storage:
        storage_url = str(Path(config.storage).resolve())

    quiet_optuna()
    make_sampler(config)  # a sampler this install lacks, or a bad option: fail before the folder
    if "://" in storage_url:
        open_storage(storage_url, file=config.file, path=storage_path)  # fail before the folder
    if config.tabular is None:
        load_run_dataset(config)  # a bad dataset: one line now, not a failure in every trial
    prepare_run_dir(config, run_dir, resume=resume)
    write_run_info(run_dir, config, storage_url)
    study = open_study(config, storage_url, create=True, storage_path=storage_path)
    if resume:
        recover_interrupted(study, run_dir)
    enqueue_seeds(study, config)
    screened = run_prescreen(study, config, run_dir)  # after the seeds; once per study

    deadline = None if config.timeout is None else started + config.timeout
    bar = Progress(study, config, enabled=progress)
    try:
        if config.workers == 1:
            worker_loop(config, run_dir, storage_url, index=0, deadline=deadline, on_trial=bar.update)
        else:
            spawn_workers(config, run_dir, storage_url, deadline, bar.update)
    finally:
        bar.close()
    _, best = best_trials(run_dir)
    return SearchSummary(run_dir=run_dir, counts=state_counts(study), best=best,
                         objectives=config.objectives, elapsed=time.time() - started,
                         prescreen=screened)
