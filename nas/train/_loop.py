"""The training loop: one model, one dataset, one :class:`TrainConfig`, one result.

Failures a search must survive end the run with a status instead of an exception:
a NaN or infinite loss (``nan_loss``), running out of memory twice (``oom``; the first time
the run restarts from the initial weights at half the batch size) and the time limit
(``timeout``). Anything else (a model that does not accept the input shape, a bug)
propagates. The loop knows nothing about Optuna: the search wraps ``trial.report`` and
``trial.should_prune`` into ``report``.
"""

from __future__ import annotations

import dataclasses
import gc
import itertools
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from nas._threads import torch_threads
from nas.data import Dataset, DeviceLoader
from nas.errors import ConfigError
from nas.train._batchnorm import recalibrate_batchnorm
from nas.train._config import TrainConfig, resolve_device
from nas.train._io import check_training_state, checkpoint_history, load_checkpoint, save_checkpoint
from nas.train._optim import make_optimizer, make_schedule
from nas.train._result import EpochRecord, Status, TrainResult
from nas.weights import state_dict_bytes

__all__ = ["ReportFn", "check_training", "evaluate", "is_out_of_memory", "train_model", "validate"]

ReportFn = Callable[[int, float], bool]
"""``report(epoch, val_accuracy) -> stop``: called after every epoch; True ends the run as
``"pruned"``, except after the last epoch: a run that trained every epoch is ``"completed"``
whatever the callback says (Optuna's pruners may ask to prune at the last report: hyperband
with ``epochs: 1`` threw away every finished trial)."""

# Steps between checks that the running loss is finite; each check synchronises the device.
_NAN_CHECK_EVERY = 16
# Config fields that may change when resuming from a checkpoint.
_RESUMABLE_CHANGES = ("time_limit", "device", "compile", "threads")


class _Stop(Exception):
    """Ends an attempt early with a status (internal control flow)."""

    def __init__(self, status: Status, reason: str):
        super().__init__(reason)
        self.status, self.reason = status, reason


def is_out_of_memory(error: BaseException) -> bool:
    """Whether ``error`` is a device out-of-memory error: CUDA's, any backend's
    ``RuntimeError`` saying "out of memory", the CPU allocator's ("can't allocate memory"),
    or Python's ``MemoryError``."""
    return isinstance(error, (torch.cuda.OutOfMemoryError, MemoryError)) or (
        isinstance(error, RuntimeError)
        and any(text in str(error) for text in ("out of memory", "can't allocate memory"))
    )


def native_bf16(device: torch.device) -> bool:
    """True where bf16 matrix arithmetic runs natively: CUDA, or a CPU with AMX tiles."""
    if device.type == "cuda":
        return True
    amx = getattr(torch.cpu, "_is_amx_tile_supported", None)  # private, so probed with care
    return device.type == "cpu" and callable(amx) and bool(amx())


def evaluate(model: nn.Module, loader: DeviceLoader, *, amp: bool = False) -> float:
    """Top-1 accuracy of ``model`` (switched to eval mode) over ``loader``, in [0, 1].
    Runs without autograd (no graph recorded, no activations kept)."""
    return validate(model, loader, amp=amp)[0]


@torch.no_grad()
def validate(model: nn.Module, loader: DeviceLoader, *, amp: bool = False) -> tuple[float, float]:
    """``(top-1 accuracy in [0, 1], mean cross-entropy)`` of ``model`` (switched to eval mode)
    over ``loader``, without autograd; the loss has no label smoothing.

    Raises:
        TypeError: ``loader`` is not a :class:`~nas.data.DeviceLoader` (e.g. an
            ``(images, labels)`` pair).
    """
    if not isinstance(loader, DeviceLoader):
        raise TypeError(f"loader must be a nas.data.DeviceLoader, got {type(loader).__name__}")
    model.eval()
    correct = torch.zeros((), dtype=torch.int64, device=loader.labels.device)
    loss = torch.zeros((), dtype=torch.float64, device=loader.labels.device)
    device_type = loader.labels.device.type
    for x, y in loader:
        with torch.autocast(device_type, dtype=torch.bfloat16, enabled=amp):
            logits = model(x)
        correct += (logits.argmax(1) == y).sum()
        loss += F.cross_entropy(logits.float(), y, reduction="sum").double()
    n = max(1, loader.num_images)
    return correct.item() / n, loss.item() / n


def check_training(model: Any, data: Any, config: Any) -> None:
    """What :func:`train_model` and :func:`~nas.train.train_to_folder` take, checked before
    anything runs or is written: a torch module, a :class:`~nas.data.Dataset` and a
    :class:`TrainConfig`; a model built from a genotype must take the dataset's images and have
    an output for each of its classes.

    Raises:
        TypeError: an argument of another type.
        ConfigError: a genotype's model that does not fit ``data``.
    """
    from nas.genotype import Genotype

    if not isinstance(model, nn.Module):
        hint = " (build one with nas.build_model)" if isinstance(model, Genotype) else ""
        raise TypeError(f"model must be a torch.nn.Module{hint}, got {type(model).__name__}")
    if not isinstance(data, Dataset):
        raise TypeError(f"data must be a nas.data.Dataset (nas.data.load_dataset), got {type(data).__name__}")
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a nas.train.TrainConfig, got {type(config).__name__}")
    genotype = getattr(model, "genotype", None)
    if not isinstance(genotype, Genotype):
        return
    if tuple(genotype.input_shape) != tuple(data.input_shape):
        raise ConfigError(f"the model takes images of {tuple(genotype.input_shape)} but the dataset's are "
                          f"{tuple(data.input_shape)} (build it from genotype.with_input(...))", path="data")
    output = genotype.output_shape
    if len(output) == 1 and output[0] < data.num_classes:
        raise ConfigError(f"the model outputs {output[0]} scores, fewer than the dataset's "
                          f"{data.num_classes} classes", path="data")


def train_model(
    model: nn.Module,
    data: Dataset,
    config: TrainConfig | None = None,
    *,
    report: ReportFn | None = None,
    checkpoint: str | Path | None = None,
    resume: bool = False,
    on_epoch: Callable[[Sequence[EpochRecord]], None] | None = None,
    progress: bool = False,
) -> TrainResult:
    """Train ``model`` in place on ``data`` and validate it after every epoch.

    The model and the dataset are moved to ``config.device`` (the model stays there).
    The run is reproducible: the same model weights, data, config and device give the same
    result, since data order, augmentation and the model's own randomness come from
    ``config.seed`` (the global RNG is restored afterwards).

    Args:
        model: Maps float ``[B, C, H, W]`` batches to ``[B, num_classes]`` logits.
        data: Train and validation splits (:func:`nas.data.load_dataset`).
        config: Training options. Default: ``TrainConfig()``.
        report: Called as ``report(epoch, val_accuracy)`` after each epoch (1-based);
            returning True stops the run with status ``"pruned"`` (after the last epoch
            it changes nothing: the run completed).
        checkpoint: Save the model, optimizer, schedule and RNG states here after every
            epoch (atomically; ``state_dict`` data only).
        resume: Continue from ``checkpoint`` if the file exists. The checkpoint's config
            must match ``config`` except for ``time_limit``, ``device``, ``compile`` and
            ``threads``. An out-of-memory retry starts from the initial weights instead.
        on_epoch: Called with the history so far after each epoch (and its checkpoint).
        progress: Show a tqdm progress bar over all steps.

    Returns:
        A :class:`TrainResult`; see its ``status`` for how the run ended.

    Raises:
        ConfigError: an unusable device, a checkpoint written with a different config, or a
            model built from a genotype that does not fit ``data`` (:func:`check_training`).
        TypeError: an argument of another type (:func:`check_training`).
    """
    config = TrainConfig() if config is None else config
    check_training(model, data, config)
    with torch_threads(config.threads):
        return _train(model, data, config, report, checkpoint, resume, on_epoch, progress)


def _train(
    model: nn.Module,
    data: Dataset,
    config: TrainConfig,
    report: ReportFn | None,
    checkpoint: str | Path | None,
    resume: bool,
    on_epoch: Callable[[Sequence[EpochRecord]], None] | None,
    progress: bool,
) -> TrainResult:
    device = resolve_device(config.device)
    started = time.perf_counter()
    deadline = None if config.time_limit is None else started + config.time_limit
    on_device = data.to(device)
    initial = {k: v.detach().clone() for k, v in model.state_dict().items()}
    batch_size = min(config.batch_size, len(on_device.train_labels))
    history: list[EpochRecord] = []
    step_losses: list[float] = []
    oom_error = ""
    for attempt in range(2):
        run = _Attempt(model, on_device, config, device, batch_size, deadline)
        try:
            history, status, reason = run.run(
                report=report,
                checkpoint=None if checkpoint is None else Path(checkpoint),
                resume=resume and attempt == 0,
                on_epoch=on_epoch,
                progress=progress,
            )
            step_losses = run.step_losses
            break
        except Exception as error:  # noqa: BLE001 - out of memory is the only one handled
            if not is_out_of_memory(error):
                raise
            oom_error = " ".join(str(error).split())[:200]
        del run  # drop the attempt's tensors before retrying
        _free_memory(device)
        model.load_state_dict(initial)
        if attempt == 0 and batch_size > 1:
            batch_size = max(1, batch_size // 2)
            continue
        history, status = [], "oom"
        reason = f"out of memory at batch size {batch_size}: {oom_error}"
        break
    return _result(status, reason, history, started, batch_size, step_losses)


def _result(
    status: Status,
    reason: str,
    history: Sequence[EpochRecord],
    started: float,
    batch: int,
    step_losses: Sequence[float],
) -> TrainResult:
    accuracies = [r.val_accuracy for r in history]
    return TrainResult(
        status=status,
        reason=reason,
        best_val_accuracy=max(accuracies) if accuracies else None,
        final_val_accuracy=accuracies[-1] if accuracies else None,
        history=tuple(history),
        epochs=len(history),
        wall_time=time.perf_counter() - started,
        batch_size=batch,
        step_losses=tuple(step_losses),
    )


def _free_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


class _Attempt:
    """One try at the whole run with a fixed batch size."""

    def __init__(
        self,
        model: nn.Module,
        data: Dataset,
        config: TrainConfig,
        device: torch.device,
        batch_size: int,
        deadline: float | None,
    ):
        self.model, self.config, self.device = model, config, device
        self.batch_size, self.deadline = batch_size, deadline
        self.amp = config.amp if config.amp is not None else native_bf16(device)
        self.channels_last = True if config.channels_last is None else config.channels_last
        memory_format = torch.channels_last if self.channels_last else torch.contiguous_format
        model.to(device=device, memory_format=memory_format)
        compiled = torch.compile(model) if config.compile else model
        self.net: nn.Module = compiled  # type: ignore[assignment]
        height = data.input_shape[1]
        padding = config.crop_padding if config.crop_padding is not None else round(height / 8)
        flip = data.flip if config.flip is None else config.flip

        def loader(images: torch.Tensor, labels: torch.Tensor, **options: Any) -> DeviceLoader:
            return DeviceLoader(
                images,
                labels,
                mean=data.mean,
                std=data.std,
                channels_last=self.channels_last,
                **options,
            )

        train = {"batch_size": batch_size, "shuffle": True, "drop_last": True, "seed": config.seed}
        self.train_loader = loader(
            data.train_images,
            data.train_labels,
            crop_padding=padding if config.augment else 0,
            flip=flip and config.augment,
            **train,
        )
        self.val_loader = loader(
            data.val_images, data.val_labels, batch_size=config.eval_batch_size or 2 * batch_size
        )
        # Recalibration batches: the training images in their own shuffled order, without
        # augmentation, so the training loader's random stream is the same with or without.
        self.calibration_loader = (
            loader(data.train_images, data.train_labels, **train)
            if config.bn_recalibration_batches
            else None
        )
        self.step_losses: list[float] = []
        self.total_steps = config.epochs * len(self.train_loader)
        self.optimizer = make_optimizer(model, config)
        self.schedule = make_schedule(self.optimizer, config, self.total_steps)

    def run(
        self,
        *,
        report: ReportFn | None,
        checkpoint: Path | None,
        resume: bool,
        on_epoch: Callable[[Sequence[EpochRecord]], None] | None,
        progress: bool,
    ) -> tuple[list[EpochRecord], Status, str]:
        devices = [_cuda_index(self.device)] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.config.seed)
            restore = resume and checkpoint is not None and checkpoint.exists()
            history = self._restore(checkpoint) if restore else []  # type: ignore[arg-type]
            bar = _progress_bar(self.total_steps, len(history) * len(self.train_loader), progress)
            try:
                for epoch in range(len(history) + 1, self.config.epochs + 1):
                    try:
                        record, losses = self._epoch(epoch, bar)
                    except _Stop as stop:
                        return history, stop.status, stop.reason
                    history.append(record)
                    self.step_losses += losses
                    if checkpoint is not None:
                        save_checkpoint(checkpoint, self._state(history))
                    if on_epoch is not None:
                        on_epoch(list(history))
                    if bar is not None:
                        bar.set_postfix(
                            loss=f"{record.train_loss:.3f}", val=f"{record.val_accuracy:.4f}"
                        )
                    asked = report is not None and report(epoch, record.val_accuracy)
                    if asked and epoch < self.config.epochs:  # after the last epoch: completed
                        reason = f"stopped by the report callback after epoch {epoch}"
                        return history, "pruned", reason
                    if self._out_of_time() and epoch < self.config.epochs:
                        return history, "timeout", self._timeout_reason(epoch)
            finally:
                if bar is not None:
                    bar.close()
        return history, "completed", f"trained {self.config.epochs} epochs"

    def _epoch(self, epoch: int, bar: Any) -> tuple[EpochRecord, list[float]]:
        """One epoch: its record and its step losses (read from the device once)."""
        started = time.perf_counter()
        net, optimizer, config = self.net, self.optimizer, self.config
        net.train()
        loss_sum = torch.zeros((), device=self.device)
        losses = torch.zeros(len(self.train_loader), device=self.device)
        steps = 0
        for x, y in self.train_loader:
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
                loss = F.cross_entropy(net(x), y, label_smoothing=config.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip is not None:
                nn.utils.clip_grad_norm_(self.model.parameters(), config.grad_clip)
            optimizer.step()
            self.schedule.step()
            loss_sum += loss.detach().float()
            losses[steps] = loss.detach().float()
            steps += 1
            if steps % _NAN_CHECK_EVERY == 0:
                self._check_finite(loss_sum, epoch)
            if bar is not None:
                bar.update()
            if self._out_of_time():
                raise _Stop("timeout", self._timeout_reason(epoch - 1))
        self._check_finite(loss_sum, epoch)
        if self.calibration_loader is not None:
            batches = itertools.islice(self.calibration_loader, config.bn_recalibration_batches)
            recalibrate_batchnorm(self.model, batches, amp=self.amp)
        accuracy, val_loss = validate(net, self.val_loader, amp=self.amp and config.amp_validation)
        record = EpochRecord(
            epoch=epoch,
            train_loss=loss_sum.item() / max(1, steps),
            val_accuracy=accuracy,
            seconds=time.perf_counter() - started,
            lr=self.schedule.get_last_lr()[0],
            steps=steps,
            val_loss=val_loss,
        )
        return record, losses[:steps].tolist()

    def _check_finite(self, loss_sum: torch.Tensor, epoch: int) -> None:
        if not math.isfinite(loss_sum.item()):
            raise _Stop("nan_loss", f"the training loss became NaN or infinite in epoch {epoch}")

    def _out_of_time(self) -> bool:
        return self.deadline is not None and time.perf_counter() > self.deadline

    def _timeout_reason(self, finished: int) -> str:
        return (
            f"time limit of {self.config.time_limit:g} s reached after {finished} of "
            f"{self.config.epochs} epochs"
        )

    def _state(self, history: Sequence[EpochRecord]) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "history": [dataclasses.asdict(r) for r in history],
            "step_losses": list(self.step_losses),
            "batch_size": self.batch_size,
            "config": dataclasses.asdict(self.config),
            "loader_rng": self.train_loader.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
        }

    def _restore(self, path: Path) -> list[EpochRecord]:
        # The model, the optimizer's state (AdamW: two more copies of it) and small things.
        state = load_checkpoint(path, max_bytes=4 * state_dict_bytes(self.model) + (64 << 20))
        history = checkpoint_history(state, file=str(path), like=self.model.state_dict())
        if len(history) > self.config.epochs:  # "completed" with a history of more epochs
            raise ConfigError(f"records {len(history)} epochs, more than the {self.config.epochs} "
                              "of this training", file=str(path), path="history")
        saved = state.get("config", {})
        for key, value in dataclasses.asdict(self.config).items():
            if key not in _RESUMABLE_CHANGES and key in saved and saved[key] != value:
                raise ConfigError(
                    f"checkpoint was written with {key}={saved[key]!r}, not {value!r}",
                    file=str(path),
                    path=key,
                )
        if state.get("batch_size") != self.batch_size:
            raise ConfigError(
                f"checkpoint was written at batch size {state.get('batch_size')!r}, "
                f"not {self.batch_size}",
                file=str(path),
            )
        check_training_state(state, file=str(path), optimizer=self.optimizer, schedule=self.schedule)
        try:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.schedule.load_state_dict(state["schedule"])
            self.train_loader.generator.set_state(state["loader_rng"])
            torch.set_rng_state(state["torch_rng"])
            self.step_losses = [float(v) for v in state.get("step_losses", ())]
            return history
        except (TypeError, RuntimeError, ValueError) as error:
            raise ConfigError(
                f"checkpoint does not match this model: {error}", file=str(path)
            ) from None


def _cuda_index(device: torch.device) -> int:
    return device.index if device.index is not None else torch.cuda.current_device()


def _progress_bar(total: int, done: int, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=done, unit="step", dynamic_ncols=True)
