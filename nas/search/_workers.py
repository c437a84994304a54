"""Workers: the ask-evaluate-tell loop, heartbeats, recovery of dead workers' trials, worker
processes (one per device when devices are given) and signals.

Budget: counted in the storage (:func:`~nas.search._storage.admit`), so every worker on every
machine stops at the same count and none overshoots. Interrupted trials do not count; their
parameters are enqueued again. When the budget is spent a worker waits while other trials are
still running, so that a trial whose worker died is re-run by a survivor.

Liveness: while a trial runs, a thread sends its heartbeat every ``heartbeat`` seconds
(Optuna's heartbeat table on an RDB storage, a user attribute on a journal). A running trial
whose heartbeat stopped for three intervals, or whose worker process on this host is gone, is
failed as interrupted and enqueued again by whichever live worker sees it first (the storage
lets exactly one of them fail it); one whose result reached the storage before its worker
died is finished with that result instead. A live trial is never touched, so killing a worker
costs the others nothing.

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
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nas._threads import torch_threads
from nas.errors import ConfigError, NasError
from nas.io import is_disk_full
from nas.search._config import RunConfig
from nas.search._evaluate import Evaluator, TrialRecord
from nas.search._folder import load_run_config
from nas.search._records import trial_dir, write_json
from nas.search._storage import (
    GRACE_BEATS,
    RECORD_ATTR,
    SEED_ATTR,
    WORKER_ATTR,
    admit,
    beat,
    budget_left,
    is_indexed_journal,
    mark_interrupted,
    open_study,
    quiet_optuna,
    running,
    stale_trials,
    tell,
)
from nas.search._study import HalvingRule, make_sampler, worker_seed

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

__all__ = ["die_with_parent", "recover_stale", "spawn_workers", "worker_loop"]

_INTERRUPTED = "interrupted (its worker was killed, stopped or lost); its parameters were enqueued again"


def interrupt(study: optuna.Study, trial: optuna.Trial | FrozenTrial, run_dir: Path) -> None:
    """Mark ``trial`` interrupted in the storage (uncounted, enqueued again) and, when this
    machine ran it (its folder is here), in its ``metrics.json``."""
    if not mark_interrupted(study, trial, _INTERRUPTED):
        return
    record = TrialRecord(run=study.study_name, trial=trial.number, seed=trial.user_attrs.get(SEED_ATTR),
                         worker=trial.user_attrs.get(WORKER_ATTR), counted=False,
                         params=dict(trial.params))
    record.end("fail", "interrupted", _INTERRUPTED)
    if trial_dir(run_dir, trial.number).exists():
        record.save(run_dir)


def recover_stale(study: optuna.Study, run_dir: Path, *, heartbeat: int) -> int:
    """Settle the running trials whose worker is gone; returns how many. A trial whose record
    reached the storage (its worker died after storing the result, before telling Optuna) is
    finished with that result, and its ``metrics.json`` written when this machine ran it and
    the file is missing; any other is interrupted (re-queued)."""
    stale = stale_trials(study, grace=GRACE_BEATS * heartbeat)
    for trial in stale:
        record = trial.user_attrs.get(RECORD_ATTR)
        if isinstance(record, dict) and record.get("state") in _FINISHED:
            _finish_from_record(study, trial, record, run_dir)
        else:
            interrupt(study, trial, run_dir)
    return len(stale)


def _finish_from_record(study: optuna.Study, trial: FrozenTrial, record: dict[str, Any],
                        run_dir: Path) -> None:
    if not _tell_state(study, trial.number, record["state"], record.get("values")):
        return  # another process settled it first
    folder = trial_dir(run_dir, trial.number)
    if folder.is_dir() and not (folder / "metrics.json").exists():
        write_json(folder / "metrics.json", record, sync=False)


@contextlib.contextmanager
def _heartbeat(study: optuna.Study, trial: optuna.Trial, interval: float, *,
               first: dict[str, Any] | None) -> Iterator[None]:
    """Beat for ``trial`` every ``interval`` seconds until the block ends, and at once with
    user attributes ``first`` unless it is None (a trial without a beat is judged by its
    start time)."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(interval):
            with contextlib.suppress(Exception):  # a missed beat is only a later one
                beat(study, trial)

    if first is not None:
        beat(study, trial, first)
    thread = threading.Thread(target=loop, name=f"nas-heartbeat-{trial.number}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def worker_loop(config: RunConfig, run_dir: Path, storage_url: str, *, index: int,
                deadline: float | None, on_trial: Callable[[], None] | None = None,
                device: str | None = None, shared_with: optuna.Study | None = None) -> None:
    """Ask, evaluate and tell until the budget (counted in the storage) or the deadline is
    spent; ``device`` overrides the training device; ``shared_with``: a study of this process
    whose open storage the worker uses (see :func:`~nas.search._storage.open_study`). Torch's
    thread count is the run's while the worker runs, and restored when it returns."""

    quiet_optuna()
    # Heartbeats are sent by _heartbeat below, which Optuna cannot see from ask().
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
    uses_torch = config.tabular is None or config.proxies is not None  # trains or scores proxies
    with torch_threads(config.torch_threads() if uses_torch else None):
        _ask_evaluate_tell(config, run_dir, storage_url, index=index, deadline=deadline,
                           on_trial=on_trial, device=device, shared_with=shared_with)


#: Trials in a row one worker may end with an internal error (a bug in nas, not the trial's
#: fault) before it stops: else it would fail trial after trial at once until the budget or
#: the timeout is spent.
MAX_INTERNAL_ERRORS = 5
#: Trials in a row one worker may end as duplicates (an evaluated candidate's result reused)
#: before it stops: a space whose every candidate was evaluated would otherwise be proposed
#: again, some 30 trials a second, until the trial budget or the timeout is spent.
MAX_DUPLICATES = 100


def _ask_evaluate_tell(config: RunConfig, run_dir: Path, storage_url: str, *, index: int,
                       deadline: float | None, on_trial: Callable[[], None] | None,
                       device: str | None, shared_with: optuna.Study | None) -> None:
    host = socket.gethostname()
    # A run folder's own journal serves one machine: its seeds follow from the config alone, so
    # the same config and seed sample the same trials in any folder on any host. Machines that
    # join a shared storage mix in their host and folder, so that they sample differently.
    machine = f"{host}:{run_dir.resolve()}" if config.storage else ""
    seed = worker_seed(config, machine=machine, worker=index)
    worker = f"{host}:{os.getpid()}"
    last_check = [0.0]

    def recover(force: bool = False) -> None:
        if force or time.time() - last_check[0] >= config.heartbeat:
            last_check[0] = time.time()
            recover_stale(study, run_dir, heartbeat=config.heartbeat)

    halving = HalvingRule.from_config(config) if config.pruner == "halving" else None
    evaluator = Evaluator(config, run_dir, worker, halving=halving, deadline=deadline,
                          sampler_seed=seed, device=device, on_wait=recover)
    sampler = make_sampler(config, seed=seed, feasible=evaluator.feasible)
    evaluator.rejected = getattr(sampler, "rejected", None)  # a FeasibleSampler's, per trial
    study = open_study(config, storage_url, create=False, sampler=sampler, heartbeat=config.heartbeat,
                       shared_with=shared_with)
    internal_errors = duplicates = 0
    while True:
        if deadline is not None and time.time() >= deadline:
            return
        recover()
        if config.trials is not None and not budget_left(study, config.trials):
            if not running(study):
                return
            time.sleep(min(1.0, config.heartbeat / 2))  # others run: one may die and need us
            continue
        trial = study.ask()
        if config.trials is not None and not admit(study, trial, config.trials):
            continue
        record: TrialRecord | None = None
        try:
            # The worker goes with the first beat, except in a journal (with the reservation).
            first = None if is_indexed_journal(study) else {WORKER_ATTR: worker}
            with _heartbeat(study, trial, config.heartbeat, first=first):
                record = evaluator.run(study, trial)
            with _sigint_deferred():  # a finished trial's result reaches the storage whole
                _tell(study, trial, record)
        except KeyboardInterrupt:
            with _sigint_deferred():  # a second Ctrl-C must not cut the bookkeeping short
                if record is None:
                    interrupt(study, trial, run_dir)
                else:  # it finished (its metrics.json is written) before the Ctrl-C: keep it
                    _tell(study, trial, record)
            raise
        if on_trial is not None:
            on_trial()
        internal_errors = internal_errors + 1 if record.traceback is not None else 0
        if internal_errors >= MAX_INTERNAL_ERRORS:
            raise NasError(f"{internal_errors} trials in a row ended in an internal error, the last "
                           f"{record.end_reason.removeprefix('internal error: ')}; stopping (a bug in nas: its "
                           f"traceback is in trials/{trial.number:04d}/metrics.json)", file=str(run_dir))
        duplicates = duplicates + 1 if record.duplicate_of is not None else 0
        if duplicates >= MAX_DUPLICATES:
            print(f"worker {index}: its last {duplicates} trials repeated evaluated candidates "
                  "(the space looks exhausted); it stops", file=sys.stderr)
            return


def _tell(study: optuna.Study, trial: optuna.Trial, record: TrialRecord) -> None:
    """Tell the storage how ``trial`` ended; nothing when it is finished already (told before
    a Ctrl-C, or taken for dead and re-queued by another worker: its retry reruns it)."""
    _tell_state(study, trial, str(record.state), record.values)


_FINISHED = ("complete", "pruned", "fail")  # a record's states


def _tell_state(study: optuna.Study, trial: optuna.Trial | int, state: str,
                values: list[float] | None) -> bool:
    """Finish ``trial`` as a record's ``state`` (one of ``_FINISHED``; ``values`` only for
    ``"complete"``); False when another process had finished it first."""
    import optuna
    from optuna.trial import TrialState

    try:
        tell(study, trial, values if state == "complete" else None, state=TrialState[state.upper()])
    except optuna.exceptions.UpdateFinishedTrialError:
        return False  # finished by another process between the check and the write
    return True


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
                 overrides: dict[str, Any], device: str | None) -> None:
    die_with_parent()
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if device is not None and device.startswith("cuda:"):
        # Before anything initialises CUDA: this worker sees its own device only, as "cuda".
        os.environ["CUDA_VISIBLE_DEVICES"] = device.split(":", 1)[1]
        device = "cuda"
    try:
        # Loads the run's plugins first; one that vanished since the start is one line.
        config = load_run_config(Path(run_dir))
    except NasError as error:
        print(f"worker {index}: {error}", file=sys.stderr)
        sys.exit(2)
    # The frozen config's budget may be older than this call's overrides.
    config = dataclasses.replace(config, **overrides)
    try:
        worker_loop(config, Path(run_dir), storage_url, index=index, deadline=deadline, device=device)
    except KeyboardInterrupt:
        sys.exit(130)
    except NasError as error:
        print(f"worker {index}: {error}", file=sys.stderr)
        sys.exit(2)
    except OSError as error:
        if not is_disk_full(error):
            raise
        from nas.cli import disk_full_message

        print(disk_full_message(error), file=sys.stderr)
        sys.exit(2)


def worker_devices(config: RunConfig) -> list[str | None]:
    """The device of each worker process: every device ``trials_per_device`` times, else
    ``workers`` times None (the config's training device)."""
    if not config.devices:
        return [None] * config.workers
    return [d for d in config.devices for _ in range(config.trials_per_device)]


def spawn_workers(config: RunConfig, run_dir: Path, storage_url: str, deadline: float | None,
                  on_tick: Callable[[], None]) -> None:
    """Run one worker process per entry of :func:`worker_devices` until they finish, calling
    ``on_tick`` every second; Ctrl-C is passed on to them.

    Raises:
        ConfigError: a worker process failed.
    """
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    overrides = {"trials": config.trials, "timeout": config.timeout, "workers": config.workers,
                 "threads": config.threads, "devices": config.devices,
                 "trials_per_device": config.trials_per_device, "heartbeat": config.heartbeat}
    processes = [
        context.Process(target=_worker_main,
                        args=(str(run_dir), storage_url, i, deadline, overrides, device),
                        name=f"nas-worker-{i}")
        for i, device in enumerate(worker_devices(config))
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
