"""nas.train: the loop's results, failure statuses, resume, config validation, latency,
training-speed estimates and batch-norm recalibration."""

from __future__ import annotations

import copy
import csv
import json
from pathlib import Path

import pytest
import torch
from torch import nn

import nas.train._loop as loop
from nas.data import Dataset, DeviceLoader, load_dataset
from nas.errors import ConfigError
from nas.train import (
    TrainConfig,
    load_checkpoint,
    measure_latency,
    recalibrate_batchnorm,
    train_model,
)
from nas.train._io import write_history_csv
from nas.train._optim import schedule_factor

FAST = dict(batch_size=64, lr=0.05, device="cpu", augment=False)


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> object:
    """Tiny models train fastest, and least disturbed by other processes, on one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return load_dataset("digits")


def small_cnn(seed: int = 0, classes: int = 10) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1, bias=False),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.Conv2d(32, 64, 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(64),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(64 * 4 * 4, classes),
    )


class OutOfMemoryAbove(nn.Module):
    """A small CNN that raises like CUDA does when a batch exceeds ``limit`` images."""

    def __init__(self, limit: int, error: type[Exception] = torch.cuda.OutOfMemoryError,
                 message: str = "CUDA out of memory. Tried to allocate 2.00 GiB"):
        super().__init__()
        self.limit, self.error, self.message, self.net = limit, error, message, small_cnn()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and x.shape[0] > self.limit:
            raise self.error(self.message)
        return self.net(x)


#: What torch raises when the CPU's allocator fails (a process under ``ulimit -v``, a machine
#: without overcommit): no "out of memory" in it.
CPU_OUT_OF_MEMORY = ("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate "
                     "memory: you tried to allocate 4194304 bytes. Error code 12 (Cannot allocate memory)")


def test_small_cnn_learns_digits(digits: Dataset) -> None:
    result = train_model(small_cnn(), digits, TrainConfig(epochs=4, **FAST))
    assert result.status == "completed" and result.epochs == 4
    assert result.best_val_accuracy is not None and result.best_val_accuracy >= 0.95
    assert result.final_val_accuracy == result.history[-1].val_accuracy
    assert [r.epoch for r in result.history] == list(range(1, 5))
    assert result.history[-1].train_loss < result.history[0].train_loss
    assert result.batch_size == 64


def test_same_seed_gives_the_same_accuracy(digits: Dataset) -> None:
    config = TrainConfig(epochs=2, **{**FAST, "augment": True})
    first = train_model(small_cnn(), digits, config)
    second = train_model(small_cnn(), digits, config)
    other = train_model(small_cnn(), digits, config.replace(seed=1))
    assert [r.val_accuracy for r in first.history] == [r.val_accuracy for r in second.history]
    assert [r.train_loss for r in first.history] == [r.train_loss for r in second.history]
    assert [r.train_loss for r in first.history] != [r.train_loss for r in other.history]


def test_diverging_training_ends_with_nan_loss(digits: Dataset) -> None:
    # Learning rates are capped at 10 (lr: 1e12 is a config error), so divergence comes from
    # the model: a classifier whose weights overflow float32 gives infinite logits.
    config = TrainConfig(epochs=3, schedule="constant", **{**FAST, "lr": 10.0})
    model = small_cnn()
    with torch.no_grad():
        model[-1].weight.fill_(3e38)
    result = train_model(model, digits, config)
    assert result.status == "nan_loss" and "NaN" in result.reason
    assert result.epochs == 0 and result.best_val_accuracy is None


def test_time_limit_ends_with_timeout_and_what_it_reached(
    digits: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [0.0]
    monkeypatch.setattr(loop.time, "perf_counter", lambda: clock[0])

    def two_epochs_take_an_hour(history: object) -> None:
        if len(history) == 2:  # type: ignore[arg-type]
            clock[0] += 3600.0

    config = TrainConfig(epochs=5, time_limit=60.0, **FAST)
    result = train_model(small_cnn(), digits, config, on_epoch=two_epochs_take_an_hour)
    assert result.status == "timeout" and "after 2 of 5 epochs" in result.reason
    assert result.epochs == 2 and result.best_val_accuracy == max(
        r.val_accuracy for r in result.history
    )


def test_time_limit_inside_the_first_epoch_reaches_nothing(digits: Dataset) -> None:
    result = train_model(small_cnn(), digits, TrainConfig(epochs=2, time_limit=1e-9, **FAST))
    assert result.status == "timeout" and result.epochs == 0
    assert result.best_val_accuracy is None and result.final_val_accuracy is None


def test_out_of_memory_retries_once_at_half_the_batch(digits: Dataset) -> None:
    config = TrainConfig(epochs=1, **{**FAST, "batch_size": 64})
    result = train_model(OutOfMemoryAbove(32), digits, config)
    assert result.status == "completed" and result.batch_size == 32


@pytest.mark.parametrize("error", [torch.cuda.OutOfMemoryError, RuntimeError])
def test_out_of_memory_twice_ends_with_oom(digits: Dataset, error: type[Exception]) -> None:
    model = OutOfMemoryAbove(16, error)
    result = train_model(model, digits, TrainConfig(epochs=1, **{**FAST, "batch_size": 64}))
    assert result.status == "oom" and result.batch_size == 32
    assert "batch size 32" in result.reason and result.epochs == 0


@pytest.mark.parametrize("error, message", [(RuntimeError, CPU_OUT_OF_MEMORY), (MemoryError, "")])
def test_out_of_memory_on_the_cpu_retries_at_half_the_batch(digits: Dataset, error: type[Exception],
                                                            message: str) -> None:
    # was no out-of-memory: 'nas train' ended in 'unexpected RuntimeError: ... DefaultCPUAllocator:
    # can't allocate memory', a search's trial failed (5 in a row stop a worker)
    config = TrainConfig(epochs=1, **{**FAST, "batch_size": 64})
    result = train_model(OutOfMemoryAbove(32, error, message), digits, config)
    assert result.status == "completed" and result.batch_size == 32
    result = train_model(OutOfMemoryAbove(16, error, message), digits, config)
    assert result.status == "oom" and "batch size 32" in result.reason


def test_other_errors_propagate(digits: Dataset) -> None:
    with pytest.raises(ValueError, match="Tried to allocate"):
        model = OutOfMemoryAbove(16, ValueError)
        train_model(model, digits, TrainConfig(epochs=1, **FAST))


def test_report_can_prune(digits: Dataset) -> None:
    calls: list[tuple[int, float]] = []

    def report(epoch: int, accuracy: float) -> bool:
        calls.append((epoch, accuracy))
        return epoch == 2

    result = train_model(small_cnn(), digits, TrainConfig(epochs=4, **FAST), report=report)
    assert result.status == "pruned" and result.epochs == 2
    assert calls == [(r.epoch, r.val_accuracy) for r in result.history]


def test_a_stop_asked_after_the_last_epoch_leaves_the_run_completed(digits: Dataset) -> None:
    """Optuna's pruners may ask to prune at the last report (hyperband with epochs: 1 pruned
    every trial): the run trained every epoch, so it is completed, with its result."""
    calls: list[int] = []

    def report(epoch: int, accuracy: float) -> bool:
        calls.append(epoch)
        return True

    result = train_model(small_cnn(), digits, TrainConfig(epochs=1, **FAST), report=report)
    assert result.status == "completed" and result.epochs == 1 and calls == [1]
    assert result.final_val_accuracy == result.history[-1].val_accuracy


def test_resume_continues_exactly_where_the_checkpoint_left_off(
    digits: Dataset, tmp_path: Path
) -> None:
    config = TrainConfig(epochs=3, **FAST)
    straight = train_model(small_cnn(), digits, config)
    ckpt = tmp_path / "last.pt"
    stopped = train_model(small_cnn(), digits, config, checkpoint=ckpt, report=lambda e, a: e == 1)
    assert stopped.status == "pruned" and ckpt.exists()
    assert set(load_checkpoint(ckpt)) >= {"model", "optimizer", "schedule", "history"}
    resumed = train_model(small_cnn(), digits, config, checkpoint=ckpt, resume=True)
    assert resumed.status == "completed" and resumed.epochs == 3
    assert [r.val_accuracy for r in resumed.history] == [r.val_accuracy for r in straight.history]
    assert resumed.step_losses == straight.step_losses and resumed.tse() == straight.tse()
    with pytest.raises(ConfigError, match="lr=0.05, not 0.1") as error:
        train_model(small_cnn(), digits, config.replace(lr=0.1), checkpoint=ckpt, resume=True)
    assert error.value.file == str(ckpt)


@pytest.mark.parametrize("damage, where", [
    (lambda s: s["history"][0].update(val_accuracy="x"), "history[0].val_accuracy"),
    (lambda s: s["history"][0].update(epoch=1.5), "history[0].epoch"),
    # epochs out of order, or more than the training's: resumed, the result counted them all
    # ('best val accuracy ... after 5 epochs' of 2), its history numbered them as saved
    (lambda s: s["history"][0].update(epoch=10**30), "history[0].epoch"),
    (lambda s: s["history"][0].update(epoch=-3), "history[0].epoch"),
    (lambda s: s.update(history=[{**s["history"][0], "epoch": e} for e in (1, 2, 3)]), "history"),
    (lambda s: s.update(history=s["history"] * 2), "history[1].epoch"),
    (lambda s: s["history"][0].pop("lr"), "history[0].lr"),
    (lambda s: s["history"][0].update(bogus=1), "history[0].bogus"),
    (lambda s: s.update(history=["x"]), "history[0]"),
    (lambda s: s.update(history={}), "history"),
    (lambda s: s.pop("torch_rng"), "torch_rng"),
    (lambda s: s.pop("model"), "model"),
    (lambda s: s.update(step_losses=[None]), "step_losses[0]"),
    (lambda s: s.update(config=5), "config"),
    (lambda s: s["model"]["1.running_var"].fill_(float("inf")), "model.1.running_var"),
    # tensors a model cannot take: 'unexpected NotImplementedError', or loaded with a warning
    (lambda s: s["model"].update({"0.weight": s["model"]["0.weight"].to_sparse()}), "model.0.weight"),
    (lambda s: s["model"].update({"0.weight": s["model"]["0.weight"].to("meta")}), "model.0.weight"),
    (lambda s: s["model"].update({"0.weight": s["model"]["0.weight"].to(torch.complex64)}),
     "model.0.weight"),
    (lambda s: s["model"].update({"0.weight": s["model"]["0.weight"].to(torch.int64)}), "model.0.weight"),
    # a view of 10**12 elements over one number (a few bytes on disk): its values were read
    # before its shape was compared ('unexpected RuntimeError ... can't allocate memory')
    (lambda s: s["model"].update({"0.weight": torch.zeros(1).expand(10**12)}), "model.0.weight"),
    # optimizer and schedule entries torch loads unchecked: each was an 'unexpected' error
    # deep in the first step (AttributeError, TypeError, NotImplementedError) or NaN weights
    (lambda s: s["optimizer"]["state"][0].update(momentum_buffer="x"), "optimizer.state[0].momentum_buffer"),
    (lambda s: s["optimizer"]["state"][0]["momentum_buffer"].fill_(float("nan")),
     "optimizer.state[0].momentum_buffer"),
    (lambda s: s["optimizer"]["state"][0].update(momentum_buffer=torch.zeros(32, 1, 3, 3).to_sparse()),
     "optimizer.state[0].momentum_buffer"),
    (lambda s: s["optimizer"]["state"].update({99: {}}), "optimizer.state[99]"),
    (lambda s: s["optimizer"]["param_groups"][0].update(lr="x"), "optimizer.param_groups[0].lr"),
    (lambda s: s["optimizer"]["param_groups"][0].update(lr=float("inf")), "optimizer.param_groups[0].lr"),
    (lambda s: s["optimizer"].pop("state"), "optimizer.state"),
    (lambda s: s["schedule"].update(optimizer=5), "schedule.optimizer"),
    (lambda s: s["schedule"].update(last_epoch="x"), "schedule.last_epoch"),
    (lambda s: s["schedule"].update(lr_lambdas=[{"a": 1}, None]), "schedule.lr_lambdas[0]"),
])
def test_a_damaged_checkpoint_entry_is_named(damage, where: str, digits: Dataset,
                                             tmp_path: Path) -> None:
    config = TrainConfig(epochs=2, **FAST)
    ckpt = tmp_path / "last.pt"
    train_model(small_cnn(), digits, config, checkpoint=ckpt, report=lambda e, a: True)
    state = load_checkpoint(ckpt)
    damage(state)
    torch.save(state, ckpt)
    with pytest.raises(ConfigError) as error:
        train_model(small_cnn(), digits, config, checkpoint=ckpt, resume=True)
    assert (error.value.file, error.value.path) == (str(ckpt), where), str(error.value)


def test_a_momentum_buffer_of_another_shape_is_one_line_not_a_crash(digits: Dataset, tmp_path: Path) -> None:
    """The fused SGD step crashed the process (SIGSEGV) on a momentum buffer of another shape
    than its parameter; run in a child so that, unfixed, it fails this test, not the session."""
    import os
    import subprocess
    import sys

    config = TrainConfig(epochs=2, **FAST)
    ckpt = tmp_path / "last.pt"
    train_model(small_cnn(), digits, config, checkpoint=ckpt, report=lambda e, a: True)
    state = load_checkpoint(ckpt)
    state["optimizer"]["state"][0]["momentum_buffer"] = torch.zeros(7)
    torch.save(state, ckpt)
    script = (
        "import sys; sys.path.insert(0, 'tests'); from test_train import *\n"
        f"train_model(small_cnn(), load_dataset('digits'), TrainConfig(epochs=2, **FAST), "
        f"checkpoint={str(ckpt)!r}, resume=True)"
    )
    repo = Path(__file__).resolve().parents[1]
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                            cwd=repo, env={**os.environ, "PYTHONPATH": str(repo)})
    assert result.returncode == 1, result.stderr  # the ConfigError, not a signal
    assert result.stderr.strip().splitlines()[-1] == (
        f"nas.errors.ConfigError: {ckpt}: optimizer.state[0].momentum_buffer: has shape (7,); the "
        "model's tensor has (32, 1, 3, 3)")


def test_history_csv(digits: Dataset, tmp_path: Path) -> None:
    result = train_model(small_cnn(), digits, TrainConfig(epochs=1, **FAST))
    write_history_csv(tmp_path / "m.csv", result.history)
    rows = list(csv.DictReader((tmp_path / "m.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1]
    assert float(rows[0]["val_accuracy"]) == result.history[0].val_accuracy


@pytest.mark.parametrize(
    ("changes", "key"),
    [
        ({"epochs": 0}, "epochs"),
        ({"batch_size": 2.5}, "batch_size"),
        ({"optimizer": "adam"}, "optimizer"),
        ({"schedule": "step"}, "schedule"),
        ({"lr": 0}, "lr"),
        ({"lr": float("nan")}, "lr"),
        ({"momentum": 1.0}, "momentum"),
        ({"momentum": 0}, "momentum"),  # Nesterov (the default) needs one: torch refused it in training
        ({"label_smoothing": -0.1}, "label_smoothing"),
        ({"grad_clip": 0}, "grad_clip"),
        ({"time_limit": -1}, "time_limit"),
        ({"device": "tpu"}, "device"),
        ({"amp": "yes"}, "amp"),
        ({"crop_padding": -1}, "crop_padding"),
        ({"threads": 0}, "threads"),
        ({"bn_recalibration_batches": -1}, "bn_recalibration_batches"),
        ({"bn_recalibration_batches": 1.5}, "bn_recalibration_batches"),
        ({"bn_recalibration_batches": True}, "bn_recalibration_batches"),
    ],
)
def test_config_errors_name_the_key(changes: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as error:
        TrainConfig(**changes)  # type: ignore[arg-type]
    assert error.value.path == key


def test_momentum_zero_is_plain_sgd_or_adamw_not_nesterov() -> None:
    assert TrainConfig(momentum=0, nesterov=False).momentum == 0
    assert TrainConfig(momentum=0, optimizer="adamw").momentum == 0
    with pytest.raises(ConfigError, match="nesterov: false") as error:
        TrainConfig.from_dict({"momentum": 0.0})
    assert error.value.path == "train.momentum"


def test_config_from_dict() -> None:
    assert TrainConfig.from_dict({"epochs": 3, "optimizer": "adamw"}).optimizer == "adamw"
    with pytest.raises(ConfigError, match="unknown key 'epoch'; valid: epochs") as error:
        TrainConfig.from_dict({"epoch": 3})
    assert error.value.path == "train.epoch"
    with pytest.raises(ConfigError) as error:
        TrainConfig.from_dict({"epochs": -3}, path="proxy")
    assert error.value.path == "proxy.epochs"


def test_onecycle_schedule_shape() -> None:
    config = TrainConfig(schedule="onecycle", warmup=0.25)
    factors = [schedule_factor(config, step, 100) for step in range(100)]
    assert factors[0] == pytest.approx(1 / 25) and factors[25] == pytest.approx(1.0)
    assert max(factors) == pytest.approx(1.0) and factors[-1] < 0.01
    assert all(a >= b for a, b in zip(factors[25:], factors[26:]))
    assert schedule_factor(TrainConfig(schedule="constant"), 50, 100) == 1.0


def test_evaluating_a_pair_of_tensors_instead_of_a_loader_is_a_type_error() -> None:
    from nas.train import evaluate

    # It failed with "'tuple' object has no attribute 'labels'".
    with pytest.raises(TypeError, match="^loader must be a nas.data.DeviceLoader, got tuple$"):
        evaluate(small_cnn(), (torch.zeros(2, 1, 8, 8), torch.zeros(2, dtype=torch.int64)))


def test_measure_latency() -> None:
    model = small_cnn().train()
    seconds = measure_latency(model, (1, 8, 8), batch_size=4, device="cpu", warmup=1, repeats=3)
    assert seconds > 0 and model.training
    with pytest.raises(ConfigError) as error:
        measure_latency(model, (1, 8, 8), repeats=0, device="cpu")
    assert error.value.path == "repeats"


@pytest.mark.parametrize("key, value, message", [
    # a batch of 10**9 images failed allocating 256 GB (a torch traceback); 10**9 passes ran for
    # days: a run's latency section stopped at 1,024 and 1,000; True was a batch of bools
    ("batch_size", 10**9, "must be an integer in [1, 1024], got 1000000000"),
    ("batch_size", True, "must be an integer in [1, 1024], got True"),
    ("repeats", 10**9, "must be an integer in [1, 1000], got 1000000000"),
    ("repeats", True, "must be an integer in [1, 1000], got True"),
    ("warmup", 10**9, "must be an integer in [0, 1000], got 1000000000"),
    ("warmup", 1.5, "must be an integer in [0, 1000], got 1.5"),
])
def test_measure_latency_settings_have_a_run_configs_bounds(key: str, value: object, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        measure_latency(small_cnn(), (1, 8, 8), device="cpu", **{"warmup": 0, "repeats": 1, key: value})
    assert str(error.value) == f"{key}: {message}"


def test_measure_latency_of_a_genotype_model_at_another_input_shape_is_refused() -> None:
    import nas

    model = nas.build_model(nas.load_genotype("name: g\ninput: [1, 8, 8]\nnetwork: [conv(4), gap, linear(2)]"))
    # (3, 8, 8) failed in the first pass with a conv's channel message; None with AttributeError.
    with pytest.raises(ConfigError, match=r"^input_shape: the model takes \(1, 8, 8\), got \(3, 8, 8\)$"):
        measure_latency(model, (3, 8, 8), device="cpu", warmup=0, repeats=1)
    with pytest.raises(TypeError, match="^model must be a torch.nn.Module, got NoneType$"):
        measure_latency(None, (1, 8, 8), device="cpu")


def test_nas_train_command_writes_outputs_and_resumes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from nas.cli import main

    out = tmp_path / "run"
    argv = ["train", "resnet20", "--dataset", "digits", "--resolution", "8", "--subset", "200",
            "--epochs", "1", "--batch-size", "50", "--device", "cpu", "--quiet", "--out", str(out)]
    assert main(argv) == 0
    assert "completed" in capsys.readouterr().out
    for name in ("checkpoint.pt", "metrics.csv", "model.pth", "result.json", "train.json", "genotype.yaml"):
        assert (out / name).is_file(), name
    saved = TrainConfig.from_dict(json.loads((out / "train.json").read_text()))
    assert (saved.epochs, saved.batch_size, saved.device) == (1, 50, "cpu")
    weights = torch.load(out / "model.pth", weights_only=True)
    assert weights["fc.weight"].shape[0] == 10
    assert main(argv) == 2  # the checkpoint exists and --resume was not given
    assert "exists; resume it" in capsys.readouterr().err
    assert main([*argv, "--resume"]) == 0
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert [r["epoch"] for r in rows] == ["1"]


def test_an_unavailable_device_is_refused_before_anything_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    digits: Dataset,
) -> None:
    # was 'device: CUDA is not available' with genotype.yaml, preprocessing.json, train.json in --out
    from nas.cli import main
    from nas.train import train_to_folder

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "run"
    assert main(["train", "lenet5", "--device", "cuda", "--quiet", "--out", str(out)]) == 2
    assert capsys.readouterr().err.splitlines() == ["--device: CUDA is not available on this machine"]
    with pytest.raises(ConfigError) as error:
        train_to_folder(small_cnn(), digits, TrainConfig(**{**FAST, "device": "cuda"}), out)
    assert error.value.path == "device"
    assert not out.exists()


@pytest.mark.parametrize("model, data, config, error, message", [
    ("genotype", "digits", "config", TypeError,
     r"model must be a torch.nn.Module \(build one with nas.build_model\), got Genotype"),
    ("cnn", None, "config", TypeError, r"data must be a nas.data.Dataset \(nas.data.load_dataset\), got NoneType"),
    ("cnn", "digits", {"epochs": 1}, TypeError, "config must be a nas.train.TrainConfig, got dict"),
    ("3 channels", "digits", "config", ConfigError,
     r"data: the model takes images of \(3, 8, 8\) but the dataset's are \(1, 8, 8\)"),
    ("5 classes", "digits", "config", ConfigError, "data: the model outputs 5 scores, fewer than the dataset's 10 classes"),
])
def test_training_arguments_that_do_not_fit_are_refused_before_anything_is_written(
    model, data, config, error, message, digits: Dataset, tmp_path: Path,
) -> None:
    # Each failed in the first step: AttributeError ('NoneType' object has no attribute 'to'),
    # a conv's channel message, or "Target 7 is out of bounds".
    import nas
    from nas.train import train_to_folder

    genotype = nas.load_genotype("name: g\ninput: [1, 8, 8]\nparams: {classes: 10}\n"
                                 "network: [conv(4), relu, gap, linear(classes)]")
    model = {"genotype": genotype, "cnn": small_cnn(),
             "3 channels": nas.build_model(genotype.with_input((3, 8, 8))),
             "5 classes": nas.build_model(genotype.with_params(classes=5))}[model]
    data = digits if data == "digits" else data
    config = TrainConfig(**FAST, epochs=1) if config == "config" else config
    with pytest.raises(error, match=f"^{message}"):
        train_model(model, data, config)
    with pytest.raises(error, match=f"^{message}"):
        train_to_folder(model, data, config, tmp_path / "run")
    assert not (tmp_path / "run").exists()


SAME_SHAPES = "input: [1, 8, 8]\nnetwork: [conv(4), {act}, gap, linear(10)]\n"


@pytest.mark.parametrize("change", ["genotype", "data", "config"])
def test_nas_train_refuses_to_resume_another_run_and_leaves_its_folder_as_it_was(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], change: str
) -> None:
    # weights of the same shapes would load: the genotype, the data and the config must match
    from nas.cli import main

    first, other = tmp_path / "relu.yaml", tmp_path / "gelu.yaml"
    first.write_text(SAME_SHAPES.format(act="relu"))
    other.write_text(SAME_SHAPES.format(act="gelu"))
    out = tmp_path / "run"
    argv = ["--dataset", "digits", "--resolution", "8", "--subset", "200", "--epochs", "1",
            "--batch-size", "50", "--device", "cpu", "--quiet", "--out", str(out)]
    assert main(["train", str(first), *argv]) == 0
    before = {path.name: path.read_bytes() for path in out.iterdir()}
    again = {"genotype": ["train", str(other), *argv],
             "data": ["train", str(first), *argv, "--subset", "300"],
             "config": ["train", str(first), *argv, "--lr", "0.5"]}[change]
    capsys.readouterr()
    assert main([*again, "--resume"]) == 2
    error = capsys.readouterr().err
    assert len(error.strip().splitlines()) == 1
    assert {"genotype": "genotype.yaml", "data": "other data", "config": "lr="}[change] in error
    assert {path.name: path.read_bytes() for path in out.iterdir()} == before


@pytest.mark.parametrize(("flag", "amp"), [([], None), (["--amp", "auto"], None), (["--amp", "on"], True),
                                           (["--amp", "off"], False)])
def test_nas_train_amp_flag_sets_the_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flag, amp) -> None:
    import nas.train
    from nas.cli import main

    seen = []

    def train_to_folder(model, data, config, *args, **kwargs):
        seen.append(config)
        raise KeyboardInterrupt  # stop here: the config is what this test is about

    monkeypatch.setattr(nas.train, "train_to_folder", train_to_folder)
    argv = ["train", "resnet20", "--resolution", "8", "--subset", "100", "--epochs", "1", "--quiet",
            "--out", str(tmp_path / "run"), *flag]
    assert main(argv) == 130
    assert [config.amp for config in seen] == [amp]


def test_quickstart_budget_trains_resnet20_to_95_percent(digits: Dataset) -> None:
    """The quickstart's own training settings, on its ResNet-20 seed (the zoo's resnet20)."""
    import nas
    from nas._yaml import load_yaml_file

    root = Path(__file__).resolve().parents[1]
    settings = dict(load_yaml_file(root / "search_spaces" / "quickstart.yaml")["train"])
    genotype = nas.load_genotype("resnet20", classes=digits.num_classes).with_input(digits.input_shape)
    torch.manual_seed(0)
    result = train_model(nas.build_model(genotype), digits, TrainConfig(**settings))
    assert result.status == "completed"
    assert result.best_val_accuracy >= 0.95


def test_torch_threads_are_restored_however_the_block_ends():
    from nas._threads import torch_threads

    before = torch.get_num_threads()
    with pytest.raises(KeyError):
        with torch_threads(before + 1):
            assert torch.get_num_threads() == before + 1
            raise KeyError("the block fails")
    assert torch.get_num_threads() == before
    with torch_threads(None):  # None leaves torch's setting alone
        assert torch.get_num_threads() == before


class _RunsCode:
    """Pickles to a call of os.system: weights_only loading must refuse it."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        import os

        return (os.system, (f"touch {self.marker}",))


def _hostile_checkpoint(kind: str, path: Path) -> None:
    import io
    import os
    import pickle

    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "code":
        path.write_bytes(pickle.dumps({"model": _RunsCode(path.with_name("ran"))}))
    elif kind == "garbage":
        path.write_bytes(bytes(range(256)) * 10)
    elif kind == "truncated":
        buffer = io.BytesIO()
        torch.save({"model": {"w": torch.zeros(1000)}}, buffer)
        path.write_bytes(buffer.getvalue()[:300])
    elif kind == "too_large":
        with open(path, "wb") as handle:
            handle.truncate(2000)


@pytest.mark.parametrize("kind", ["fifo", "code", "garbage", "truncated", "too_large"])
def test_a_hostile_checkpoint_is_one_line_naming_it(kind: str, tmp_path: Path) -> None:
    ckpt = tmp_path / "checkpoint.pt"
    _hostile_checkpoint(kind, ckpt)
    with pytest.raises(ConfigError) as error:
        load_checkpoint(ckpt, max_bytes=1000)
    assert error.value.file == str(ckpt) and "\n" not in str(error.value)
    assert not (tmp_path / "ran").exists()


@pytest.mark.parametrize("kind", ["fifo", "code"])
def test_nas_train_resume_from_a_hostile_checkpoint_is_one_line(kind: str, tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    out = tmp_path / "out"
    out.mkdir()
    _hostile_checkpoint(kind, out / "checkpoint.pt")
    repo = Path(__file__).resolve().parents[1]
    result = subprocess.run(
        [sys.executable, "-m", "nas", "train", "lenet5", "--out", str(out), "--resume",
         "--epochs", "1", "--quiet", "--device", "cpu", "--threads", "1"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(repo)},
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(out / "checkpoint.pt") in lines[0], result.stderr
    assert not (out / "ran").exists()


def test_step_losses_and_training_speed_estimates(digits: Dataset) -> None:
    result = train_model(small_cnn(), digits, TrainConfig(epochs=3, **FAST))
    steps = [r.steps for r in result.history]
    assert steps == [len(digits.train_labels) // 64] * 3
    assert len(result.step_losses) == sum(steps)
    per_epoch = [result.step_losses[sum(steps[:i]):sum(steps[: i + 1])] for i in range(3)]
    for record, losses in zip(result.history, per_epoch):
        assert record.train_loss == pytest.approx(sum(losses) / len(losses), rel=1e-5)
        assert record.val_loss is not None and 0 < record.val_loss < 10
    sums = [sum(losses) for losses in per_epoch]
    assert result.tse() == pytest.approx(sum(sums), rel=1e-5)
    assert result.tse(last=1) == pytest.approx(sums[-1], rel=1e-5)
    assert result.tse(last=5) == pytest.approx(sum(sums), rel=1e-5)
    assert result.tse_ema() == pytest.approx(0.81 * sums[0] + 0.9 * sums[1] + sums[2], rel=1e-5)
    assert result.tse_ema(1.0) == pytest.approx(result.tse(), rel=1e-9)
    assert result.to_dict()["step_losses"] == list(result.step_losses)
    with pytest.raises(ValueError, match="last"):
        result.tse(last=0)
    with pytest.raises(ValueError, match="gamma"):
        result.tse_ema(0.0)


def _bn_input_stats(batches: list[torch.Tensor], features: nn.Module) -> tuple[torch.Tensor, ...]:
    """By hand: the mean over batches of each batch's per-channel mean and unbiased variance
    of ``features(batch)`` (what a cumulative-average batch norm records)."""
    means, variances = [], []
    with torch.no_grad():
        for x in batches:
            h = features(x).double()
            means.append(h.mean(dim=(0, 2, 3)))
            variances.append(h.var(dim=(0, 2, 3), unbiased=True))
    return torch.stack(means).mean(0), torch.stack(variances).mean(0)


def test_recalibrate_batchnorm_refuses_one_tensor_for_its_batches() -> None:
    # iterating a [16, 1, 8, 8] tensor fed the model single images: "expected 4D input" from torch
    model = small_cnn()
    with pytest.raises(TypeError, match=r"one tensor of shape \(16, 1, 8, 8\) \(for one batch: \[batch\]\)"):
        recalibrate_batchnorm(model, torch.randn(16, 1, 8, 8))


def test_recalibrate_batchnorm_matches_a_hand_computation() -> None:
    torch.manual_seed(0)
    model = small_cnn().eval()
    model[1].momentum = 0.3
    batches = [torch.randn(16, 1, 8, 8) * 2 + 1 for _ in range(3)]
    weights = {k: v.clone() for k, v in model.state_dict().items() if "running" not in k
               and "tracked" not in k}
    rng = torch.get_rng_state()
    assert recalibrate_batchnorm(model, [(x, None) for x in batches]) == 3
    mean, var = _bn_input_stats(batches, model[0])
    assert torch.allclose(model[1].running_mean.double(), mean, atol=1e-5)
    assert torch.allclose(model[1].running_var.double(), var, rtol=1e-4)
    assert int(model[1].num_batches_tracked) == 3
    # The second norm sees the first one's output in train mode (batch statistics).
    mean, var = _bn_input_stats(batches, copy.deepcopy(model[:4]).train())
    assert torch.allclose(model[4].running_mean.double(), mean, atol=1e-5)
    assert torch.allclose(model[4].running_var.double(), var, rtol=1e-4)
    assert model[1].momentum == 0.3 and model[4].momentum == 0.1
    assert not any(m.training for m in model.modules())
    assert torch.equal(torch.get_rng_state(), rng)
    for key, value in model.state_dict().items():
        if key in weights:
            assert torch.equal(value, weights[key]), key
    before = model[1].running_mean.clone()
    assert recalibrate_batchnorm(model, []) == 0
    assert torch.equal(model[1].running_mean, before)


def test_train_model_recalibrates_before_validating(digits: Dataset) -> None:
    base = TrainConfig(epochs=2, **{**FAST, "augment": True, "amp": False})
    config = base.replace(bn_recalibration_batches=2)
    off_model, on_model = small_cnn(), small_cnn()
    off = train_model(off_model, digits, base)
    on = train_model(on_model, digits, config)
    # Training is the same; only the running statistics (and so validation) differ.
    assert on.step_losses == off.step_losses
    for key, value in on_model.state_dict().items():
        if "running" not in key and "tracked" not in key:
            assert torch.equal(value, off_model.state_dict()[key]), key
    assert int(off_model[1].num_batches_tracked) == 2 * off.history[0].steps
    assert int(on_model[1].num_batches_tracked) == 2
    assert [r.val_loss for r in on.history] != [r.val_loss for r in off.history]
    # The batches: the loop's calibration loader (shuffled with the run's seed, no
    # augmentation), the first two of its second pass (the second epoch's recalibration).
    loader = DeviceLoader(digits.train_images, digits.train_labels, batch_size=64,
                          mean=digits.mean, std=digits.std, shuffle=True, drop_last=True,
                          seed=config.seed)
    list(loader)
    batches = [x for x, _ in list(loader)[:2]]
    on_model.eval()
    mean, var = _bn_input_stats(batches, on_model[0])
    assert torch.allclose(on_model[1].running_mean.double(), mean, atol=1e-4)
    assert torch.allclose(on_model[1].running_var.double(), var, rtol=1e-3)
    assert not torch.allclose(off_model[1].running_mean.double(), mean, atol=1e-4)


@pytest.mark.parametrize("amp_validation", [False, True])
def test_bf16_training_validates_in_float32_unless_asked(digits: Dataset, amp_validation: bool) -> None:
    model = small_cnn()
    config = TrainConfig(epochs=1, **FAST, amp=True, amp_validation=amp_validation)
    result = train_model(model, digits, config)
    loader = DeviceLoader(digits.val_images, digits.val_labels, batch_size=128,
                          mean=digits.mean, std=digits.std)
    in_float32, in_bf16 = (loop.validate(model, loader, amp=amp) for amp in (False, True))
    assert in_float32[1] != pytest.approx(in_bf16[1], rel=1e-6)  # bf16 does change the loss
    expected = in_bf16 if amp_validation else in_float32
    assert (result.final_val_accuracy, result.history[-1].val_loss) == pytest.approx(expected, rel=1e-6)


def test_a_checkpoint_inflating_past_its_bound_is_refused_before_it_is_read(tmp_path: Path) -> None:
    """torch.load inflates deflated records: a 1 MB file of 1 GB of zeros took 1 GB of memory
    within a 250 MB bound (nas decode --weights, resuming, nas best --export)."""
    import zipfile

    plain, bomb = tmp_path / "plain.pt", tmp_path / "bomb.pt"
    torch.save({"model": {"w": torch.zeros(1 << 20)}}, plain)  # 4 MiB
    with zipfile.ZipFile(plain) as source, zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as out:
        for name in source.namelist():
            out.writestr(name, source.read(name))
    assert bomb.stat().st_size < 100_000
    with pytest.raises(ConfigError) as error:
        load_checkpoint(bomb, max_bytes=1 << 20)
    assert str(error.value).startswith(f"{bomb}: its records hold 4,19")
    assert str(error.value).endswith(" bytes uncompressed, more than 1,048,576 (a compression bomb?)")
    assert torch.equal(load_checkpoint(bomb, max_bytes=8 << 20)["model"]["w"], torch.zeros(1 << 20))
