"""The job process: ``python dlcore/train/worker.py RUN_ID --root DIR [--resume] [--max-running N]``
(``python -m dlcore.train.worker`` works too).

A queued worker waits for a free slot through the run store (``RunStore.wait_for_slot``: sqlite3 and the
standard library only); torch and the rest of dlcore are imported once the slot is claimed. Forty queued
runs then cost forty small processes instead of forty copies of torch (~300 MB each). That is why
``jobs`` starts this file by path and why nothing at the top of this module imports dlcore.

Once running it trains, turns trainer callbacks into run-store rows and checkpoints, and always leaves
the run in a final state with a readable reason: SIGTERM stops it gracefully (checkpoint, 'cancelled',
resumable); any exception becomes 'failed' with a sentence from ``dlcore.errors.describe_failure``.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import time
import traceback
from pathlib import Path

if __name__ == "__main__":  # started as a file: import dlcore from the repository, not from this folder
    _here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _here]
    sys.path.insert(0, str(_here.parents[1]))

_TERM = {"requested": False}  # set by SIGTERM: stop at the next step, checkpoint, end as 'cancelled'


def _stopping() -> bool:
    return _TERM["requested"]


def _share_cores(cap: int) -> None:
    """Runs at once share the CPU cores instead of each spawning a thread per core (oversubscription)."""
    import torch

    torch.set_num_threads(max(1, (os.cpu_count() or 1) // max(1, cap)))


def run_job(run_id: str, store, resume: bool = False, callbacks: list | None = None, claimed: bool = False) -> str:
    """Train one stored run to a final status; returns that status. Used by the worker and the CLI.

    Args:
        run_id: a run created with ``RunStore.create``.
        store: the RunStore holding it.
        resume: continue from the run's checkpoint (metrics past it are dropped and replayed).
        callbacks: extra ``(event, fn)`` trainer callbacks (the CLI prints progress with them).
        claimed: the caller already holds a slot (the worker waits before importing torch).
    """
    from dlcore.config import LIMITS
    from dlcore.data import load_dataset
    from dlcore.runs.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
    from dlcore.train.trainer import Trainer

    if not claimed and not store.wait_for_slot(run_id, LIMITS.concurrent_runs, stopping=_stopping):
        return "cancelled"
    run = store.get(run_id)
    folder = store.run_dir(run_id)
    try:
        state = None
        if resume:
            try:
                state = load_checkpoint(folder)
                store.truncate_metrics(run_id, state[1]["step"])
            except CheckpointError as e:
                if (folder / "checkpoint.safetensors").exists():
                    print(f"resume: the checkpoint cannot be used ({e}); training starts over", flush=True)
                store.truncate_metrics(run_id, -1)  # no usable checkpoint: start over
                state = None
        dataset = load_dataset(run.data)
        trainer = Trainer(run.model, dataset, run.train, state=state)
        store.update(run_id, params=sum(p.numel() for p in trainer.model.parameters()), device=str(trainer.device))
        last = {"cancel_check": 0.0, "ckpt": time.time()}

        def checkpoint(t):
            tensors, meta = t.checkpoint_state()
            save_checkpoint(folder, tensors, {**meta, "data": run.data.to_dict(), "train": run.train.to_dict()},
                            model_config=t.config)

        def on_step(t, row):
            store.log(run_id, "step", row["step"], {k: row.get(k) for k in ("loss", "lr", "samples_per_s", "eta_s", "mfu", "model_flops_per_s")},
                      epoch=row["epoch"])
            now = time.time()
            store.update(run_id, progress=row["progress"], heartbeat=now)
            if _TERM["requested"]:
                t.stop_requested = True
            if now - last["cancel_check"] > 0.5:
                last["cancel_check"] = now
                if store.get(run_id).cancel_requested:
                    t.stop_requested = True
            if now - last["ckpt"] > 60:  # long epochs: never lose more than a minute
                checkpoint(t)
                last["ckpt"] = now

        def on_epoch(t, row):
            store.log(run_id, "epoch", row["step"], row, epoch=row["epoch"])
            checkpoint(t)
            last["ckpt"] = time.time()

        trainer.add_callback("on_step_end", on_step)
        trainer.add_callback("on_epoch_end", on_epoch)
        for event, fn in callbacks or []:
            trainer.add_callback(event, fn)
        summary = trainer.fit()
        checkpoint(trainer)
        status = "completed" if summary["completed"] else "cancelled"
        why = ("stopped by the system (SIGTERM); resume continues from here" if _TERM["requested"] else
               "cancelled by the user; resume continues from here")
        store.update(run_id, status=status, finished=time.time(), progress=1.0 if status == "completed" else
                     trainer.step / max(1, trainer.total_steps), summary=summary,
                     error=None if status == "completed" else why)
        return status
    except BaseException as e:  # every failure ends as a readable reason in the store, never a silent death
        from dlcore.errors import describe_failure

        try:
            (folder / "error.log").write_text(traceback.format_exc())
        except OSError:
            pass  # a full disk must not hide the reason, which goes to the store below
        reason = describe_failure(e, run.train) if isinstance(e, Exception) else \
            f"the training process was interrupted ({type(e).__name__}); resume continues from the last checkpoint"
        store.update(run_id, status="failed", finished=time.time(), error=reason)
        if not isinstance(e, Exception):
            raise
        return "failed"


def _on_sigterm(signum, frame) -> None:
    if _TERM["requested"]:  # a second SIGTERM: stop now
        raise SystemExit(128 + signum)
    _TERM["requested"] = True


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Train one queued run of the run store (started by dlcore.start_run).")
    p.add_argument("run_id")
    p.add_argument("--root", default=None, help="the data folder holding store.db (default: DLE_DATA_DIR)")
    p.add_argument("--resume", action="store_true", help="continue from the run's checkpoint")
    p.add_argument("--max-running", type=int, default=None,
                   help="runs allowed at once (default: LIMITS.concurrent_runs, read from DLE_MAX_CONCURRENT_RUNS)")
    args = p.parse_args(argv)
    signal.signal(signal.SIGTERM, _on_sigterm)
    # imported here, after the sys.path fix above; neither imports torch
    from dlcore.config import LIMITS
    from dlcore.runs.store import RunStore

    store = RunStore(args.root)
    cap = LIMITS.concurrent_runs if args.max_running is None else args.max_running
    if not store.wait_for_slot(args.run_id, cap, stopping=_stopping):
        return 0
    _share_cores(cap)
    status = run_job(args.run_id, store, resume=args.resume, claimed=True)
    return 0 if status in ("completed", "cancelled") else 1


if __name__ == "__main__":
    sys.exit(main())
