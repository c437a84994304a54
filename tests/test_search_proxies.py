"""Zero-cost proxies in a search: pre-screening, proxy objectives and constraints, recorded
scores and their rank correlation in nas analyze. Tabular NAS-Bench-201 runs (milliseconds a
trial; skipped without the table) with static proxies, and one tiny trained run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

import nas
from nas.cli import main
from nas.search import load_config, read_trials, run_search
from nas.search._proxies import sample_candidates

ROOT = Path(__file__).resolve().parents[1]
TABLE = ROOT.parent / "shared" / "data" / "nasbench201" / "nb201_cifar.csv"
needs_table = pytest.mark.skipif(not TABLE.is_file(), reason=f"NAS-Bench-201 table absent: {TABLE}")


def nb201_config(tmp_path: Path, *, seeds: bool = True, **overrides) -> Path:
    data = yaml.safe_load((ROOT / "search_spaces" / "nb201.yaml").read_text())
    data["space"]["genotype"] = str(ROOT / "genotypes" / "nb201.yaml")
    data["tabular"]["table"] = str(TABLE)
    if not seeds:
        del data["space"]["seeds"]
    data.update(overrides)
    path = tmp_path / f"{data['name']}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@needs_table
def test_prescreen_enqueues_its_top_k_first(tmp_path, capsys):
    config_path = nb201_config(tmp_path, seeds=False, name="screened", sampler="random", trials=6,
                               proxies={"prescreen": {"proxy": "params", "candidates": 25, "top": 3}})
    config = load_config(config_path)
    # Independently: the same 25 candidates, ranked by their parameter count.
    candidates = sample_candidates(config, 25, seed=config.seed)
    assert len(candidates) == 25
    counts = [nas.analyze(config.space.make_genotype(v)).params for v in candidates]
    ranked = sorted(range(25), key=lambda i: -counts[i])[:3]
    assert main(["search", str(config_path), "--runs", str(tmp_path / "runs"), "--no-progress"]) == 0
    assert "pre-screen: scored 25 candidates with params" in capsys.readouterr().out
    records = read_trials(tmp_path / "runs" / "screened")
    first = [r["params"] for r in records[:3]]
    assert first == [config.space.encode(candidates[i]) for i in ranked]
    summary = json.loads((tmp_path / "runs" / "screened" / "prescreen.json").read_text())
    assert [e["scores"]["params"] for e in summary["enqueued"]] == sorted(counts, reverse=True)[:3]
    assert summary["seconds"] > 0 and summary["candidates"] == 25
    # Resuming does not pre-screen again.
    assert main(["search", str(config_path), "--runs", str(tmp_path / "runs"), "--resume",
                 "--trials", "8", "--no-progress"]) == 0
    assert "pre-screen" not in capsys.readouterr().out
    assert len(read_trials(tmp_path / "runs" / "screened")) == 8
    assert main(["analyze", str(tmp_path / "runs" / "screened")]) == 0
    report = (tmp_path / "runs" / "screened" / "report.md").read_text()
    assert "Pre-screening scored 25 random candidates with params in" in report


@needs_table
def test_prescreen_comes_after_the_seeds(tmp_path):
    config = load_config(nb201_config(tmp_path, trials=5, sampler="random",
                                      proxies={"prescreen": {"proxy": ["params", "macs"],
                                                             "candidates": 10, "top": 2}}))
    summary = run_search(config, runs_dir=tmp_path / "runs", progress=False)
    records = read_trials(summary.run_dir)
    assert [r["seed"] for r in records[:3]] == ["resnet_basic", "resnet_bottleneck", "all_conv3x3"]
    assert summary.prescreen["top"] == 2
    screened = [e["values"] for e in summary.prescreen["enqueued"]]
    assert [config.space.decode(r["params"]) for r in records[3:5]] == screened


@needs_table
def test_prescreen_first_comes_before_the_seeds(tmp_path):
    config = load_config(nb201_config(tmp_path, trials=5, sampler="random", proxies={
        "prescreen": {"proxy": "params", "candidates": 10, "top": 2, "first": True}}))
    summary = run_search(config, runs_dir=tmp_path / "runs", progress=False)
    records = read_trials(summary.run_dir)
    screened = [e["values"] for e in summary.prescreen["enqueued"]]
    assert [config.space.decode(r["params"]) for r in records[:2]] == screened
    assert [r["seed"] for r in records[2:5]] == ["resnet_basic", "resnet_bottleneck", "all_conv3x3"]


@needs_table
def test_recorded_proxies_objectives_constraints_and_their_correlation(tmp_path):
    config_path = nb201_config(
        tmp_path, name="scored", sampler="random", trials=24,
        objectives=["table_accuracy", "proxy.params"],
        proxies={"record": ["macs"], "constraints": {"params": {"max": 1_000_000}}})
    summary = run_search(config_path, runs_dir=tmp_path / "runs", progress=False)
    records = read_trials(summary.run_dir)
    evaluated = [r for r in records if r["status"] != "duplicate"]
    for r in evaluated:
        params = nas.analyze(nas.load_genotype(summary.run_dir / "trials" / f"{r['trial']:04d}"
                                               / "genotype.yaml")).params
        assert r["proxies"]["params"] == params and set(r["proxies"]) == {"params", "macs"}
        if params > 1_000_000:
            assert (r["state"], r["status"]) == ("pruned", "constraint")
            assert "proxy constraint: params" in r["end_reason"]
        else:
            assert r["state"] == "complete" and r["values"] == [r["table"]["cifar10_valid"], params]
    assert any(r["state"] == "pruned" for r in evaluated) and any(r["state"] == "complete" for r in evaluated)

    from nas.proxies import spearman
    from nas.results import analyze

    result = analyze(summary.run_dir)
    frame = result.frame
    done = frame[(frame["state"] == "complete") & frame["duplicate_of"].isna()]
    expected = spearman(done["proxy.macs"], done["table.cifar10_test"])
    report = (summary.run_dir / "report.md").read_text()
    assert "## Zero-cost proxies" in report
    line = next(line for line in report.splitlines() if line.startswith("| macs"))
    assert f"{expected:.3f} /" in line


def test_trained_run_records_data_dependent_proxies(tmp_path):
    from tests.test_search import tiny_config

    config = tiny_config(tmp_path, trials=3, proxies={"record": ["naswot", "synflow"], "batch": 16})
    summary = run_search(config, runs_dir=tmp_path / "runs", progress=False)
    for r in read_trials(summary.run_dir):
        assert r["state"] == "complete"
        assert set(r["proxies"]) == {"naswot", "synflow"}
        assert all(v is None or isinstance(v, float) for v in r["proxies"].values())
        assert r["proxies"]["synflow"] is not None


def test_a_proxy_batch_the_machine_cannot_hold_fails_its_trial_before_scoring(tmp_path, monkeypatch):
    # scoring (batch 16 here; up to 4,096) ran before the training check: the out-of-memory
    # killer would end the search there
    from tests.test_search import tiny_config

    monkeypatch.setattr("nas.train._memory.available_memory", lambda: 100_000)
    config = tiny_config(tmp_path, trials=2, proxies={"record": ["naswot"], "batch": 16})
    summary = run_search(config, runs_dir=tmp_path / "runs", progress=False)
    records = read_trials(summary.run_dir)
    assert len(records) == 2 and {r["status"] for r in records} == {"proxy_error"}
    assert all("training at batch size 16 needs at least" in r["end_reason"] for r in records)


SYNTHETIC_3 = {"name": "synthetic", "num_classes": 3, "shape": [1, 8, 8], "num_images": 300}


@pytest.mark.parametrize("case, message", [
    ("shape", "proxy images are (3, 32, 32) but the network takes (1, 8, 8)"),
    ("labels", "proxy images are labelled 0 to 9 but the networks have 3 classes"),
    pytest.param("tabular", "proxy images are (3, 16, 16) but the network takes (3, 32, 32)",
                 marks=needs_table),
])
def test_proxy_images_the_networks_cannot_take_are_refused_before_the_run_folder(tmp_path, capsys, case,
                                                                                  message):
    # 32 x 32 colour images for networks of 8 x 8 gray digits, digits' 10 classes for networks
    # of 3, 16 x 16 images for 32 x 32 cells: every trial failed with such a line, after the
    # run folder was made.
    from tests.test_search import tiny_config

    if case == "tabular":
        path = nb201_config(tmp_path, trials=2, proxies={
            "record": ["naswot"], "data": {"name": "synthetic", "resolution": 16}})
    elif case == "shape":
        path = tiny_config(tmp_path, trials=2, proxies={
            "record": ["naswot"], "data": {"name": "synthetic", "resolution": 32}})
    else:
        path = tiny_config(tmp_path, trials=2, dataset=SYNTHETIC_3,
                           proxies={"record": ["snip"], "data": {"name": "digits"}})
    assert main(["search", str(path), "--runs", str(tmp_path / "runs"), "--no-progress"]) == 2
    assert capsys.readouterr().err.strip() == f"{path}: proxies.data: {message}"
    assert not (tmp_path / "runs").exists()


@needs_table
@pytest.mark.parametrize("proxies, where, fragment", [
    ({"record": ["nope"]}, "proxies.record[0]", "unknown proxy 'nope'; valid: "),
    ({"record": ["naswot"]}, "proxies.data", "a tabular run has no dataset"),
    ({"prescreen": {"proxy": "params", "candidates": 3, "top": 5}}, "proxies.prescreen.top",
     "must be at most candidates (3)"),
    ({"constraints": {"params": {"least": 3}}}, "proxies.constraints.params", "must be a mapping with min"),
    ({"prescreen": {"proxy": "synflow", "candidates": 9, "top": 5, "shortlist": {"proxy": "params",
      "keep": 4}}}, "proxies.prescreen.shortlist.keep", "must be between top (5) and candidates (9)"),
    ({"prescreen": {"proxy": "synflow", "shortlist": {"proxy": "params"}}},
     "proxies.prescreen.shortlist", "must be a mapping with proxy and keep"),
    ({"prescreen": {"proxy": "params", "first": "yes"}}, "proxies.prescreen.first", "must be true or false"),
])
def test_bad_proxy_sections_are_one_line(tmp_path, capsys, proxies, where, fragment):
    path = nb201_config(tmp_path, proxies=proxies)
    assert main(["search", str(path), "--runs", str(tmp_path / "runs"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"{path}: {where}: {fragment}")


@needs_table
def test_prescreen_of_given_candidates_with_a_given_scorer(tmp_path):
    import optuna

    from nas.search._proxies import PRESCREEN_ATTR, prescreen
    from nas.nb201 import Cell, NB201Table

    config = load_config(nb201_config(tmp_path, seeds=False, proxies={
        "prescreen": {"proxy": ["params", "macs"], "candidates": 5, "top": 2, "method": "log"}}))
    table = NB201Table.load(TABLE)
    candidates = [table.cell(i).params() for i in (10, 20, 30, 40, 50)]
    scores = {10: (1.0, 5.0), 20: (5.0, 4.0), 30: (4.0, float("nan")), 40: (3.0, 3.0), 50: (2.0, 1.0)}
    by_text = {table.cell(i).to_str(): {"params": p, "macs": m} for i, (p, m) in scores.items()}
    study = optuna.create_study(direction="maximize")
    summary = prescreen(study, config, None, genotype=lambda v: Cell.from_params(v).to_str(),
                        scorer=lambda text, names: by_text[text], candidates=candidates)
    # log-rank sums (NaN ranks last): 20: log(5/5)+log(4/5) = -0.22, 40: 2 log(3/5) = -1.02,
    # 10: log(1/5)+log(5/5) = -1.61, 30 and 50: -1.83
    waiting = study.get_trials(states=(optuna.trial.TrialState.WAITING,))
    enqueued = [config.space.decode(t.system_attrs["fixed_params"]) for t in waiting]
    assert [Cell.from_params(v) for v in enqueued] == [table.cell(20), table.cell(40)]
    assert [t.user_attrs[PRESCREEN_ATTR] for t in waiting] == [1, 2]
    assert summary["top"] == 2 and study.user_attrs[PRESCREEN_ATTR]["candidates"] == 5
    assert prescreen(study, config, None, genotype=str, candidates=candidates) is None  # once


@needs_table
def test_prescreen_shortlist_scores_only_the_kept_candidates(tmp_path):
    import optuna

    from nas.search._proxies import prescreen
    from nas.nb201 import Cell, NB201Table

    config = load_config(nb201_config(tmp_path, seeds=False, proxies={"prescreen": {
        "proxy": ["synflow", "params"], "candidates": 6, "top": 2,
        "shortlist": {"proxy": "params", "keep": 3}}}))
    assert config.proxies.record == ("synflow", "params")
    table = NB201Table.load(TABLE)
    rows = (10, 20, 30, 40, 50, 60)
    candidates = [table.cell(i).params() for i in rows]
    # params keeps 30, 50, 60; their synflow+params rank sums: 50 3+2, 30 1+3, 60 2+1
    params = dict(zip(rows, (1.0, 2.0, 6.0, 3.0, 5.0, 4.0)))
    synflow = {30: 1.0, 50: 3.0, 60: 2.0}
    calls: list[tuple[int, tuple[str, ...]]] = []
    by_text = {table.cell(i).to_str(): i for i in rows}

    def scorer(text: str, names) -> dict[str, float]:
        row = by_text[text]
        calls.append((row, tuple(names)))
        return {n: (params if n == "params" else synflow)[row] for n in names}

    study = optuna.create_study(direction="maximize")
    summary = prescreen(study, config, None, genotype=lambda v: Cell.from_params(v).to_str(),
                        scorer=scorer, candidates=candidates)
    assert sorted(r for r, names in calls if names == ("params",)) == list(rows)
    assert sorted(r for r, names in calls if names == ("synflow",)) == [30, 50, 60]
    assert len(calls) == 9  # params is not computed again for the kept three
    waiting = study.get_trials(states=(optuna.trial.TrialState.WAITING,))
    enqueued = [Cell.from_params(config.space.decode(t.system_attrs["fixed_params"])) for t in waiting]
    assert enqueued == [table.cell(50), table.cell(30)]
    assert summary["kept"] == 3 and summary["shortlist"] == ["params"]
    assert summary["enqueued"][0]["scores"] == {"params": 5.0, "synflow": 3.0}


@needs_table
def test_prescreen_and_tabular_trials_score_on_the_runs_threads(tmp_path, monkeypatch):
    import torch

    from nas.search._proxies import TrialScorer

    seen: list[int] = []
    score = TrialScorer.score

    def counting(self, genotype, names=None):
        seen.append(torch.get_num_threads())
        return score(self, genotype, names)

    monkeypatch.setattr(TrialScorer, "score", counting)
    config = load_config(nb201_config(tmp_path, seeds=False, sampler="random", trials=3, threads=1, proxies={
        "record": ["params"], "prescreen": {"proxy": "params", "candidates": 4, "top": 1}}))
    before = torch.get_num_threads()
    torch.set_num_threads(2)  # torch's own setting, which the run's threads: 1 replaces
    try:
        summary = run_search(config, runs_dir=tmp_path / "runs", progress=False)
        # 4 pre-screened, then every trial but a repeat of an equivalent cell (two random NB201
        # cells are equivalent a few times in a hundred, e.g. both with no path to the output):
        # a repeat takes its twin's record and is not scored again.
        scored = [r for r in read_trials(summary.run_dir) if r["duplicate_of"] is None]
        assert len(seen) == 4 + len(scored) and len(scored) >= 1 and set(seen) == {1}
        assert torch.get_num_threads() == 2  # the in-process worker restored torch's setting
    finally:
        torch.set_num_threads(before)


def test_sampling_candidates_stops_once_a_small_space_is_exhausted(tmp_path, monkeypatch):
    # Two distinct candidates asked for 400: it drew 20,000 times (50 per candidate asked,
    # about 40 s) before the first trial; now it stops 150 fruitless draws after the second.
    import nas.search._study as study_module

    data = {"name": "two", "space": {"genotype": str(ROOT / "genotypes" / "search" / "resnet_cifar.yaml"),
                                     "params": {"widths": [4, 8, 8], "depths": [1, 1, 1]},
                                     "choices": {"block": {"choices": ["cifar_basic", "basic_se"]}}},
            "dataset": {"name": "digits", "subset": 200, "val_subset": 100}, "trials": 2}
    path = tmp_path / "two.yaml"
    path.write_text(yaml.safe_dump(data))
    config = load_config(path)
    draws = []
    equivalence_key = study_module.equivalence_key

    def counting(config):
        key = equivalence_key(config)
        return lambda params: draws.append(params) or key(params)

    monkeypatch.setattr(study_module, "equivalence_key", counting)
    candidates = sample_candidates(config, 400, seed=0)
    assert sorted(v["block"] for v in candidates) == ["basic_se", "cifar_basic"]
    assert len(draws) <= 200
