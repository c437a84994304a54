"""nas.results end to end: real (small) searches, then load, nas analyze and nas best --export.

Two runs are made once per module: NAS-Bench-201 with the tabular objective (skipped when the
benchmark's CSV is absent) and four tiny ResNets trained one epoch on 200 digits.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import socket
import time
from pathlib import Path

import pytest
import yaml

from nas.cli import main as nas
from nas.results import COLUMNS, PARAM_PREFIX, analyze, best, budget, candidates, export_best, load, pareto_front
from nas.search import best_trials, load_config, run_search

ROOT = Path(__file__).resolve().parents[1]
NB201_TABLE = ROOT.parent / "shared" / "data" / "nasbench201" / "nb201_cifar.csv"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("runs")


@pytest.fixture(scope="module")
def trained_run(runs: Path) -> Path:
    """Four tiny CIFAR ResNets (two seeds) trained one epoch on 200 digits, one thread."""
    config = {
        "name": "digits",
        "space": {
            "genotype": str(ROOT / "genotypes" / "search" / "resnet_cifar.yaml"),
            "params": {"widths": [4, 8, 8], "depths": [1, 1, 1]},
            "choices": {"block": {"choices": ["cifar_basic", "basic_se"]},
                        "depth": {"param": "depths", "per_stage": True, "int": [1, 2]}},
            "seeds": {"tiny": {}, "tiny_se": {"block": "basic_se"}},
        },
        "dataset": {"name": "digits", "subset": 200, "val_subset": 100},
        "train": {"epochs": 2, "batch_size": 50, "lr": 0.05, "device": "cpu"},
        "sampler": "random", "trials": 4, "threads": 1, "seed": 0,
    }
    path = runs / "digits.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return run_search(path, runs_dir=runs, progress=False).run_dir


def _nb201_run(runs: Path, name: str, trials: int) -> Path:
    if not NB201_TABLE.is_file():
        pytest.skip(f"NAS-Bench-201 table not found at {NB201_TABLE}")
    config = load_config(ROOT / "search_spaces" / "nb201.yaml")
    config = dataclasses.replace(config, tabular=dict(config.tabular, table=str(NB201_TABLE)))
    return run_search(config, name=name, trials=trials, runs_dir=runs, workers=1,
                      progress=False).run_dir


@pytest.fixture(scope="module")
def tabular_run(runs: Path) -> Path:
    return _nb201_run(runs, "nb201", 40)


def _check_png(path: Path) -> None:
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 1000, path
    import matplotlib.image

    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100, path


def test_load_trained_run(trained_run: Path) -> None:
    frame = load(trained_run)
    assert list(frame.columns[: len(COLUMNS)]) == list(COLUMNS)
    assert len(frame) == 4 and frame["number"].tolist() == [0, 1, 2, 3]
    assert set(frame["run"]) == {"digits"}
    assert {"val_accuracy", f"{PARAM_PREFIX}block", f"{PARAM_PREFIX}stage1.depth"} <= set(frame.columns)
    seeds = frame[frame["is_seed"]]
    assert seeds["seed"].tolist() == ["tiny", "tiny_se"]
    trained = frame[frame["status"] == "completed"]
    assert (trained["params"] > 0).all() and (trained["macs"] > 0).all()
    assert (trained["epochs"] == 2).all() and trained["wall_time"].gt(0).all()
    assert trained["worker"].str.contains(":").all()
    # The same best trial as the search engine's own answer.
    _, expected = best_trials(trained_run)
    assert best(frame)["number"].tolist() == [r["trial"] for r in expected]


def test_analyze_trained_run(trained_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "analysis"
    assert nas(["analyze", str(trained_run), "--out", str(out)]) == 0
    import pandas as pd

    csv = pd.read_csv(out / "results.csv")
    assert {"run", "number", "state", "status", "reason", "is_seed", "seed", "hash",
            "genotype_path", "params", "macs", "latency", "val_accuracy", "epochs", "wall_time",
            "worker", f"{PARAM_PREFIX}block"} <= set(csv.columns)
    assert len(csv) == 4
    assert (out / "results.parquet").is_file()
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert {"history.png", "accuracy_vs_macs.png", "accuracy_vs_params.png", "curves.png"} <= set(pngs)
    for name in pngs:
        _check_png(out / name)
    report = (out / "report.md").read_text()
    top = int(best(load(trained_run))["number"].iloc[0])
    assert f"**trial {top}**" in report
    assert "tiny" in report and "tiny_se" in report
    for section in ("## Best architecture", "## Pareto set", "## Where the budget went",
                    "## Parameter importances"):
        assert section in report
    for name in pngs:
        assert f"({name})" in report
    # A picture of the best architecture: an SVG with Graphviz, else a Mermaid block.
    if shutil.which("dot"):
        svg = (out / "best.svg").read_text()
        assert svg.lstrip().startswith("<?xml") and "<svg" in svg and "fc: linear 10" in svg
        assert "(best.svg)" in report
    else:
        assert "```mermaid" in report and "fc: linear 10" in report


def test_analyze_tabular_run(tabular_run: Path) -> None:
    result = analyze(tabular_run)  # default: into the run folder
    assert result.out == tabular_run
    report = (tabular_run / "report.md").read_text()
    top = best(result.frame)
    assert f"**trial {int(top['number'].iloc[0])}**" in report
    assert "all_conv3x3" in report  # a seed of the space
    # optimised on validation, test reported beside it
    assert "table values (the first is the optimised column" in report and "cifar10_test" in report
    assert {"table.cifar10_valid", "table.cifar10_test"} <= set(result.frame.columns)
    assert "deduplicated" in report or (result.frame["status"] != "duplicate").all()
    assert (tabular_run / "history.png").is_file() and (tabular_run / "importance.png").is_file()
    _check_png(tabular_run / "history.png")
    _check_png(tabular_run / "importance.png")
    # No training, so no curves and no costs: notes, not crashes.
    assert any("curves.png" in n for n in result.notes)


def test_too_few_trials_for_importances(runs: Path, tmp_path: Path) -> None:
    run_dir = _nb201_run(runs, "nb201_one", 1)
    result = analyze(run_dir, tmp_path)
    assert any("importances" in n for n in result.notes)
    assert "Note: parameter importances" in (tmp_path / "report.md").read_text()


def test_corrupt_trial_file_is_reported(trained_run: Path, tmp_path: Path, drop_stored_records) -> None:
    copy = tmp_path / "digits"
    shutil.copytree(trained_run, copy)
    metrics = copy / "trials" / "0002" / "metrics.json"
    metrics.write_text(metrics.read_text()[:57])  # truncated mid-file
    (copy / "trials" / "0003" / "metrics.json").write_text("[1, 2]")  # JSON, but not a record
    # The storage holds every trial's record: the damaged files lose nothing, and are named.
    frame = load(copy)
    assert len(frame) == 4 and frame["macs"].notna().all()
    assert set(frame.set_index("number").loc[[2, 3], "status"]) <= {"completed", "duplicate"}
    notes = frame.attrs["notes"]
    assert any("trials/0002/metrics.json is unreadable" in n for n in notes)
    assert any("trials/0003/metrics.json is unreadable" in n for n in notes)
    # Without records in the storage (a run from before they were kept), the files are read.
    drop_stored_records(copy / "journal.log")
    frame = load(copy)
    assert len(frame) == 4
    bad = frame.set_index("number").loc[[2, 3]]
    assert (bad["status"] == "unreadable").all()
    assert bad["reason"].str.contains("metrics.json is unreadable").all()
    assert (bad["state"] == "complete").all()  # the journal still knows the state
    assert bad["val_accuracy"].notna().all()  # and the value
    good = frame.set_index("number").loc[[0, 1]]
    assert (good["status"] == "completed").all() and good["macs"].notna().all()
    result = analyze(copy, tmp_path / "out")
    report = (tmp_path / "out" / "report.md").read_text()
    assert "unreadable metrics file" in report
    assert 2 not in best(result.frame)["number"].tolist()


def test_trial_folder_not_named_by_a_number_is_left_out(trained_run: Path, tmp_path: Path) -> None:
    # twenty digits overflowed pandas' int64 in `nas analyze`; '+1' shadowed trial 1's file
    copy = tmp_path / "digits"
    shutil.copytree(trained_run, copy)
    for name in ("99999999999999999999", "+1", "٣"):
        (copy / "trials" / name).mkdir()
        shutil.copy(copy / "trials" / "0000" / "metrics.json", copy / "trials" / name)
    frame = load(copy)
    assert frame["number"].tolist() == [0, 1, 2, 3]
    assert not any("trials/0001" in n for n in frame.attrs["notes"])
    for name in ("99999999999999999999", "+1", "٣"):
        assert any(f"trials/{name}/metrics.json is unreadable" in n for n in frame.attrs["notes"])
    assert nas(["analyze", str(copy), "--out", str(tmp_path / "out")]) == 0


def test_metrics_only_when_storage_is_gone(trained_run: Path, tmp_path: Path) -> None:
    copy = tmp_path / "digits"
    shutil.copytree(trained_run, copy)
    (copy / "journal.log").unlink()
    frame = load(copy)
    assert len(frame) == 4 and (frame["state"] == "complete").all()
    assert any("no Optuna storage" in n for n in frame.attrs["notes"])


def test_best_says_when_it_reads_the_metrics_files_only(trained_run: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture) -> None:
    # nas best fell back to the metrics files silently; nas analyze said so
    copy = tmp_path / "digits"
    shutil.copytree(trained_run, copy)
    _point_storage_at(copy, "postgresql://nas:***@localhost/nas")
    capsys.readouterr()
    assert nas(["best", str(copy)]) == 0
    notes = [line for line in capsys.readouterr().out.splitlines() if line.startswith("note: ")]
    assert notes == ["note: digits: storage postgresql://nas:***@localhost/nas has a masked "
                     "password (pass storage=...); read the metrics files only"]
    assert nas(["best", str(trained_run)]) == 0
    assert "note: " not in capsys.readouterr().out


def _point_storage_at(run: Path, url: str) -> None:
    info = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**info, "storage": url}))


def test_reading_a_run_creates_no_database_its_run_json_names(trained_run: Path, tmp_path: Path) -> None:
    # a run folder is input: reading it must not make the SQLite file (or tables) run.json names
    copy = tmp_path / "digits"
    shutil.copytree(trained_run, copy)
    target = tmp_path / "elsewhere" / "made.db"
    target.parent.mkdir()
    _point_storage_at(copy, f"sqlite:///{target}")
    frame = load(copy)
    assert len(frame) == 4 and not target.exists()
    assert any(f"no SQLite database at {target}" in n for n in frame.attrs["notes"])


def test_reading_a_run_waits_a_bounded_time_for_a_silent_server(trained_run: Path, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    # run.json names a server that accepts the connection and never answers: the read gives up
    pytest.importorskip("psycopg", reason="PostgreSQL's driver is in the dev extra")
    from nas.search import _storage

    monkeypatch.setattr(_storage, "READ_CONNECT_TIMEOUT", 2)
    copy = tmp_path / "digits"
    shutil.copytree(trained_run, copy)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # the kernel completes the handshake; nobody ever reads or writes
        _point_storage_at(copy, f"postgresql://nas@127.0.0.1:{silent.getsockname()[1]}/nas")
        started = time.monotonic()
        frame = load(copy)
        assert time.monotonic() - started < 60  # without a timeout: forever
    assert len(frame) == 4
    assert any("cannot read storage" in n for n in frame.attrs["notes"])


def test_several_runs(trained_run: Path, tabular_run: Path, tmp_path: Path) -> None:
    frame = load([trained_run, tabular_run])
    assert set(frame["run"]) == {"digits", "nb201"}
    assert len(frame) == 4 + len(load(tabular_run))
    assert frame.loc[frame["run"] == "nb201", "val_accuracy"].isna().all()
    assert frame.attrs["objectives"] == []  # different objectives
    assert nas(["analyze", str(trained_run), str(tabular_run), "--out", str(tmp_path)]) == 0
    import pandas as pd

    assert set(pd.read_csv(tmp_path / "results.csv")["run"]) == {"digits", "nb201"}
    report = (tmp_path / "report.md").read_text()
    assert "of run digits" in report and "of run nb201" in report


@pytest.mark.parametrize("command", [["analyze", "{run}", "--out", "{file}"],
                                     ["best", "{run}", "--export", "{file}", "--untrained"]],
                         ids=lambda command: command[0])
def test_an_output_folder_that_is_a_file_is_one_line(trained_run: Path, tmp_path: Path, command: list[str],
                                                     capsys: pytest.CaptureFixture) -> None:
    file = tmp_path / "taken"
    file.write_text("not a folder")
    assert nas([part.format(run=trained_run, file=file) for part in command]) == 2
    assert capsys.readouterr().err.splitlines() == [f"{file}: exists and is not a folder"]
    assert file.read_text() == "not a folder"


def test_pareto_front_two_objectives(trained_run: Path) -> None:
    frame = load(trained_run)
    front = pareto_front(frame, ["val_accuracy", "macs"], ["maximize", "minimize"])
    assert 1 <= len(front) <= 4
    done = frame[frame["status"] == "completed"]
    for _, row in done.iterrows():  # every trained trial is on the front or dominated by it
        dominated = ((front["val_accuracy"] >= row["val_accuracy"]) & (front["macs"] <= row["macs"])).any()
        assert dominated


def test_best_export(trained_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    onnx = pytest.importorskip("onnx")
    assert nas(["best", str(trained_run), "--export", str(tmp_path)]) == 0
    top = int(best(load(trained_run))["number"].iloc[0])
    yaml_path, onnx_path = tmp_path / f"trial_{top:04d}.yaml", tmp_path / f"trial_{top:04d}.onnx"
    assert f"exported trial {top}" in capsys.readouterr().out
    from nas.genotype import load_genotype

    genotype = load_genotype(yaml_path)
    assert genotype.hash == load(trained_run).set_index("number").loc[top, "hash"]
    onnx.checker.check_model(onnx.load(str(onnx_path)))
    assert [e.trial for e in export_best(trained_run, tmp_path / "again", onnx=False)] == [top]


def test_not_a_run_folder(tmp_path: Path) -> None:
    from nas.errors import ConfigError

    with pytest.raises(ConfigError, match="not a run folder"):
        load(tmp_path)
    assert nas(["analyze", str(tmp_path)]) == 2
    (tmp_path / "run.json").write_text(json.dumps({"name": "x", "objectives": ["val_accuracy"],
                                                   "directions": ["maximize"]}))
    assert len(load(tmp_path)) == 0


def test_analyze_multi_objective_run(runs: Path, trained_run: Path, tmp_path: Path) -> None:
    """A real two-objective search (accuracy and MACs, NSGA-II): the report's Pareto set and
    `nas best` agree with the search's own Pareto front."""
    config = yaml.safe_load((runs / "digits.yaml").read_text())  # trained_run's config
    config.update(name="pareto", objectives=["val_accuracy", "macs"], sampler="nsga2", trials=4)
    path = tmp_path / "pareto.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    run_dir = run_search(path, runs_dir=tmp_path / "runs", progress=False).run_dir
    _, pareto = best_trials(run_dir)
    out = tmp_path / "analysis"
    assert nas(["analyze", str(run_dir), "--out", str(out)]) == 0
    report = (out / "report.md").read_text()
    assert "## Pareto set" in report and "over val_accuracy (max) and macs (min)" in report
    for record in pareto:
        assert f"| {record['trial']} |" in report
    front = pareto_front(load(run_dir))
    assert sorted(int(n) for n in front["number"]) == sorted(r["trial"] for r in pareto)


@pytest.mark.parametrize("run_dirs", [None, 3, b"runs/x", [None]])
def test_run_folders_of_another_type_are_a_type_error(run_dirs) -> None:
    # load(None) failed with "'NoneType' object is not iterable"; b"runs/x" as the paths 114, 117...
    with pytest.raises(TypeError, match="^run_dirs must be a run folder's path or a list of them, got "):
        load(run_dirs)


FRAME_FUNCTIONS = [best, budget, candidates, lambda f: pareto_front(f, ["val_accuracy"], ["maximize"])]


@pytest.mark.parametrize("function", FRAME_FUNCTIONS, ids=["best", "budget", "candidates", "pareto_front"])
def test_a_frame_not_from_load_is_named_not_a_key_error(function, tmp_path: Path) -> None:
    import pandas as pd

    (tmp_path / "run.json").write_text(json.dumps({"name": "x", "objectives": ["val_accuracy"],
                                                   "directions": ["maximize"]}))
    assert len(function(load(tmp_path))) == 0
    # A few columns of a frame failed with pandas' KeyError: 'state'; a dict with AttributeError.
    with pytest.raises(ValueError, match=r"^frame lacks the column\(s\) .*state.* of a nas.results.load frame"):
        function(pd.DataFrame({"val_accuracy": [0.5], "macs": [10]}))
    with pytest.raises(TypeError, match="^frame must be a DataFrame from nas.results.load, got dict$"):
        function({"val_accuracy": [0.5]})


def test_candidates_refuse_one_objective_given_as_a_string(tmp_path: Path) -> None:
    (tmp_path / "run.json").write_text(json.dumps({"name": "x", "objectives": ["val_accuracy"],
                                                   "directions": ["maximize"]}))
    # "val_accuracy" was taken as the columns 'v', 'a', ...: no trial has them, so none was kept.
    with pytest.raises(ValueError, match=r"^objectives must be a list of names, got the string 'val_accuracy' "
                                         r"\(for one: \['val_accuracy'\]\)$"):
        candidates(load(tmp_path), "val_accuracy")


def test_candidates_refuse_a_column_the_frame_lacks(tmp_path: Path) -> None:
    (tmp_path / "run.json").write_text(json.dumps({"name": "x", "objectives": ["val_accuracy"],
                                                   "directions": ["maximize"]}))
    frame = load(tmp_path)
    # a misspelt objective kept no trial, silently (pareto_front named it)
    with pytest.raises(ValueError, match=r"^unknown column 'val_acuracy'; available: .*val_accuracy"):
        candidates(frame, ["val_accuracy", "val_acuracy"])
    assert candidates(frame, ["val_accuracy"]).empty


def test_report_choices_from_a_damaged_record_show_as_written() -> None:
    """A parameter holding HTML or a Markdown image (a hand-edited metrics.json) is shown as
    text in report.md, not rendered (it went in as given); a search's own values are unchanged."""
    import pandas as pd

    from nas.results._report import PARAM_PREFIX, _choices

    row = pd.Series({f"{PARAM_PREFIX}block": "<img src=x onerror=y> ![t](http://e/p.png)",
                     f"{PARAM_PREFIX}depths": "[1, 2]", f"{PARAM_PREFIX}stage3.width": 8, "number": 3})
    assert _choices(row) == ("block=&lt;img src=x onerror=y&gt; ![t]\\(http://e/p.png), depths=[1, 2], "
                             "stage3.width=8")


def test_many_runs_plot_with_a_legend_that_fits(tmp_path: Path) -> None:
    """nas analyze of 30 runs: the legends name the first few runs (61 entries were taller than
    the figure: its axes collapsed to zero, with one matplotlib warning per plot)."""
    import warnings

    import pandas as pd

    from nas.results._plots import plot_history, plot_tradeoff

    frame = pd.DataFrame([
        {"run": f"r{run}", "number": n, "state": "complete", "status": "completed", "duplicate_of": None,
         "is_seed": n == 0, "seed": "s" if n == 0 else None, "val_accuracy": 0.5 + n / 10, "macs": 100 + n}
        for run in range(30) for n in range(2)])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert plot_tradeoff(frame, tmp_path / "t.png", "val_accuracy", "macs") is not None
        assert plot_history(frame, tmp_path / "h.png", ["val_accuracy"], ["maximize"]) is not None
    assert [str(w.message) for w in caught] == []


def test_the_retrain_section_keeps_its_markdown_but_no_control_characters(tmp_path: Path) -> None:
    # an escape sequence in a damaged retrain.md was copied into report.md as it was
    from nas.results._report import _retrain_section

    (tmp_path / "retrain").mkdir()
    (tmp_path / "retrain" / "retrain.md").write_text("\x1b[2J## Retrained\n| a\tb |\n![plot](retrain/x.png)\n")
    assert _retrain_section([tmp_path], tmp_path) == ["\ufffd[2J## Retrained", "| a\tb |", "![plot](retrain/x.png)", ""]
