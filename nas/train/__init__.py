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

from nas.train._batchnorm import recalibrate_batchnorm
from nas.train._config import TrainConfig
from nas.train._full import train_to_folder
from nas.train._io import load_checkpoint
from nas.train._latency import measure_latency
from nas.train._loop import ReportFn, evaluate, train_model, validate
from nas.train._result import EpochRecord, Status, TrainResult

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
