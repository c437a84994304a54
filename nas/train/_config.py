"""The training configuration: one frozen dataclass, validated on construction.

Imports no torch (a run config's ``train:`` section is checked before torch loads); only
:func:`resolve_device` does."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nas import _checks
from nas.errors import ConfigError

if TYPE_CHECKING:
    import torch

__all__ = ["TrainConfig", "resolve_device"]

_OPTIMIZERS = ("sgd", "adamw")
_SCHEDULES = ("onecycle", "cosine", "constant")
_DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """How to train one model. Every field has a default; invalid values raise
    :class:`~nas.errors.ConfigError` naming the field.

    Attributes:
        epochs: Passes over the training split. Default: 10.
        batch_size: Images per step. Default: 128.
        optimizer: ``"sgd"`` (momentum, optionally Nesterov) or ``"adamw"``. Default: sgd.
        lr: Peak learning rate. Default: 0.1.
        momentum: SGD momentum. Default: 0.9.
        nesterov: SGD with Nesterov momentum. Default: True.
        weight_decay: Decoupled for AdamW, L2 for SGD; never applied to biases and norm
            parameters (tensors with fewer than two dimensions). Default: 5e-4.
        label_smoothing: Cross-entropy label smoothing in [0, 1). Default: 0.
        schedule: Per-step learning-rate schedule. ``"onecycle"``: linear warm-up from
            ``lr / 25`` over the first ``warmup`` fraction of steps, then cosine decay to 0;
            ``"cosine"``: cosine decay from ``lr`` to 0; ``"constant"``. Default: onecycle.
        warmup: Warm-up fraction of all steps for ``"onecycle"``. Default: 0.15.
        grad_clip: Clip the global gradient norm to this value. Default: None (off).
        time_limit: Wall-clock seconds for the whole run (training and validation); when
            reached the run stops with status ``"timeout"``. Default: None (no limit).
        augment: Random crop with padding (and flip where the dataset allows) on training
            batches. Default: True.
        crop_padding: Padding of the random crop. Default: None, an eighth of the image
            height rounded (4 at 32x32, 1 at 8x8).
        flip: Random horizontal flips. Default: None, the dataset's ``flip``.
        amp: bf16 autocast. Default: None, on where bf16 runs natively: CUDA, and CPUs with AMX
            (there a CIFAR ResNet-20 trains 2-3x faster, and proxy accuracies on digits stay
            within the seed-to-seed spread); off on other CPUs. Training steps only: see
            ``amp_validation``.
        amp_validation: Validate under bf16 autocast too (when ``amp`` is on). Default: False:
            validation runs in float32, so the recorded accuracy is exactly what the saved
            float32 model (and its ONNX export) scores; under bf16 a near-tie image can flip
            (a ResNet-20 on digits: 121 vs 122 of 359 right). Costs little: validation is a
            forward pass over a fifth of the images a training epoch runs forward and back.
        channels_last: Model and batches in channels-last memory format. Default: None, on
            for CUDA and the CPU alike (on a 2-core Sapphire Rapids CPU with oneDNN, a CIFAR
            ResNet-20 trained 1.1-1.4x faster than in NCHW; see bench/train_throughput.py).
        compile: Train through ``torch.compile``. Default: False.
        eval_batch_size: Validation batch size. Default: None, twice ``batch_size``.
        bn_recalibration_batches: Before each validation, re-estimate every batch norm's
            running statistics from this many training batches (``batch_size`` images each,
            shuffled with the run's seed, not augmented), as a cumulative average in train
            mode without autograd (:func:`nas.train.recalibrate_batchnorm`); the model keeps
            the recalibrated statistics. Training itself (weights, data order, augmentation)
            is the same with or without it. For short proxy runs: after tens of steps the
            running statistics (momentum 0.1) still hold much of their initial values and
            the validation accuracy can be noise. At most the batches of one epoch are used;
            when on, the device holds a second, unpadded copy of the training images.
            Default: 0 (off: on 40 NAS-Bench-201 cells it made the validation accuracy of
            runs of 60-600 steps rank worse, bench/proxy_fidelity.py).
        threads: CPU threads for the run (``torch.set_num_threads``, restored afterwards).
            Default: None, torch's setting. Set it to cores / workers when several runs share
            a machine: oversubscribed threads make small models' steps up to 100x slower
            (measured: ResNet-20 on digits, 2 threads on 2 busy cores, 2.4 s a step; 1
            thread, 25 ms).
        seed: Seeds data order, augmentation and any randomness in the model's forward
            (dropout). Model weights are whatever the model holds when training starts.
            Default: 0.
        device: ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"``. Default: auto.
    """

    epochs: int = 10
    batch_size: int = 128
    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    label_smoothing: float = 0.0
    schedule: str = "onecycle"
    warmup: float = 0.15
    grad_clip: float | None = None
    time_limit: float | None = None
    augment: bool = True
    crop_padding: int | None = None
    flip: bool | None = None
    amp: bool | None = None
    amp_validation: bool = False
    channels_last: bool | None = None
    compile: bool = False
    eval_batch_size: int | None = None
    bn_recalibration_batches: int = 0
    threads: int | None = None
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        for key, (optional, bounds) in _NUMBERS.items():
            value = getattr(self, key)
            if value is None and optional:
                continue
            object.__setattr__(self, key, _checks.number(value, path=key, **bounds))
        object.__setattr__(self, "threads", _checks.threads(self.threads, path="threads"))
        object.__setattr__(self, "seed", _checks.seed(self.seed, path="seed"))
        _choice(self, "optimizer", _OPTIMIZERS)
        _choice(self, "schedule", _SCHEDULES)
        _choice(self, "device", _DEVICES)
        for key in ("nesterov", "augment", "compile", "amp_validation"):
            _bool(self, key, optional=False)
        for key in ("flip", "amp", "channels_last"):
            _bool(self, key, optional=True)
        if self.optimizer == "sgd" and self.nesterov and self.momentum == 0:  # torch refuses it
            raise ConfigError("Nesterov momentum needs a momentum above 0; for plain SGD set "
                              "nesterov: false", path="momentum")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], *, path: str = "train") -> TrainConfig:
        """Build from a mapping (e.g. a run config's ``train:`` section).

        Raises:
            ConfigError: an unknown key (listing the valid ones) or an invalid value; the
                error's path is ``path.key``.
        """
        valid = [f.name for f in dataclasses.fields(cls)]
        for key in values:
            if key not in valid:
                raise ConfigError(
                    f"unknown key {key!r}; valid: {', '.join(valid)}", path=f"{path}.{key}"
                )
        try:
            return cls(**values)
        except ConfigError as error:
            error.path = f"{path}.{error.path}" if error.path else path
            raise

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with ``changes`` applied and validated."""
        return dataclasses.replace(self, **changes)

    def check_images(self, input_shape: tuple[int, ...] | list[int], *, path: str = "train") -> None:
        """Refuse, before any training, what images of ``input_shape`` ``(C, H, W)`` cannot
        take: a ``crop_padding`` wider than the image (:func:`nas._checks.crop_padding`, the
        bound the training loader, :class:`nas.data.DeviceLoader`, enforces when it is built).

        Raises:
            ConfigError: at ``path.crop_padding``.
        """
        if self.augment and self.crop_padding is not None:
            _checks.crop_padding(self.crop_padding, image=tuple(input_shape[1:]), path=f"{path}.crop_padding")


def resolve_device(name: str, *, path: str = "device") -> torch.device:
    """``"auto"`` → CUDA when available, else the CPU; ``"cuda"`` without CUDA is an error.

    Raises:
        ConfigError: at ``path`` (the config key, or the flag that gave ``name``).
    """
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("CUDA is not available on this machine", path=path)
    if name not in _DEVICES:
        raise ConfigError(f"must be one of {', '.join(_DEVICES)}, got {name!r}", path=path)
    return torch.device(name)


# Numeric fields: (None allowed, bounds for nas._checks.number). The upper bounds are far
# beyond any real setting; they turn a typo (lr: 1e300, epochs: 10**9) into an error.
_NUMBERS: dict[str, tuple[bool, dict[str, Any]]] = {
    "epochs": (False, {"low": 1, "high": 100_000, "integer": True}),
    "batch_size": (False, {"low": 1, "high": 1 << 20, "integer": True}),
    "eval_batch_size": (True, {"low": 1, "high": 1 << 20, "integer": True}),
    "bn_recalibration_batches": (False, {"low": 0, "high": 1 << 20, "integer": True}),
    "lr": (False, {"low": 0.0, "high": 10.0, "low_open": True}),
    "momentum": (False, {"low": 0.0, "high": 1.0, "high_open": True}),
    "weight_decay": (False, {"low": 0.0, "high": 1.0}),
    "label_smoothing": (False, {"low": 0.0, "high": 1.0, "high_open": True}),
    "warmup": (False, {"low": 0.0, "high": 1.0, "high_open": True}),
    "grad_clip": (True, {"low": 0.0, "high": 1e6, "low_open": True}),
    "time_limit": (True, {"low": 0.0, "high": 1e7, "low_open": True}),
    "crop_padding": (True, {"low": 0, "high": 1024, "integer": True}),
}


def _choice(config: TrainConfig, key: str, options: tuple[str, ...]) -> None:
    value = getattr(config, key)
    if value not in options:
        raise ConfigError(f"must be one of {', '.join(options)}, got {value!r}", path=key)


def _bool(config: TrainConfig, key: str, *, optional: bool) -> None:
    value = getattr(config, key)
    if not (isinstance(value, bool) or (optional and value is None)):
        raise ConfigError(f"must be true or false, got {value!r}", path=key)


