"""Workers: the ask-evaluate-tell loop, worker processes, signals and crash recovery.

The trial budget counts trials that started (any state) except those interrupted by a kill
or Ctrl-C, which are re-enqueued and run again; counting and ``study.ask()`` happen under a
file lock in the run folder, so the workers of one machine never overshoot. Workers on other
machines (an RDB storage) share the count but not the lock: they may overshoot by one trial
each.

A worker process dies with its parent (``PR_SET_PDEATHSIG``); Ctrl-C reaches every worker,
each marks its running trial interrupted and exits with status 130.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nas.errors import ConfigError
from nas.io import is_disk_full
from nas.search._config import RunConfig
from nas.search._evaluate import Evaluator, TrialRecord
from nas.search._folder import file_lock, load_run_config
from nas.search._storage import SEED_ATTR, counted, mark_interrupted, open_study, quiet_optuna, running
from nas.search._study import HalvingRule, make_sampler

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

__all__ = ["die_with_parent", "recover_interrupted", "spawn_workers", "worker_loop"]

_INTERRUPTED = "interrupted (killed or Ctrl-C); its parameters were enqueued again"


def interrupt(study: optuna.Study, trial: optuna.Trial | FrozenTrial, run_dir: Path) -> None:
    """Mark ``trial`` interrupted in the storage (uncounted, enqueued again) and in its
    folder's ``metrics.json`` (when it has a folder or parameters)."""
    mark_interrupted(study, trial, _INTERRUPTED)
    record = TrialRecord(run=study.study_name, trial=trial.number, seed=trial.user_attrs.get(SEED_ATTR),
                         counted=False, params=dict(trial.params), epochs=0)
    record.end("fail", "interrupted", _INTERRUPTED)
    if (run_dir / "trials" / f"{trial.number:04d}").exists() or trial.params:
        record.save(run_dir)


def recover_interrupted(study: optuna.Study, run_dir: Path) -> int:
    """Mark trials left RUNNING by a killed run as interrupted (see :func:`interrupt`).
    Returns how many there were."""
    stale = running(study)
    for trial in stale:
        interrupt(study, trial, run_dir)
    return len(stale)


def worker_loop(config: RunConfig, run_dir: Path, storage_url: str, *, index: int,
                deadline: float | None, on_trial: Callable[[], None] | None = None) -> None:
    """Ask, evaluate and tell until the budget or the deadline is spent."""
    from optuna.trial import TrialState

    quiet_optuna()
    if config.tabular is None:
        import torch

        torch.set_num_threads(config.torch_threads())
    study = open_study(config, storage_url, create=False, sampler=make_sampler(config, worker=index))
    worker = f"{socket.gethostname()}:{os.getpid()}"
    halving = HalvingRule.from_config(config) if config.pruner == "halving" else None
    evaluator = Evaluator(config, run_dir, worker, halving=halving, deadline=deadline)
    states = {"complete": TrialState.COMPLETE, "pruned": TrialState.PRUNED, "fail": TrialState.FAIL}
    lock = run_dir / ".ask.lock"
    while True:
        if deadline is not None and time.time() >= deadline:
            return
        with file_lock(lock):
            if config.trials is not None and counted(study) >= config.trials:
                return
            trial = study.ask()
        try:
            record = evaluator.run(study, trial)
        except KeyboardInterrupt:
            with _sigint_deferred():  # a second Ctrl-C must not cut the bookkeeping short
                interrupt(study, trial, run_dir)
            raise
        with _sigint_deferred():  # a finished trial's result reaches the storage whole
            if record.state == "complete":
                study.tell(trial, record.values)
            else:
                study.tell(trial, state=states[record.state])
        if on_trial is not None:
            on_trial()


@contextlib.contextmanager
def _sigint_deferred() -> Iterator[None]:
    """Hold Ctrl-C (SIGINT) until the block is done, then raise KeyboardInterrupt: its
    metrics.json is written, so a trial must not be left RUNNING by a Ctrl-C during its tell
    (it would be re-run on --resume). Only the main thread can handle signals; elsewhere the
    block runs as it is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if received:
        raise KeyboardInterrupt


def die_with_parent() -> None:
    """Ask Linux to kill this process when its parent dies (best effort)."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _worker_main(run_dir: str, storage_url: str, index: int, deadline: float | None,
                 overrides: dict[str, Any]) -> None:
    die_with_parent()
    signal.signal(signal.SIGINT, signal.default_int_handler)
    config = load_run_config(Path(run_dir))
    # The frozen config's budget may be older than this call's overrides.
    config = dataclasses.replace(config, **overrides)
    try:
        worker_loop(config, Path(run_dir), storage_url, index=index, deadline=deadline)
    except KeyboardInterrupt:
        sys.exit(130)
    except OSError as error:
        if not is_disk_full(error):
            raise
        from nas.cli import disk_full_message

        print(disk_full_message(error), file=sys.stderr)
        sys.exit(2)


def spawn_workers(config: RunConfig, run_dir: Path, storage_url: str, deadline: float | None,
                  on_tick: Callable[[], None]) -> None:
    """Run ``config.workers`` worker processes until they finish, calling ``on_tick`` every
    second; Ctrl-C is passed on to them.

    Raises:
        ConfigError: a worker process failed.
    """
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    overrides = {"trials": config.trials, "timeout": config.timeout, "workers": config.workers,
                 "threads": config.threads}
    processes = [
        context.Process(target=_worker_main, args=(str(run_dir), storage_url, i, deadline, overrides),
                        name=f"nas-worker-{i}")
        for i in range(config.workers)
    ]
    for p in processes:
        p.start()
    try:
        while any(p.is_alive() for p in processes):
            time.sleep(1.0)
            with contextlib.suppress(Exception):
                on_tick()
    except KeyboardInterrupt:
        for p in processes:
            if p.is_alive():
                os.kill(p.pid, signal.SIGINT)
        for p in processes:
            p.join(timeout=30)
        raise
    finally:
        for p in processes:
            p.join()
    bad = [p.exitcode for p in processes if p.exitcode not in (0, None)]
    if bad:
        raise ConfigError(f"{len(bad)} worker process(es) failed (exit codes {bad}); see the "
                          f"trials' log.txt in {run_dir}", path="workers")
