"""Damaged run folders: a torn journal is repaired on open and never written after, a full disk
is one line naming the file (and the run resumes), damaged trial files are unreadable rows.

The searches are NAS-Bench-201 tabular runs (milliseconds a trial; skipped without the table).
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from nas.cli import main as nas
from nas.search._journal import complete_length, repair_journal

ROOT = Path(__file__).resolve().parents[1]
TABLE = ROOT.parent / "shared" / "data" / "nasbench201" / "nb201_cifar.csv"
needs_table = pytest.mark.skipif(not TABLE.is_file(), reason=f"NAS-Bench-201 table absent: {TABLE}")


def nb201_config(tmp_path: Path) -> Path:
    data = yaml.safe_load((ROOT / "search_spaces" / "nb201.yaml").read_text())
    data["space"]["genotype"] = str(ROOT / "genotypes" / "nb201.yaml")
    data["tabular"]["table"] = str(TABLE)
    data["sampler"] = "random"
    # A failed in-process search leaves its running trial behind a live pid: resume re-queues
    # it once its heartbeat is stale (3 beats), so short beats keep these tests short.
    data["heartbeat"] = 1
    path = tmp_path / "nb201.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def search(config: Path, runs: Path, *extra: str) -> int:
    return nas(["search", str(config), "--runs", str(runs), "--no-progress", *extra])


def journal_trials(run_dir: Path) -> list:
    import optuna

    from nas.search._storage import open_storage

    storage = open_storage(str(run_dir / "journal.log"))
    return optuna.load_study(study_name="nb201", storage=storage).get_trials(deepcopy=False)


def counted(trials: list) -> list:
    return [t for t in trials if t.state.is_finished() and not t.user_attrs.get("nas.uncounted")]


# --- the repair itself -------------------------------------------------------------------------


@pytest.mark.parametrize(("tail", "dropped"), [
    (b"", 0),
    (b'{"op_code": 6, "tri', 19),                       # cut mid-record
    (b'{"op_code": 6}\x00\x00\x00\x00', 18),            # NUL-padded record
    (b"\x00" * 5000, 5000),                              # NUL padding after a whole record
    (b'{"op_code": 6, "x": [\n\x00\x00\n', 25),          # torn lines that end with newlines
    (b"\xff\xfe garbage\n", 11),                         # not UTF-8
    (b"[1, 2]\n", 7),                                    # JSON, but not a record
])
def test_repair_keeps_every_complete_record(tmp_path, capsys, tail, dropped):
    journal = tmp_path / "journal.log"
    good = b"".join(json.dumps({"op_code": i, "pad": "x" * 70_000 * (i == 1)}).encode() + b"\n"
                    for i in range(3))  # a record longer than the repair's read chunk
    journal.write_bytes(good + tail)
    assert complete_length(journal) == len(good)
    assert repair_journal(journal) == dropped
    assert journal.read_bytes() == good
    err = capsys.readouterr().err
    assert err.count("\n") == (1 if dropped else 0)
    if dropped:
        assert f"{journal}: repaired a torn last record: dropped {dropped} byte(s)" in err


def test_repair_of_a_journal_without_a_complete_record(tmp_path):
    journal = tmp_path / "journal.log"
    journal.write_bytes(b'{"op_code": 0, "stu')
    assert repair_journal(journal, announce=False) == 19
    assert journal.read_bytes() == b""


FOREIGN = {
    "csv": b"a,b,c\n1,2,3\n4,5,6",
    "object_without_op_code": b'{"hello": 1}\nnot json at all',
    "one_line_of_text": b"hello",
    "zip": b"PK\x03\x04\x14\x00" + bytes(range(256)),
}


@pytest.mark.parametrize("case", sorted(FOREIGN))
def test_a_file_that_is_not_a_journal_is_never_cut(tmp_path, capsys, case):
    """The repair cut a file without a complete record back to nothing: nas search --storage
    results.csv emptied the CSV (and wrote a journal into it)."""
    from nas.errors import ConfigError

    journal = tmp_path / "notes.txt"
    journal.write_bytes(FOREIGN[case])
    with pytest.raises(ConfigError) as error:
        repair_journal(journal)
    assert str(error.value) == (
        f"{journal}: not a journal: it holds no Optuna record and does not begin like one; left "
        "as it is (give this run's journal.log, or the path of a new file)")
    assert journal.read_bytes() == FOREIGN[case]
    if TABLE.is_file():
        capsys.readouterr()
        assert search(nb201_config(tmp_path), tmp_path / "runs", "--storage", str(journal)) == 2
        assert capsys.readouterr().err.splitlines() == [
            str(error.value).replace(": not a journal", ": --storage: not a journal")]
        assert journal.read_bytes() == FOREIGN[case]


@pytest.mark.parametrize("start", [b"", b"\x00" * 64, b'{"op_co', b'{"op_code": 0, "stu'])
def test_a_journal_torn_in_its_first_record_is_still_cut(tmp_path, start):
    journal = tmp_path / "journal.log"
    journal.write_bytes(start + b"\x00" * 16)
    assert repair_journal(journal, announce=False) == len(start) + 16
    assert journal.read_bytes() == b""


@needs_table
@pytest.mark.parametrize("damage", ["cut", "nul_padded"])
def test_torn_journal_resume_completes_the_exact_budget(tmp_path, capsys, damage):
    config, runs = nb201_config(tmp_path), tmp_path / "runs"
    assert search(config, runs, "--trials", "6") == 0
    run_dir = runs / "nb201"
    journal = run_dir / "journal.log"
    data = journal.read_bytes()
    last = data.rstrip(b"\n").rfind(b"\n") + 1  # start of the last record: trial 5's end
    torn = data[:last + (len(data) - last) // 2]
    journal.write_bytes(torn if damage == "cut" else torn + b"\x00" * 4096)
    capsys.readouterr()

    assert search(config, runs, "--trials", "10", "--resume") == 0
    err = capsys.readouterr().err.strip().splitlines()
    dropped = len(torn) - last + (4096 if damage == "nul_padded" else 0)
    assert err == [f"{journal}: repaired a torn last record: dropped {dropped} byte(s) after the "
                   "last complete record"]
    trials = journal_trials(run_dir)
    assert len(counted(trials)) == 10  # exactly the budget
    done = {t.number: t for t in trials if t.state.name == "COMPLETE"}
    assert set(range(5)) <= set(done)  # every trial finished before the tear is still there
    # The tear took trial 5's tell, after its record was stored: the resume finishes it with
    # that record instead of training it again.
    torn_trial = done[5]
    assert torn_trial.values == torn_trial.user_attrs["nas.record"]["values"]
    assert not [t for t in trials if t.user_attrs.get("nas.retry_of") == 5]
    assert journal.read_bytes().endswith(b"\n") and complete_length(journal) == journal.stat().st_size


@needs_table
def test_append_never_follows_a_torn_record(tmp_path, capsys):
    """A journal torn after it was opened (another process died mid-append) is repaired before
    the next append, not glued onto."""
    from nas.search._journal import SafeJournalBackend
    from optuna.storages.journal import JournalFileOpenLock

    journal = tmp_path / "journal.log"
    journal.write_bytes(b'{"op_code": 0}\n')
    backend = SafeJournalBackend(str(journal), lock_obj=JournalFileOpenLock(str(journal)))
    with open(journal, "ab") as handle:
        handle.write(b'{"op_code": 1, "to')
    backend.append_logs([{"op_code": 2}])
    assert journal.read_bytes() == b'{"op_code": 0}\n{"op_code":2}\n'
    assert "dropped 18 byte(s)" in capsys.readouterr().err


# --- a full disk -------------------------------------------------------------------------------


class _FullDisk:
    """``os`` for the journal module, whose ``write`` writes half and fails once armed."""

    def __init__(self, after: int):
        self.calls, self.after = 0, after

    def __getattr__(self, name):
        return getattr(os, name)

    def write(self, fd, data):
        self.calls += 1
        if self.calls > self.after:
            os.write(fd, bytes(data[: len(data) // 2]))
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return os.write(fd, data)


@needs_table
def test_full_disk_in_the_journal_is_one_line_and_the_run_resumes(tmp_path, capsys, monkeypatch):
    import nas.search._journal as journal_module

    config, runs = nb201_config(tmp_path), tmp_path / "runs"
    journal = runs / "nb201" / "journal.log"
    monkeypatch.setattr(journal_module, "os", _FullDisk(after=15))  # in the third trial or so
    assert search(config, runs, "--trials", "8") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"{journal}: no space left on device"), err
    assert complete_length(journal) == journal.stat().st_size  # the half record was cut off
    monkeypatch.undo()

    assert search(config, runs, "--trials", "8", "--resume") == 0
    assert capsys.readouterr().err == ""
    assert len(counted(journal_trials(runs / "nb201"))) == 8


@needs_table
def test_full_disk_in_the_run_folder_is_one_line_and_the_run_resumes(tmp_path, capsys, monkeypatch):
    import nas.io

    config, runs = nb201_config(tmp_path), tmp_path / "runs"
    write = nas.io._write

    def full(path, data, *rest):
        if path.name == "metrics.json" and path.parent.name == "0003":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        write(path, data, *rest)

    monkeypatch.setattr(nas.io, "_write", full)
    assert search(config, runs, "--trials", "8") == 2
    err = capsys.readouterr().err.strip().splitlines()
    metrics = runs / "nb201" / "trials" / "0003" / "metrics.json"
    assert len(err) == 1 and err[0].startswith(f"{metrics}: no space left on device"), err
    monkeypatch.undo()

    assert search(config, runs, "--trials", "8", "--resume") == 0
    trials = journal_trials(runs / "nb201")
    assert len(counted(trials)) == 8
    # Trial 3's record reached the storage before its file failed: the resume finishes it with
    # that record and writes the file, instead of training it again.
    (trial,) = [t for t in trials if t.number == 3]
    assert trial.state.name == "COMPLETE"
    assert json.loads(metrics.read_text()) == trial.user_attrs["nas.record"]
    assert not any(t.user_attrs.get("nas.retry_of") == 3 for t in trials)


@needs_table
def test_full_disk_in_a_subprocess_is_one_line(tmp_path):
    """The real command, no traceback: the disk is "full" for the run folder from the start
    (sitecustomize makes mkstemp fail with ENOSPC)."""
    config = nb201_config(tmp_path)
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(
        "import errno, os, tempfile\n"
        "_real = tempfile.mkstemp\n"
        "def mkstemp(*a, **k):\n"
        "    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))\n"
        "tempfile.mkstemp = mkstemp\n")
    env = dict(os.environ, PYTHONPATH=f"{hook}{os.pathsep}{ROOT}")
    result = subprocess.run([sys.executable, "-m", "nas", "search", str(config), "--runs",
                             str(tmp_path / "runs"), "--no-progress"], capture_output=True,
                            text=True, env=env, timeout=120)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "no space left on device" in lines[0], result.stderr
    assert "Traceback" not in result.stderr


# --- damaged trial files -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def nb201_run(tmp_path_factory) -> Path:
    if not TABLE.is_file():
        pytest.skip(f"NAS-Bench-201 table absent: {TABLE}")
    tmp = tmp_path_factory.mktemp("nb201")
    assert search(nb201_config(tmp), tmp / "runs", "--trials", "6") == 0
    return tmp / "runs" / "nb201"


DAMAGED = {
    "garbage": b"\x00garbage{{{",
    "not_utf8": '{"trial": 3, "\u00e9t\u00e9": 1}'.encode("latin-1"),
    "empty_object": b"{}",
    "list": b"[1, 2]",
    "empty_file": b"",
    "number": b"NaN",
    "deeply_nested": b"[" * 100_000,
    "objective_is_text": b'{"trial": 3, "state": "complete", "objectives": {"table_accuracy": "high"}}',
    "genotype_is_text": b'{"trial": 3, "state": "complete", "objectives": {}, "genotype": "x"}',
    "state_is_number": b'{"trial": 3, "state": 5, "objectives": {}}',
    "other_trial": b'{"trial": 9, "state": "complete", "objectives": {"table_accuracy": 99.9}}',
    "history_of_numbers": b'{"trial": 3, "state": "complete", "objectives": {}, "history": [1]}',
    "directory": None,
    # numbers the writer never writes (NaN and infinities are stored as null): an infinite
    # accuracy ranked first; integers beyond float range were 'unexpected OverflowError'
    "objective_infinite": b'{"trial": 3, "state": "complete", "objectives": {"table_accuracy": Infinity}}',
    "objective_nan": b'{"trial": 3, "state": "complete", "objectives": {"table_accuracy": NaN}}',
    "objective_beyond_float": b'{"trial": 3, "state": "complete", "objectives": {"table_accuracy": 1'
                              + b"0" * 400 + b"}}",
    "static_beyond_float": b'{"trial": 3, "state": "complete", "objectives": {}, "static": {"params": 1'
                           + b"0" * 400 + b"}}",
    "value_a_bool": b'{"trial": 3, "state": "complete", "objectives": {}, "values": [true]}',
    "wall_time_infinite": b'{"trial": 3, "state": "complete", "objectives": {}, "wall_time": -Infinity}',
    "genotype_text_a_number": b'{"trial": 3, "state": "complete", "objectives": {}, "genotype": {"text": 5}}',
    "history_value_text": b'{"trial": 3, "state": "complete", "objectives": {}, '
                          b'"history": [{"epoch": "one", "val_accuracy": 0.5}]}',
    # a seed's name is a folder name: HTML in it went into report.md as given
    "seed_html": b'{"trial": 3, "state": "complete", "objectives": {}, "seed": "<img src=x onerror=y>"}',
}


@pytest.mark.parametrize("case", sorted(DAMAGED))
def test_damaged_metrics_file_is_an_unreadable_row(nb201_run, tmp_path, capsys, case,
                                                   drop_stored_records):
    import shutil

    from nas.results import best, load

    run = tmp_path / "nb201"
    shutil.copytree(nb201_run, run)
    # The files are the records only when the storage holds none (test_results checks that
    # a storage's records make damaged files harmless).
    drop_stored_records(run / "journal.log")
    metrics = run / "trials" / "0003" / "metrics.json"
    metrics.unlink()
    if DAMAGED[case] is None:
        metrics.mkdir()
    else:
        metrics.write_bytes(DAMAGED[case])

    frame = load(run).set_index("number")
    assert frame.loc[3, "status"] == "unreadable"
    assert "trials/0003/metrics.json is unreadable" in frame.loc[3, "reason"]
    assert (frame.drop(index=3)["status"] == "completed").all()
    assert 3 not in best(frame.reset_index())["number"].tolist()

    capsys.readouterr()
    assert nas(["best", str(run)]) == 0
    out = capsys.readouterr().out
    assert f"note: {metrics} is unreadable (" in out and "trial 3" not in out
    assert nas(["analyze", str(run), "--out", str(tmp_path / "out"), "--no-importance"]) == 0
    assert "unreadable metrics file" in (tmp_path / "out" / "report.md").read_text()


def test_damaged_run_json_is_one_line(nb201_run, tmp_path, capsys):
    import shutil

    run = tmp_path / "nb201"
    shutil.copytree(nb201_run, run)
    for text in (b"\xff\xfe", b"[]", b'{"objectives": "table_accuracy", "directions": ["maximize"]}',
                 b'{"objectives": ["table_accuracy"], "directions": ["max"]}',
                 b'{"objectives": ["table_accuracy"], "directions": ["maximize"], "storage": 3}'):
        (run / "run.json").write_bytes(text)
        for command in (["best", str(run)], ["analyze", str(run), "--out", str(tmp_path / "o")]):
            assert nas(command) == 2, text
            err = capsys.readouterr().err.strip().splitlines()
            assert len(err) == 1 and err[0].startswith(f"{run / 'run.json'}: unreadable"), err


@pytest.mark.parametrize("name", ["../../escaped", "a|b<i>x</i>\n# \x1b[2J", "x" * 5000, ""])
def test_a_run_json_name_a_search_never_writes_is_one_line(nb201_run, tmp_path, capsys, name):
    """run.json's name is checked as a search checks it (a folder name): nas analyze names its
    best-NAME.svg by it ('../../escaped' wrote outside --out) and report.md shows it (an escape
    sequence and Markdown were copied in)."""
    import shutil

    run = tmp_path / "nb201"
    shutil.copytree(nb201_run, run)
    info = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**info, "name": name}))
    for command in (["best", str(run)], ["analyze", str(run), "--out", str(tmp_path / "a" / "b" / "o")]):
        assert nas(command) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"{run / 'run.json'}: name: must be a folder name"), err
    assert not (tmp_path / "escaped.svg").exists() and not (tmp_path / "a").exists()


@pytest.mark.parametrize("record", [b'{"op_code": 99, "worker_id": "x"}\n',
                                    b'{"op_code": 4, "worker_id": "x", "trial_id": "a"}\n'])
def test_a_journal_record_optuna_cannot_replay_is_one_line_naming_the_journal(nb201_run, tmp_path, capsys,
                                                                              record):
    import shutil

    runs = tmp_path / "runs"
    shutil.copytree(nb201_run, runs / "nb201")
    journal = runs / "nb201" / "journal.log"
    with journal.open("ab") as handle:
        handle.write(record)
    assert search(nb201_config(tmp_path), runs, "--resume") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"{journal}: damaged journal: Optuna cannot replay"), err


def test_a_journal_line_that_is_not_json_is_named_by_its_number(nb201_run, tmp_path, capsys):
    # Optuna's message located the fault inside the line ('line 1 column 30'), never the line
    import shutil

    runs = tmp_path / "runs"
    shutil.copytree(nb201_run, runs / "nb201")
    journal = runs / "nb201" / "journal.log"
    lines = journal.read_bytes().split(b"\n")
    lines[5] = lines[5][:20] + b"@@garbage"
    journal.write_bytes(b"\n".join(lines))
    byte = sum(len(line) + 1 for line in lines[:5])
    expected = f"{journal}: damaged journal: line 6 (byte {byte:,}) is not a record; Optuna cannot replay"
    assert search(nb201_config(tmp_path), runs, "--resume") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(expected), err
    assert nas(["best", str(runs / "nb201")]) == 0
    assert f"cannot read storage ({expected}" in capsys.readouterr().out  # notes go with the answer


@pytest.mark.parametrize("name", ["trials", "trials/0001"])
def test_a_symlinked_trials_folder_is_refused_before_the_study_is_written(nb201_run, tmp_path, capsys, name):
    # found at the first trial's first log line, it left the trial Optuna had just made running
    import shutil

    runs = tmp_path / "runs"
    run = runs / "nb201"
    shutil.copytree(nb201_run, run)
    outside = tmp_path / "outside"
    shutil.move(run / name, outside)
    (run / name).symlink_to(outside, target_is_directory=True)
    journal = (run / "journal.log").read_bytes()
    assert search(nb201_config(tmp_path), runs, "--resume", "--trials", "12") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"{run / name}: a symbolic link (a run folder's files are never written through one)"]
    assert (run / "journal.log").read_bytes() == journal


@pytest.mark.parametrize("damage", ["journal_deleted", "journal_emptied", "journal_cut_in_its_header",
                                    "journal_torn_over_lines_in_its_header",
                                    "config_lost_too"])
def test_trial_folders_the_storage_does_not_know_are_never_overwritten(nb201_run, tmp_path, capsys, damage):
    # a new study in the folder would number its trials from 0 and write over trials/0000...
    import shutil

    runs = tmp_path / "runs"
    run = runs / "nb201"
    shutil.copytree(nb201_run, run)
    before = {path: path.read_bytes() for path in (run / "trials").rglob("*") if path.is_file()}
    journal = run / "journal.log"
    if damage == "journal_deleted":
        journal.unlink()
    elif damage == "journal_emptied":
        journal.write_bytes(b"")
    elif damage == "journal_cut_in_its_header":
        journal.write_bytes(journal.read_bytes()[:journal.read_bytes().index(b"\n") + 40])
    elif damage == "journal_torn_over_lines_in_its_header":  # Optuna cannot read past it: cut at open
        journal.write_bytes(journal.read_bytes()[:journal.read_bytes().index(b"\n") + 40] + b"\n\x00\n")
    else:
        for name in ("journal.log", "config.yaml", "run.json"):
            (run / name).unlink()
    kept = journal.read_bytes() if journal.exists() else None
    resume = () if damage == "config_lost_too" else ("--resume",)
    assert search(nb201_config(tmp_path), runs, *resume) == 2
    err = capsys.readouterr().err.strip().splitlines()
    if damage == "config_lost_too":
        assert len(err) == 1 and f"run folder {run} holds trials/ but no config.yaml" in err[0], err
    else:  # one line: a torn record is not cut (nor said) by a search that refuses to run
        assert len(err) == 1 and err[0].startswith(
            f"{run / 'trials'}: holds 6 trial folder(s) from 0000 on that the run's storage does "
            "not know (it has 0 trials)"), err
        if damage == "journal_cut_in_its_header":
            assert journal.read_bytes() == kept
    assert {path: path.read_bytes() for path in (run / "trials").rglob("*") if path.is_file()} == before


@pytest.mark.parametrize("name", ["\u00b2", "+1", "9" * 20])
def test_a_trial_folder_not_named_by_a_trial_number_is_left_out(nb201_run, tmp_path, capsys, name,
                                                                drop_stored_records):
    # '\u00b2' is a digit to str.isdigit but not to int(); '+1' is int() 1: a second trial 1
    import shutil

    runs = tmp_path / "runs"
    run = runs / "nb201"
    shutil.copytree(nb201_run, run)
    drop_stored_records(run / "journal.log")  # the files are the records
    shutil.copytree(run / "trials" / "0001", run / "trials" / name)
    capsys.readouterr()
    assert nas(["best", str(run)]) == 0
    out = capsys.readouterr().out
    assert f"note: {run / 'trials' / name / 'metrics.json'} is unreadable (the folder's name is not a trial number)" in out
    assert out.count("trial 1 ") <= 1


@pytest.mark.parametrize("name", ["\u00b2", "+1", "9" * 20])
def test_a_run_with_a_folder_not_named_by_a_trial_number_resumes(nb201_run, tmp_path, name):
    import shutil

    runs = tmp_path / "runs"
    shutil.copytree(nb201_run, runs / "nb201")
    (runs / "nb201" / "trials" / name).mkdir()
    assert search(nb201_config(tmp_path), runs, "--resume", "--trials", "7") == 0


def test_a_run_json_naming_objectives_no_trial_records_is_one_line(nb201_run, tmp_path, capsys):
    # not "no complete trial" (exit 1, as if the run were empty): run.json and trials disagree
    import shutil

    run = tmp_path / "nb201"
    shutil.copytree(nb201_run, run)
    data = json.loads((run / "run.json").read_text())
    data["objectives"] = ["accuracy"]
    (run / "run.json").write_text(json.dumps(data))
    assert nas(["best", str(run)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"{run / 'run.json'}: the run's objectives (accuracy) are recorded by none of its "
                   f"6 complete trials (they record: table_accuracy)"], err


@pytest.mark.parametrize("text", [b"[1]\n", b"3\n", b"just text\n"])
def test_a_frozen_config_that_is_not_a_mapping_is_one_line_on_resume(nb201_run, tmp_path, capsys, text):
    import shutil

    runs = tmp_path / "runs"
    shutil.copytree(nb201_run, runs / "nb201")
    (runs / "nb201" / "config.yaml").write_bytes(text)
    assert search(nb201_config(tmp_path), runs, "--resume") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"{runs / 'nb201' / 'config.yaml'}: damaged: not a run config "
                   f"(a {type(yaml.safe_load(text)).__name__}, not a mapping)"], err


@pytest.mark.parametrize("damage", ["folder", "fifo", "broken_link"])
def test_a_frozen_config_that_is_not_a_regular_file_is_damage_not_no_run(nb201_run, tmp_path, capsys, damage):
    import shutil

    runs = tmp_path / "runs"
    shutil.copytree(nb201_run, runs / "nb201")
    frozen = runs / "nb201" / "config.yaml"
    frozen.unlink()
    {"folder": frozen.mkdir, "fifo": lambda: os.mkfifo(frozen),
     "broken_link": lambda: frozen.symlink_to(tmp_path / "nowhere")}[damage]()
    assert search(nb201_config(tmp_path), runs, "--resume") == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"{frozen}: damaged: not a regular file"]


# --- pareto_front takes only what it documents --------------------------------------------------


def _frame():
    import pandas as pd

    rows = [  # accuracy up, macs down: 0 and 2 are the front, 1 is dominated by 0
        {"run": "r", "number": 0, "state": "complete", "status": "completed", "duplicate_of": None,
         "val_accuracy": 0.9, "macs": 100},
        {"run": "r", "number": 1, "state": "complete", "status": "completed", "duplicate_of": None,
         "val_accuracy": 0.8, "macs": 200},
        {"run": "r", "number": 2, "state": "complete", "status": "completed", "duplicate_of": None,
         "val_accuracy": 0.95, "macs": 300},
    ]
    return pd.DataFrame(rows)


def test_pareto_front_directions_mean_what_they_say():
    from nas.results import pareto_front

    front = pareto_front(_frame(), ["val_accuracy", "macs"], ["maximize", "minimize"])
    assert front["number"].tolist() == [2, 0]
    worst = pareto_front(_frame(), ["val_accuracy", "macs"], ["minimize", "maximize"])
    assert worst["number"].tolist() == [1, 2]


@pytest.mark.parametrize("directions", [["max", "min"], ["MAXIMIZE", "minimize"], ["up", "down"],
                                        ["maximize", None], ["maximize"], "maximize",
                                        ["maximize", "minimize", "minimize"]])
def test_pareto_front_rejects_undocumented_directions(directions):
    from nas.results import pareto_front

    with pytest.raises(ValueError) as info:
        pareto_front(_frame(), ["val_accuracy", "macs"], directions)
    message = str(info.value)
    assert "\n" not in message
    assert "'maximize', 'minimize'" in message or "direction" in message


def test_pareto_front_rejects_unknown_columns():
    from nas.results import pareto_front

    with pytest.raises(ValueError, match=r"unknown column 'val_acuracy'; available: run, number"):
        pareto_front(_frame(), ["val_acuracy", "macs"], ["maximize", "minimize"])
    with pytest.raises(ValueError, match="does not hold numbers"):
        pareto_front(_frame(), ["status", "macs"], ["maximize", "minimize"])


def test_search_pareto_front_rejects_undocumented_directions():
    from nas.search._records import pareto_front

    records = [{"objectives": {"a": 1.0, "b": 2.0}}]
    assert pareto_front(records, ["a", "b"], ["maximize", "minimize"]) == records
    with pytest.raises(ValueError, match="unknown direction 'max'; valid: 'maximize', 'minimize'"):
        pareto_front(records, ["a", "b"], ["max", "min"])


# --- the side JSON files of a run folder: never block, never raise past their reader ------------

SIDE_FILES = {  # case: (file under the run folder, the call, what it must print)
    "prescreen_fifo": ("prescreen.json", "from nas.results._report import _prescreen_sentence as f; "
                       "print(f(run))", "None"),
    "prescreen_deep": ("prescreen.json", "from nas.results._report import _prescreen_sentence as f; "
                       "print(f(run))", "None"),
    "plan_list": ("retrain/plan.json", "from nas.retrain._run import _check_plan as f\n"
                  "try:\n    f(run / 'retrain', {})\nexcept ConfigError as e:\n    print(e)",
                  "{run}/retrain/plan.json: unreadable: not a JSON object (list)"),
    # a FIFO is never replaced by an atomic write (nas.io): the claim says so, naming the file
    "job_fifo": ("retrain/job/job.json", "from nas.retrain._run import _claim as f\n"
                 "try:\n    f(run / 'retrain' / 'job', 'h', 'c')\nexcept OSError as e:\n    print(e)",
                 "[Errno 22] not a regular file (a device, FIFO or socket is never replaced): "
                 "'{run}/retrain/job/job.json'"),
    # opening a FIFO to write waits for a reader: the job lock hung nas retrain forever
    "lock_fifo": ("retrain/job/.lock", "from nas.io import try_file_lock\n"
                  "try:\n    with try_file_lock(run / 'retrain' / 'job' / '.lock'): pass\n"
                  "except OSError as e:\n    print(e)",
                  "[Errno 22] not a regular file (a lock or log file must be one): '{run}/retrain/job/.lock'"),
    # the same for the search's weights lock and a dataset cache entry's lock (waited for)
    "weights_lock_fifo": (".weights.lock", "from nas.search._folder import file_lock\n"
                          "try:\n    with file_lock(run / '.weights.lock'): pass\n"
                          "except OSError as e:\n    print(e)",
                          "[Errno 22] not a regular file (a lock or log file must be one): '{run}/.weights.lock'"),
    "cache_lock_fifo": (".entry.lock", "from nas.data._cache import locked\n"
                        "try:\n    with locked(run / 'entry'): pass\n"
                        "except OSError as e:\n    print(e)",
                        "[Errno 22] not a regular file (a lock or log file must be one): '{run}/.entry.lock'"),
    # not JSON, but read first the same way: nas analyze (importances) opened a FIFO journal
    "journal_fifo": ("journal.log", "from nas.search._journal import check_record_lengths\n"
                     "try:\n    check_record_lengths(run / 'journal.log')\n"
                     "except ConfigError as e:\n    print(e)",
                     "{run}/journal.log: not a regular file (a journal is one)"),
    "result_deep": ("retrain/job/test.json", "from nas.retrain._run import _read_result as f; "
                    "print(f(run / 'retrain' / 'job', 'h'))", "None"),
    "preprocessing_fifo": ("trial_0001.json", "from nas.preprocessing import Preprocessing\n"
                           "try:\n    Preprocessing.read(run / 'trial_0001.json')\n"
                           "except ConfigError as e:\n    print(e)",
                           "{run}/trial_0001.json: cannot read: not a regular file"),
    "weights_index_fifo": ("trials/0001/weights.json", "from nas.search._keep import WeightKeeper; "
                           "print(WeightKeeper(run, None, ['a'], ['maximize'])._index())", "[]"),
}


@pytest.mark.parametrize("case", sorted(SIDE_FILES))
def test_a_hostile_side_json_file_never_blocks_or_escapes(tmp_path, case):
    name, call, expected = SIDE_FILES[case]
    run = tmp_path / "run"
    path = run / name
    path.parent.mkdir(parents=True)
    if case.endswith("fifo"):
        os.mkfifo(path)
    elif case.endswith("deep"):
        path.write_text("[" * 200_000)
    else:
        path.write_text("[1]")
    code = (f"from pathlib import Path; from nas.errors import ConfigError; run = Path({str(run)!r})\n"
            + call)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr[-500:]
    assert result.stdout.strip() == expected.replace("{run}", str(run))


@pytest.mark.parametrize("where", ["middle", "end"])
def test_a_journal_line_too_long_to_be_a_record_is_refused_before_replay(tmp_path, where):
    """Optuna replays a journal a line at a time: a 17 MB line (a real record is a few kB)
    would be held whole, so it is refused, by the search and by the readers, in one line."""
    import optuna

    from nas.errors import ConfigError
    from nas.search._storage import load_study, open_storage

    journal = tmp_path / "journal.log"
    optuna.create_study(study_name="s", storage=open_storage(str(journal)))
    good = journal.read_bytes()
    huge = b"x" * (17 << 20) + b"\n"
    journal.write_bytes(huge + good if where == "middle" else good + huge)
    for opener in (lambda: open_storage(str(journal), file="run.yaml"),
                   lambda: load_study(str(journal), "s")):
        with pytest.raises(ConfigError) as error:
            opener()
        assert error.value.file == str(journal) and "\n" not in str(error.value)
        assert "longer than 16,777,216 bytes" in str(error.value)


@pytest.mark.parametrize("damage", ["fifo", "missing", "not_utf8"])
def test_best_yaml_over_a_damaged_genotype_file_is_one_line(nb201_run, tmp_path, damage):
    """Without a storage and with records that lack the genotype's text, ``nas best --yaml``
    reads the trial's genotype.yaml: bounded, never blocking, one line when it is damaged."""
    import shutil

    run = tmp_path / "nb201"
    shutil.copytree(nb201_run, run)
    (run / "journal.log").unlink()
    for metrics in run.glob("trials/*/metrics.json"):
        record = json.loads(metrics.read_text())
        (record.get("genotype") or {}).pop("text", None)
        metrics.write_text(json.dumps(record))
    for path in run.glob("trials/*/genotype.yaml"):
        path.unlink()
        if damage == "fifo":
            os.mkfifo(path)
        elif damage == "not_utf8":
            path.write_bytes(b"\xff\xfe")
    result = subprocess.run([sys.executable, "-m", "nas", "best", str(run), "--yaml"],
                            capture_output=True, text=True, timeout=60,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr[-500:]
    assert lines[0].startswith(str(run / "trials")) and "genotype.yaml: " in lines[0]


# --- a symbolic link planted in a run folder: never followed by a write -----------------------

def _lock(path: Path) -> None:
    from nas.io import try_file_lock

    with try_file_lock(path):
        pass


def _weights_lock(path: Path) -> None:
    from nas.search._folder import file_lock

    with file_lock(path):
        pass


def _cache_lock(path: Path) -> None:
    from nas.data._cache import locked

    with locked(path.parent / path.name[1:-len(".lock")]):
        pass


def _trial_log(path: Path) -> None:  # RUN/trials/NNNN/log.txt
    from nas.search._evaluate import TrialLog

    TrialLog(path, root=path.parents[2]).write("epoch 1")


def _journal(path: Path) -> None:
    from nas.search._storage import open_storage

    open_storage(str(path), file="run.yaml")


PLANTED_LINKS = {  # case: (file under the run folder, what writes it)
    "retrain_job_lock": ("retrain/small/seed0/.lock", _lock),
    "weights_lock": (".weights.lock", _weights_lock),
    "cache_lock": (".entry.lock", _cache_lock),
    "trial_log": ("trials/0001/log.txt", _trial_log),
    "journal": ("journal.log", _journal),
}


@pytest.mark.parametrize("target", ["dangling", "file"])
@pytest.mark.parametrize("case", sorted(PLANTED_LINKS))
def test_a_symlink_in_a_run_folder_is_never_written_through(tmp_path, case, target, capsys):
    """A lock, log or journal of a run folder that is a symbolic link is one line naming it, and
    nothing is written at its target: a dangling link at a retrain job's .lock made nas retrain
    create an empty file at the target, outside the run (O_CREAT followed the link)."""
    from nas.cli import os_error_message
    from nas.errors import ConfigError

    name, write = PLANTED_LINKS[case]
    outside = tmp_path / "outside"
    if target == "file":
        outside.write_text("theirs\n")
    path = tmp_path / "run" / name
    path.parent.mkdir(parents=True)
    path.symlink_to(outside)
    with pytest.raises((OSError, ConfigError)) as error:
        write(path)
    message = str(error.value) if isinstance(error.value, ConfigError) else os_error_message(error.value)
    assert str(path) in message and "symbolic link" in message and "\n" not in message, message
    assert path.is_symlink()
    assert (outside.read_text() == "theirs\n") if target == "file" else not os.path.lexists(outside)


def _retrain_job(path: Path) -> None:
    from types import SimpleNamespace

    from nas.retrain._run import _work

    candidate = SimpleNamespace(label="small", genotype=SimpleNamespace(hash="h"))  # training it would fail
    context = SimpleNamespace(base=SimpleNamespace(threads=1), jobs=lambda: [(candidate, 0, path)])
    _work(context, lambda line: None, progress=False)


PLANTED_FOLDERS = {  # case: (folder under the run folder, what writes into it)
    "retrain_job": ("retrain/small/seed0", _retrain_job),
    "retrain_label": ("retrain/small", lambda path: _retrain_job(path / "seed0")),
    "trial": ("trials/0001", lambda path: _trial_log(path / "log.txt")),
    "trials": ("trials", lambda path: _trial_log(path / "0001" / "log.txt")),
}


@pytest.mark.parametrize("target", ["dangling", "folder"])
@pytest.mark.parametrize("case", sorted(PLANTED_FOLDERS))
def test_a_symlinked_folder_in_a_run_folder_is_never_entered(tmp_path, case, target):
    """A folder of a run that is a symbolic link is one line naming it: a retrain job's or a
    trial's files were written at the link's target, outside the run."""
    from nas.cli import os_error_message

    name, write = PLANTED_FOLDERS[case]
    outside = tmp_path / "outside"
    if target == "folder":
        outside.mkdir()
    path = tmp_path / "run" / name
    path.parent.mkdir(parents=True)
    path.symlink_to(outside, target_is_directory=True)
    with pytest.raises(OSError) as error:
        write(path)
    message = os_error_message(error.value)
    assert message == f"{path}: a symbolic link (a run folder's files are never written through one)"
    assert (list(outside.iterdir()) == []) if target == "folder" else not os.path.lexists(outside)


@pytest.mark.parametrize("target", ["dangling", "file"])
def test_a_plot_replaces_a_symlink_never_writes_through_it(tmp_path, target):
    """nas analyze's plots are written atomically: a link at a plot's name is replaced (savefig
    wrote the PNG at its target, outside the run)."""
    from nas.results._plots import _figure, _save

    outside = tmp_path / "outside.png"
    if target == "file":
        outside.write_bytes(b"theirs")
    path = tmp_path / "run" / "history.png"
    path.parent.mkdir()
    path.symlink_to(outside)
    _save(_figure(), path)
    assert not path.is_symlink() and path.read_bytes().startswith(b"\x89PNG")
    assert (outside.read_bytes() == b"theirs") if target == "file" else not os.path.lexists(outside)
