"""The job process: ``python -m dlcore.train.worker RUN_ID [--root DIR] [--resume]``.

It waits for a free slot, trains, turns trainer callbacks into run-store rows and checkpoints, and
always leaves the run in a final state with a readable reason.
"""
from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import time
import traceback

from dlcore.runs.store import RunStore


def _claim_slot(store: RunStore, run_id: str, cap: int) -> bool:
    """Atomically move this run from queued to running when fewer than ``cap`` runs are running."""
    con = sqlite3.connect(store.db_path, timeout=30, isolation_level=None)
    try:
        con.execute("BEGIN IMMEDIATE")
        running = con.execute("SELECT COUNT(*) FROM runs WHERE status = 'running'").fetchone()[0]
        first = con.execute("SELECT id FROM runs WHERE status = 'queued' ORDER BY created LIMIT ?",
                            (max(cap - running, 0),)).fetchall()
        ok = running < cap and run_id in {r[0] for r in first}
        if ok:
            con.execute("UPDATE runs SET status = 'running', pid = ?, heartbeat = ?, "
                        "started = COALESCE(started, ?) WHERE id = ?", (os.getpid(), time.time(), time.time(), run_id))
        con.execute("COMMIT")
        return ok
    finally:
        con.close()


def run_job(run_id: str, store: RunStore, resume: bool = False, callbacks: list | None = None) -> str:
    """Train one stored run to a final status; returns that status. Used by the worker and the CLI."""
    from dlcore.config import LIMITS
    from dlcore.data import load_dataset
    from dlcore.runs.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
    from dlcore.train.trainer import Trainer

    while not _claim_slot(store, run_id, LIMITS.concurrent_runs):
        run = store.get(run_id)
        if run.cancel_requested or run.status != "queued":
            store.update(run_id, status="cancelled", finished=time.time(), error="cancelled while queued")
            return "cancelled"
        time.sleep(0.5)
    run = store.get(run_id)
    folder = store.run_dir(run_id)
    try:
        state = None
        if resume:
            try:
                state = load_checkpoint(folder)
                store.truncate_metrics(run_id, state[1]["step"])
            except CheckpointError:
                store.truncate_metrics(run_id, -1)  # no checkpoint yet: start over
        dataset = load_dataset(run.data)
        trainer = Trainer(run.model, dataset, run.train, state=state)
        store.update(run_id, params=sum(p.numel() for p in trainer.model.parameters()), device=str(trainer.device))
        last = {"cancel_check": 0.0, "ckpt": time.time()}

        def checkpoint(t):
            tensors, meta = t.checkpoint_state()
            save_checkpoint(folder, tensors, {**meta, "data": run.data.to_dict(), "train": run.train.to_dict()},
                            model_config=t.config)

        def on_step(t, row):
            store.log(run_id, "step", row["step"], {k: row[k] for k in ("loss", "lr", "samples_per_s", "eta_s")},
                      epoch=row["epoch"])
            now = time.time()
            store.update(run_id, progress=row["progress"], heartbeat=now)
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
        store.update(run_id, status=status, finished=time.time(), progress=1.0 if status == "completed" else
                     trainer.step / max(1, trainer.total_steps), summary=summary,
                     error=None if status == "completed" else "cancelled by the user; resume continues from here")
        return status
    except Exception as e:  # every failure ends as a readable reason in the store, never a silent death
        from dlcore.errors import describe_failure

        (folder / "error.log").write_text(traceback.format_exc())
        store.update(run_id, status="failed", finished=time.time(), error=describe_failure(e, run.train))
        return "failed"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("run_id")
    p.add_argument("--root", default=None)
    p.add_argument("--resume", action="store_true")
    args = p.parse_args(argv)
    status = run_job(args.run_id, RunStore(args.root), resume=args.resume)
    return 0 if status in ("completed", "cancelled") else 1


if __name__ == "__main__":
    sys.exit(main())
