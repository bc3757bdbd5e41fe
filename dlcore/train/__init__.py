"""Training: one preparation for every entry point, the trainer, background jobs, distributed runs.

Names are resolved on first use (like ``dlcore/__init__.py``), so ``python -m dlcore.train.worker`` for a
queued run imports no torch until the run holds a slot.
"""
from __future__ import annotations

from dlcore._lazy import lazy_exports

# public name -> the module that defines it
_EXPORTS: dict[str, str] = {
    "TrainingError": "dlcore.errors",
    "PreparedRun": "dlcore.train.prepare",
    "prepare_run": "dlcore.train.prepare",
    "Trainer": "dlcore.train.trainer",
    "cancel_run": "dlcore.train.jobs",
    "delete_run": "dlcore.train.jobs",
    "get_run": "dlcore.train.jobs",
    "hide_run": "dlcore.train.jobs",
    "list_runs": "dlcore.train.jobs",
    "queue_position": "dlcore.train.jobs",
    "refresh": "dlcore.train.jobs",
    "rename_run": "dlcore.train.jobs",
    "resume_run": "dlcore.train.jobs",
    "share_run": "dlcore.train.jobs",
    "start_run": "dlcore.train.jobs",
    "start_warm_worker": "dlcore.train.jobs",
    "wait": "dlcore.train.jobs",
    "start_distributed_run": "dlcore.train.distributed",
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
