"""Configs are checked completely at load, before anything is written: one case per class of bad
value, each exit status 2, one line naming the file and the key, no traceback, and no folder
made (not in the runs folder, the working folder, the dataset folder or the home folder).
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from nas.cli import main as nas

ROOT = Path(__file__).resolve().parents[1]
TABLE = ROOT.parent / "shared" / "data" / "nasbench201" / "nb201_cifar.csv"

NO_USER = "nas-no-such-user"  # a ~USER no system has

BASE = {
    "name": "bad",
    "space": {
        "genotype": str(ROOT / "genotypes" / "search" / "resnet_cifar.yaml"),
        "params": {"widths": [4, 8, 8], "depths": [1, 1, 1]},
        "choices": {"block": {"choices": ["cifar_basic", "basic_se"]},
                    "depth": {"param": "depths", "per_stage": True, "int": [1, 2]}},
        "seeds": {"tiny": {}},
    },
    "dataset": {"name": "digits", "subset": 100, "val_subset": 50},
    "train": {"epochs": 1, "batch_size": 50, "device": "cpu"},
    "sampler": "random",
    "trials": 1,
}


def config(**changes) -> dict:
    """BASE with ``a__b=value`` setting ``data["a"]["b"]`` (``None`` deletes the key)."""
    data = copy.deepcopy(BASE)
    for key, value in changes.items():
        *parents, last = key.split("__")
        node = data
        for part in parents:
            node = node[part]
        if value is None:
            node.pop(last, None)
        else:
            node[last] = value
    return data


# class -> {case: (config, key path in the message)}
CASES = {
    "run_name": {
        "nul": (config(name="run\0x"), "name"),
        "slash": (config(name="../escape"), "name"),
        "dot": (config(name=".hidden"), "name"),
        "space": (config(name="a b"), "name"),
        "too_long": (config(name="x" * 101), "name"),
        "not_text": (config(name=12), "name"),
        "dash_first": (config(name="-rf"), "name"),
    },
    "run_numbers": {
        "timeout_nan": (config(timeout=float("nan")), "timeout"),
        "timeout_inf": (config(timeout=float("inf")), "timeout"),
        "timeout_negative": (config(timeout=-5), "timeout"),
        "timeout_text": (config(timeout="soon"), "timeout"),
        "trials_zero": (config(trials=0), "trials"),
        "trials_huge": (config(trials=10**12), "trials"),
        "trials_bool": (config(trials=True), "trials"),
        "workers_many": (config(workers=100_000), "workers"),
        "seed_too_big": (config(seed=2**32), "seed"),
        "seed_plus_workers_too_big": (config(seed=2**32 - 1, workers=2), "seed"),
        "seed_negative": (config(seed=-1), "seed"),
        "threads_many": (config(threads=10_000), "threads"),
        "threads_zero": (config(threads=0), "threads"),
        "width_nan": (config(width_multiplier=float("nan")), "width_multiplier"),
        "latency_repeats": (config(objectives=["val_accuracy", "latency"],
                                   latency={"repeats": 10**9}), "latency.repeats"),
        "latency_warmup": (config(objectives=["val_accuracy", "latency"],
                                  latency={"warmup": 100_000}), "latency.warmup"),
        "storage_nul": (config(storage="a\0b"), "storage"),
        "storage_in_memory": (config(storage="sqlite:///:memory:"), "storage"),
        "storage_in_memory_bare": (config(storage="sqlite://"), "storage"),
        "storage_in_memory_shared": (config(storage="sqlite+pysqlite:///file::memory:?cache=shared"), "storage"),
        "keep_max_mb_nan": (config(keep_weights={"max_mb": float("nan")}), "keep_weights.max_mb"),
        "doc_not_text": (config(doc=[1]), "doc"),
        "prescreen_huge": (config(proxies={"prescreen": {"proxy": ["params"], "candidates": 10**9, "top": 1}}),
                           "proxies.prescreen.candidates"),
        "proxy_batch_huge": (config(proxies={"batch": 10**6}), "proxies.batch"),
        "proxy_name_a_list": (config(proxies={"record": [["naswot"]]}), "proxies.record[0]: unknown proxy"),
        "proxy_name_a_mapping": (config(proxies={"prescreen": {"proxy": [{"a": 1}], "candidates": 4, "top": 1}}),
                                 "proxies.prescreen.proxy[0]: unknown proxy"),
    },
    "retrain": {
        "train_lr": (config(retrain={"train": {"lr": "x"}}), "retrain.train.lr"),
        "seeds_huge": (config(retrain={"seeds": 10**9}), "retrain.seeds"),
        "grow_text": (config(retrain={"grow": "yes"}), "retrain.grow"),
    },
    "train_numbers": {
        "lr_huge": (config(train__lr=1e300), "train.lr"),
        "lr_nan": (config(train__lr=float("nan")), "train.lr"),
        "epochs_huge": (config(train__epochs=10**9), "train.epochs"),
        "batch_negative": (config(train__batch_size=-1), "train.batch_size"),
        "weight_decay": (config(train__weight_decay=5), "train.weight_decay"),
        "threads_many": (config(train__threads=10_000), "train.threads"),
        "seed_too_big": (config(train__seed=2**32), "train.seed"),
        "time_limit_inf": (config(train__time_limit=float("inf")), "train.time_limit"),
        "bn_recalibration_negative": (config(train__bn_recalibration_batches=-1),
                                      "train.bn_recalibration_batches"),
        "bn_recalibration_fraction": (config(train__bn_recalibration_batches=2.5),
                                      "train.bn_recalibration_batches"),
        # wider than the dataset's 8 x 8 images: every trial failed in training (exit 1)
        "crop_padding_wider_than_images": (config(train__crop_padding=9), "train.crop_padding"),
        # every trial failed: 'ValueError: Nesterov momentum requires a momentum and zero dampening'
        "nesterov_without_momentum": (config(train__momentum=0), "train.momentum"),
        "retrain_nesterov_without_momentum": (config(retrain={"train": {"momentum": 0}}), "retrain.train.momentum"),
    },
    "dataset": {
        "unknown_name": (config(dataset="imagenet22k"), "dataset"),
        "unknown_option": (config(dataset={"name": "digits", "subsett": 3}), "dataset.subsett"),
        "negative_subset": (config(dataset={"name": "digits", "subset": -5}), "dataset.subset"),
        "val_fraction": (config(dataset={"name": "digits", "val_fraction": 1.5}), "dataset.val_fraction"),
        "huge_resolution": (config(dataset={"name": "digits", "resolution": 10**6}), "dataset.resolution"),
        "seed": (config(dataset={"name": "digits", "seed": -3}), "dataset.seed"),
        "download_text": (config(dataset={"name": "cifar10", "download": "yes"}), "dataset.download"),
        "synthetic_negative": (config(dataset={"name": "synthetic", "num_images": -5}),
                               "dataset.num_images"),
        "synthetic_huge": (config(dataset={"name": "synthetic", "num_images": 10**9}),
                           "dataset.num_images"),
        "synthetic_noise": (config(dataset={"name": "synthetic", "noise": float("nan")}),
                            "dataset.noise"),
        "idx_missing": (config(dataset={"name": "idx", "images": "nope.idx", "labels": "nope.idx"}),
                        "dataset.images"),
        "not_a_mapping": (config(dataset=[1, 2]), "dataset"),
        "root_no_such_user": (config(dataset={"name": "folder", "root": f"~{NO_USER}/x"}),
                              "dataset.root: '~nas-no-such-user/x': no such user"),
        "cache_no_such_user": (config(dataset={"name": "folder", "root": ".", "cache": f"~{NO_USER}"}),
                               "dataset.cache: '~nas-no-such-user': no such user"),
        "proxies_no_such_user": (config(proxies={"data": {"name": "folder", "root": f"~{NO_USER}"}}),
                                 "proxies.data.root: '~nas-no-such-user': no such user"),
    },
    "paths_the_os_cannot_take": {  # were an OSError or ValueError naming the path, not the key
        "space_too_long": (config(space="s" * 5000), "space: "),
        "space_part_too_long": (config(space="s/" * 3000), "space: "),
        "genotype_too_long": (config(space__genotype="g" * 5000 + ".yaml"), "space.genotype: "),
        "root_too_long": (config(dataset={"name": "folder", "root": "r" * 5000}), "dataset.root: "),
        "root_nul": (config(dataset={"name": "folder", "root": "a\0b"}), "dataset.root: "),
        "cache_nul": (config(dataset={"name": "folder", "root": ".", "cache": "a\0b"}), "dataset.cache: "),
        "table_too_long": (config(tabular={"table": "t" * 5000}, dataset=None, train=None), "tabular.table: "),
    },
    "dataset_offline": {
        "cifar10": (config(dataset="cifar10"), "dataset.root"),
        "mnist_subset": (config(dataset={"name": "mnist", "subset": 100}), "dataset.root"),
        "cifar10_no_download": (config(dataset={"name": "cifar10", "download": False}), "dataset.root"),
    },
    "sampler": {
        "wrong_type": (config(sampler={"name": "tpe", "n_startup_trials": "ten"}),
                       "sampler.n_startup_trials"),
        "bool_as_text": (config(sampler={"name": "tpe", "multivariate": "true"}), "sampler.multivariate"),
        "unknown_option": (config(sampler={"name": "random", "n_startup_trials": 3}),
                           "sampler.n_startup_trials"),
        "python_object": (config(sampler={"name": "tpe", "gamma": 3}), "sampler.gamma"),
        "options_not_mapping": (config(sampler={"name": "tpe", "options": [1, 2]}), "sampler.options"),
        "refused_value": (config(sampler={"name": "nsga2", "population_size": 0}), "sampler"),
        "ours_refused": (config(sampler={"name": "evolution", "population_size": 2, "sample_size": 5}),
                         "sampler"),
        "avoid_duplicates": (config(sampler={"name": "tpe", "avoid_duplicates": "yes"}),
                             "sampler.avoid_duplicates"),
        "reject_infeasible": (config(sampler={"name": "tpe", "reject_infeasible": 1}),
                              "sampler.reject_infeasible"),
        "seed_is_ours": (config(sampler={"name": "tpe", "seed": 3}), "sampler.seed"),
        "negative_count": (config(sampler={"name": "tpe", "n_startup_trials": -5}), "sampler.n_startup_trials"),
    },
    "pruner": {
        "unknown_option": (config(pruner={"name": "median", "patience": 2}), "pruner.patience"),
        "wrong_type": (config(pruner={"name": "median", "n_warmup_steps": "x"}), "pruner.n_warmup_steps"),
        "refused_value": (config(pruner={"name": "median", "n_startup_trials": -1}), "pruner"),
        "hyperband_resource": (config(pruner={"name": "hyperband", "max_resource": "lots"}), "pruner"),
        # Optuna prunes a trial at a rung until more than bootstrap_count trials reached it
        "hyperband_bootstrap_at_budget": (config(trials=3, pruner={"name": "hyperband", "bootstrap_count": 3}),
                                          "pruner.bootstrap_count"),
        "halving_nan": (config(pruner={"name": "halving", "reduction": float("nan")}), "pruner.reduction"),
        "halving_late_rung": (config(pruner={"name": "halving", "rungs": [5]}), "pruner.rungs"),
        "halving_unordered": (config(train__epochs=3, pruner={"name": "halving", "rungs": [2, 1]}),
                              "pruner.rungs"),
    },
    "space": {
        "op_choice": (config(space__choices__block={"choices": ["cifar_basic", "conv_9x9"]}),
                      "space.choices.block.choices"),
        "int_bound_huge": (config(space__choices__depth={"param": "depths", "per_stage": True,
                                                        "int": [1, 2**60]}),
                           "space.choices.depth"),
        "float_bound_inf": (config(space__choices={"w": {"param": "widths", "per_stage": True,
                                                          "float": [1.0, float("inf")]}}),
                            "space.choices.w"),
        "constraint_inf": (config(space__constraints={"params": {"max": float("inf")}}),
                           "space.constraints.params.max"),
        "constraint_text": (config(space__constraints={"params": {"max": "lots"}}),
                            "space.constraints.params.max"),
        "genotype_missing": (config(space__genotype="nowhere/net.yaml"), "space.genotype"),
        "constraint_min_over_max": (config(space__constraints={"params": {"min": 10, "max": 1}}),
                                    "space.constraints.params"),
        # nas retrain writes OUT/SEED/: these escaped OUT or shared a searched trial's folder
        "seed_name_escapes": (config(space__seeds={"../../x": {}}), "space.seeds.../../x: must be a folder name"),
        "seed_name_a_number": (config(space__seeds={1: {}}), "space.seeds.1: must be a folder name"),
        "seed_name_a_trial": (config(space__seeds={"trial_0003": {}}), "space.seeds.trial_0003: 'trial_0003' is"),
        "seed_name_grown": (config(space__seeds={"tiny_grown": {}}), "space.seeds.tiny_grown: 'tiny_grown' is"),
        # 4,096 stages of one per_stage choice: 15 s and 860 MB a trial for a tiny network
        "choices_too_many": (config(space__params={"widths": [4] * 1001, "depths": [1, 1, 1]},
                                    space__choices={"w": {"param": "widths", "per_stage": True, "int": [4, 8]}}),
                             "space.choices.w: more than 1,000 choices"),
        # each seed is expanded when the config is read: 40,000 (600 KB) took 36 s
        "seeds_too_many": (config(space__seeds={f"s{i}": {} for i in range(1001)}), "space.seeds: more than 1,000"),
    },
    # a section that must be a mapping: a list or number was 'unexpected AttributeError', and
    # an empty value of another type (0, "", false) was taken as an empty section
    "sections": {
        "proxy_constraints_a_list": (config(proxies={"constraints": [1]}), "proxies.constraints: must be a mapping"),
        "proxy_constraints_a_number": (config(proxies={"constraints": 5}), "proxies.constraints: must be a mapping"),
        "proxy_constraints_zero": (config(proxies={"constraints": 0}), "proxies.constraints: must be a mapping"),
        "train_zero": (config(train=0), "train: must be a mapping"),
        "latency_empty_text": (config(latency=""), "latency: must be a mapping"),
        "space_params_false": (config(space__params=False), "space.params: must be a mapping"),
        "space_choices_zero": (config(space__choices=0), "space.choices: must be a mapping"),
        "space_constraints_empty_text": (config(space__constraints=""), "space.constraints: must be a mapping"),
        "space_seeds_zero": (config(space__seeds=0), "space.seeds: must be a mapping"),
        "retrain_train_zero": (config(retrain={"train": 0}), "retrain.train: must be a mapping"),
        "sampler_options_false": (config(sampler={"name": "tpe", "options": False}),
                                  "sampler.options: must be a mapping"),
    },    # a key that names a parameter or option must be text: 1: 2 was 'unexpected TypeError:
    # keywords must be strings'
    "keys_not_text": {
        "space_params": (config(space__params={"widths": [4, 8, 8], "depths": [1, 1, 1], 1: 2}),
                         "space.params: a parameter name must be text, got 1"),
        "dataset_option": (config(dataset={"name": "digits", 7: 1}), "dataset: an option name must be text, got 7"),
        "dataset_option_null": (config(dataset={"name": "digits", None: 1}),
                                "dataset: an option name must be text, got None"),
    },    # the proxies' images were checked only when the search loaded them, in a line without the
    # config file or the key ('subset: must be an integer ...', 'dataset: unknown dataset ...')
    "proxy_data": {
        "unknown_name": (config(proxies={"record": ["naswot"], "data": {"name": "nosuch"}}),
                         "proxies.data: unknown dataset 'nosuch'"),
        "unknown_option": (config(proxies={"record": ["naswot"], "data": {"name": "digits", "subsett": 3}}),
                           "proxies.data.subsett: unknown option"),
        "negative_subset": (config(proxies={"record": ["naswot"], "data": {"name": "digits", "subset": -5}}),
                            "proxies.data.subset: "),
        "missing_file": (config(proxies={"record": ["naswot"], "data": {"name": "npz", "path": "nope.npz"}}),
                         "proxies.data.path: "),
        "option_not_text": (config(proxies={"record": ["naswot"], "data": {"name": "digits", 1: 2}}),
                            "proxies.data: an option name must be text, got 1"),
    },
}

FLAT = {f"{group}.{case}": value for group, cases in CASES.items() for case, value in cases.items()}


def _tree(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    """The working folder is tmp_path/work; home and the dataset folder point at folders that
    do not exist, so any folder a check makes shows up."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("NAS_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("NAS_OFFLINE", "1")
    return tmp_path


def _run_bad(sandbox: Path, data: dict | str, capsys) -> tuple[Path, str]:
    file = sandbox / "work" / "bad.yaml"
    file.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    before = _tree(sandbox)
    status = nas(["search", str(file), "--runs", str(sandbox / "work" / "runs"), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2, err
    assert len(err) == 1, err
    assert _tree(sandbox) == before, "a check made a file or folder"
    return file, err[0]


@pytest.mark.parametrize("case", sorted(FLAT))
def test_bad_config_is_one_line_exit_2_and_makes_nothing(case, sandbox, capsys):
    data, path = FLAT[case]
    file, line = _run_bad(sandbox, data, capsys)
    assert line.startswith(f"{file}: {path}"), line
    assert "Traceback" not in line


def test_offline_means_no_download_server(sandbox, capsys, monkeypatch):
    """Without NAS_OFFLINE, an unreachable server is what makes the dataset unavailable."""
    import nas.data._sources

    monkeypatch.delenv("NAS_OFFLINE")
    monkeypatch.setattr(nas.data._sources, "_reachable", lambda url, timeout=3.0: False)
    file, line = _run_bad(sandbox, config(dataset="cifar10"), capsys)
    assert line.startswith(f"{file}: dataset.root: cifar10: files not found under {sandbox / 'data'}")
    assert "cannot be reached" in line


def test_tabular_op_not_in_the_table(sandbox, capsys):
    if not TABLE.is_file():
        pytest.skip(f"NAS-Bench-201 table absent: {TABLE}")
    data = yaml.safe_load((ROOT / "search_spaces" / "nb201.yaml").read_text())
    data["space"]["genotype"] = str(ROOT / "genotypes" / "nb201.yaml")
    data["tabular"]["table"] = str(TABLE)
    data["space"]["choices"]["node2.in1"]["choices"].append("max_pool_3x3")  # a block, not in NB201
    file, line = _run_bad(sandbox, data, capsys)
    assert line.startswith(f"{file}: space.choices.node2.in1.choices: 'max_pool_3x3' is not a "
                           "NAS-Bench-201 op"), line


@pytest.mark.parametrize("key", ["root", "cache"])
def test_a_dataset_path_through_a_symlink_loop(sandbox, capsys, key):
    work = sandbox / "work"
    (work / "sl1").symlink_to("sl2")
    (work / "sl2").symlink_to("sl1")
    file, line = _run_bad(sandbox, config(dataset={"name": "folder", "root": ".", key: "sl1/x"}), capsys)
    assert line == f"{file}: dataset.{key}: '{work / 'sl1' / 'x'}': symlink loop"


def test_a_storage_through_a_symlink_loop(sandbox, capsys):
    work = sandbox / "work"
    (work / "sl1").symlink_to("sl2")
    (work / "sl2").symlink_to("sl1")
    file = work / "ok.yaml"
    file.write_text(yaml.safe_dump(config()))
    assert nas(["search", str(file), "--runs", str(work / "runs"), "--storage", "sl1/j.log"]) == 2
    assert capsys.readouterr().err.strip() == f"{file}: --storage: 'sl1/j.log': symlink loop"


YAML_NUMBERS = """\
name: yaml12
space:
  genotype: {genotype}
  params: {{widths: [4, 8, 8], depths: [1, 1, 1]}}
  choices:
    block: {{choices: [cifar_basic, basic_se]}}
  constraints: {{params: {{max: 1.0e6}}, macs: {{max: 2e9}}}}
dataset: {{name: digits, subset: 1.0e2}}
train: {{epochs: 1, lr: 1e-1, weight_decay: 5.0e-4, device: cpu}}
trials: 1e1
timeout: .nan
"""


def test_yaml_1_1_exponents_are_numbers(sandbox, capsys):
    """1.0e6 and 1e-1 are numbers, as the documentation writes them; .nan is still refused."""
    from nas.search import load_config

    text = YAML_NUMBERS.format(genotype=ROOT / "genotypes" / "search" / "resnet_cifar.yaml")
    _, line = _run_bad(sandbox, text, capsys)
    assert "timeout: must be a number in (0, 1e+07], got nan" in line
    good = sandbox / "work" / "good.yaml"
    good.write_text(text.replace("timeout: .nan\n", ""))
    loaded = load_config(good)
    assert loaded.space.constraints["params"] == (None, 1e6)
    assert loaded.space.constraints["macs"] == (None, 2e9)
    assert loaded.train_config().lr == 0.1 and loaded.trials == 10


@pytest.mark.parametrize(("flags", "where"), [
    (["--name", "a\0b"], "--name"),
    (["--name", ".."], "--name"),
    (["--trials", "0"], "--trials"),
    (["--workers", "100000"], "--workers"),
    (["--storage", "sqlite:///run.db?mode=memory"], "storage"),
    (["--devices", "cpu,cuda:99"], "devices[1]"),
])
def test_bad_search_flags(sandbox, capsys, flags, where):
    file = sandbox / "work" / "ok.yaml"
    file.write_text(yaml.safe_dump(config()))
    before = _tree(sandbox)
    assert nas(["search", str(file), "--runs", str(sandbox / "work" / "runs"), *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"{where}: "), err
    assert _tree(sandbox) == before


def test_a_trials_flag_at_or_under_hyperbands_bootstrap_count_is_refused(sandbox, capsys):
    """--trials 3 with bootstrap_count: 5 would prune every trial (Optuna's rule): one line at the
    config's key, naming the flag."""
    file = sandbox / "work" / "ok.yaml"
    file.write_text(yaml.safe_dump(config(trials=10, pruner={"name": "hyperband", "bootstrap_count": 5})))
    before = _tree(sandbox)
    assert nas(["search", str(file), "--runs", str(sandbox / "work" / "runs"), "--trials", "5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"{file}: pruner.bootstrap_count: 5 is not below the trial budget (--trials: 5): Optuna's "
                   "hyperband prunes a trial at a rung until more than bootstrap_count trials reached it, "
                   "so every trial would be pruned"], err
    assert _tree(sandbox) == before


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_a_cuda_training_device_without_a_gpu_is_refused_before_the_run_folder(sandbox, capsys):
    # every trial would fail alike ("CUDA is not available") and spend the whole budget
    file = sandbox / "work" / "gpu.yaml"
    file.write_text(yaml.safe_dump(config(train__device="cuda")))
    before = _tree(sandbox)
    assert nas(["search", str(file), "--runs", str(sandbox / "work" / "runs")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"{file}: train.device: cuda: this machine has 0 GPUs"], err
    assert _tree(sandbox) == before


def test_a_space_without_a_valid_candidate_is_refused_before_the_run_folder(sandbox, capsys):
    # widths has 2 items, the genotype reads widths[2]: every trial would be invalid
    file = sandbox / "work" / "none_valid.yaml"
    file.write_text(yaml.safe_dump(config(space__params={"widths": [4, 8], "depths": [1, 1, 1]},
                                          space__seeds=None)))
    before = _tree(sandbox)
    assert nas(["search", str(file), "--runs", str(sandbox / "work" / "runs")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"{file}: space: none of 32 candidates drawn from the space "
                                               "is a valid genotype (the first: "), err
    assert "index 2 out of range for 2 items" in err[0]
    assert _tree(sandbox) == before


def test_a_space_drawing_some_invalid_candidates_is_searched():
    # invalid points are the search's to find (invalid trials); one valid draw is enough
    from nas.search._space import parse_space

    space = parse_space({"genotype": str(ROOT / "genotypes" / "search" / "resnet_cifar.yaml"),
                         "choices": {"width": {"param": "widths", "per_stage": True, "choices": [0, 16]}}})
    space.check_some_valid(draws=64)


SCALE = {
    "name": "scale",
    "genotype": str(ROOT / "genotypes" / "search" / "resnet_cifar.yaml"),
    "params": {"widths": [4, 8, 8], "depths": [1, 1, 1]},
    "dataset": {"name": "digits", "resolution": 8, "subset": 100},
    "train": {"epochs": 1, "device": "cpu"},
    "grid": {"alpha": [1.0], "beta": [1.0], "gamma": [1.0]},
    "target": 1.0,
    "family": 0,
}


@pytest.mark.parametrize(("change", "where"), [
    ({"name": "a\0b"}, "name"),
    ({"dataset": {"name": "digits", "resolution": 8, "subset": -1}}, "dataset.subset"),
    ({"dataset": {"name": "cifar10", "resolution": 8}}, "dataset.root"),
    ({"seed": 2**32}, "seed"),
    ({"threads": 10_000}, "threads"),
    ({"train": {"lr": 1e300}}, "train.lr"),
    ({"grid": {"alpha": [1e300], "beta": [1e300], "gamma": [1e300]}, "target": 1e300}, "grid.alpha"),
    ({"grid": {"alpha": [1.0], "beta": [1.0], "gamma": [float("nan")]}}, "grid.gamma"),
    ({"target": 1e300}, "target"),
    ({"grid": {"alpha": {"low": 1.0, "high": float("inf"), "step": 0.1}, "beta": [1.0], "gamma": [1.0]}},
     "grid.alpha"),
    ({"grid": {"alpha": {"low": 1.0, "high": 2.0, "step": 1e-320}, "beta": [1.0], "gamma": [1.0]}},
     "grid.alpha"),
    ({"grid": {"alpha": {"low": 1.0, "high": 2.0, "step": float("inf")}, "beta": [1.0], "gamma": [1.0]}},
     "grid.alpha"),
    # a candidate too large to build was named 'GENOTYPE.yaml: grid: ...', the config's key in the genotype
    ({"width_divisor": 65536, "grid": {"alpha": [1.0], "beta": [1.2], "gamma": [1.0]}, "target": 1.44}, "grid"),
    # a divisor past any usable width: at its key (10**23 was named at the genotype's widths)
    ({"width_divisor": 10**23}, "width_divisor"),
    ({"resolution_divisor": 10**9}, "resolution_divisor"),
    # was 'unexpected TypeError: keywords must be strings'
    ({"params": {1: 2}}, "params: a parameter name must be text, got 1"),
    ({"dataset": {"name": "digits", "resolution": 8, 7: 1}}, "dataset: an option name must be text, got 7"),
])
def test_bad_scale_search_config(sandbox, capsys, change, where):
    file = sandbox / "work" / "scale.yaml"
    file.write_text(yaml.safe_dump({**SCALE, **change}))
    before = _tree(sandbox)
    assert nas(["scale-search", str(file), "--runs", str(sandbox / "work" / "runs")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(f"{file}: {where}") or err[0].startswith(f"{file}: grid: "), err
    assert where in err[0] and "unexpected" not in err[0]
    assert _tree(sandbox) == before


@pytest.mark.parametrize(("spec", "message"), [
    ([1e300], "coefficients are finite numbers in [1, 1000] (phi = 1 must not shrink the network), got 1e+300"),
    ({"low": 1.0, "high": float("inf"), "step": 0.1}, "needs numbers 1 <= low <= high <= 1000 and a finite step > 0"),
    ({"low": 1.0, "high": 2.0, "step": 1e-320}, "more than 1000 values"),
])
def test_scale_search_grid_values_are_bounded(tmp_path, spec, message):
    from nas.errors import ConfigError
    from nas.scaling._search import load_scale_config

    file = tmp_path / "scale.yaml"
    file.write_text(yaml.safe_dump({**SCALE, "grid": {"alpha": spec, "beta": [1.0], "gamma": [1.0]}}))
    with pytest.raises(ConfigError) as error:
        load_scale_config(file)
    assert str(error.value).startswith(f"{file}: grid.alpha: {message}"), error.value


@pytest.mark.parametrize(("flags", "where"), [
    (["--threads", "10000"], "threads"),
    (["--lr", "1e300"], "lr"),
    (["--epochs", "0"], "epochs"),
    (["--dataset", "cifar10"], "root"),
    (["--dataset", "digits", "--subset", "-3"], "subset"),
    (["--dataset", "folder", "--root", f"~{NO_USER}/x"], "root"),
    (["--dataset", "folder", "--root", ".", "--data-option", f"cache=~{NO_USER}"], "cache"),
    (["--dataset", "npz", "--root", ".", "--data-option", f"path=~{NO_USER}/x.npz"], "path"),
])
def test_bad_train_options(sandbox, capsys, flags, where):
    before = _tree(sandbox)
    status = nas(["train", "resnet20", "--device", "cpu", "--quiet", "--out",
                  str(sandbox / "work" / "out"), *flags])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1, err
    assert err[0].startswith(f"{where}: ") or f": {where}: " in err[0], err
    assert _tree(sandbox) == before


@pytest.mark.parametrize("case", ["run_numbers.threads_many", "dataset_offline.cifar10",
                                  "sampler.wrong_type", "run_name.nul"])
def test_real_command_in_a_subprocess(case, tmp_path):
    """The command as a user runs it: exit 2, one line, no traceback, within a hang guard."""
    data, path = FLAT[case]
    file = tmp_path / "bad.yaml"
    file.write_text(yaml.safe_dump(data))
    env = dict(os.environ, PYTHONPATH=str(ROOT), HOME=str(tmp_path / "home"),
               NAS_DATA=str(tmp_path / "data"), NAS_OFFLINE="1")
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "nas", "search", str(file), "--runs",
                             str(tmp_path / "runs")], capture_output=True, text=True, env=env,
                            cwd=tmp_path, timeout=180)
    assert time.monotonic() - started < 180
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{file}: {path}"), result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml"]
