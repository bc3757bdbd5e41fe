"""Typed errors of dlcore and one place that turns any failure into a sentence a user can act on.

The errors of training and of the fit check are defined here; the others live with what raises them
(SpecError in specs, DataError in data, CheckpointError, RunStateError and StoreError in runs, AccessDenied in
access) and are
gathered in ``USER_ERRORS``: what a page shows as a message and the CLI prints as ``error: …`` (exit 2).
"""
from __future__ import annotations

import errno

from dlcore.access import AccessDenied
from dlcore.data.base import DataError
from dlcore.runs.checkpoint import CheckpointError
from dlcore.runs.store import RunStateError, StoreError
from dlcore.specs import SpecError, TrainSpec


class TrainingError(RuntimeError):
    """Training cannot go on (NaN loss, out of memory, ...); the message names the cause and a remedy."""


class ResourceError(RuntimeError):
    """The run would not fit the device's memory or would take unreasonably long there."""


USER_ERRORS = (SpecError, DataError, CheckpointError, TrainingError, ResourceError, RunStateError, StoreError,
               AccessDenied)

_DISK_FULL = ("no space left on device", "disk is full", "database or disk is full", "disk quota exceeded",
              "os error 28", "os error 122")


def is_disk_full(e: BaseException) -> bool:
    """True for a full disk however it is reported: OSError ENOSPC/EDQUOT, safetensors' SafetensorError
    ("I/O error: No space left on device (os error 28)"), SQLite's "database or disk is full"; also when
    it is the cause of another error."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if getattr(e, "errno", None) in (errno.ENOSPC, errno.EDQUOT):
            return True
        if any(s in str(e).lower() for s in _DISK_FULL):
            return True
        e = e.__cause__ or e.__context__
    return False


def _is_oom(e: BaseException) -> bool:
    import torch

    text = str(e).lower()
    return (isinstance(e, (torch.OutOfMemoryError, MemoryError)) or "out of memory" in text
            or "cublas_status_alloc_failed" in text or "defaultcpuallocator: can't allocate memory" in text)


def describe_failure(e: BaseException, train: TrainSpec | None = None) -> str:
    """A one-paragraph reason for a failed run: ours verbatim; out-of-memory with a smaller batch size;
    a full disk; anything else as an internal error pointing at error.log.

    Example:
        >>> describe_failure(torch.OutOfMemoryError("CUDA out of memory"), TrainSpec(batch_size=32))
        'the GPU ran out of memory. Try: use batch size 16 (now 32) with gradient accumulation 2; or ...'
    """
    if isinstance(e, USER_ERRORS):  # already a sentence (a full disk in the store or an import says so)
        return str(e)
    if is_disk_full(e):
        return "the disk is full: the checkpoint could not be written. Free some space and resume the run."
    if _is_oom(e):
        import torch

        where = "the machine's RAM" if isinstance(e, MemoryError) or "cpu" in str(e).lower() else "the GPU"
        where = "the GPU" if isinstance(e, torch.OutOfMemoryError) else where
        bs = train.batch_size if train else None
        tips = ["turn on activation checkpointing", "pick a smaller preset"]
        if bs and bs > 1:
            tips.insert(0, f"use batch size {max(1, bs // 2)} (now {bs}) with gradient accumulation {2 * train.grad_accum}")
        return (f"{where} ran out of memory. Try: {'; or '.join(tips)}. Resume continues from the last checkpoint.")
    return f"internal error ({type(e).__name__}: {e}). The full traceback is in the run's error.log."
