"""What a training run returns: its status, accuracies and per-epoch history."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["EpochRecord", "Status", "TrainResult"]

Status = Literal["completed", "pruned", "nan_loss", "oom", "timeout"]


@dataclass(frozen=True)
class EpochRecord:
    """One finished epoch.

    Attributes:
        epoch: 1-based epoch number.
        train_loss: Mean training loss over the epoch's steps.
        val_accuracy: Top-1 validation accuracy in [0, 1] after the epoch.
        seconds: Wall-clock seconds of the epoch, validation included.
        lr: Learning rate at the epoch's last step.
    """

    epoch: int
    train_loss: float
    val_accuracy: float
    seconds: float
    lr: float


@dataclass(frozen=True)
class TrainResult:
    """The outcome of :func:`nas.train.train_model`.

    Attributes:
        status: ``"completed"``; ``"pruned"`` (the report callback asked to stop);
            ``"nan_loss"`` (the loss became NaN or infinite); ``"oom"`` (out of memory at
            the original and at half the batch size); ``"timeout"`` (the time limit was
            reached).
        reason: One human-readable line explaining the status.
        best_val_accuracy: Highest validation accuracy over finished epochs, or None when
            no epoch finished.
        final_val_accuracy: Validation accuracy of the last finished epoch, or None.
        history: The finished epochs, in order.
        epochs: Number of finished epochs.
        wall_time: Seconds from start to return (an OOM retry included).
        batch_size: The batch size of the last attempt (half the configured one after an
            out-of-memory retry).
    """

    status: Status
    reason: str
    best_val_accuracy: float | None
    final_val_accuracy: float | None
    history: tuple[EpochRecord, ...] = field(default=())
    epochs: int = 0
    wall_time: float = 0.0
    batch_size: int = 0

    @property
    def ok(self) -> bool:
        """True when the run finished every epoch."""
        return self.status == "completed"

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON: every field, the history as a list of dicts."""
        return dataclasses.asdict(self) | {
            "history": [dataclasses.asdict(r) for r in self.history]
        }
