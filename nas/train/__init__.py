"""Proxy and full training of one model on one dataset, and measured latency.

``train_model(model, data, config, report=...)`` trains in place and returns a
:class:`TrainResult` whose ``status`` says how it ended (``completed``, ``pruned``,
``nan_loss``, ``oom``, ``timeout``); failures a search must survive are statuses, not
exceptions. The result holds every step's training loss, and ``tse()`` / ``tse_ema()`` turn
them into training-speed estimates (Ru et al. 2021). ``recalibrate_batchnorm`` re-estimates
batch-norm statistics (``TrainConfig.bn_recalibration_batches`` does it before validation). ``measure_latency`` times forward passes. Chooses no architectures and imports
no Optuna: a search wraps its trial's ``report`` / ``should_prune`` into ``report``.

Example (run by the test suite):
    >>> import nas
    >>> from nas.data import load_dataset
    >>> from nas.train import TrainConfig, train_model
    >>> model = nas.build_model(nas.load_genotype("{input: [1, 8, 8], network: [conv(8), bn, relu, gap, linear(10)]}"))
    >>> result = train_model(model, load_dataset("digits"), TrainConfig(epochs=2, lr=0.05, device="cpu"))
    >>> result.status, len(result.history), 0.0 <= result.best_val_accuracy <= 1.0
    ('completed', 2, True)
"""

from __future__ import annotations

from typing import Any

from nas.train._config import TrainConfig

# The rest loads torch: imported on first use, so ``TrainConfig`` (which checks a run config's
# ``train:`` section) is available without it.
_LAZY = {
    "recalibrate_batchnorm": "nas.train._batchnorm",
    "train_to_folder": "nas.train._full",
    "load_checkpoint": "nas.train._io",
    "measure_latency": "nas.train._latency",
    "ReportFn": "nas.train._loop",
    "evaluate": "nas.train._loop",
    "train_model": "nas.train._loop",
    "validate": "nas.train._loop",
    "EpochRecord": "nas.train._result",
    "Status": "nas.train._result",
    "TrainResult": "nas.train._result",
}

# What users call; helpers of the loop (optimiser and schedule makers, device and bf16 checks,
# out-of-memory detection, history files) stay in the private modules.
__all__ = [
    "EpochRecord",
    "ReportFn",
    "Status",
    "TrainConfig",
    "TrainResult",
    "evaluate",
    "load_checkpoint",
    "measure_latency",
    "recalibrate_batchnorm",
    "train_model",
    "train_to_folder",
    "validate",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'nas.train' has no attribute '{name}'")
    import importlib

    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
