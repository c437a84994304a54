"""`nas retrain`: the top architectures of a tiny search and its seed, several training seeds,
scored on a test split the search never saw; resumes after SIGKILL without retraining
finished models.

The data is scikit-learn's digits saved as an .npz with a test split (1,497 training and
300 test images), so the search validates on a split of the training images.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from nas.cli import main as nas
from nas.errors import ConfigError
from nas.retrain import kendall_tau, retrain
from nas.search import run_search
from tests.test_deploy import tiny_config

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def digits_npz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.rint(bunch.images * (255 / 16)).astype(np.uint8)
    labels = bunch.target.astype(np.int64)
    path = tmp_path_factory.mktemp("npz") / "digits.npz"
    np.savez(path, x_train=images[300:], y_train=labels[300:], x_test=images[:300], y_test=labels[:300])
    return path


def search(tmp_path: Path, npz: Path, name: str) -> Path:
    config = tiny_config(
        tmp_path, name, trials=5, keep_weights=False,
        dataset={"name": "npz", "path": str(npz), "subset": 300, "val_subset": 150},
        train={"epochs": 1, "batch_size": 50, "lr": 0.05, "device": "cpu"},
        retrain={"top": 2, "seeds": 2, "epochs": 2, "subset": 400})
    data = yaml.safe_load(config.read_text())
    data["space"]["choices"]["depth"] = {"param": "depths", "per_stage": True, "int": [1, 2]}
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    return run_search(config, runs_dir=tmp_path / "runs", progress=False).run_dir


def test_kendall_tau() -> None:
    assert kendall_tau([1, 2, 3], [10, 20, 30]) == 1.0
    assert kendall_tau([1, 2, 3], [3, 2, 1]) == -1.0
    assert kendall_tau([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(2 / 3)
    assert kendall_tau([1, 1, 1], [1, 2, 3]) is None and kendall_tau([1], [1]) is None
    for y in ([1, 2], [1, 2, 3, 4]):  # an IndexError, or the extra values ignored
        with pytest.raises(ValueError, match=f"^x and y must be equally long, got 3 and {len(y)}$"):
            kendall_tau([1, 2, 3], y)


def test_retrain_table_has_mean_and_std_per_architecture(tmp_path: Path, digits_npz: Path) -> None:
    run_dir = search(tmp_path, digits_npz, "tiny")
    summary = retrain(run_dir)
    table = summary.table
    assert list(table["selected_by"]) == ["top", "top", "seed"]
    assert list(table["label"])[-1] == "small"
    assert (table["seeds"] == 2).all() and (table["failed"] == 0).all()
    for _, row in table.iterrows():
        accs = row["test_accuracies"]
        assert len(accs) == 2 and all(0 <= a <= 1 for a in accs)
        assert row["test_mean"] == pytest.approx(np.mean(accs))
        assert row["test_std"] == pytest.approx(np.std(accs, ddof=1))
        assert row["params"] > 0 and row["macs"] > 0 and row["latency_ms"] > 0
    plan = json.loads((summary.out / "plan.json").read_text())
    assert plan["train_images"] == 400 and plan["test_images"] == 300 and plan["epochs"] == 2
    job = summary.out / table["label"][0] / "seed1"
    result = json.loads((job / "test.json").read_text())
    assert result["split"] == "test" and result["training_seed"] == 1 and result["epochs"] == 2
    assert result["test_accuracy"] == result["history"][-1]["val_accuracy"]  # last epoch, not best
    assert (job / "model.onnx").is_file() and (job / "model.json").is_file()
    assert (summary.out / "results.csv").is_file() and (summary.out / "test_accuracy_vs_macs.png").is_file()
    assert summary.trained and not summary.skipped
    # A result of another genotype (a stale or foreign file) is not taken as finished.
    stale = json.loads((job / "test.json").read_text())
    (job / "test.json").write_text(json.dumps(dict(stale, hash="0" * 32)))
    again = retrain(run_dir)
    assert again.trained == [(table["label"][0], 1)] and len(again.skipped) == 5
    # So is one of this genotype with a damaged field (it was the catch-all's KeyError).
    good = json.loads((job / "test.json").read_text())
    (job / "test.json").write_text(json.dumps({k: v for k, v in good.items() if k != "macs"}))
    again = retrain(run_dir)
    assert again.trained == [(table["label"][0], 1)] and len(again.skipped) == 5
    # nas analyze puts the retraining into report.md.
    assert nas(["analyze", str(run_dir)]) == 0
    report = (run_dir / "report.md").read_text()
    assert "## Retraining (test split)" in report and "Kendall's tau" in report


def test_a_batch_the_machine_cannot_hold_fails_its_job_before_training(tmp_path: Path, digits_npz: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    # on the CPU the out-of-memory killer would end the retrain; the job ends as oom instead
    run_dir = search(tmp_path, digits_npz, "tiny")
    monkeypatch.setattr("nas.train._memory.available_memory", lambda: 100_000)
    summary = retrain(run_dir)
    assert (summary.table["failed"] == 2).all()
    result = json.loads((summary.out / summary.table["label"][0] / "seed1" / "test.json").read_text())
    assert result["status"] == "oom" and result["epochs"] == 0 and result["test_accuracy"] is None
    assert result["reason"].startswith("training at batch size") and "lower the batch size" in result["reason"]


def test_retrain_out_that_is_not_a_retrain_folder_is_refused(tmp_path: Path, digits_npz: Path,
                                                             capsys: pytest.CaptureFixture) -> None:
    # --out RUN wrote results.csv over the search's (the report step writes it too)
    run_dir = search(tmp_path, digits_npz, "outs")
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    for out, problem in ((run_dir, "must not be the run folder"), (tmp_path, "must not be the run folder"),
                         (run_dir / "trials" / "x", "must not be the run folder"),
                         (other, "holds files that are not a retraining's")):
        assert nas(["retrain", str(run_dir), "--epochs", "1", "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"--out: {out}: {problem}"), err
    (tmp_path / "loop1").symlink_to(tmp_path / "loop2")
    (tmp_path / "loop2").symlink_to(tmp_path / "loop1")
    assert nas(["retrain", str(run_dir), "--epochs", "1", "--out", str(tmp_path / "loop1" / "x")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"--out: {str(tmp_path / 'loop1' / 'x')!r}: symlink loop"], err
    # RUN/retrain, the default, planted as a link: the retraining was written at its target
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (run_dir / "retrain").symlink_to(elsewhere)
    assert nas(["retrain", str(run_dir), "--epochs", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"{run_dir / 'retrain'}: a symbolic link (a run folder's files are never written "
                   "through one)"], err
    assert not any(elsewhere.iterdir())
    (run_dir / "retrain").unlink()
    assert {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in other.iterdir()) == ["notes.txt"]


def test_a_retrain_crop_padding_wider_than_the_images_is_refused_before_training(
        tmp_path: Path, digits_npz: Path, capsys: pytest.CaptureFixture) -> None:
    # every job failed in training, after the selection and the plan were written
    config = tiny_config(tmp_path, "pad", trials=1, keep_weights=False,
                         dataset={"name": "npz", "path": str(digits_npz), "subset": 100, "val_subset": 50},
                         train={"epochs": 1, "batch_size": 50, "device": "cpu"},
                         retrain={"top": 1, "seeds": 1, "epochs": 1, "train": {"crop_padding": 9}})
    run_dir = run_search(config, runs_dir=tmp_path / "runs", progress=False).run_dir
    capsys.readouterr()
    assert nas(["retrain", str(run_dir)]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"{run_dir / 'config.yaml'}: retrain.train.crop_padding: must be an integer in [0, 8], got 9"]
    assert not (run_dir / "retrain").exists()


def test_retrain_needs_a_test_split(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run_dir = run_search(tiny_config(tmp_path, "digits", trials=1), runs_dir=tmp_path / "runs",
                         progress=False).run_dir
    assert nas(["retrain", str(run_dir), "--epochs", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "has no test split" in err
    assert err.startswith(f"{run_dir / 'config.yaml'}: dataset: "), err


def test_retrain_resumes_after_sigkill_without_retraining_finished_models(tmp_path: Path,
                                                                          digits_npz: Path) -> None:
    run_dir = search(tmp_path, digits_npz, "killed")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    # One training seed: three jobs (the top two and the seed) for two processes, enough for a
    # kill after the first finished job to leave finished and unfinished jobs.
    args = [sys.executable, "-m", "nas", "retrain", str(run_dir), "--epochs", "2", "--seeds", "1",
            "--threads", "1", "--workers", "2"]
    process = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.time() + 300  # hang guards: generous, the machine may be busy
    while time.time() < deadline and not list(run_dir.glob("retrain/*/seed*/test.json")):
        assert process.poll() is None, process.stderr.read()
        time.sleep(0.1)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    finished = {p: p.read_text() for p in run_dir.glob("retrain/*/seed*/test.json")}
    assert 1 <= len(finished) < 3

    done = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    assert f"{len(finished)} already done" in done.stdout
    for path, text in finished.items():
        assert path.read_text() == text  # not retrained, not rewritten
    assert len(list(run_dir.glob("retrain/*/seed*/test.json"))) == 3
    assert done.stdout.count("test accuracy") == 3 - len(finished)  # each model trained once
    assert "Kendall's tau" in done.stdout


def test_grow_widens_to_the_largest_width_within_the_macs() -> None:
    import nas
    from nas.retrain import Candidate
    from nas.retrain._select import widen_to_macs
    from nas.scaling import scale

    resnet20 = nas.load_genotype(ROOT / "genotypes" / "search" / "resnet_cifar.yaml")  # its defaults
    budget = nas.analyze(resnet20).macs
    small = resnet20.with_params(depths=[1, 1, 3])
    found = widen_to_macs(Candidate("trial_0007", 7, None, small, 0.6, "top"), budget)
    assert found is not None and found.label == "trial_0007_grown" and found.selected_by == "grown"
    assert found.proxy_val_accuracy is None and found.trial == 7
    macs = nas.analyze(found.genotype).macs
    assert nas.analyze(small).macs < macs <= budget
    assert found.genotype.params["depths"] == (1, 1, 3)
    # no width multiplier on a grid gives a network within the budget with more MACs
    for step in range(101):
        wider = nas.analyze(scale(small, width=1 + step / 50)).macs
        assert wider > budget or wider <= macs
    # nothing to grow: already at the budget, or a genotype that declares no width
    assert widen_to_macs(Candidate("r", None, None, resnet20, None, "top"), budget) is None
    bare = nas.load_genotype(ROOT / "genotypes" / "alexnet.yaml")
    with pytest.raises(ConfigError, match="cannot grow bare: its genotype .* declares no width"):
        widen_to_macs(Candidate("bare", None, None, bare, None, "top"), 10 * nas.analyze(bare).macs)


def grow_run(tmp_path: Path, npz: Path, name: str, *, trials: int, top: int, stage1_widths: list[int],
             seed_widths: list[int]) -> Path:
    """A searched run retrained with ``grow``: stage 1's width searched over ``stage1_widths``
    (stages 2 and 3 at 8), one seed of ``seed_widths``."""
    config = tiny_config(
        tmp_path, name, trials=trials,
        dataset={"name": "npz", "path": str(npz), "subset": 300, "val_subset": 150},
        train={"epochs": 1, "batch_size": 50, "lr": 0.05, "device": "cpu"},
        retrain={"top": top, "seeds": 1, "epochs": 1, "subset": 300, "grow": True})
    data = yaml.safe_load(config.read_text())
    data["space"]["choices"] = {"stage1.width": {"param": "widths[0]", "choices": stage1_widths}}
    data["space"]["seeds"] = {"seed": {"widths": seed_widths}}
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    return run_search(config, runs_dir=tmp_path / "runs", progress=False).run_dir


def test_retrain_grow_adds_the_searched_architectures_widened_to_the_seed(tmp_path: Path,
                                                                          digits_npz: Path) -> None:
    # one searched point, [4, 8, 8], and the seed, the same but wider in stage 1
    run_dir = grow_run(tmp_path, digits_npz, "grow", trials=4, top=1, stage1_widths=[4, 16],
                       seed_widths=[16, 8, 8])
    table = retrain(run_dir).table
    assert list(table["selected_by"]) == ["top", "grown", "seed"]
    top, grown, seed = (row for _, row in table.iterrows())
    assert grown["label"] == f"{top['label']}_grown" and grown["proxy_val_accuracy"] != grown["proxy_val_accuracy"]
    assert top["macs"] < grown["macs"] <= seed["macs"] and grown["failed"] == 0
    assert "*grown*" in (run_dir / "retrain" / "retrain.md").read_text()


def test_retrain_grow_says_when_nothing_could_be_grown(tmp_path: Path, digits_npz: Path) -> None:
    # every searched point is at or over the seed's MACs: no grown row, and a line saying why
    run_dir = grow_run(tmp_path, digits_npz, "nogrow", trials=2, top=2, stage1_widths=[16, 32],
                       seed_widths=[16, 8, 8])
    lines: list[str] = []
    table = retrain(run_dir, log=lines.append).table
    assert "grown" not in set(table["selected_by"])
    assert "grow: no searched architecture widens within the seeds' MACs" in "\n".join(lines)


@pytest.mark.parametrize("retrain_key, message", [
    ({"grow": "yes"}, "retrain.grow: must be true or false, got 'yes'"),
    ({"top": 0}, "retrain.top: must be an integer from 1 to 1,000, got 0"),
    ({"seeds": 10**9}, "retrain.seeds: must be an integer from 1 to 1,000, got 1000000000"),
    ({"width_multiplier": 0}, "retrain.width_multiplier: must be a number in (0, 16], got 0"),
    ({"sedes": 2}, "retrain"),
])
def test_a_bad_retrain_key_is_named(retrain_key: dict, message: str) -> None:
    from nas.retrain import parse_retrain

    with pytest.raises(ConfigError) as error:
        parse_retrain(retrain_key, file="run.yaml")
    assert str(error.value).startswith("run.yaml: ") and message in str(error.value)
    assert "\n" not in str(error.value)


def test_a_narrow_network_grows_at_the_granularity_of_its_widths() -> None:
    # at a quarter of ResNet-20's widths (4/8/16), rounding to multiples of 8 (or 4) can only
    # double the first stage, past the seed's MACs: a narrow network rounds finer
    import nas
    from nas.retrain import Candidate
    from nas.retrain._select import widen_to_macs, width_divisor

    space = nas.load_genotype(ROOT / "genotypes" / "search" / "resnet_cifar.yaml")
    assert [width_divisor(space.with_params(widths=w)) for w in ([16, 32, 64], [24, 40, 80], [8, 16, 32],
                                                                 [4, 8, 16], [6, 12, 24], [3, 5, 7])] == [8, 8, 4, 2, 2, 1]
    seed = space.with_params(widths=[4, 8, 16])  # ResNet-20 at x0.25
    small = seed.with_params(depths=[1, 1, 2])
    found = widen_to_macs(Candidate("trial_0002", 2, None, small, 0.2, "top"), nas.analyze(seed).macs)
    assert found is not None and all(w % 2 == 0 for w in found.genotype.params["widths"])
    assert nas.analyze(small).macs < nas.analyze(found.genotype).macs <= nas.analyze(seed).macs


GOOD_RESULT = {"label": "a", "selected_by": "top", "trial": 3, "proxy_val_accuracy": 0.5,
               "test_accuracy": 0.75, "training_seed": 1, "params": 10, "macs": 20,
               "latency_s": 0.001, "hash": "h"}


@pytest.mark.parametrize("damage", [
    {"macs": None}, {"test_accuracy": "high"}, {"label": ["x"]}, {"latency_s": "fast"},
    {"training_seed": {}}, {"test_accuracy": float("inf")}, {"test_accuracy": 1.5},
    {"params": -5}, {"params": True}, {"trial": "3"}, {"latency_s": float("nan")},
    {"proxy_val_accuracy": "x"}, {"selected_by": 1},
], ids=repr)
def test_a_result_with_a_damaged_field_is_not_finished(tmp_path: Path, damage: dict) -> None:
    """A test.json of the right genotype whose fields are damaged is read as no result (the job
    is trained again), like an unreadable one, instead of breaking the summary."""
    from nas.retrain._run import _read_result

    (tmp_path / "test.json").write_text(json.dumps(GOOD_RESULT))
    assert _read_result(tmp_path, "h") == GOOD_RESULT
    record = {k: v for k, v in {**GOOD_RESULT, **damage}.items() if v is not None or k != "macs"}
    (tmp_path / "test.json").write_text(json.dumps(record))
    assert _read_result(tmp_path, "h") is None


def test_a_retrain_folder_of_another_run_is_refused_not_overwritten(tmp_path: Path) -> None:
    """--out holding another run's retraining of the same schedule: a label there that was
    another genotype is refused before anything is written (its finished jobs were deleted
    as stale and trained again, its results.csv replaced)."""
    from nas.retrain._run import _FIXED, _check_plan

    plan = {**{key: 1 for key in _FIXED},
            "architectures": [{"label": "small", "hash": "s"}, {"label": "trial_0002", "hash": "a"}]}
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    before = (tmp_path / "plan.json").read_text()
    _check_plan(tmp_path, plan)  # the same retraining again: resumed
    _check_plan(tmp_path, {**plan, "architectures": plan["architectures"][:1]})  # fewer: fine
    (tmp_path / "plan.json").write_text(before)
    other = {**plan, "architectures": [{"label": "small", "hash": "s"}, {"label": "trial_0002", "hash": "b"}]}
    with pytest.raises(ConfigError, match="^.*plan.json: architectures: .* retrained trial_0002 as another "
                                          "genotype .*use another --out$"):
        _check_plan(tmp_path, other)
    assert (tmp_path / "plan.json").read_text() == before
    (tmp_path / "plan.json").write_text(json.dumps({**plan, "architectures": [["x"], {"label": ["y"]}, 3]}))
    _check_plan(tmp_path, other)  # damaged entries name no label: nothing of it to keep


def test_a_job_another_retrain_holds_is_waited_for_not_left_out(tmp_path: Path) -> None:
    """Two nas retrain calls on one folder: the last pass waits for a job the other call is
    training and reads its result (the call that finished first printed and wrote a table
    without the other's jobs)."""
    import fcntl
    import threading
    from types import SimpleNamespace

    from nas.retrain._run import _read_result, _work

    job = tmp_path / "a" / "seed0"
    job.mkdir(parents=True)
    other = open(job / ".lock", "a")  # flock locks per open file: as another process would
    fcntl.flock(other, fcntl.LOCK_EX)

    def finish() -> None:  # the other call writes its result, then lets go of the job
        time.sleep(0.5)
        (job / "test.json").write_text(json.dumps({**GOOD_RESULT, "hash": "h"}))
        other.close()

    candidate = SimpleNamespace(label="a", genotype=SimpleNamespace(hash="h"))  # training it would fail
    context = SimpleNamespace(base=SimpleNamespace(threads=1), jobs=lambda: [(candidate, 0, job)])
    thread = threading.Thread(target=finish)
    thread.start()
    try:
        _work(context, lambda line: None, progress=False, wait=True)
        assert _read_result(job, "h") is not None
    finally:
        thread.join()


def test_a_job_another_retrain_trained_is_not_counted_as_this_calls(
        tmp_path: Path, digits_npz: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two nas retrain calls on one folder: the job the other call trained (this one waited for
    its lock) is reported as the other's, not in "retrained N models"."""
    import fcntl
    import threading

    from nas.retrain import _run

    run_dir = search(tmp_path, digits_npz, "shared")
    threads = []

    def check_plan(out: Path, plan: dict) -> None:  # then the other call takes small/seed0
        real_check_plan(out, plan)
        job = out / "small" / "seed0"
        job.mkdir(parents=True)
        other = open(job / ".lock", "a")  # flock locks per open file: as another process would
        fcntl.flock(other, fcntl.LOCK_EX)
        small = next(a["hash"] for a in plan["architectures"] if a["label"] == "small")

        def finish() -> None:  # the other call trains it, then lets go of it
            time.sleep(0.5)
            (job / "job.json").write_text(json.dumps({"hash": small, "call": "other"}))
            (job / "test.json").write_text(json.dumps({**GOOD_RESULT, "label": "small", "hash": small}))
            other.close()

        threads.append(threading.Thread(target=finish))
        threads[-1].start()

    real_check_plan = _run._check_plan
    monkeypatch.setattr(_run, "_check_plan", check_plan)
    try:
        assert nas(["retrain", str(run_dir), "--top", "1", "--seeds", "1", "--epochs", "1",
                    "--subset", "100", "--quiet"]) == 0
    finally:
        for thread in threads:
            thread.join()
    out = capsys.readouterr().out
    assert "retrained 1 models, 1 trained meanwhile by another nas retrain on this folder, 0 already done" in out
    monkeypatch.setattr(_run, "_check_plan", real_check_plan)
    summary = retrain(run_dir, top=1, seeds=1, epochs=1, subset=100)
    assert summary.trained == [] and summary.by_others == [] and len(summary.skipped) == 2
