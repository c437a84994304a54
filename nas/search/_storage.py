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
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from nas.errors import ConfigError

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial, TrialState

    from nas.search._config import RunConfig

__all__ = [
    "DUPLICATE_ATTR",
    "HASH_ATTR",
    "REASON_ATTR",
    "RETRY_ATTR",
    "RUNG_ATTR",
    "SEED_ATTR",
    "TABLE_ATTR",
    "UNCOUNTED_ATTR",
    "fixed_params",
    "mask",
    "open_storage",
    "open_study",
    "quiet_optuna",
    "trial_id",
    "trials",
]

HASH_ATTR = "nas.hash"
SEED_ATTR = "nas.seed"
REASON_ATTR = "nas.end_reason"
UNCOUNTED_ATTR = "nas.uncounted"
RETRY_ATTR = "nas.retry_of"
DUPLICATE_ATTR = "nas.duplicate_of"
RUNG_ATTR = "nas.rung.{epoch}"
TABLE_ATTR = "nas.table"  # a tabular trial's {column: value}: the objective's and the reported
_SEEDED_ATTR = "nas.seeded"


def quiet_optuna() -> None:
    """Optuna logs warnings only (it logs every trial at INFO)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)


def open_storage(url: str, *, file: str | None = None, path: str = "storage") -> Any:
    """Open an Optuna storage from a journal file path or an RDB URL.

    A journal file is repaired first when its last record is torn (:mod:`nas.search._journal`),
    and its appends never follow a torn record.

    Raises:
        OSError: the disk is full (``filename`` is the journal).
        ConfigError: the storage cannot be opened (bad URL, missing driver, no server,
            unwritable folder), naming ``file`` and ``path``.
    """
    import optuna
    from optuna.storages import JournalStorage

    from nas.io import is_disk_full
    from nas.search._journal import open_journal

    try:
        if "://" in url:
            return optuna.storages.RDBStorage(url, engine_kwargs=_engine_kwargs(url))
        return JournalStorage(open_journal(url))
    except Exception as error:  # noqa: BLE001 - any failure to open is the user's URL
        if is_disk_full(error):
            raise
        message = " ".join(str(error).split())[:300]
        raise ConfigError(f"cannot open storage {mask(url)!r}: {type(error).__name__}: {message}",
                          file=file, path=path) from None


def _engine_kwargs(url: str) -> dict[str, Any]:
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": 60}}
    return {"pool_pre_ping": True}


def mask(url: str) -> str:
    """The URL with any password replaced by ``***``."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, at, host = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in credentials else url


def open_study(config: RunConfig, storage_url: str, *, create: bool, sampler: Any = None,
               storage_path: str = "storage") -> optuna.Study:
    """The run's study (named after the run) in ``storage_url``; ``create`` makes it if absent.

    Raises:
        ConfigError: the storage cannot be opened, or it holds a study of this name with
            other objectives.
    """
    import optuna

    from nas.search._study import make_pruner

    storage = open_storage(storage_url, file=config.file, path=storage_path)
    kwargs = {"study_name": config.name, "storage": storage, "sampler": sampler,
              "pruner": make_pruner(config)}
    if not create:
        return optuna.load_study(**kwargs)
    study = optuna.create_study(directions=config.directions, load_if_exists=True, **kwargs)
    if list(study.directions) != [optuna.study.StudyDirection[d.upper()] for d in config.directions]:
        raise ConfigError(f"study {config.name!r} in this storage has other objectives",
                          file=config.file, path="objectives")
    return study


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


def counted(study: optuna.Study) -> int:
    """Trials that count toward the budget: every started trial except interrupted ones."""
    from optuna.trial import TrialState

    return sum(1 for t in study.get_trials(deepcopy=False)
               if t.state != TrialState.WAITING and not t.user_attrs.get(UNCOUNTED_ATTR))


def state_counts(study: optuna.Study) -> dict[str, int]:
    """Counted finished trials per state: ``complete``, ``pruned``, ``fail``."""
    from optuna.trial import TrialState

    counts = {"complete": 0, "pruned": 0, "fail": 0}
    for t in study.get_trials(deepcopy=False):
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL) \
                and not t.user_attrs.get(UNCOUNTED_ATTR):
            counts[t.state.name.lower()] += 1
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


def mark_interrupted(study: optuna.Study, trial: optuna.Trial | FrozenTrial, reason: str) -> None:
    """Fail ``trial`` as uncounted with ``reason`` and enqueue its parameters again (with its
    seed name, and ``nas.retry_of`` pointing back at it)."""
    from optuna.trial import TrialState

    storage, tid = study._storage, trial_id(trial)
    storage.set_trial_user_attr(tid, UNCOUNTED_ATTR, True)
    storage.set_trial_user_attr(tid, REASON_ATTR, reason)
    with contextlib.suppress(Exception):  # already finished by a racing process
        storage.set_trial_state_values(tid, TrialState.FAIL)
    retry: dict[str, Any] = {RETRY_ATTR: trial.number}
    if trial.user_attrs.get(SEED_ATTR):
        retry[SEED_ATTR] = trial.user_attrs[SEED_ATTR]
    study.enqueue_trial(dict(trial.params), user_attrs=retry)


def find_duplicate(study: optuna.Study, key: str, number: int) -> FrozenTrial | None:
    """A complete trial other than ``number`` whose ``nas.hash`` is ``key``, else None."""
    from optuna.trial import TrialState

    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if t.number != number and t.user_attrs.get(HASH_ATTR) == key and t.values is not None:
            return t
    return None


def rung_values(study: optuna.Study, epoch: int, number: int) -> list[float]:
    """Accuracies other trials than ``number`` recorded at the halving rung ``epoch``."""
    key = RUNG_ATTR.format(epoch=epoch)
    return [t.user_attrs[key] for t in study.get_trials(deepcopy=False)
            if key in t.user_attrs and t.number != number]


def params_of(trial: FrozenTrial) -> Mapping[str, Any]:
    """Sampled and enqueued parameters of a trial (the enqueued ones before it samples)."""
    return {**trial.params, **fixed_params(trial)}
