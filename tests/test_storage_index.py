"""The journal's attribute index, batched writes and reservations, and the queries an RDB
storage answers instead (no search run: a few trials, two storages on one file standing for
two processes)."""

from __future__ import annotations

import optuna
import pytest

pytestmark = pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed")
from optuna.trial import TrialState

from nas.search import _storage
from nas.search._storage import (
    UNCOUNTED_ATTR,
    open_storage,
    reserve,
    rung_values,
    set_user_attrs,
    state_counts,
    writes_held,
)


def _two(url):
    """The same study opened through two storages (two processes, as far as they know)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    first = optuna.create_study(study_name="run", storage=open_storage(url))
    second = optuna.load_study(study_name="run", storage=open_storage(url))
    return first, second


@pytest.fixture(params=["journal", "sqlite"])
def two(request, tmp_path):
    return _two(str(tmp_path / "journal.log") if request.param == "journal" else f"sqlite:///{tmp_path}/s.db")


def _lines(study):
    return sum(1 for _ in open(study._storage._backend._file_path, "rb"))


def test_one_owner_per_key_and_generation(two):
    first, second = two
    a, b = first.ask(), second.ask()
    assert reserve(second, b, "k") == (0, None)  # b reserved first
    assert reserve(first, a, "k") == (0, b.number)
    assert reserve(first, a, "k", generation=1) == (1, None)
    assert reserve(second, b, "other") == (0, None)
    assert reserve(first, first.ask(), "k") == (0, b.number)


def test_a_finished_trial_does_not_hold_a_journal_reservation(tmp_path):
    first, second = _two(str(tmp_path / "journal.log"))
    a, b = first.ask(), second.ask()
    second.tell(a.number, state=TrialState.FAIL)  # another worker took a for dead
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
        reserve(first, a, "k")
    assert reserve(second, b, "k") == (0, None)
    assert first.get_trials()[1].user_attrs == second.get_trials()[1].user_attrs  # nothing left over


def test_uncounted_rungs_and_counts_from_the_index_agree_with_a_read(two):
    first, second = two
    trials = [first.ask() for _ in range(5)]
    set_user_attrs(first, trials[1], {UNCOUNTED_ATTR: True, "nas.end_reason": "interrupted"})
    first.tell(trials[1], state=TrialState.FAIL)
    first.tell(trials[2], state=TrialState.FAIL)  # failed, counted
    trials[3].set_user_attr("nas.rung.2", 0.5)  # a run from before intermediate values
    trials[4].set_user_attr("nas.rung.2", 0.25)
    trials[0].report(0.75, 2)
    trials[0].report(0.7, 3)
    first.tell(trials[4], 1.0)
    for study in (first, second):
        assert _storage._uncounted(study) == [1]
        assert sorted(rung_values(study, 2, number=4)) == [0.5, 0.75]
        assert state_counts(study) == {"complete": 1, "pruned": 0, "fail": 1}


def test_held_parameters_are_written_with_the_next_attributes_in_one_append(tmp_path):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="run", storage=open_storage(str(tmp_path / "j.log")))
    trial = study.ask()
    before = _lines(study)
    with writes_held(study):
        trial.suggest_categorical("a", ["x", "y"])
        trial.suggest_int("b", 0, 9)
        assert _lines(study) == before  # held
        set_user_attrs(study, trial, {"nas.worker": "w", "nas.x": 1})
        assert _lines(study) == before + 4
        trial.suggest_float("c", 0, 1)  # after the write: not held
        assert _lines(study) == before + 5
    with writes_held(study):
        trial.suggest_int("d", 0, 9)
    assert _lines(study) == before + 6  # written when the block ends
    again = optuna.load_study(study_name="run", storage=open_storage(str(tmp_path / "j.log")))
    stored = again.get_trials()[0]
    assert set(stored.params) == {"a", "b", "c", "d"} and stored.user_attrs == {"nas.worker": "w", "nas.x": 1}


def test_the_budget_counts_waiting_and_uncounted_trials(two):
    """The number ``ask`` gives next (one query in an RDB storage) is the oldest waiting
    trial's, else one past the last; the budget leaves out uncounted trials before it."""
    first, second = two
    trials = [first.ask() for _ in range(3)]
    assert _storage._next_number(second) == 3
    second.enqueue_trial({})  # trial 3 waits
    assert _storage._next_number(first) == 3
    assert second.ask().number == 3  # popped
    assert _storage._next_number(first) == 4
    first.enqueue_trial({})  # trial 4 waits
    assert _storage._next_number(first) == 4
    assert _storage.budget_left(first, 5) and not _storage.budget_left(first, 4)
    set_user_attrs(first, trials[1], {UNCOUNTED_ATTR: True})
    first.tell(trials[1], state=TrialState.FAIL)  # interrupted: does not count
    assert _storage.budget_left(second, 4) and not _storage.budget_left(second, 3)
    popped = second.ask()
    assert popped.number == 4 and _storage.admit(second, popped, 4)
    late = first.ask()
    assert not _storage.admit(first, late, 4)  # failed as surplus
    assert second.get_trials()[late.number].state == TrialState.FAIL


def test_attributes_of_a_finished_trial_are_refused_whole(two):
    first, second = two
    trial = first.ask()
    set_user_attrs(first, trial, {"nas.worker": "w", "nas.x": 1})
    set_user_attrs(first, trial, {"nas.x": 2, "nas.y": [3]})  # an update and a new one
    assert second.get_trials()[0].user_attrs == {"nas.worker": "w", "nas.x": 2, "nas.y": [3]}
    second.tell(trial.number, state=TrialState.FAIL)
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
        set_user_attrs(first, trial, {"nas.x": 3, "nas.z": 4})
    assert first.get_trials()[0].user_attrs == {"nas.worker": "w", "nas.x": 2, "nas.y": [3]}


def test_an_rdb_lock_without_owner_passes_the_reservation_on(tmp_path):
    """A dedup lock an older nas made in two writes and left without its owner (its worker
    was killed between them) is passed over at once: every twin used to wait 30 s for the
    owner, then fail."""
    first, second = _two(f"sqlite:///{tmp_path}/s.db")
    first._storage.create_new_study([optuna.study.StudyDirection.MINIMIZE], study_name="run:dedup:0:k")
    a, b = first.ask(), second.ask()
    assert reserve(first, a, "k") == (1, None)
    assert reserve(second, b, "k") == (1, a.number)
    assert reserve(second, b, "k", generation=1) == (1, a.number)


def test_an_rdb_storage_beats_in_optunas_heartbeat_table(tmp_path):
    """On an RDB storage (which Optuna wraps in its cache) a beat is the trial's row of
    Optuna's heartbeat table, stamped by the database's clock, written in one transaction with
    the attributes given, not a user attribute; another host's trial is stale once its last
    beat is older than Optuna's grace period by the database's clock (no sleep: the row is
    dated back)."""
    import datetime

    import sqlalchemy
    from optuna.storages._rdb import models

    from nas.search._storage import HEARTBEAT_ATTR, WORKER_ATTR, beat, stale_trials

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="run", storage=open_storage(f"sqlite:///{tmp_path}/s.db", heartbeat=60))
    trial, other = study.ask(), study.ask()
    beat(study, trial, {WORKER_ATTR: "another-host:1"})
    beat(study, trial)
    beat(study, other, {WORKER_ATTR: "another-host:2"})
    assert [t.user_attrs for t in study.get_trials()] == [{WORKER_ATTR: "another-host:1"},
                                                          {WORKER_ATTR: "another-host:2"}]
    assert HEARTBEAT_ATTR not in study.get_trials()[0].user_attrs
    assert stale_trials(study, grace=180) == []
    rdb = _storage._rdb(study)
    with rdb.engine.begin() as connection:  # trial's last beat in 2000, by the database's clock
        connection.execute(sqlalchemy.update(models.TrialHeartbeatModel)
                           .where(models.TrialHeartbeatModel.trial_id == _storage.trial_id(trial))
                           .values(heartbeat=datetime.datetime(2000, 1, 1)))
    assert [t.number for t in stale_trials(study, grace=180)] == [trial.number]


def test_held_parameters_go_with_the_next_attributes_in_an_rdb_storage(tmp_path):
    """In an RDB storage the parameters a trial samples are written in one transaction with
    its next attributes (another process sees none of them before), or when the block ends."""
    first, second = _two(f"sqlite:///{tmp_path}/s.db")
    trial = first.ask()

    def stored():
        return second.get_trials()[0]

    with writes_held(first):
        trial.suggest_categorical("a", ["x", "y"])
        trial.suggest_int("b", 0, 9)
        assert stored().params == {} and trial.params.keys() == {"a", "b"}
        set_user_attrs(first, trial, {"nas.worker": "w"})
        assert stored().params == trial.params and stored().user_attrs == {"nas.worker": "w"}
        trial.suggest_float("c", 0, 1)
    assert stored().params == trial.params  # written when the block ends
    with writes_held(first):
        other = first.ask()
        other.suggest_int("b", 0, 9)
        reserve(first, other, "k")  # the parameters go before the reservation
        assert second.get_trials()[1].params == other.params


def test_an_interrupted_trial_holds_its_place_until_its_retry_is_enqueued(two):
    """Re-queueing is two writes (fail, then enqueue the retry): a trial asked between them
    must not take the interrupted trial's place, or the retry comes after the budget."""
    first, second = two
    done, running = first.ask(), first.ask()
    first.tell(done, 1.0)
    # mark_interrupted, stopped between its two writes
    assert _storage.claim_fail(second, running, {UNCOUNTED_ATTR: True, _storage.REQUEUED_ATTR: True})
    assert not _storage.budget_left(first, 2)
    late = first.ask()
    assert not _storage.admit(first, late, 2)  # surplus: the place is the retry's
    second.enqueue_trial({}, user_attrs={_storage.RETRY_ATTR: running.number})
    assert _storage.budget_left(first, 2)
    retry = first.ask()
    assert retry.user_attrs[_storage.RETRY_ATTR] == running.number and _storage.admit(first, retry, 2)
    assert not _storage.budget_left(second, 2)


def test_mark_interrupted_enqueues_the_retry_in_the_place(two):
    first, second = two
    done, running = first.ask(), first.ask()
    first.tell(done, 1.0)
    assert _storage.mark_interrupted(second, running, "interrupted")
    assert not _storage.mark_interrupted(first, running, "interrupted")  # one retry only
    retry = first.ask()
    assert retry.user_attrs[_storage.RETRY_ATTR] == running.number and _storage.admit(first, retry, 2)
    assert not _storage.admit(second, second.ask(), 2)
