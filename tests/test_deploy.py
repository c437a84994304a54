"""Trained outputs that deploy: kept search weights, `nas best --export`, `nas train --out`.

A tiny search on digits keeps its best trials' weights; the exported ONNX, fed raw [0, 1]
images, scores exactly what the search recorded (the normalisation is inside the graph) and
onnxruntime reproduces the torch logits.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from nas.cli import main as nas
from nas.search import load_run_config, read_trials, run_search

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

ROOT = Path(__file__).resolve().parents[1]
GENOTYPE = ROOT / "genotypes" / "search" / "resnet_cifar.yaml"


def tiny_config(tmp_path: Path, name: str, **overrides) -> Path:
    data = {
        "name": name,
        "space": {
            "genotype": str(GENOTYPE),
            "params": {"widths": [4, 8, 8], "depths": [1, 1, 1]},
            "choices": {"block": {"choices": ["cifar_basic", "basic_se"]},
                        "stage3.width": {"param": "widths[2]", "choices": [8, 16]}},
            "seeds": {"small": {}},
        },
        "dataset": {"name": "digits", "subset": 300, "val_subset": 150},
        "train": {"epochs": 2, "batch_size": 50, "lr": 0.05, "device": "cpu"},
        "sampler": "random", "trials": 4, "threads": 1, "seed": 0,
        **overrides,
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def kept_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("kept")
    config = tiny_config(tmp, "kept", keep_weights={"top": 2, "max_mb": 50})
    return run_search(config, runs_dir=tmp / "runs", progress=False).run_dir


def val_split(run_dir: Path):
    """The search's validation split, as uint8 images and labels (loaded as the search did)."""
    from nas.data import load_dataset

    options = dict(load_run_config(run_dir).dataset)
    data = load_dataset(options.pop("name"), **options)
    return data.val_images, data.val_labels


def test_best_trials_keep_weights_within_the_policy(kept_run: Path) -> None:
    records = [r for r in read_trials(kept_run) if r["status"] == "completed"]  # duplicates train nothing
    on_disk = sorted(int(p.parent.name) for p in kept_run.glob("trials/*/weights.pth"))
    ranked = sorted(records, key=lambda r: (-r["objectives"]["val_accuracy"], r["trial"]))
    assert on_disk == sorted(r["trial"] for r in ranked[:2])  # the top 2, the others deleted
    for r in records:
        assert r["weights"]["policy"] == "the top 2 by val_accuracy, within 50 MB"
        assert r["weights"]["kept"] in (True, False)
    for number in on_disk:
        meta = json.loads((kept_run / "trials" / f"{number:04d}" / "weights.json").read_text())
        assert meta["input"] == [1, 8, 8] and len(meta["mean"]) == 1 and len(meta["std"]) == 1
        assert meta["classes"] == [str(i) for i in range(10)] and meta["trial"] == number


def test_export_scores_what_the_search_recorded(kept_run: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture) -> None:
    assert nas(["best", str(kept_run), "--export", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    best = max((r for r in read_trials(kept_run) if r["state"] == "complete"),
               key=lambda r: (r["objectives"]["val_accuracy"], -r["trial"]))
    stem = tmp_path / f"trial_{best['trial']:04d}"
    assert f"exported trial {best['trial']} (trained)" in out
    assert {p.name for p in tmp_path.iterdir()} == {stem.name + s for s in (".yaml", ".onnx", ".pt2", ".json")}

    images, labels = val_split(kept_run)
    x = (images.float() / 255).numpy()  # images as users have them: [0, 1], no normalisation
    session = ort.InferenceSession(str(stem.with_suffix(".onnx")), providers=["CPUExecutionProvider"])
    logits = session.run(None, {"input": x})[0]  # the whole split in one batch: dynamic batch
    accuracy = float((logits.argmax(1) == labels.numpy()).mean())
    assert accuracy == pytest.approx(best["objectives"]["val_accuracy"], abs=1e-12)

    # onnxruntime reproduces the torch logits of the same trained model.
    program = torch.export.load(str(stem.with_suffix(".pt2")))
    reference = program.module()(torch.from_numpy(x[:37])).detach().numpy()
    diff = float(np.abs(session.run(None, {"input": x[:37]})[0] - reference).max())
    print(f"max |onnxruntime - torch| logits: {diff:.2e}")
    assert diff < 1e-4

    meta = {p.key: p.value for p in onnx.load(str(stem.with_suffix(".onnx"))).metadata_props}
    saved = json.loads(stem.with_suffix(".json").read_text())
    assert json.loads(meta["nas.classes"]) == saved["classes"] == [str(i) for i in range(10)]
    assert json.loads(meta["nas.mean"]) == saved["mean"] and json.loads(meta["nas.std"]) == saved["std"]
    assert saved["input"] == [1, 8, 8] and saved["value_range"] == [0, 1]


def test_without_weights_nothing_is_exported_unless_untrained(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture) -> None:
    config = tiny_config(tmp_path, "bare", trials=1, keep_weights=False)
    run_dir = run_search(config, runs_dir=tmp_path / "runs", progress=False).run_dir
    assert not list(run_dir.glob("trials/*/weights.pth"))
    out = tmp_path / "out"
    capsys.readouterr()
    assert nas(["best", str(run_dir), "--export", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no trained weights kept for trial 0" in err
    assert "--untrained" in err and not out.exists()
    assert nas(["best", str(run_dir), "--export", str(out), "--untrained"]) == 0
    assert "exported trial 0 (UNTRAINED (random weights))" in capsys.readouterr().out
    assert (out / "trial_0000.onnx").is_file() and not (out / "trial_0000.json").exists()


def test_kept_weights_far_larger_than_the_model_are_refused_unread(kept_run: Path, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture) -> None:
    import shutil

    run = tmp_path / "kept"
    shutil.copytree(kept_run, run)
    weights = sorted(run.glob("trials/*/weights.pth"))
    for path in weights:
        with open(path, "r+b") as file:
            file.truncate(1 << 30)  # sparse: a 1 GB file on disk in no time
    capsys.readouterr()
    assert nas(["best", str(run), "--export", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(str(run / "trials")) and "weights.pth: larger than" in err[0], err


@pytest.mark.parametrize("damage", ["folder", "fifo", "link_loop"])
def test_kept_weights_that_are_not_a_regular_file_are_damage_not_missing(kept_run: Path, tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture,
                                                                        damage: str) -> None:
    import os
    import shutil

    run = tmp_path / "kept"
    shutil.copytree(kept_run, run)
    for weights in run.glob("trials/*/weights.pth"):
        weights.unlink()
        {"folder": weights.mkdir, "fifo": lambda: os.mkfifo(weights),
         "link_loop": lambda: weights.symlink_to(weights)}[damage]()
    capsys.readouterr()
    assert nas(["best", str(run), "--export", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].endswith("weights.pth: damaged: not a regular file"), err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("key, value, where, problem", [
    ("input", [1, 100000, 100000], "input", "the weights were trained at [1, 100000, 100000]"),
    ("input", None, "input", "missing or not a list"),
    ("input", [1, 8.5, 8], "input[1]", "must be an integer"),
    # class names that label no score, or are not names, were exported (str() of a dict)
    ("classes", ["a"], "classes", "names 1 classes, the trial's network outputs (10,)"),
    ("classes", [str(i) for i in range(11)], "classes", "names 11 classes"),
    ("classes", [{"a": 1}] * 10, "classes[0]", "must be a class name (a string), got dict"),
])
def test_a_damaged_weights_json_is_named_and_nothing_is_exported(kept_run: Path, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture, key: str,
                                                                  value, where: str, problem: str) -> None:
    # was 'OUT/trial_0000.onnx: the preprocessing is for input ...', with trial_0000.yaml left behind
    import shutil

    run = tmp_path / "kept"
    shutil.copytree(kept_run, run)
    for meta in run.glob("trials/*/weights.json"):
        data = json.loads(meta.read_text())
        data.pop(key) if value is None else data.update({key: value})
        meta.write_text(json.dumps(data))
    capsys.readouterr()
    assert nas(["best", str(run), "--export", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(str(run / "trials")), err
    assert f"weights.json: {where}: " in err[0] and problem in err[0], err
    assert not (tmp_path / "out").exists()


def test_a_failed_export_leaves_no_file_of_its_trial(kept_run: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from nas import export as exporting

    real = exporting.export_model

    def fails_at_pt2(genotype, path, **options):
        if Path(path).suffix == ".pt2":
            raise OSError(28, "No space left on device", str(path))
        return real(genotype, path, **options)

    monkeypatch.setattr(exporting, "export_model", fails_at_pt2)
    out = tmp_path / "out"
    assert nas(["best", str(kept_run), "--export", str(out)]) == 2
    assert list(out.iterdir()) == []


def test_nas_train_saves_the_normalisation_and_class_names(tmp_path: Path) -> None:
    import nas as nas_api
    from nas.data import load_dataset
    from nas.preprocessing import Normalized, Preprocessing
    from nas.train import load_checkpoint

    out = tmp_path / "trained"
    assert nas(["train", "resnet20", "--dataset", "digits", "--resolution", "8", "--subset", "300",
                "--epochs", "2", "--batch-size", "50", "--lr", "0.05", "--device", "cpu",
                "--threads", "1", "--out", str(out), "--quiet"]) == 0
    pre = Preprocessing.read(out / "preprocessing.json")
    assert pre.classes == tuple(str(i) for i in range(10)) and pre.input_shape == (1, 8, 8)
    model = nas_api.build_model(nas_api.load_genotype(out / "genotype.yaml"))
    model.load_state_dict(load_checkpoint(out / "model.pth"))
    data = load_dataset("digits", resolution=8, subset=300)
    with torch.no_grad():
        logits = Normalized(model, pre).eval()(data.val_images.float() / 255)
    accuracy = (logits.argmax(1) == data.val_labels).sum().item() / len(data.val_labels)
    final = json.loads((out / "result.json").read_text())["final_val_accuracy"]
    assert accuracy == pytest.approx(final, abs=1e-12)


def test_keeper_keeps_the_pareto_set_within_the_budget(tmp_path: Path) -> None:
    from nas.preprocessing import Preprocessing
    from nas.search._keep import KeepPolicy, WeightKeeper, kept_weights

    pre = Preprocessing(input_shape=(1, 8, 8), mean=(0.5,), std=(0.25,), classes=("a", "b"))
    state = {"w": torch.zeros(1000)}  # about 5 kB on disk
    keeper = WeightKeeper(tmp_path, KeepPolicy(), ["val_accuracy", "macs"], ["maximize", "minimize"])
    offers = {0: (0.80, 100), 1: (0.90, 200), 2: (0.85, 300), 3: (0.95, 100), 4: (0.95, 100)}
    kept = {n: keeper.offer(n, v, state, pre)["kept"] for n, v in offers.items()}
    # 2 is dominated by 1 when it arrives; 3 dominates 0, 1 and 2; 4 ties with 3 (earlier wins).
    assert kept == {0: True, 1: True, 2: False, 3: True, 4: False}
    assert [n for n in offers if kept_weights(tmp_path / "trials" / f"{n:04d}")] == [3]
    # A budget of one file keeps the best by the first objective only.
    (tmp_path / "b").mkdir()
    small = WeightKeeper(tmp_path / "b", KeepPolicy(select="top", top=3, max_mb=0.008), ["val_accuracy"],
                         ["maximize"])
    assert [small.offer(n, [a], state, pre)["kept"] for n, a in ((0, 0.5), (1, 0.7), (2, 0.6))] == [True, True, False]
    assert [n for n in range(3) if kept_weights(tmp_path / "b" / "trials" / f"{n:04d}")] == [1]
