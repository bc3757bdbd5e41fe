"""The job process: ``python dlcore/train/worker.py RUN_ID --root DIR [--resume] [--max-running N]``
(``python -m dlcore.train.worker`` works too).

A queued worker waits for a free slot with the standard library only (sqlite3): torch and the rest of
dlcore are imported once the slot is claimed. Forty queued runs then cost forty small processes instead
of forty copies of torch (~300 MB each). That is why ``jobs`` starts this file by path and why nothing
at the top of this module imports dlcore.

Once running it trains, turns trainer callbacks into run-store rows and checkpoints, and always leaves
the run in a final state with a readable reason: SIGTERM stops it gracefully (checkpoint, 'cancelled',
resumable); any exception becomes 'failed' with a sentence from ``dlcore.errors.describe_failure``.
"""
from __future__ import annotations

import argparse
import os
import signal
import sqlite3
import sys
import time
import traceback
from pathlib import Path

if __name__ == "__main__":  # started as a file: import dlcore from the repository, not from this folder
    _here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _here]
    sys.path.insert(0, str(_here.parents[1]))

_TERM = {"requested": False}  # set by SIGTERM: stop at the next step, checkpoint, end as 'cancelled'


def _connect(db_path: str | Path) -> sqlite3.Connection:
    con = sqlite3.connect(str(db_path), timeout=30, isolation_level=None)
    con.execute("PRAGMA busy_timeout=30000")
    return con


def pid_alive(pid: int | None, run_id: str) -> bool:
    """True while the process recorded for a run exists (reaps our own zombie children).

    A live process counts only if it is plausibly ours (its command line names the run or dlcore), so a
    recycled pid does not keep a dead run 'running' forever. The calling process itself always counts
    (the CLI and tests train in-process).
    """
    if not pid:
        return False
    if pid == os.getpid():
        return True
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    except ChildProcessError:
        pass  # not our child: fall through to /proc
    except OSError:
        return False
    proc = Path(f"/proc/{pid}")
    if proc.exists():
        try:
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
            cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            return False
        return state not in ("Z", "X") and (run_id in cmdline or "dlcore" in cmdline)
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


def dead_reason(pid: int | None, progress: float | None, status: str = "running") -> str:
    """The message of a run whose process vanished without recording why (kill -9, OOM killer, crash)."""
    if status == "queued":
        return (f"the training process (pid {pid}) ended while the run was waiting in the queue — killed or "
                "crashed. Resume starts it again.")
    return (f"the training process (pid {pid}) ended unexpectedly — killed, out of memory, or crashed — at "
            f"{int((progress or 0) * 100)}% of training. Resume continues from the last checkpoint.")


def _reap_dead(con: sqlite3.Connection) -> None:
    """Mark runs whose process is gone as failed, so a killed run neither holds a slot nor blocks the head
    of the queue forever (nobody may be watching it to notice)."""
    rows = con.execute("SELECT id, pid, progress, status FROM runs WHERE status IN ('running', 'queued') "
                       "AND pid IS NOT NULL").fetchall()
    for run_id, pid, progress, status in rows:
        if not pid_alive(pid, run_id):
            con.execute("UPDATE runs SET status = 'failed', finished = ?, error = ? WHERE id = ? AND status = ? "
                        "AND pid = ?", (time.time(), dead_reason(pid, progress, status), run_id, status, pid))


def _claim_slot(db_path: str | Path, run_id: str, cap: int) -> bool:
    """Atomically move this run from queued to running when fewer than ``cap`` runs are running.

    Queued runs start first-come first-served: only the ``cap - running`` oldest may claim.
    """
    con = _connect(db_path)
    try:
        _reap_dead(con)
        con.execute("BEGIN IMMEDIATE")
        running = con.execute("SELECT COUNT(*) FROM runs WHERE status = 'running'").fetchone()[0]
        first = con.execute("SELECT id FROM runs WHERE status = 'queued' ORDER BY created LIMIT ?",
                            (max(cap - running, 0),)).fetchall()
        ok = running < cap and run_id in {r[0] for r in first}
        if ok:
            now = time.time()
            con.execute("UPDATE runs SET status = 'running', pid = ?, heartbeat = ?, "
                        "started = COALESCE(started, ?) WHERE id = ?", (os.getpid(), now, now, run_id))
        con.execute("COMMIT")
        return ok
    finally:
        con.close()


def wait_for_slot(db_path: str | Path, run_id: str, cap: int | None = None, poll: float = 0.5) -> bool:
    """Block until this run holds a slot (True) or was cancelled / stopped while queued (False).

    Args:
        cap: runs allowed at once; None reads ``LIMITS.concurrent_runs`` (imports dlcore).
    """
    if cap is None:
        from dlcore.config import LIMITS

        cap = LIMITS.concurrent_runs
    while True:
        con = _connect(db_path)
        try:
            row = con.execute("SELECT status, cancel_requested FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is None:
                return False  # deleted while queued
            if row[1] or row[0] != "queued" or _TERM["requested"]:
                why = "stopped by the system while queued" if _TERM["requested"] else "cancelled while queued"
                con.execute("UPDATE runs SET status = 'cancelled', finished = ?, error = ? WHERE id = ? AND status "
                            "IN ('queued', 'running')", (time.time(), why, run_id))
                return False
        finally:
            con.close()
        if _claim_slot(db_path, run_id, cap):
            return True
        time.sleep(poll)


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

    if not claimed and not wait_for_slot(store.db_path, run_id, LIMITS.concurrent_runs):
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
    root = Path(args.root or os.environ.get("DLE_DATA_DIR", "runs")).resolve()
    if not wait_for_slot(root / "store.db", args.run_id, args.max_running):
        return 0
    cap = args.max_running
    if cap is None:
        from dlcore.config import LIMITS

        cap = LIMITS.concurrent_runs
    _share_cores(cap)
    from dlcore.runs.store import RunStore

    status = run_job(args.run_id, RunStore(root), resume=args.resume, claimed=True)
    return 0 if status in ("completed", "cancelled") else 1


if __name__ == "__main__":
    sys.exit(main())
