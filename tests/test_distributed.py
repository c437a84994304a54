"""One study, several machines: ``nas search`` processes with separate run folders joined on one
storage (a journal file, a real PostgreSQL server), one of them killed mid-trial; one worker per
(fake) device.

PostgreSQL: ``NAS_TEST_POSTGRES_URL`` names a server (``.ci/postgres.sh`` starts one). In CI
(``CI=true``) a missing or unreachable server fails the test; elsewhere it is skipped.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
import yaml

from nas.search import read_trials

ROOT = Path(__file__).resolve().parents[1]
GENOTYPE = ROOT / "genotypes" / "search" / "resnet_cifar.yaml"
NB201_TABLE = ROOT.parent / "shared" / "data" / "nasbench201" / "nb201_cifar.csv"
BUDGET = 24


def postgres_url() -> str:
    """The test server's URL; fails in CI and skips elsewhere when there is none."""
    url = os.environ.get("NAS_TEST_POSTGRES_URL")
    ci = os.environ.get("CI", "").lower() == "true"
    if not url:
        if ci:
            pytest.fail("CI=true but NAS_TEST_POSTGRES_URL is unset: .ci/run must start PostgreSQL")
        pytest.skip("no PostgreSQL server: export NAS_TEST_POSTGRES_URL=$(.ci/postgres.sh)")
    import sqlalchemy

    from nas.search._storage import normalize_url

    try:
        with sqlalchemy.create_engine(normalize_url(url)).connect():
            pass
    except Exception as error:  # noqa: BLE001
        message = f"PostgreSQL at {url} is unreachable: {type(error).__name__}: {error}"
        if ci:
            pytest.fail(message)
        pytest.skip(message)
    return url


def machine_config(tmp_path: Path, name: str, **changes) -> Path:
    """Tiny digits ResNets (about a second a trial), few enough genotypes that twins happen."""
    data = {
        "name": name,
        "space": {
            "genotype": str(GENOTYPE),
            "params": {"widths": [4, 8, 8], "depths": [1, 1, 1]},
            "choices": {
                "block": {"choices": ["cifar_basic", "basic_se"]},
                "depth": {"param": "depths", "per_stage": True, "int": [1, 2]},
            },
            "seeds": {"small": {}},
        },
        "dataset": {"name": "digits", "subset": 200, "val_subset": 100},
        "train": {"epochs": 1, "batch_size": 50, "lr": 0.05, "device": "cpu"},
        "sampler": "random",
        "trials": BUDGET,
        "threads": 1,
        "heartbeat": 2,  # grace 6 s: a busy 2-core machine can delay a beat past 3 s
        **changes,
    }
    path = tmp_path / f"{name}-{len(changes)}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def nas_process(*args: str, cwd: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-m", "nas", *args], cwd=cwd, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)


def running_trial(run_dir: Path) -> bool:
    """Whether this machine has a trial that started and has not ended."""
    return any((d / "log.txt").is_file() and not (d / "metrics.json").exists()
               for d in run_dir.glob("trials/*"))


def three_machines(tmp_path: Path, storage: str) -> None:
    name = f"joined_{uuid.uuid4().hex[:8]}"
    config = machine_config(tmp_path, name)
    runs = [tmp_path / f"machine{i}" for i in range(3)]
    start = [nas_process("search", str(config), "--storage", storage, "--runs", str(r),
                         "--no-progress", cwd=tmp_path) for r in runs]
    victim, victim_dir = start[1], runs[1] / name
    deadline = time.time() + 240
    while not running_trial(victim_dir) or not list(victim_dir.glob("trials/*/metrics.json")):
        assert time.time() < deadline and victim.poll() is None, victim.communicate()
        time.sleep(0.02)
    os.killpg(victim.pid, signal.SIGKILL)  # mid-trial: one trial started, not ended
    victim.wait()
    for process in (start[0], start[2]):
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err

    records = read_trials(runs[0] / name, storage=storage)
    counted = [r for r in records if r["counted"]]
    assert len(counted) == BUDGET  # the exact budget, none lost to the killed machine
    interrupted = [r for r in records if r["status"] == "interrupted"]
    assert interrupted, "the killed machine's running trial was not re-queued"
    assert sorted(r["retry_of"] for r in counted if r["retry_of"] is not None) == \
        sorted(r["trial"] for r in interrupted)
    trained = Counter(r["genotype"]["hash"] for r in counted if r["status"] == "completed")
    assert max(trained.values()) == 1, trained  # no genotype trained twice
    assert all(r["state"] == "complete" for r in counted), \
        [(r["trial"], r["state"], r["status"]) for r in counted if r["state"] != "complete"]
    assert len({r["sampler_seed"] for r in counted}) == 3  # per machine, recorded
    assert len({r["worker"] for r in counted}) == 3

    # Each machine's folder analysed, the three at once (they only read the storage).
    outs = [tmp_path / f"analysis-{run.name}" for run in runs]
    analyses = [nas_process("analyze", str(run / name), "--out", str(out), "--no-importance",
                            "--storage", storage, cwd=tmp_path) for run, out in zip(runs, outs)]
    tables = []
    for analysis, out in zip(analyses, outs):
        _, err = analysis.communicate(timeout=300)
        assert analysis.returncode == 0, err
        table = pd.read_csv(out / "results.csv").drop(columns=["genotype_path"])
        complete = table[table["state"] == "complete"]
        assert len(complete) == BUDGET
        assert complete[["params", "macs", "val_accuracy", "hash"]].notna().all().all()
        tables.append(table)
    for table in tables[1:]:
        pd.testing.assert_frame_equal(table, tables[0])

    # Joining with another config is one line, and leaves no run folder behind.
    other = machine_config(tmp_path, name, sampler="tpe")
    result = subprocess.run([sys.executable, "-m", "nas", "search", str(other), "--storage", storage,
                             "--runs", str(tmp_path / "machine3"), "--no-progress"], cwd=tmp_path,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "sampler: differs from the config study" in lines[0], lines
    assert not (tmp_path / "machine3" / name).exists()


def test_three_machines_on_postgresql(tmp_path):
    three_machines(tmp_path, postgres_url())


def test_three_machines_on_one_journal(tmp_path):
    three_machines(tmp_path, str(tmp_path / "shared" / "journal.log"))


def test_postgresql_url_names_an_installed_driver():
    from nas.search._storage import normalize_url

    url = normalize_url("postgresql://user@host/db")
    assert url.split("://")[0] in ("postgresql+psycopg", "postgresql+psycopg2")
    assert normalize_url("postgres://u:p@h:5432/d").endswith("://u:p@h:5432/d")
    assert normalize_url("postgresql+psycopg2://h/d") == "postgresql+psycopg2://h/d"
    assert normalize_url("sqlite:///x.db") == "sqlite:///x.db"


@pytest.mark.skipif(not NB201_TABLE.is_file(), reason="NAS-Bench-201 table not present")
def test_one_worker_per_device_sees_only_its_own(tmp_path):
    config = ROOT / "search_spaces" / "nb201.yaml"
    result = subprocess.run([sys.executable, "-m", "nas", "search", str(config), "--trials", "40",
                             "--devices", "cuda:0,cuda:1", "--trials-per-device", "2", "--runs",
                             str(tmp_path / "runs"), "--no-progress"], cwd=ROOT,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    records = read_trials(tmp_path / "runs" / "nb201")
    assert len([r for r in records if r["counted"]]) == 40
    seen: dict[str, set[str]] = {}
    for r in records:
        seen.setdefault(r["cuda_visible_devices"], set()).add(r["worker"])
    assert set(seen) <= {"0", "1"} and all(len(w) <= 2 for w in seen.values())
    assert len({r["worker"] for r in records}) >= 2 and len({r["sampler_seed"] for r in records}) >= 2


def test_workers_opening_an_empty_database_at_once_all_get_the_storage():
    """Several processes creating Optuna's schema in a new database race (PostgreSQL: a unique
    violation on CREATE TYPE); each must still open the storage."""
    import sqlalchemy

    from nas.search._storage import normalize_url

    url = postgres_url()
    database = f"nas_race_{uuid.uuid4().hex[:12]}"
    admin = sqlalchemy.create_engine(normalize_url(url), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sqlalchemy.text(f"CREATE DATABASE {database}"))
    try:
        fresh = url.rsplit("/", 1)[0] + "/" + database
        script = ("import sys\nfrom nas.search._storage import open_storage\n"
                  "open_storage(sys.argv[1], heartbeat=1)\nprint('opened')\n")
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        processes = [subprocess.Popen([sys.executable, "-c", script, fresh], env=env, text=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                     for _ in range(4)]
        for process in processes:
            out, err = process.communicate(timeout=120)
            assert process.returncode == 0 and out.strip() == "opened", err
    finally:
        with admin.connect() as connection:
            connection.execute(sqlalchemy.text(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)"))
        admin.dispose()
