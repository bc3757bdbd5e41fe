"""Typed errors of dlcore and one place that turns any failure into a sentence a user can act on."""
from __future__ import annotations

from dlcore.data.base import DataError
from dlcore.resources import ResourceError
from dlcore.runs.checkpoint import CheckpointError
from dlcore.specs import SpecError, TrainSpec
from dlcore.train.trainer import TrainingError

USER_ERRORS = (SpecError, DataError, CheckpointError, TrainingError, ResourceError)


def describe_failure(e: BaseException, train: TrainSpec | None = None) -> str:
    """A one-paragraph reason for a failed run: ours verbatim, out-of-memory with a smaller batch size."""
    import torch

    if isinstance(e, USER_ERRORS):
        return str(e)
    oom = isinstance(e, torch.OutOfMemoryError) or "out of memory" in str(e).lower()
    if oom:
        bs = train.batch_size if train else None
        hint = f" Try batch size {max(1, bs // 2)} (now {bs}) with gradient accumulation {2 * train.grad_accum}" \
            if bs else ""
        return f"the device ran out of memory.{hint}, or turn on activation checkpointing, or pick a smaller preset."
    if isinstance(e, OSError) and getattr(e, "errno", None) == 28:
        return "the disk is full: the checkpoint could not be written. Free some space and resume the run."
    return f"internal error ({type(e).__name__}: {e}). The full traceback is in the run's error.log."
