"""Bad run configs: exit status 2 and one line naming the file and the key, before any trial."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from nas.cli import main
from nas.search import load_config
from nas.search._space import parse_space

ROOT = Path(__file__).resolve().parents[1]
GENOTYPE = str(ROOT / "genotypes" / "search" / "resnet_cifar.yaml")


def base() -> dict:
    return {
        "name": "bad",
        "space": {
            "genotype": GENOTYPE,
            "choices": {"depth": {"param": "depths", "per_stage": True, "int": [1, 3]},
                        "block": {"choices": ["cifar_basic", "bottleneck"]}},
            "seeds": {"resnet20": {}},
        },
        "dataset": "digits",
        "train": {"epochs": 1},
        "trials": 1,
    }


def set_key(data: dict, dotted: str, value) -> dict:
    *parents, last = dotted.split("/")
    node = data
    for key in parents:
        node = node[key]
    node[last] = value
    return data


CASES = {
    "unknown_key": ("epochz", 3, "epochz"),
    "unknown_train_key": ("train/epochz", 3, "train.epochz"),
    "wrong_type": ("trials", "many", "trials"),
    "wrong_type_train": ("train/epochs", "ten", "train.epochs"),
    "missing_param": ("space/choices/width", {"param": "width", "int": [8, 64]}, "space.choices.width.param"),
    "seed_outside_space": ("space/seeds/resnet110", {"depths": [18, 18, 18]}, "space.seeds.resnet110.depths"),
    "seed_unknown_param": ("space/seeds/x", {"depth": 3}, "space.seeds.x.depth"),
    "unknown_sampler": ("sampler", "annealing", "sampler"),
    "cmaes_categorical": ("sampler", "cmaes", "sampler"),
    "multi_objective_median": ("pruner", "median", "pruner"),
    "bad_constraint": ("space/constraints", {"flops": {"max": 1}}, "space.constraints.flops"),
    "bad_storage": ("storage", "nosuchdb://nowhere/x", "storage"),
    "unknown_dataset_option": ("dataset", {"name": "folder", "root": "x", "rooot": "y"},
                               "dataset.rooot"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_config_is_one_line_and_exit_2(case, tmp_path, capsys):
    key, value, path = CASES[case]
    data = set_key(base(), key, value)
    if case == "multi_objective_median":
        data["objectives"] = ["val_accuracy", "params"]
    file = tmp_path / "bad.yaml"
    file.write_text(yaml.safe_dump(data))
    status = main(["search", str(file), "--runs", str(tmp_path / "runs"), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert status == 2
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"{file}: {path}:"), err
    assert not (tmp_path / "runs" / "bad" / "trials").exists()


def test_dataset_paths_are_relative_to_the_config_file(tmp_path, monkeypatch):
    data = base()
    data["dataset"] = {"name": "folder", "root": "data/images.tar.gz", "val_root": "../test",
                       "cache": "cache", "resolution": 32}
    folder = tmp_path / "configs"
    folder.mkdir()
    (folder / "run.yaml").write_text(yaml.safe_dump(data))
    dataset = load_config(folder / "run.yaml").dataset
    assert dataset["root"] == str(folder / "data" / "images.tar.gz")
    assert dataset["val_root"] == str(tmp_path / "test")
    assert dataset["cache"] == str(folder / "cache")
    assert dataset["resolution"] == 32
    # A source missing beside the config but present in the working folder is taken from there.
    (tmp_path / "work" / "data").mkdir(parents=True)
    (tmp_path / "work" / "data" / "images.tar.gz").write_bytes(b"")
    monkeypatch.chdir(tmp_path / "work")
    dataset = load_config(folder / "run.yaml").dataset
    assert dataset["root"] == str(tmp_path / "work" / "data" / "images.tar.gz")
    assert dataset["cache"] == str(folder / "cache")


def test_missing_dataset_archive_fails_before_the_run_folder(tmp_path, capsys):
    data = base()
    data["dataset"] = {"name": "folder", "root": "missing.tar.gz", "cache": "cache"}
    file = tmp_path / "run.yaml"
    file.write_text(yaml.safe_dump(data))
    status = main(["search", str(file), "--runs", str(tmp_path / "runs"), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert status == 2
    assert err == f"{tmp_path / 'missing.tar.gz'}: image folder or archive not found"
    assert not (tmp_path / "runs" / "bad").exists()


def test_storage_flag_that_cannot_be_opened(tmp_path, capsys):
    file = tmp_path / "ok.yaml"
    file.write_text(yaml.safe_dump(base()))
    status = main(["search", str(file), "--runs", str(tmp_path / "runs"),
                   "--storage", "postgresql://u:secret@127.0.0.1:1/none", "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert status == 2 and len(err.splitlines()) == 1
    assert "--storage" in err and "secret" not in err


def test_storage_server_that_never_answers_is_given_up_on(tmp_path, capsys, monkeypatch):
    # the server accepts the connection and never says a word: without a connect timeout the
    # search waited forever
    pytest.importorskip("psycopg", reason="PostgreSQL's driver is in the dev extra")
    import socket
    import time

    from nas.search import _storage

    monkeypatch.setattr(_storage, "CONNECT_TIMEOUT", 2)
    file = tmp_path / "ok.yaml"
    file.write_text(yaml.safe_dump(base()))
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # the kernel completes the handshake; nobody ever reads or writes
        started = time.monotonic()
        status = main(["search", str(file), "--runs", str(tmp_path / "runs"), "--no-progress",
                       "--storage", f"postgresql://nas@127.0.0.1:{silent.getsockname()[1]}/nas"])
        assert time.monotonic() - started < 60  # a guard against the hang, not a timing target
    err = capsys.readouterr().err.strip()
    assert status == 2 and len(err.splitlines()) == 1
    assert "--storage" in err and "cannot open storage" in err


def test_cli_subprocess_prints_one_line(tmp_path):
    file = tmp_path / "bad.yaml"
    file.write_text(yaml.safe_dump(set_key(base(), "space/seeds/r", {"depths": [9, 9, 9]})))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    result = subprocess.run([sys.executable, "-m", "nas", "search", str(file), "--runs",
                             str(tmp_path / "runs")], capture_output=True, text=True, env=env)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"{file}: space.seeds.r.depths: 9 is outside the space: choice 'stage1.depth' is int in [1, 3]"
    ]


@pytest.mark.parametrize("key, value, message", [
    ("trials", -1, "trials: must be an integer in [1, 1000000], got -1"),
    ("train/epochs", "x", "train.epochs: must be an integer in [1, 100000], got 'x'"),
    ("width_multiplier", -2, "width_multiplier: must be a number in (0, 16], got -2"),
])
def test_a_mistyped_value_is_reported_before_torch_loads(key, value, message, tmp_path):
    # checking the dataset loads torch (seconds): every other key of the file is checked first
    file = tmp_path / "bad.yaml"
    file.write_text(yaml.safe_dump(set_key(base(), key, value)))
    code = ("import sys\nfrom nas.errors import ConfigError\nfrom nas.search import load_config\n"
            "try:\n    load_config(sys.argv[1])\nexcept ConfigError as error:\n    print(error)\n"
            "print('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code, str(file)], capture_output=True, text=True,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=120)
    assert result.stdout.splitlines() == [f"{file}: {message}", "False"], result.stderr


def test_space_language_per_stage_and_conditions():
    space = parse_space({
        "genotype": str(ROOT / "genotypes" / "search" / "mobile_macro.yaml"),
        "choices": {
            "kind": {"param": "kinds", "per_stage": True, "choices": ["mb", "ds"]},
            "expansion": {"param": "expansions", "per_stage": True, "choices": [1, 3, 6],
                          "when": {"kind": "mb"}},
        },
        "seeds": {"mobilenet_v2": {}},
    })
    assert space.labels[:2] == ["stage1.kind", "stage2.kind"]
    assert space.choice("stage3.expansion").when == (("stage3.kind", ("mb",)),)
    seed = space.seeds["mobilenet_v2"]
    assert seed["stage1.kind"] == "ds" and "stage1.expansion" not in seed
    assert seed["stage2.expansion"] == 6

    class Trial:  # always the first option / the low end
        def suggest_categorical(self, name, options):
            return options[-1] if name == "stage1.kind" else options[0]

    values = space.suggest(Trial())
    assert "stage1.expansion" not in values and values["stage2.expansion"] == 1
    params = space.genotype_params(values)
    assert params["kinds"][0] == "ds" and params["expansions"][1] == 1


def test_shipped_configs_load(online):
    for name in ("quickstart", "resnet", "mobile", "zoo"):
        config = load_config(ROOT / "search_spaces" / f"{name}.yaml")
        assert config.space.seeds


def test_best_on_a_corrupt_run_json_is_one_line(tmp_path, capsys):
    from nas.cli import main

    (tmp_path / "run.json").write_text("{oops")
    assert main(["best", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"{tmp_path / 'run.json'}: unreadable:") and "\n" not in err


def _limit_memory() -> None:  # in the child: an unbounded read fails instead of swapping
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30))


@pytest.mark.parametrize("kind", ["fifo", "device", "folder"])
def test_a_journal_that_is_not_a_regular_file_is_one_line(kind, tmp_path):
    if kind == "fifo":
        journal = tmp_path / "journal.log"
        os.mkfifo(journal)
    elif kind == "device":
        journal = Path("/dev/zero")
    else:
        journal = tmp_path / "journal.log"
        journal.mkdir()
    file = tmp_path / "run.yaml"
    file.write_text(yaml.safe_dump({**base(), "storage": str(journal)}))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    result = subprocess.run([sys.executable, "-m", "nas", "search", str(file), "--runs",
                             str(tmp_path / "runs"), "--no-progress"], capture_output=True,
                            text=True, env=env, timeout=120, preexec_fn=_limit_memory)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert lines[0] == f"{file}: storage: journal '{journal}' is not a regular file"


@pytest.mark.parametrize("damage", ["missing", "fifo", "huge", "not_utf8"])
def test_resume_over_a_damaged_frozen_genotype_is_one_line(damage, tmp_path):
    from nas.search._folder import prepare_run_dir

    file = tmp_path / "run.yaml"
    file.write_text(yaml.safe_dump(base()))
    run_dir = tmp_path / "runs" / "bad"
    prepare_run_dir(load_config(file), run_dir, resume=False)
    frozen = run_dir / "space_genotype.yaml"
    frozen.unlink()
    if damage == "fifo":
        os.mkfifo(frozen)
    elif damage == "huge":
        frozen.write_bytes(b"#" * (2 << 20))
    elif damage == "not_utf8":
        frozen.write_bytes(b"\xff\xfe name: x\n")
    code = ("import sys; from pathlib import Path; from nas.errors import ConfigError\n"
            "from nas.search import load_config; from nas.search._folder import prepare_run_dir\n"
            "try:\n    prepare_run_dir(load_config(sys.argv[1]), Path(sys.argv[2]), resume=True)\n"
            "except ConfigError as error:\n    print(error)\n")
    result = subprocess.run([sys.executable, "-c", code, str(file), str(run_dir)], capture_output=True,
                            text=True, timeout=60, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert result.returncode == 0 and result.stderr == "", result.stderr[-500:]
    expected = {"missing": f"{frozen}: file not found", "fifo": f"{frozen}: not a regular file",
                "huge": f"{frozen}: larger than 1048576 bytes",
                "not_utf8": f"{file}: space.genotype: the genotype differs from the run being resumed"}
    assert result.stdout.strip().startswith(expected[damage]), result.stdout


def test_load_run_config_takes_a_run_folder_as_a_string(tmp_path):
    from nas.errors import ConfigError
    from nas.search import load_run_config

    # A str failed with "unsupported operand type(s) for /: 'str' and 'str'".
    with pytest.raises(ConfigError, match=r"config\.yaml: file not found$"):
        load_run_config(str(tmp_path))


def test_load_config_with_a_genotype_that_is_not_one_is_a_type_error():
    # A zoo name failed deep in the space with "'str' object has no attribute 'params'".
    with pytest.raises(TypeError, match=r"^genotype must be a nas.Genotype \(load it with nas.load_genotype\), got str$"):
        load_config(Path(__file__).resolve().parents[1] / "search_spaces" / "quickstart.yaml", genotype="resnet18")
