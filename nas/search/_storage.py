"""The storage adapter: opening Optuna storages and studies, and every use of Optuna's
private API in ``nas`` (``Study._storage``, ``Study._get_trials``, ``Trial._trial_id``, the
``fixed_params`` system attribute of enqueued trials).

Contract: no other module of ``nas`` reaches into Optuna's internals; an Optuna upgrade that
renames one of them breaks here only. The user attributes ``nas`` keeps on trials are named
here too (``*_ATTR``), so writers and readers agree on them.

Storage: a path (the default is ``runs/NAME/journal.log``) is an Optuna journal file, safe for
several processes on one machine (``JournalFileOpenLock``); a URL with ``://`` is an Optuna
RDB storage (``sqlite:///...``, ``postgresql://...``) for workers on many machines.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
import warnings
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nas.errors import ConfigError, NasError

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial, TrialState

    from nas.search._config import RunConfig

__all__ = [
    "DUPLICATE_ATTR",
    "HASH_ATTR",
    "REASON_ATTR",
    "RETRY_ATTR",
    "RESERVE_ATTR",
    "RUNG_ATTR",
    "SEED_ATTR",
    "TABLE_ATTR",
    "UNCOUNTED_ATTR",
    "fixed_params",
    "mask",
    "report_curve",
    "report_value",
    "set_user_attrs",
    "tell",
    "open_storage",
    "name_metrics",
    "open_study",
    "quiet_optuna",
    "writes_held",
    "trial_id",
    "trials",
]

HASH_ATTR = "nas.hash"
SEED_ATTR = "nas.seed"
REASON_ATTR = "nas.end_reason"
UNCOUNTED_ATTR = "nas.uncounted"
RETRY_ATTR = "nas.retry_of"
REJECTED_ATTR = "nas.rejected"  # infeasible proposals the sampler skipped before this trial
DUPLICATE_ATTR = "nas.duplicate_of"
RUNG_ATTR = "nas.rung.{epoch}"  # a halving rung's accuracy, as runs before intermediate values kept it
#: A journal trial's reservation of a dedup key in a generation (true; see :func:`reserve`).
RESERVE_ATTR = "nas.reserve.{generation}.{key}"
TABLE_ATTR = "nas.table"  # a tabular trial's {column: value}: the objective's and the reported
#: The trial's whole record (``metrics.json``'s mapping), set when it ends: the storage is the run.
RECORD_ATTR = "nas.record"
#: "HOST:PID" of the worker running the trial, set when it starts.
WORKER_ATTR = "nas.worker"
#: Unix time of the trial's last heartbeat (journal storages; RDB ones use Optuna's table).
HEARTBEAT_ATTR = "nas.heartbeat"
#: A trial asked after the budget was spent: failed at once, never evaluated, not a result.
SURPLUS_ATTR = "nas.surplus"
#: An interrupted trial whose retry is enqueued after it fails (:func:`mark_interrupted`):
#: until the retry exists, the budget still counts it (:func:`_counted_before`).
REQUEUED_ATTR = "nas.requeued"
#: Plain user attributes a finished trial carries for dashboards (optuna-dashboard lists them):
#: its outcome (``status``: completed, duplicate, constraint, pruned, timeout, ...;
#: ``end_reason``; ``duplicate_of``, the twin whose result a duplicate reuses), its static costs
#: (``params``, ``macs``), ``latency_s`` when measured, ``genotype_hash`` and ``genotype`` (a
#: one-line text: the cell, or the genotype's name and parameters). Set with the record, in
#: the same write.
DASHBOARD_ATTRS = ("status", "end_reason", "duplicate_of", "params", "macs", "latency_s",
                   "genotype_hash", "genotype")
#: Study attribute: the frozen config every joining worker must match.
CONFIG_ATTR = "nas.config"
_SEEDED_ATTR = "nas.seeded"
#: Seconds between heartbeats by default; a trial is stale after ``GRACE_BEATS`` missed ones.
HEARTBEAT_INTERVAL = 10
GRACE_BEATS = 3


def quiet_optuna() -> None:
    """Optuna logs warnings only (it logs every trial at INFO)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)


def open_storage(url: str, *, file: str | None = None, path: str = "storage",
                 heartbeat: int | None = None) -> Any:
    """Open an Optuna storage from a journal file path or an RDB URL (see :func:`normalize_url`);
    an RDB storage gets Optuna's heartbeat (every ``heartbeat`` seconds, default
    :data:`HEARTBEAT_INTERVAL`; stale after :data:`GRACE_BEATS` missed beats).

    A journal file's torn last record is cut before its first append (when it is opened if
    Optuna cannot read past it: :func:`nas.search._journal.open_journal`), so its appends
    never follow a torn record.

    Raises:
        OSError: the disk is full (``filename`` is the journal).
        ConfigError: the storage cannot be opened (bad URL, missing driver, no server,
            unwritable folder), naming ``file`` and ``path``.
    """
    from optuna.storages import JournalStorage

    from nas.io import is_disk_full
    from nas.search._index import AttrIndex
    from nas.search._journal import open_journal

    if "://" not in url:
        _check_journal_path(url, file=file, path=path)
    try:
        if "://" in url:
            return _open_rdb(url, heartbeat or HEARTBEAT_INTERVAL)
        Path(url).parent.mkdir(parents=True, exist_ok=True)
        watched = (UNCOUNTED_ATTR, REQUEUED_ATTR)
        index = AttrIndex(lambda key: key in watched or key.startswith(("nas.rung.", "nas.reserve.")))
        return JournalStorage(open_journal(url, index=index))
    except Exception as error:  # noqa: BLE001 - any failure to open is the user's URL
        if is_disk_full(error):
            raise
        if isinstance(error, ConfigError) and "://" not in url:  # a file that is not a journal
            raise error.located(path=path) from None
        message = " ".join(str(error).split())[:300]
        if "://" not in url and not isinstance(error, OSError) and Path(url).is_file():
            # the file opened; Optuna's replay of its records failed (a record it does not know)
            from nas.search._journal import damage

            raise damage(url, error) from None
        raise ConfigError(f"cannot open storage {mask(url)!r}: {type(error).__name__}: {message}",
                          file=file, path=path) from None


def _check_journal_path(url: str, *, file: str | None, path: str) -> None:
    """A journal is a regular file, or none yet: a FIFO would block the open and a device
    (``/dev/zero``) would be read without end, so both are refused before Optuna opens them,
    as is a file with a line too long to be a record (``check_record_lengths``). A symbolic
    link is refused too, dangling or not: every append (and Optuna's creation of a missing
    journal) went through it, to a file outside the run folder."""
    import stat

    if os.path.islink(url):
        raise ConfigError(f"journal {url!r} is a symbolic link (never followed: give the journal's own "
                          "path)", file=file, path=path)
    try:
        mode = os.stat(url).st_mode
    except FileNotFoundError:
        return
    except OSError as error:
        raise ConfigError(f"cannot open journal {url!r}: {error.strerror or error}", file=file,
                          path=path) from None
    if not stat.S_ISREG(mode):
        raise ConfigError(f"journal {url!r} is not a regular file", file=file, path=path)
    from nas.search._journal import check_record_lengths

    try:
        check_record_lengths(url)
    except ConfigError as error:
        raise error.located(file=file, path=path) from None


_SCHEMA_RACE_TRIES = 5


def _open_rdb(url: str, interval: int) -> Any:
    """Optuna's RDB storage with its heartbeat. Several workers opening an empty database at
    once race to create Optuna's schema (PostgreSQL: a unique violation on ``CREATE TYPE`` or
    ``CREATE TABLE``); the losers' transactions roll back, so they retry, and find the schema."""
    import optuna
    from sqlalchemy.exc import IntegrityError, ProgrammingError

    def attempt() -> Any:
        with warnings.catch_warnings():  # "heartbeat_interval is experimental" (Optuna 4-5)
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(normalize_url(url), engine_kwargs=_engine_kwargs(url),
                                              heartbeat_interval=interval,
                                              grace_period=GRACE_BEATS * interval)

    for retry in range(1, _SCHEMA_RACE_TRIES):
        try:
            return attempt()
        except (IntegrityError, ProgrammingError) as error:
            if "already exists" not in str(error) and "duplicate key" not in str(error):
                raise
            time.sleep(0.2 * retry)
    return attempt()


def normalize_url(url: str) -> str:
    """``postgresql://`` and ``postgres://`` name the installed driver (psycopg 3, else
    psycopg2: SQLAlchemy's default differs between its versions); other URLs are unchanged.

    Raises:
        ConfigError: a PostgreSQL URL and neither driver is installed.
    """
    import importlib.util

    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("postgresql", "postgres"):
        return url
    for module, dialect in (("psycopg", "postgresql+psycopg"), ("psycopg2", "postgresql+psycopg2")):
        if importlib.util.find_spec(module) is not None:
            return f"{dialect}://{rest}"
    raise ConfigError("PostgreSQL needs a driver: pip install 'nas[postgres]' (psycopg 3)")


def _engine_kwargs(url: str) -> dict[str, Any]:
    """Engine options for a search's storage: SQLite waits up to 60 s for a lock; a server is
    pinged before a pooled connection is reused and given :data:`CONNECT_TIMEOUT` seconds to
    accept a new one."""
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": 60}}
    if _is_server(url):
        return {"pool_pre_ping": True, "connect_args": {"connect_timeout": CONNECT_TIMEOUT}}
    return {"pool_pre_ping": True}


_SERVER_BACKENDS = ("postgresql", "mysql")  # a database behind a connection, with its timeout


def _is_server(url: str) -> bool:
    from sqlalchemy.engine import make_url

    return make_url(url).get_backend_name() in _SERVER_BACKENDS


def _read_engine_kwargs(url: str) -> dict[str, Any]:
    """Engine options for reading ``url``: a connect timeout for a server; for SQLite, the
    database must be an existing regular file (connecting would create it)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        database = parsed.database or ""
        if database in ("", ":memory:") or not Path(database).is_file():
            raise ConfigError(f"no SQLite database at {database or '(none)'}")
        return _engine_kwargs(url)
    if backend in _SERVER_BACKENDS:
        return {"connect_args": {"connect_timeout": READ_CONNECT_TIMEOUT}}
    return {}


def mask(url: str) -> str:
    """The URL with any password replaced by ``***``."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, at, host = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in credentials else url


def open_study(config: RunConfig, storage_url: str, *, create: bool, sampler: Any = None,
               storage_path: str = "storage", heartbeat: int | None = None,
               shared_with: optuna.Study | None = None) -> optuna.Study:
    """The run's study (named after the run) in ``storage_url``; ``create`` makes it if absent
    (an existing study is loaded without writing to the storage).
    ``heartbeat``: see :func:`open_storage`. ``shared_with``: a study of this process whose
    open storage is used (a journal is then replayed once per process, not once per study).

    Raises:
        ConfigError: the storage cannot be opened, or it holds a study of this name with
            other objectives.
    """
    import optuna

    from nas.search._study import make_pruner

    if shared_with is not None:
        storage = shared_with._storage
    else:
        storage = open_storage(storage_url, file=config.file, path=storage_path, heartbeat=heartbeat)
    kwargs = {"study_name": config.name, "storage": storage, "sampler": sampler,
              "pruner": make_pruner(config)}
    try:  # read first: a run that is refused after this (its checks) has written nothing
        study = optuna.load_study(**kwargs)
    except KeyError:
        if not create:
            raise
        study = optuna.create_study(directions=config.directions, load_if_exists=True, **kwargs)
    if list(study.directions) != [optuna.study.StudyDirection[d.upper()] for d in config.directions]:
        raise ConfigError(f"study {config.name!r} in this storage has other objectives",
                          file=config.file, path="objectives")
    return study


def name_metrics(study: optuna.Study, config: RunConfig) -> None:
    """Name the study's objectives after the config's (dashboards show them), when they are
    not named so already."""
    import optuna

    if study.metric_names != list(config.objectives):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(list(config.objectives))


def trial_id(trial: optuna.Trial | FrozenTrial) -> int:
    """The storage's id of a trial (not its number)."""
    return trial._trial_id


def fixed_params(trial: FrozenTrial) -> dict[str, Any]:
    """The parameters fixed for ``trial`` by ``study.enqueue_trial`` (empty when none)."""
    return dict(trial.system_attrs.get("fixed_params", {}))


def trials(study: optuna.Study, states: Iterable[TrialState] | None = None, *,
           cached: bool = True) -> list[FrozenTrial]:
    """The study's trials, not deep-copied (do not modify them). ``cached`` lets Optuna reuse
    the trial list it read for the trial being asked (what samplers want)."""
    return study._get_trials(deepcopy=False, states=None if states is None else tuple(states),
                             use_cache=cached)


def n_trials(study: optuna.Study) -> int:
    """How many trials the study holds (a count query, not a read of every trial)."""
    return study._storage.get_n_trials(study._study_id)


def _journal_index(study: optuna.Study) -> Any:
    """The :class:`~nas.search._index.AttrIndex` of a journal opened by :func:`open_storage`,
    else None (an RDB storage, or a journal opened for reading only)."""
    from optuna.storages import JournalStorage

    storage = study._storage
    index = getattr(getattr(storage, "_backend", None), "index", None)
    return index if isinstance(storage, JournalStorage) and index is not None and index.complete else None


def _rdb(study: optuna.Study) -> Any:
    """The study's RDB storage (Optuna wraps it in a cache), else None."""
    from optuna.storages import RDBStorage

    storage = getattr(study._storage, "_backend", study._storage)
    return storage if isinstance(storage, RDBStorage) else None


def _step_key(step: int) -> str:
    """The journal index's key of the trials that reported an intermediate value at ``step``."""
    return f"step:{step}"


def is_indexed_journal(study: optuna.Study) -> bool:
    """Whether the study is in a journal with an index (see :func:`_journal_index`): its
    trials' attribute writes are cheap to batch, and its reservations are trial attributes."""
    return _journal_index(study) is not None


def _indexed(study: optuna.Study, index: Any, key: str) -> list[FrozenTrial]:
    """This study's trials the journal ``index`` lists for ``key``, in log order, as the
    storage holds them now: the caller checks the attribute (the storage ignores a write to a
    finished trial)."""
    storage = study._storage
    with storage._thread_lock:
        storage._sync_with_backend()  # feeds the index
        ids = index.with_key(key)
        replay = storage._replay_result
        return [replay.get_trial(i) for i in ids if replay._trial_id_to_study_id.get(i) == study._study_id]


def _numbers(study: optuna.Study, state: TrialState, key: str | None = None) -> list[int]:
    """Numbers of the study's trials in ``state`` (and with a true user attribute ``key``):
    one query in an RDB storage, the index of a journal for ``key``, else a read of the
    trials in ``state``."""
    import json

    index, rdb = _journal_index(study), _rdb(study)
    if key is not None and index is not None:
        return [t.number for t in _indexed(study, index, key) if t.state == state and t.user_attrs.get(key)]
    if rdb is not None:
        from optuna.storages._rdb import models
        from optuna.storages._rdb.storage import _create_scoped_session

        trial, attr = models.TrialModel, models.TrialUserAttributeModel
        with _create_scoped_session(rdb.scoped_session) as session:
            if key is None:
                return [n for (n,) in session.query(trial.number).filter(
                    trial.study_id == study._study_id, trial.state == state).all()]
            rows = (session.query(trial.number, attr.value_json)
                    .join(attr, attr.trial_id == trial.trial_id)
                    .filter(trial.study_id == study._study_id, trial.state == state, attr.key == key).all())
        return [n for n, value in rows if json.loads(value)]
    return [t.number for t in study.get_trials(deepcopy=False, states=(state,))
            if key is None or t.user_attrs.get(key)]


def _uncounted(study: optuna.Study) -> list[int]:
    # The numbers of the uncounted trials (interrupted, surplus): all failed.
    from optuna.trial import TrialState

    return _numbers(study, TrialState.FAIL, UNCOUNTED_ATTR)


def _next_number(study: optuna.Study) -> int:
    """The number of the trial ``ask`` would give now: the oldest waiting trial's if there is
    one, else one after every existing trial's (one query in an RDB storage)."""
    from optuna.trial import TrialState

    rdb = _rdb(study)
    if rdb is None:
        waiting = _numbers(study, TrialState.WAITING)
        return min(waiting) if waiting else n_trials(study)
    import sqlalchemy
    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session

    trial = models.TrialModel
    with _create_scoped_session(rdb.scoped_session) as session:
        oldest, count = session.query(
            sqlalchemy.func.min(sqlalchemy.case((trial.state == TrialState.WAITING, trial.number))),
            sqlalchemy.func.count(trial.trial_id)).filter(trial.study_id == study._study_id).one()
    return count if oldest is None else oldest


def _counted_before(study: optuna.Study, number: int, budget: int) -> bool:
    """Whether fewer than ``budget`` counted trials come before trial ``number``: the budget
    rule of :func:`budget_left` and :func:`admit` (the uncounted trials are read only when
    ``number`` itself reaches the budget; below it the answer cannot change).

    An interrupted trial holds its place until its retry is enqueued (two writes: the trial
    fails, then its retry is created): else a trial asked between the two took the place and
    the retry came after the budget. (A process killed between the two leaves the place held,
    as by a failed trial.)"""
    if number < budget:
        return True
    uncounted = [n for n in _uncounted(study) if n < number]
    if number - len(uncounted) >= budget:
        return False
    return number - len(uncounted) + len(_awaiting_retry(study, uncounted)) < budget


def _awaiting_retry(study: optuna.Study, numbers: list[int]) -> set[int]:
    """Those of the failed trials ``numbers`` that are re-queued (:data:`REQUEUED_ATTR`) and
    whose retry is not created yet."""
    from optuna.trial import TrialState

    requeued = set(numbers).intersection(_numbers(study, TrialState.FAIL, REQUEUED_ATTR))
    return requeued - _retried(study) if requeued else requeued


def _retried(study: optuna.Study) -> set[int]:
    """The numbers of the trials a retry was created for (:data:`RETRY_ATTR`): one query in an
    RDB storage, else a read of the trials (a retry's attribute comes with its creation, which
    a journal's index does not see)."""
    import json

    rdb = _rdb(study)
    if rdb is None:
        return {t.user_attrs[RETRY_ATTR] for t in study.get_trials(deepcopy=False) if RETRY_ATTR in t.user_attrs}
    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session

    trial, attr = models.TrialModel, models.TrialUserAttributeModel
    with _create_scoped_session(rdb.scoped_session) as session:
        rows = (session.query(attr.value_json).join(trial, attr.trial_id == trial.trial_id)
                .filter(trial.study_id == study._study_id, attr.key == RETRY_ATTR).all())
    return {json.loads(value) for (value,) in rows}


def budget_left(study: optuna.Study, budget: int) -> bool:
    """Whether asking now gives a trial :func:`admit` accepts (see :func:`_next_number`)."""
    return _counted_before(study, _next_number(study), budget)


def admit(study: optuna.Study, trial: optuna.Trial, budget: int) -> bool:
    """Whether ``trial`` (just asked) is within the budget; if not, it is failed at once as
    surplus (uncounted, never evaluated).

    Trial numbers are the storage's creation order (a journal's log order; an RDB storage
    locks the study row to number a new trial), so a trial is admitted when fewer than
    ``budget`` trials created before it count: started or waiting ones, except those
    interrupted or surplus. Every worker on every machine applies the same rule to the same
    numbers, so the budget is never overshot.
    """
    if _counted_before(study, trial.number, budget):
        return True
    claim_fail(study, trial, {UNCOUNTED_ATTR: True, SURPLUS_ATTR: True,
                              REASON_ATTR: "asked after the budget was spent; not evaluated"})
    return False


def state_counts(study: optuna.Study) -> dict[str, int]:
    """Counted finished trials per state: ``complete``, ``pruned``, ``fail`` (count queries,
    and a read of the uncounted trials, which are all failed)."""
    from optuna.trial import TrialState

    storage = study._storage
    counts = {state.name.lower(): storage.get_n_trials(study._study_id, state=state)
              for state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)}
    counts["fail"] -= len(_uncounted(study))
    return counts


def enqueue_seeds(study: optuna.Study, config: RunConfig) -> None:
    """Enqueue the space's seeds once per study (a resumed or joined study has them)."""
    if study.user_attrs.get(_SEEDED_ATTR):
        return
    for name, values in config.space.seeds.items():
        study.enqueue_trial(config.space.encode(values), user_attrs={SEED_ATTR: name})
    study.set_user_attr(_SEEDED_ATTR, True)


def running(study: optuna.Study) -> list[FrozenTrial]:
    from optuna.trial import TrialState

    return study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))


def claim_fail(study: optuna.Study, trial: optuna.Trial | FrozenTrial, attrs: Mapping[str, Any]) -> bool:
    """Set ``attrs`` on a running ``trial``, then fail it; True for the one process whose
    ``FAIL`` the storage applied (a journal orders writes in its log, an RDB storage locks the
    trial's row), False when it had already finished or another process failed it first."""
    import optuna
    from optuna.trial import TrialState

    storage, tid = study._storage, trial_id(trial)
    try:
        set_user_attrs(study, trial, attrs)
        return bool(storage.set_trial_state_values(tid, TrialState.FAIL))
    except optuna.exceptions.UpdateFinishedTrialError:
        return False


def mark_interrupted(study: optuna.Study, trial: optuna.Trial | FrozenTrial, reason: str) -> bool:
    """Fail ``trial`` as uncounted with ``reason`` and enqueue its parameters again (with its
    seed name, and ``nas.retry_of`` pointing back at it). False (and nothing enqueued) when
    another process got there first or the trial had finished."""
    if not claim_fail(study, trial, {UNCOUNTED_ATTR: True, REQUEUED_ATTR: True, REASON_ATTR: reason}):
        return False
    retry: dict[str, Any] = {RETRY_ATTR: trial.number}
    if trial.user_attrs.get(SEED_ATTR):
        retry[SEED_ATTR] = trial.user_attrs[SEED_ATTR]
    study.enqueue_trial(dict(trial.params), user_attrs=retry)
    return True


def set_user_attrs(study: optuna.Study, trial: optuna.Trial | FrozenTrial, attrs: Mapping[str, Any]) -> None:
    """Set several user attributes of a running trial in one storage write: one append to a
    journal (one lock, one fsync; a record per key, as Optuna's replay requires; with this
    thread's held writes first, see :func:`writes_held`), one transaction in an RDB storage;
    one write per key in other storages. ``trial.user_attrs`` sees them afterwards.

    Raises:
        optuna.exceptions.UpdateFinishedTrialError: the trial has finished (another worker
            took it for dead); nothing was set.
    """
    _write_attrs(study, trial_id(trial), attrs)
    cached = getattr(trial, "_cached_frozen_trial", None)
    if cached is not None:
        cached.user_attrs.update(attrs)


def _write_attrs(study: optuna.Study, tid: int, attrs: Mapping[str, Any]) -> None:
    """:func:`set_user_attrs` without updating the trial object's copy."""
    import optuna
    from optuna.storages.journal._storage import JournalOperation

    storage, rdb = study._storage, _rdb(study)
    if isinstance(storage, optuna.storages.JournalStorage):
        with storage._thread_lock:
            worker = storage._replay_result.worker_id
            _append_released(storage, [
                {"op_code": JournalOperation.SET_TRIAL_USER_ATTR, "worker_id": worker, "trial_id": tid,
                 "user_attr": {key: value}} for key, value in attrs.items()])
    elif rdb is not None:
        from optuna.storages._rdb.storage import _create_scoped_session

        params = _held_params(storage, tid)
        if not params and not attrs:
            return
        with _create_scoped_session(rdb.scoped_session, True) as session:
            _add_params(storage, rdb, session, params)
            _upsert_attrs(rdb, session, tid, attrs)
    else:
        for key, value in attrs.items():
            storage.set_trial_user_attr(tid, key, value)


def _upsert_attrs(rdb: Any, session: Any, tid: int, attrs: Mapping[str, Any]) -> None:
    """Set user attributes ``attrs`` of running trial ``tid`` in ``session`` (not committed):
    one read of the trial and one insert-or-update of every row on PostgreSQL and SQLite
    (Optuna's own setter makes two statements per attribute: a round trip each).

    Raises:
        optuna.exceptions.UpdateFinishedTrialError: the trial has finished.
    """
    import json
    import sqlite3

    from optuna.storages._rdb import models
    from sqlalchemy.dialects import postgresql, sqlite

    model, engine = models.TrialUserAttributeModel, rdb.engine.name
    if engine == "postgresql" or (engine == "sqlite" and sqlite3.sqlite_version_info >= (3, 24, 0)):
        trial = models.TrialModel.find_or_raise_by_id(tid, session)
        rdb.check_trial_is_updatable(tid, trial.state)
        if not attrs:
            return
        insert = {"postgresql": postgresql, "sqlite": sqlite}[engine].insert(model).values(
            [{"trial_id": tid, "key": key, "value_json": json.dumps(value)} for key, value in attrs.items()])
        session.execute(insert.on_conflict_do_update(index_elements=[model.trial_id, model.key],
                                                     set_={"value_json": insert.excluded.value_json}))
        return
    for key, value in attrs.items():
        rdb._set_trial_attr_without_commit(session, model, tid, key, value)


def _held_params(storage: Any, tid: int) -> list[tuple]:
    """This thread's parameter writes held for trial ``tid`` in a cached RDB storage (see
    :func:`writes_held`), taken out (empty when none, or when they are another trial's)."""
    held = getattr(storage, "_nas_held", None)
    writes = getattr(held, "params", None)
    if not writes or writes[0][0] != tid:
        return []
    held.params = []
    return writes


def _add_params(storage: Any, rdb: Any, session: Any, params: list[tuple]) -> None:
    """Add held parameter writes ``(trial id, name, internal value, distribution)`` to
    ``session`` as Optuna's cached storage writes them one by one (the distribution checked
    against the study's first one, which it caches), inserted together at the commit."""
    with session.no_autoflush:
        for tid, name, value, distribution in params:
            with storage._lock:
                info = storage._studies[storage._trial_id_to_study_id_and_number[tid][0]]
                previous = info.param_distribution.get(name)
            rdb._set_trial_param_without_commit(session, tid, name, value, distribution, previous)
            with storage._lock:
                info.param_distribution.setdefault(name, distribution)


def _append_released(storage: Any, logs: list[dict]) -> None:
    """Append this thread's held records (see :func:`writes_held`) and ``logs`` in one
    append, then replay them. Call with the storage's thread lock held."""
    import optuna

    release = getattr(storage._backend, "release", None)  # a journal opened by open_storage
    logs = (release() if release is not None else []) + logs
    if not logs:
        return
    storage._backend.append_logs(logs)
    # Replaying stops at the first of our records the storage refused (a trial another worker
    # failed): replay on, so the others are read now, not raised by a later call.
    refused = None
    while True:
        try:
            storage._sync_with_backend()
            break
        except optuna.exceptions.UpdateFinishedTrialError as error:
            refused = refused or error
    if refused is not None:
        raise refused


@contextlib.contextmanager
def writes_held(study: optuna.Study) -> Iterator[None]:
    """In a journal, hold this thread's writes (Optuna's parameter writes while a trial
    samples) until the next :func:`set_user_attrs` or :func:`reserve`, which writes them with
    its own in one append (one fsync instead of one per parameter), or the end of the block.
    In an RDB storage, hold this thread's parameter writes the same way (one transaction
    instead of one per parameter). Elsewhere nothing is held.

    Inside the block, before that write, nothing may read back what it wrote through the
    storage (the trial object keeps its own parameters; a pruner's reports would not be seen
    in a journal).
    """
    storage, rdb = study._storage, _rdb(study)
    if rdb is not None and rdb is not storage:
        held = _param_holder(storage)
        held.params = []
        try:
            yield
        finally:
            params = held.params
            held.params = None
            if params:
                from optuna.storages._rdb.storage import _create_scoped_session

                with _create_scoped_session(rdb.scoped_session, True) as session:
                    _add_params(storage, rdb, session, params)
        return
    if _journal_index(study) is None:
        yield
        return
    storage._backend.hold()
    try:
        yield
    finally:
        with storage._thread_lock:
            _append_released(storage, [])


def _param_holder(storage: Any) -> Any:
    """The per-thread list of held parameter writes of a cached RDB storage (``params``:
    None when this thread holds nothing); made once per storage, by routing its
    ``set_trial_param`` through it."""
    import threading

    held = getattr(storage, "_nas_held", None)
    if held is None:
        held, write = threading.local(), storage.set_trial_param

        def set_trial_param(trial_id: int, name: str, value: float, distribution: Any) -> None:
            params = getattr(held, "params", None)
            if params is None:
                write(trial_id, name, value, distribution)
            else:
                params.append((trial_id, name, value, distribution))

        storage.set_trial_param, storage._nas_held = set_trial_param, held
    return held


# --------------------------------------------------------------------------- liveness


def beat(study: optuna.Study, trial: optuna.Trial, attrs: Mapping[str, Any] | None = None) -> None:
    """One heartbeat of a running trial, with user attributes ``attrs`` in the same write (the
    trial object's copy of its attributes is left alone: a beat may come from another thread):
    in an RDB storage, the trial's row of Optuna's heartbeat table, stamped with the database's
    clock (one transaction with ``attrs``); elsewhere the ``nas.heartbeat`` user attribute
    (Unix time, :func:`set_user_attrs`)."""
    rdb, tid = _rdb(study), trial_id(trial)
    if rdb is None:
        _write_attrs(study, tid, {HEARTBEAT_ATTR: time.time(), **(attrs or {})})
    elif not attrs:
        rdb.record_heartbeat(tid)
    else:
        import sqlalchemy
        from optuna.storages._rdb import models
        from optuna.storages._rdb.storage import _create_scoped_session

        with _create_scoped_session(rdb.scoped_session, True) as session:
            _upsert_attrs(rdb, session, tid, attrs)
            row = models.TrialHeartbeatModel.where_trial_id(tid, session, for_update=True)
            if row is None:  # stamped by the table's default: the database's clock
                session.add(models.TrialHeartbeatModel(trial_id=tid))
            else:
                row.heartbeat = session.execute(sqlalchemy.func.now()).scalar_one()


def stale_trials(study: optuna.Study, *, grace: float) -> list[FrozenTrial]:
    """Running trials whose worker is gone: no heartbeat for ``grace`` seconds (an RDB storage
    measures it with the database's clock and Optuna's grace period), a worker on this host
    whose process no longer exists, or (RDB) no heartbeat ever, three grace periods after the
    trial started."""
    rdb, now, host = _rdb(study), time.time(), socket.gethostname()
    out = []
    stale_ids = set(rdb._get_stale_trial_ids(study._study_id)) if rdb is not None else None
    for t in running(study):
        worker = str(t.user_attrs.get(WORKER_ATTR, ""))
        name, _, pid = worker.rpartition(":")
        if name == host and pid.isascii() and pid.isdigit() and len(pid) <= 9 and not _alive(int(pid)):
            out.append(t)
        elif stale_ids is not None:
            # Optuna never finds a trial without a beat stale: one whose worker died between
            # ask and its first beat (it has no nas.worker yet) is, after 3 grace periods by
            # its start time (the creating machine's clock: the margin absorbs some skew).
            started = t.datetime_start.timestamp() if t.datetime_start is not None else now
            if trial_id(t) in stale_ids or (not worker and now - started > 3 * grace):
                out.append(t)
        else:
            last = t.user_attrs.get(HEARTBEAT_ATTR)
            if last is None and t.datetime_start is not None:
                last = t.datetime_start.timestamp()
            if last is not None and now - float(last) > grace:
                out.append(t)
    return out


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# --------------------------------------------------------------------------- dedup


def reserve(study: optuna.Study, trial: optuna.Trial, key: str, *, generation: int = 0,
            attrs: Mapping[str, Any] | None = None) -> tuple[int, int | None]:
    """Reserve genotype ``key`` for ``trial``: ``(generation, None)`` when this trial holds
    the reservation, ``(generation, owner)`` when trial number ``owner`` does. ``attrs`` are
    set on the trial first (with the reservation, in one write, on a journal).

    In a journal a reservation is the trial attribute ``nas.reserve.GENERATION.KEY`` (one
    append): the journal orders every write, so the owner is the first trial in the log that
    set it, found through the journal's index. In an RDB storage it is a study named
    ``RUN:dedup:GENERATION:KEY`` (a unique column: exactly one trial creates it), created with
    its system attribute ``owner``, the trial's number, in one transaction (a worker killed
    between two writes left a lock without owner, and every twin waiting for one failed). A
    later generation is reserved when the owner of the previous one ended without a result,
    or (RDB) when a lock has no owner (made by an older ``nas``).

    Raises:
        optuna.exceptions.UpdateFinishedTrialError: the trial has finished (a journal).
    """
    import optuna

    index = _journal_index(study)
    if index is not None:
        attr = RESERVE_ATTR.format(generation=generation, key=key)
        set_user_attrs(study, trial, {**(attrs or {}), attr: True})
        for holder in _indexed(study, index, attr):
            if holder.user_attrs.get(attr):
                return generation, None if holder.number == trial.number else holder.number
        raise RuntimeError(f"reservation {attr} of trial {trial.number} not in the journal")
    set_user_attrs(study, trial, attrs or {})  # with the held parameters in an RDB storage
    storage, number, rdb = study._storage, trial.number, _rdb(study)
    while rdb is not None:
        name = _lock_name(study, generation, key)
        try:
            _create_lock_study(rdb, name, number)
            return generation, None
        except optuna.exceptions.DuplicatedStudyError:
            owner = _lock_owner(rdb, name)
            if owner is not None:
                return generation, owner
            generation += 1  # a lock an older nas made in two writes and was killed between
    name = _lock_name(study, generation, key)
    try:
        lock = storage.create_new_study(directions=[optuna.study.StudyDirection.MINIMIZE],
                                        study_name=name)
    except optuna.exceptions.DuplicatedStudyError:
        lock = storage.get_study_id_from_name(name)
        for _ in range(600):  # the owner sets its number right after creating the study
            owner = storage.get_study_system_attrs(lock).get("owner")
            if owner is not None:
                return generation, int(owner)
            time.sleep(0.05)
        raise RuntimeError(f"reservation {name!r} has no owner after 30 s") from None
    storage.set_study_system_attr(lock, "owner", number)
    return generation, None


def _lock_name(study: optuna.Study, generation: int, key: str) -> str:
    """The name of the study that is the dedup lock of ``key`` in ``generation``."""
    return f"{study.study_name}:dedup:{generation}:{key}"


def _create_lock_study(rdb: Any, name: str, owner: int) -> None:
    """Create study ``name`` with its system attribute ``owner`` in one transaction.

    Raises:
        optuna.exceptions.DuplicatedStudyError: a study of that name exists.
    """
    import json

    import optuna
    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session
    from sqlalchemy.exc import IntegrityError

    try:
        with _create_scoped_session(rdb.scoped_session) as session:
            session.add(models.StudyModel(
                study_name=name,
                directions=[models.StudyDirectionModel(objective=0, direction=optuna.study.StudyDirection.MINIMIZE)],
                system_attributes=[models.StudySystemAttributeModel(key="owner", value_json=json.dumps(owner))]))
    except IntegrityError:
        raise optuna.exceptions.DuplicatedStudyError(name) from None


def _lock_owner(rdb: Any, name: str) -> int | None:
    """The ``owner`` of lock study ``name`` (one query), None when it has none."""
    import json

    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session

    study, attr = models.StudyModel, models.StudySystemAttributeModel
    with _create_scoped_session(rdb.scoped_session) as session:
        row = (session.query(attr.value_json).join(study, study.study_id == attr.study_id)
               .filter(study.study_name == name, attr.key == "owner").one_or_none())
    return None if row is None else int(json.loads(row[0]))


def tell(study: optuna.Study, trial: optuna.Trial | int, values: list[float] | None = None,
         state: TrialState | None = None) -> None:
    """``study.tell(trial, values, state, skip_if_finished=True)`` as Optuna's own optimize
    loop tells, without reading the finished trial back (six queries in an RDB storage)."""
    from optuna.study._tell import _tell_with_warning

    _tell_with_warning(study, trial, value_or_values=values, state=state, skip_if_finished=True)


def trial_by_number(study: optuna.Study, number: int) -> FrozenTrial:
    """One trial of the study, read by its number (one query, not a read of every trial)."""
    storage = study._storage
    return storage.get_trial(storage.get_trial_id_from_study_id_trial_number(study._study_id, number))


def rung_values(study: optuna.Study, epoch: int, number: int) -> list[float]:
    """Accuracies other trials than ``number`` reported at the halving rung ``epoch`` (their
    intermediate values; ``nas.rung.EPOCH`` for trials of runs made before those existed):
    the trials a journal's index lists, or two queries in an RDB storage (not a read of every
    trial)."""
    import json

    key = RUNG_ATTR.format(epoch=epoch)
    index, rdb = _journal_index(study), _rdb(study)
    if rdb is not None:
        from optuna.storages._rdb import models
        from optuna.storages._rdb.storage import _create_scoped_session

        trial, step, attr = models.TrialModel, models.TrialIntermediateValueModel, models.TrialUserAttributeModel
        with _create_scoped_session(rdb.scoped_session) as session:
            reported = (session.query(trial.number, step.intermediate_value, step.intermediate_value_type)
                        .join(step, step.trial_id == trial.trial_id)
                        .filter(trial.study_id == study._study_id, step.step == epoch).all())
            old = (session.query(trial.number, attr.value_json).join(attr, attr.trial_id == trial.trial_id)
                   .filter(trial.study_id == study._study_id, attr.key == key).all())
        found = {n: step.stored_repr_to_intermediate_value(v, t) for n, v, t in reported}
        for n, value in old:
            found.setdefault(n, json.loads(value))
        return [v for n, v in found.items() if n != number and v is not None]
    if index is not None:
        trials_ = {t.number: t for t in _indexed(study, index, key) + _indexed(study, index, _step_key(epoch))}
        candidates = list(trials_.values())
    else:
        candidates = study.get_trials(deepcopy=False)
    values = []
    for t in candidates:
        value = t.intermediate_values.get(epoch, t.user_attrs.get(key))
        if value is not None and t.number != number:
            values.append(value)
    return values


def report_value(study: optuna.Study, trial: optuna.Trial, step: int, value: float) -> None:
    """Store the validation accuracy ``value`` after epoch ``step`` while the trial runs (one
    write): its intermediate value in a single-objective study; in a multi-objective one the
    user attribute ``nas.rung.STEP`` (halving reads both), because Optuna's samplers assume a
    multi-objective trial has no intermediate values (TPE fails on a pruned one that has);
    :func:`report_curve` makes them intermediate values when it completes."""
    if len(study.directions) == 1:
        trial.report(value, step)
    else:
        study._storage.set_trial_user_attr(trial_id(trial), RUNG_ATTR.format(epoch=step), value)


def report_curve(study: optuna.Study, trial: optuna.Trial, values: Mapping[int, float]) -> None:
    """In a multi-objective study, store a trial's accuracies by epoch as its intermediate
    values (dashboards plot them) just before it completes; nothing in a single-objective one,
    where :func:`report_value` stored each."""
    if len(study.directions) > 1:
        for step, value in values.items():
            study._storage.set_trial_intermediate_value(trial_id(trial), step, value)


# --------------------------------------------------------------------------- the frozen config


def check_frozen_config(study: optuna.Study, frozen: Mapping[str, Any], *,
                        resumable: Iterable[str], file: str | None) -> None:
    """Store ``frozen`` (the config and the space's genotype text) in the study, or check it
    against what the study's first worker stored.

    Raises:
        ConfigError: a key other than ``resumable`` ones differs (one line naming the key).
    """
    stored = study.user_attrs.get(CONFIG_ATTR)
    if stored is None:
        study.set_user_attr(CONFIG_ATTR, dict(frozen))
        return
    skip = set(resumable)
    config, old = frozen.get("config", {}), stored.get("config", {})
    for key in sorted(set(config) | set(old)):
        if key not in skip and config.get(key) != old.get(key):
            raise ConfigError(f"differs from the config study {study.study_name!r} in this storage "
                              "was started with; join with the same config or use --name",
                              file=file, path=key)
    if frozen.get("genotype") != stored.get("genotype"):
        raise ConfigError(f"the genotype differs from the one study {study.study_name!r} in this "
                          "storage was started with", file=file, path="space.genotype")


# --------------------------------------------------------------------------- reading a run


#: Seconds a search's worker waits for a database server to accept a connection: a server
#: that accepts and never answers held the worker forever (more than a read's: workers
#: starting at once may find a busy server).
CONNECT_TIMEOUT = 30
#: Seconds a read (``nas best``, ``nas analyze``, ``nas.results.load``) waits for a database
#: server to accept the connection: a run folder's ``run.json`` may name a host that is gone.
READ_CONNECT_TIMEOUT = 10


def load_study(url: str, name: str) -> optuna.Study:
    """Study ``name`` for reading: no heartbeat, no schema check, nothing created (an SQLite
    file must exist; no tables are made), a server given :data:`READ_CONNECT_TIMEOUT` seconds
    to answer; a journal is read with Optuna's own backend (not repaired: reading changes
    nothing).

    Raises:
        ConfigError: an SQLite URL naming no existing file; a journal Optuna cannot replay
            (naming its first line that is not a record)."""
    import optuna

    quiet_optuna()
    if "://" in url:
        storage: Any = optuna.storages.RDBStorage(
            normalize_url(url), engine_kwargs=_read_engine_kwargs(url), skip_compatibility_check=True,
            skip_table_creation=True,
        )
    else:
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

        from nas.search._journal import check_record_lengths, damage

        check_record_lengths(url)
        try:
            storage = JournalStorage(JournalFileBackend(url, lock_obj=JournalFileOpenLock(url)))
        except (ValueError, KeyError, TypeError) as error:  # a record Optuna cannot replay
            raise damage(url, error) from None
    return optuna.load_study(study_name=name, storage=storage)


def read_failure(error: Exception) -> str:
    """Why a storage could not be read, in one line: this program's errors as they read (they
    name the file and the fault), another library's with its type, at most 200 characters."""
    if isinstance(error, NasError):
        return str(error)
    return f"{type(error).__name__}: {' '.join(str(error).split())[:200]}"


def open_run_study(run_dir: Path, info: Mapping[str, Any], *, storage: str | None,
                   notes: list[str]) -> optuna.Study | None:
    """The study a run folder's ``run.json`` points at (or ``storage``), or None with a note
    saying why when it cannot be read (no journal here, a masked password, no server...)."""
    url = storage or info.get("storage") or "journal.log"
    if "://" not in url:
        url = str(run_dir / url) if not Path(url).is_absolute() else url
        if not Path(url).is_file():
            notes.append(f"{run_dir.name}: no Optuna storage at {url}; read the metrics files only")
            return None
    elif "***" in url and storage is None:
        notes.append(f"{run_dir.name}: storage {url} has a masked password (pass storage=...); "
                     "read the metrics files only")
        return None
    try:
        return load_study(url, info.get("study_name") or info.get("name") or run_dir.name)
    except Exception as error:  # noqa: BLE001 - any storage failure: fall back to the files
        notes.append(f"{run_dir.name}: cannot read storage ({read_failure(error)}); read the metrics files only")
        return None


def stored_records(study: optuna.Study) -> list[dict[str, Any]]:
    """Every trial's record as the storage holds it (:func:`stored_record`), by number;
    surplus trials are left out. Empty when no trial has a ``nas.record`` (a run from before
    records were stored in the storage)."""
    trials_ = study.get_trials(deepcopy=False)
    if not any(RECORD_ATTR in t.user_attrs for t in trials_):
        return []
    return [stored_record(t, study.study_name) for t in trials_ if not t.user_attrs.get(SURPLUS_ATTR)]


def stored_record(trial: FrozenTrial, run: str) -> dict[str, Any]:
    """The trial's ``nas.record`` when it ended normally; for an interrupted trial (even one
    interrupted after its record was stored) that record, or one built from the trial, with
    the storage's state and ``interrupted`` status; for a running or waiting trial, one built
    from the trial."""
    attrs = trial.user_attrs
    record = attrs.get(RECORD_ATTR)
    uncounted = bool(attrs.get(UNCOUNTED_ATTR))
    if isinstance(record, dict) and not uncounted:
        return record
    state = trial.state.name.lower()
    base = {"schema": 1, "run": run, "trial": trial.number, "seed": attrs.get(SEED_ATTR),
            "retry_of": attrs.get(RETRY_ATTR), "worker": attrs.get(WORKER_ATTR),
            "params": dict(trial.params), "genotype": None, "static": None, "objectives": {},
            "duplicate_of": None, "epochs": 0, "history": []}
    if isinstance(record, dict):
        base = dict(record)
    base.update(state=state, status="interrupted" if uncounted else state,
                end_reason=attrs.get(REASON_ATTR), counted=not uncounted,
                values=None if uncounted else trial.values)
    return base


def params_of(trial: FrozenTrial) -> Mapping[str, Any]:
    """Sampled and enqueued parameters of a trial (the enqueued ones before it samples)."""
    return {**trial.params, **fixed_params(trial)}
