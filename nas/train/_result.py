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
        steps: Training steps of the epoch, so ``train_loss * steps`` is the sum of the
            epoch's step losses. 0 in records written before this field existed.
        val_loss: Mean cross-entropy (no label smoothing) over the validation images after
            the epoch, or None in records written before this field existed.
    """

    epoch: int
    train_loss: float
    val_accuracy: float
    seconds: float
    lr: float
    steps: int = 0
    val_loss: float | None = None


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
        step_losses: The training loss of every step of the finished epochs, in order (the
            mini-batch loss as computed for the update, before it; a resumed run includes
            the restored epochs' steps when its checkpoint held them).
    """

    status: Status
    reason: str
    best_val_accuracy: float | None
    final_val_accuracy: float | None
    history: tuple[EpochRecord, ...] = field(default=())
    epochs: int = 0
    wall_time: float = 0.0
    batch_size: int = 0
    step_losses: tuple[float, ...] = field(default=())

    @property
    def ok(self) -> bool:
        """True when the run finished every epoch."""
        return self.status == "completed"

    def tse(self, *, last: int | None = None) -> float | None:
        """Training speed estimate (Ru et al. 2021, "Speedy Performance Estimation for Neural
        Architecture Search", NeurIPS): the sum of the training losses of every step of the
        finished epochs (TSE), or of the last ``last`` epochs only (TSE-E). Lower means the
        architecture trained faster, which ranks architectures better than early validation
        accuracy in that paper. None when no epoch finished. Computed from ``history``
        (``train_loss * steps`` per epoch).

        Raises:
            ValueError: ``last`` below 1.
        """
        if last is not None and last < 1:
            raise ValueError(f"last must be at least 1, got {last!r}")
        if not self.history:
            return None
        return sum(r.train_loss * r.steps for r in self.history[-(last or len(self.history)):])

    def tse_ema(self, gamma: float = 0.9) -> float | None:
        """TSE-EMA (Ru et al. 2021): ``sum_t gamma**(T - t) * L_t`` over the finished epochs
        ``t = 1..T``, with ``L_t`` the sum of epoch ``t``'s step losses, so later epochs weigh
        more. The paper uses ``gamma = 0.9``. None when no epoch finished.

        Raises:
            ValueError: ``gamma`` outside (0, 1].
        """
        if not 0.0 < gamma <= 1.0:
            raise ValueError(f"gamma must be in (0, 1], got {gamma!r}")
        if not self.history:
            return None
        last = len(self.history)
        return sum(gamma ** (last - i) * r.train_loss * r.steps
                   for i, r in enumerate(self.history, 1))

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON: every field, the history as a list of dicts, the step losses
        as a list."""
        return dataclasses.asdict(self) | {
            "history": [dataclasses.asdict(r) for r in self.history],
            "step_losses": list(self.step_losses),
        }
