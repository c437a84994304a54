"""The search engine end to end: budget, seeds, constraints, dedup, workers, kill and resume.

Trials train tiny CIFAR ResNets on 200 digits for one epoch on one thread, so each takes about
a second.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from nas.search import best_trials, load_config, read_trials, run_search

ROOT = Path(__file__).resolve().parents[1]
GENOTYPE = ROOT / "genotypes" / "search" / "resnet_cifar.yaml"
NB201_TABLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "nasbench201" / "nb201_cifar.csv"


def tiny_config(tmp_path: Path, name: str = "tiny", **overrides) -> Path:
    """A run config of tiny ResNets on a digits subset; returns its path."""
    data = {
        "name": name,
        "space": {
            "genotype": str(GENOTYPE),
            "params": {"widths": [4, 8, 8], "depths": [1, 1, 1]},
            "choices": {
                "block": {"choices": ["cifar_basic", "basic_se"]},
                "depth": {"param": "depths", "per_stage": True, "int": [1, 2]},
                "stage3.width": {"param": "widths[2]", "choices": [8, 16]},
            },
            "seeds": {"small": {}, "deeper": {"depths": [2, 1, 1]}},
        },
        "dataset": {"name": "digits", "subset": 200, "val_subset": 100},
        "train": {"epochs": 1, "batch_size": 50, "lr": 0.05, "device": "cpu"},
        "sampler": "random",
        "trials": 4,
        "threads": 1,
        "seed": 0,
    }
    for key, value in overrides.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def nas_cli(*args: str, cwd: Path) -> subprocess.Popen:
    """``nas ARGS`` in its own session, with SIGINT handled as in a terminal even when this
    process was started with it ignored (as background jobs of a script are)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-m", "nas", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def wait_for_finished_trials(process: subprocess.Popen, run_dir: Path, count: int) -> None:
    """Wait (at most 240 s) until ``count`` trials of the running search have finished."""
    deadline = time.time() + 240
    while time.time() < deadline and len(list(run_dir.glob("trials/*/metrics.json"))) < count:
        time.sleep(0.2)
        assert process.poll() is None, process.stderr.read()


def states(run_dir: Path) -> list[tuple[int, str, str]]:
    return [(r["trial"], r["state"], r["status"]) for r in read_trials(run_dir)]


def test_seeds_first_then_budget(tmp_path):
    summary = run_search(tiny_config(tmp_path), runs_dir=tmp_path / "runs", progress=False)
    records = read_trials(summary.run_dir)
    assert [r["trial"] for r in records] == [0, 1, 2, 3]
    assert [r["seed"] for r in records[:2]] == ["small", "deeper"]
    assert records[0]["genotype"]["params"]["depths"] == [1, 1, 1]
    assert records[1]["genotype"]["params"]["depths"] == [2, 1, 1]
    assert records[1]["params"]["stage1.depth"] == 2
    assert sum(summary.counts.values()) == 4
    for r in records:
        folder = summary.run_dir / "trials" / f"{r['trial']:04d}"
        assert (folder / "genotype.yaml").is_file() and (folder / "log.txt").is_file()
        if r["state"] == "complete":
            assert 0 <= r["objectives"]["val_accuracy"] <= 1
    assert (summary.run_dir / "config.yaml").is_file() and (summary.run_dir / "journal.log").is_file()
    run, best = best_trials(summary.run_dir)
    assert run["objectives"] == ["val_accuracy"] and len(best) == 1
    # The frozen config reloads on its own.
    frozen = yaml.safe_load((summary.run_dir / "config.yaml").read_text())
    assert frozen["space"]["genotype"] == "space_genotype.yaml"


def test_constraints_prune_without_training(tmp_path):
    config = tiny_config(tmp_path, trials=3)
    data = yaml.safe_load(config.read_text())
    data["space"]["constraints"] = {"params": {"max": 100}}
    data["sampler"] = {"name": "random", "reject_infeasible": False}
    config.write_text(yaml.safe_dump(data))
    summary = run_search(config, runs_dir=tmp_path / "runs", progress=False)
    records = read_trials(summary.run_dir)
    assert [r["status"] for r in records] == ["constraint"] * 3
    assert all(r["state"] == "pruned" and "params" in r["end_reason"] for r in records)
    # epochs == 0: nothing was trained (wall time is no evidence on a shared machine)
    assert all(r["epochs"] == 0 and r["wall_time"] < 60 for r in records)


def test_a_network_whose_output_ignores_its_input_is_not_trained(tmp_path):
    genotype = tmp_path / "gate.yaml"
    genotype.write_text("""\
input: [1, 8, 8]
params: {gate: identity, classes: 10}
network:
  a: conv(4) <- in
  b: gate <- a
  out: seq(relu, gap, linear(classes)) <- b
""")
    space = {"genotype": str(genotype), "choices": {"gate": {"choices": ["identity", "zero"]}},
             "seeds": {"open": {"gate": "identity"}, "closed": {"gate": "zero"}}}
    summary = run_search(tiny_config(tmp_path, space=space, trials=2), runs_dir=tmp_path / "runs", progress=False)
    opened, closed = read_trials(summary.run_dir)
    assert opened["status"] == "completed" and opened["epochs"] == 1
    assert closed["state"] == "pruned" and closed["status"] == "constraint" and closed["epochs"] == 0
    assert "does not depend on the input" in closed["end_reason"]


def test_statically_infeasible_candidates_are_resampled_not_spent(tmp_path):
    # Only the all-depth-1, stage-3-width-8 networks fit under the ceiling (the seed "small"
    # with either block): 2 of the 32 points. Every trial trains or reuses a twin; none is
    # spent on the constraint, and the rejected proposals are counted in the records.
    from nas.analysis import analyze
    from nas.search._proxy import fit_to_data
    from nas.search._space import parse_space

    config = tiny_config(tmp_path, trials=4)
    data = yaml.safe_load(config.read_text())
    space = parse_space({**data["space"], "seeds": {}}, file=str(config))
    big = space.make_genotype({"block": "basic_se"})
    ceiling = analyze(fit_to_data(big, (1, 8, 8), 10, 1.0)).macs
    data["space"]["constraints"] = {"macs": {"max": ceiling}}
    data["space"]["seeds"] = {"small": {}}
    config.write_text(yaml.safe_dump(data))
    summary = run_search(config, runs_dir=tmp_path / "runs", progress=False)
    records = read_trials(summary.run_dir)
    assert len(records) == 4 and all(r["state"] == "complete" for r in records)
    assert all(r["static"] is None or r["static"]["macs"] <= ceiling for r in records)
    assert records[0]["rejected"] == 0  # the seed is never changed
    assert sum(r["rejected"] for r in records) > 0


def test_isomorphic_genotypes_are_not_trained_twice(tmp_path):
    # `classes` is replaced by the dataset's class count, so both seeds build the same network.
    config = tiny_config(tmp_path, trials=2)
    data = yaml.safe_load(config.read_text())
    data["space"]["choices"] = {"classes": {"choices": [10, 12]}}
    data["space"]["seeds"] = {"a": {"classes": 10}, "b": {"classes": 12}}
    config.write_text(yaml.safe_dump(data))
    summary = run_search(config, runs_dir=tmp_path / "runs", progress=False)
    first, second = read_trials(summary.run_dir)
    assert first["status"] == "completed" and first["epochs"] == 1
    assert second["status"] == "duplicate" and second["duplicate_of"] == 0
    assert second["epochs"] == 0 and second["values"] == first["values"]
    assert second["genotype"]["hash"] == first["genotype"]["hash"]


def test_a_worker_stops_when_its_trials_only_repeat_evaluated_candidates(tmp_path, capsys):
    # A space of one network and a timeout alone: every trial after the first reused its result,
    # some 30 a second, until the timeout (500 trial folders in 15 s; a timeout of a day, a
    # million). The worker stops after 100 of them in a row (MAX_DUPLICATES).
    config = tiny_config(tmp_path, trials=None, timeout=30)
    data = yaml.safe_load(config.read_text())
    data["space"]["choices"] = {"block": {"choices": ["cifar_basic"]}}
    data["space"]["seeds"] = {}
    config.write_text(yaml.safe_dump(data))
    summary = run_search(config, runs_dir=tmp_path / "runs", progress=False)
    records = read_trials(summary.run_dir)
    assert len(records) == 1 + 100
    assert [r["status"] for r in records[1:]] == ["duplicate"] * 100
    assert "the space looks exhausted" in capsys.readouterr().err


BLOWUP = """\
name: blowup
input: [1, 8, 8]
params: {width: 4, classes: 10}
network:
  - conv(width, k=3, p=1)
  - scale(1.0e15)
  - scale(1.0e15)
  - scale(1.0e15)
  - gap
  - linear(classes)
"""


def test_failing_trials_are_recorded_and_the_search_goes_on(tmp_path):
    # A NaN loss (activations that overflow float32) fails the trial; the budget is still
    # spent. (A huge learning rate is a config error now: lr is at most 10.)
    (tmp_path / "blowup.yaml").write_text(BLOWUP)
    space = {"genotype": str(tmp_path / "blowup.yaml"), "choices": {"width": {"choices": [4, 8]}},
             "seeds": {"four": {}}}
    config = tiny_config(tmp_path, trials=2, space=space,
                         train={"epochs": 1, "batch_size": 50, "device": "cpu"})
    summary = run_search(config, runs_dir=tmp_path / "runs", progress=False)
    records = read_trials(summary.run_dir)
    assert len(records) == 2
    assert {r["status"] for r in records} == {"nan_loss"}
    assert all(r["state"] == "fail" and "NaN" in r["end_reason"] for r in records)


def test_a_batch_the_machine_cannot_hold_fails_its_trial_before_training(tmp_path, monkeypatch):
    # on the CPU the out-of-memory killer ended the search (and met the candidate again on
    # --resume); the estimate is checked against the memory the kernel reports available
    monkeypatch.setattr("nas.train._memory.available_memory", lambda: 100_000)
    summary = run_search(tiny_config(tmp_path, trials=2), runs_dir=tmp_path / "runs", progress=False)
    records = read_trials(summary.run_dir)
    assert len(records) == 2 and {r["status"] for r in records} == {"oom"}
    assert all(r["state"] == "fail" and "training at batch size 50 needs at least" in r["end_reason"]
               and "lower the batch size" in r["end_reason"] and not r.get("epochs") for r in records)


def test_two_workers_share_one_journal(tmp_path):
    config = tiny_config(tmp_path, trials=6, workers=2)
    summary = run_search(config, runs_dir=tmp_path / "runs", progress=False)
    records = read_trials(summary.run_dir)
    numbers = [r["trial"] for r in records]
    assert numbers == sorted(set(numbers)) and len(numbers) == 6
    assert sum(summary.counts.values()) == 6
    assert len({r["worker"] for r in records}) == 2


def test_sigkill_and_resume(tmp_path):
    # A trial killed before its worker was written (a journal writes it with the reservation)
    # is re-queued on --resume after three missed beats: 3 s here, not the default 30. One
    # search process runs at a time, so no live trial can be taken for dead.
    config = tiny_config(tmp_path, name="killed", trials=8, heartbeat=1)
    runs = tmp_path / "runs"
    run_dir = runs / "killed"
    process = nas_cli("search", str(config), "--runs", str(runs), cwd=tmp_path)
    wait_for_finished_trials(process, run_dir, 2)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    before = {p.parent.name: p.read_text() for p in run_dir.glob("trials/*/metrics.json")}
    done_before = {json.loads(t)["trial"] for t in before.values() if json.loads(t)["state"] == "complete"}
    assert len(before) >= 2

    process = nas_cli("search", str(config), "--runs", str(runs), "--resume", cwd=tmp_path)
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    assert "run folder:" in out
    records = read_trials(run_dir)
    counted = [r for r in records if r["counted"]]
    assert len(counted) == 8
    # No finished trial was lost or rewritten.
    for folder, text in before.items():
        assert (run_dir / "trials" / folder / "metrics.json").read_text() == text
    # Each trial that was interrupted was run again, once.
    interrupted = [r for r in records if not r["counted"]]
    retried = [r["retry_of"] for r in counted if r["retry_of"] is not None]
    assert sorted(retried) == sorted(r["trial"] for r in interrupted)
    assert not done_before & set(retried)


class _Killed(BaseException):
    """A worker's death, as a SIGKILL would leave the run (nothing after it runs)."""


@pytest.mark.parametrize("told", [False, True], ids=["before_its_file", "after_its_file"])
def test_a_worker_killed_after_storing_its_result_loses_nothing(tmp_path, monkeypatch, told):
    # Trial 1's result reaches the storage; the worker dies before (or just after) writing
    # metrics.json, always before telling Optuna. The resume finishes trial 1 with the stored
    # result (no retry, its file written once) instead of re-running it.
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    from nas.search._evaluate import TrialRecord
    from nas.search._storage import WORKER_ATTR

    save = TrialRecord.save

    def dying_save(record, run_dir):
        if record.trial == 1:
            if told:
                save(record, run_dir)
            raise _Killed
        save(record, run_dir)

    config = tiny_config(tmp_path, name="dies", trials=3)
    runs = tmp_path / "runs"
    with monkeypatch.context() as patch:
        patch.setattr(TrialRecord, "save", dying_save)
        with pytest.raises(_Killed):
            run_search(config, runs_dir=runs, progress=False)
    run_dir = runs / "dies"
    storage = JournalStorage(JournalFileBackend(str(run_dir / "journal.log")))
    (trial,) = optuna.load_study(study_name="dies", storage=storage).get_trials(
        states=[optuna.trial.TrialState.RUNNING])
    stored = trial.user_attrs["nas.record"]
    assert trial.number == 1 and stored["state"] == "complete"
    dead = subprocess.Popen([sys.executable, "-c", ""])
    dead.wait()  # the worker's process is gone
    host = trial.user_attrs[WORKER_ATTR].rpartition(":")[0]
    storage.set_trial_user_attr(trial._trial_id, WORKER_ATTR, f"{host}:{dead.pid}")
    metrics = run_dir / "trials" / "0001" / "metrics.json"
    written = metrics.read_text() if told else None
    assert metrics.exists() == told

    run_search(config, runs_dir=runs, resume=True, progress=False)
    records = read_trials(run_dir)
    assert [(r["trial"], r["state"], r["counted"]) for r in records] == [
        (0, "complete", True), (1, "complete", True), (2, "complete", True)]
    assert records[1]["values"] == stored["values"] and records[1]["retry_of"] is None
    assert json.loads(metrics.read_text()) == stored
    if told:
        assert metrics.read_text() == written  # left as it was


def test_ctrl_c_keeps_finished_trials_and_says_how_to_resume(tmp_path):
    config = tiny_config(tmp_path, name="stopped", trials=8, workers=2)
    runs = tmp_path / "runs"
    run_dir = runs / "stopped"
    process = nas_cli("search", str(config), "--runs", str(runs), cwd=tmp_path)
    wait_for_finished_trials(process, run_dir, 2)
    os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal sends
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130
    assert err.strip().splitlines()[-1] == (
        f"interrupted: finished trials are kept; continue with `nas search {config} --resume`"
    )
    finished = {p.parent.name: p.read_text() for p in run_dir.glob("trials/*/metrics.json")}
    # The resume, as the hint says, in this process (the CLI's --resume: test_sigkill_and_resume).
    run_search(config, runs_dir=runs, resume=True, progress=False)
    assert len([r for r in read_trials(run_dir) if r["counted"]]) == 8
    for folder, text in finished.items():
        assert (run_dir / "trials" / folder / "metrics.json").read_text() == text


def test_resume_needs_the_same_config(tmp_path):
    config = tiny_config(tmp_path, trials=1)
    run_search(config, runs_dir=tmp_path / "runs", progress=False)
    from nas.errors import ConfigError

    with pytest.raises(ConfigError, match="exists"):
        run_search(config, runs_dir=tmp_path / "runs", progress=False)
    changed = tmp_path / "changed.yaml"
    changed.write_text(config.read_text().replace("sampler: random", "sampler: tpe"))
    with pytest.raises(ConfigError) as error:
        run_search(changed, runs_dir=tmp_path / "runs", resume=True, progress=False)
    assert error.value.path == "sampler"
    # A larger budget is a valid resume.
    summary = run_search(config, runs_dir=tmp_path / "runs", resume=True, trials=2, progress=False)
    assert sum(summary.counts.values()) == 2


def test_halving_at_the_last_epoch_prunes_no_finished_trial(tmp_path):
    """With epochs: 1 halving's default rung is the last epoch: the trials below the cut had
    finished their training, so they are complete (they were pruned, then said to be by the
    log while completed)."""
    config = tiny_config(tmp_path, trials=4, pruner={"name": "halving", "reduction": 2, "min_trials": 2},
                         train={"epochs": 1, "batch_size": 50, "lr": 0.05, "device": "cpu"})
    summary = run_search(config, runs_dir=tmp_path / "runs", progress=False)
    records = read_trials(summary.run_dir)
    assert [r["status"] for r in records] == ["completed"] * 4
    assert not [p for p in summary.run_dir.glob("trials/*/log.txt") if "halving:" in p.read_text()]


def test_multi_objective_halving_and_pareto(tmp_path):
    config = tiny_config(tmp_path, trials=4, objectives=["val_accuracy", "params"],
                         sampler="nsga2", pruner={"name": "halving", "rungs": [1], "reduction": 2,
                                                  "min_trials": 2},
                         train={"epochs": 2, "batch_size": 50, "lr": 0.05, "device": "cpu"})
    summary = run_search(config, runs_dir=tmp_path / "runs", progress=False)
    records = read_trials(summary.run_dir)
    assert len(records) == 4
    assert any(r["status"] == "pruned" for r in records)  # halving stops someone at epoch 1
    assert summary.best and all(set(b["objectives"]) == {"val_accuracy", "params"} for b in summary.best)


@pytest.mark.skipif(not NB201_TABLE.is_file(), reason="NAS-Bench-201 table not present")
def test_nb201_space_runs_against_the_table(tmp_path):
    config = load_config(ROOT / "search_spaces" / "nb201.yaml")
    summary = run_search(config, runs_dir=tmp_path / "runs", trials=30, progress=False)
    records = read_trials(summary.run_dir)
    assert len(records) == 30
    assert [r["seed"] for r in records[:3]] == ["resnet_basic", "resnet_bottleneck", "all_conv3x3"]
    assert all(r["state"] == "complete" for r in records)
    # The shipped config follows the published protocol: optimise validation, report test.
    assert all(r["objectives"]["table_accuracy"] == r["table"]["cifar10_valid"] for r in records)
    assert all(set(r["table"]) == {"cifar10_valid", "cifar10_test"} for r in records)
    assert all(50 < r["table"]["cifar10_test"] < 95 for r in records if r["genotype"]["cell_key"] != "0")
    best = summary.best[0]
    assert best["objectives"]["table_accuracy"] == max(r["table"]["cifar10_valid"] for r in records)
    assert best["table"]["cifar10_valid"] >= 91.418  # top 0.1% of the benchmark by validation


def test_invalid_genotype_fails_its_trial_only(tmp_path, monkeypatch):
    config = tiny_config(tmp_path, trials=2)
    data = yaml.safe_load(config.read_text())
    data["space"]["choices"] = {"stage3.width": {"param": "widths[2]", "choices": [0, 8]}}
    data["space"]["seeds"] = {"zero": {"widths": [4, 8, 0]}, "ok": {}}
    config.write_text(yaml.safe_dump(data))
    from nas.errors import ConfigError

    with pytest.raises(ConfigError, match="space.seeds.zero"):  # a seed must expand
        run_search(config, runs_dir=tmp_path / "runs", progress=False)
    del data["space"]["seeds"]["zero"]
    data["space"]["seeds"] = {"ok": {}}
    data["sampler"] = "random"
    data["trials"] = 6
    config.write_text(yaml.safe_dump(data))
    # Pin the sampler's seed to one whose random draws pick width 0.
    from nas.search import _workers
    monkeypatch.setattr(_workers, "worker_seed", lambda config, **_: 0)
    summary = run_search(config, runs_dir=tmp_path / "runs", name="again", progress=False)
    records = read_trials(summary.run_dir)
    assert len(records) == 6
    bad = [r for r in records if r["params"].get("stage3.width") == 0]
    assert bad and all(r["state"] == "fail" and r["status"] == "invalid_genotype" for r in bad)
    assert "must be an integer >= 1" in bad[0]["end_reason"]


def test_a_worker_stops_after_internal_errors_in_a_row(tmp_path, monkeypatch):
    # a bug that fails every trial at once must not spin through the budget or the timeout
    from nas.errors import NasError
    from nas.search import _evaluate, _workers

    def broken(self):
        raise RuntimeError("a bug in every trial")

    monkeypatch.setattr(_evaluate._Attempt, "run", broken)
    config = tiny_config(tmp_path, trials=50, workers=1)
    with pytest.raises(NasError, match=f"{_workers.MAX_INTERNAL_ERRORS} trials in a row ended in an internal "
                                       "error, the last RuntimeError: a bug in every trial"):
        run_search(config, runs_dir=tmp_path / "runs", progress=False)
    records = read_trials(tmp_path / "runs" / "tiny")
    assert len(records) == _workers.MAX_INTERNAL_ERRORS
    assert all(r["status"] == "error" and "Traceback" in r["traceback"] for r in records)


def test_a_multi_objective_study_with_pruned_trials_keeps_sampling():
    """Halving prunes in a multi-objective study too. A pruned trial's accuracies must not be
    intermediate values there, or Optuna's TPE fails on every later trial ("A single direction
    cannot be retrieved from a multi-objective study"); halving still reads them, and a
    completed trial gets them as intermediate values for dashboards."""
    import optuna
    from optuna.trial import TrialState

    from nas.search._storage import report_curve, report_value, rung_values

    study = optuna.create_study(directions=["maximize", "minimize"],
                                sampler=optuna.samplers.TPESampler(n_startup_trials=2, seed=0))
    for number in range(6):
        trial = study.ask()
        x = trial.suggest_float("x", 0, 1)
        report_value(study, trial, 1, x)
        if number % 2:
            study.tell(trial, state=TrialState.PRUNED)
        else:
            report_curve(study, trial, {1: x})
            study.tell(trial, [x, 1 - x])
    trial = study.ask()
    trial.suggest_float("x", 0, 1)  # TPE ranks the pruned trials here
    done = study.get_trials()[:6]
    assert all(not t.intermediate_values for t in done if t.state == TrialState.PRUNED)
    assert all(t.intermediate_values == {1: t.params["x"]} for t in done if t.state == TrialState.COMPLETE)
    assert sorted(rung_values(study, 1, trial.number)) == sorted(t.params["x"] for t in done)


def test_the_dashboard_sees_what_we_know(tmp_path):
    """What optuna-dashboard shows, read with Optuna's API from the run's journal: objective
    names, per-epoch intermediate values (no pruner, two objectives), the dashboard's user
    attributes, and duplicates and constraint rejections marked."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend
    from optuna.trial import TrialState

    config = tiny_config(tmp_path, name="dash", trials=3, objectives=["val_accuracy", "latency"],
                         latency={"batch_size": 1, "repeats": 2, "warmup": 1},
                         train={"epochs": 2, "batch_size": 50, "lr": 0.05, "device": "cpu"})
    data = yaml.safe_load(config.read_text())
    # `classes` is replaced by the dataset's: seeds a and b are one network; c is over the ceiling.
    data["space"]["choices"] = {"classes": {"choices": [10, 12]}, "width": {"param": "widths[2]", "choices": [8, 64]}}
    data["space"]["seeds"] = {"a": {"classes": 10}, "b": {"classes": 12}, "c": {"widths": [4, 8, 64]}}
    data["space"]["constraints"] = {"params": {"max": 5000}}
    data["sampler"] = {"name": "random", "reject_infeasible": False}
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    summary = run_search(config, runs_dir=tmp_path / "runs", progress=False)

    storage = JournalStorage(JournalFileBackend(str(summary.run_dir / "journal.log")))
    study = optuna.load_study(study_name="dash", storage=storage)
    assert study.metric_names == ["val_accuracy", "latency"]
    trained, duplicate, rejected = study.get_trials()
    record = trained.user_attrs["nas.record"]
    assert trained.state == TrialState.COMPLETE and record["epochs"] == 2
    assert trained.intermediate_values == {h["epoch"]: h["val_accuracy"] for h in record["history"]}
    assert sorted(trained.intermediate_values) == [1, 2]
    attrs = trained.user_attrs
    assert attrs["status"] == "completed" and attrs["params"] == record["static"]["params"] > 0
    assert attrs["macs"] == record["static"]["macs"] > 0
    assert attrs["latency_s"] == record["latency_s"] > 0
    assert attrs["genotype_hash"] == record["genotype"]["hash"] and len(attrs["genotype_hash"]) == 32
    assert attrs["genotype"].startswith(record["genotype"]["name"] + "(") and "widths=[4, 8, 8]" in attrs["genotype"]
    assert duplicate.state == TrialState.COMPLETE and duplicate.values == trained.values
    assert duplicate.user_attrs["status"] == "duplicate" and duplicate.user_attrs["duplicate_of"] == 0
    assert duplicate.user_attrs["genotype_hash"] == attrs["genotype_hash"]
    assert rejected.state == TrialState.PRUNED and rejected.user_attrs["status"] == "constraint"
    assert "params" in rejected.user_attrs["end_reason"] and rejected.user_attrs["params"] > 5000
    assert not rejected.intermediate_values


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")
@pytest.mark.parametrize("kind", ["journal", "sqlite"])
def test_user_attributes_are_set_in_one_write(tmp_path, kind, monkeypatch):
    import optuna

    from nas.search._storage import open_storage, set_user_attrs

    url = str(tmp_path / "journal.log") if kind == "journal" else f"sqlite:///{tmp_path / 'db.sqlite'}"
    study = optuna.create_study(storage=open_storage(url), directions=["maximize", "minimize"])
    trial = study.ask()
    appends = []
    if kind == "journal":
        backend = study._storage._backend
        monkeypatch.setattr(backend, "append_logs", lambda logs, write=backend.append_logs: (appends.append(logs), write(logs)))

    def one_by_one(*args, **kwargs):
        raise AssertionError("set one attribute at a time")

    monkeypatch.setattr(optuna.storages.RDBStorage, "set_trial_user_attr", one_by_one)
    set_user_attrs(study, trial, {"params": 12, "genotype": "net(width=4)", "nas.record": {"a": [1]}})
    if kind == "journal":
        assert len(appends) == 1 and len(appends[0]) == 3  # one append (lock, fsync), a record per key
    assert trial.user_attrs["params"] == 12
    stored = optuna.load_study(study_name=study.study_name, storage=open_storage(url)).trials[0]
    assert stored.user_attrs == {"params": 12, "genotype": "net(width=4)", "nas.record": {"a": [1]}}


@pytest.mark.skipif(not NB201_TABLE.is_file(), reason="NAS-Bench-201 table not present")
def test_ctrl_c_after_a_trial_finished_keeps_its_result(tmp_path, monkeypatch):
    """A Ctrl-C that lands after a trial's metrics.json is written but before Optuna is told
    (here: while its heartbeat thread is joined) tells the result; the trial is not re-run."""
    import contextlib

    from nas.search import _workers

    heartbeat = _workers._heartbeat

    @contextlib.contextmanager
    def interrupted_on_exit(*args, **kwargs):
        with heartbeat(*args, **kwargs):
            yield
        raise KeyboardInterrupt

    monkeypatch.setattr(_workers, "_heartbeat", interrupted_on_exit)
    with pytest.raises(KeyboardInterrupt):
        run_search(load_config(ROOT / "search_spaces" / "nb201.yaml"), runs_dir=tmp_path / "runs",
                   trials=3, progress=False)
    monkeypatch.undo()
    (record,) = read_trials(tmp_path / "runs" / "nb201")
    assert record["state"] == "complete" and record["counted"]
    summary = run_search(load_config(ROOT / "search_spaces" / "nb201.yaml"), runs_dir=tmp_path / "runs",
                         trials=3, resume=True, progress=False)
    records = read_trials(summary.run_dir)
    assert [r["state"] for r in records] == ["complete"] * 3  # trial 0 kept, none interrupted
    assert records[0] == record
