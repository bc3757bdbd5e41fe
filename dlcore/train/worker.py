"""The job processes: the warm worker, which forks one process per run, and the one-run worker.

``python dlcore/train/worker.py --serve --root DIR --address NAME`` — **the warm worker** (started by
``jobs`` on the first run of a store, shared by every later one). It binds a Unix socket first (so a
second one for the same store gives way at once) and detaches from its starter, then imports torch,
``torch._dynamo`` and the trainer once, and waits. ``start_run`` records the warm worker's pid on the queued run and sends it the run id;
the warm worker claims a slot for its queued runs first-come first-served (``RunStore.claim_slot``: at
most ``LIMITS.concurrent_runs`` at once on the machine), then ``fork()``s a child that trains the run in
its own session, with its own pid in the store and its own ``worker.log``. A run thus starts within a
poll (0.25 s) plus its dataset and first step, and queued runs cost no process and no import of their own.
It never runs a tensor op or touches CUDA itself (either would make ``fork`` unsafe), so a child may use
the GPU. It exits after ``DLE_WARM_WORKER_IDLE_S`` seconds (600) with nothing queued or running, or on
SIGTERM (its queued runs end 'cancelled', its running children go on).

Every guarantee of a one-process-per-run design holds because each run is still its own process: it
survives a restart of the server (own session, not the server's child), ``kill -9`` of it is noticed by
its pid (``RunStore.reap_dead``, ``jobs.refresh``), SIGTERM stops it gracefully, resume loads its checkpoint.
``kill -9`` of the warm worker fails only its queued runs (with "resume starts it again").

``python dlcore/train/worker.py RUN_ID --root DIR [--resume] [--max-running N]`` — **one run** (the
fallback where Unix sockets are missing, or with ``DLE_WARM_WORKER=0``). It waits for a free slot
through the run store (``RunStore.wait_for_slot``: sqlite3 and the standard library only) and imports
torch once the slot is claimed, so forty queued runs cost forty small processes, not forty copies of
torch. That is why ``jobs`` starts this file by path and why nothing at the top of this module imports
dlcore (``python -m dlcore.train.worker`` works too).

Once training, a run turns trainer callbacks into run-store rows and checkpoints, and always ends in a
final state with a readable reason: SIGTERM stops it gracefully (checkpoint, 'cancelled', resumable);
any exception becomes 'failed' with a sentence from ``dlcore.errors.describe_failure``.
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
_POLL_S = 0.25  # how often the warm worker retries its queued runs for a slot


def _stopping() -> bool:
    return _TERM["requested"]


def run_job(run_id: str, store, resume: bool = False, callbacks: list | None = None, claimed: bool = False) -> str:
    """Train one stored run to a final status; returns that status. Used by the workers and the CLI.

    Args:
        run_id: a run created with ``RunStore.create``.
        store: the RunStore holding it.
        resume: continue from the run's checkpoint (metrics past it are dropped and replayed).
        callbacks: extra ``(event, fn)`` trainer callbacks (the CLI prints progress with them).
        claimed: the caller already holds a slot (the workers claim it before importing torch or forking).
    """
    from dlcore.config import LIMITS
    from dlcore.data import load_dataset
    from dlcore.runs.checkpoint import CheckpointError, resume_state, save_checkpoint
    from dlcore.runs.snapshots import drop_snapshots_after, save_snapshot
    from dlcore.train.trainer import Trainer

    if not claimed and not store.wait_for_slot(run_id, LIMITS.concurrent_runs, stopping=_stopping):
        return "cancelled"
    run = store.get(run_id)
    folder = store.run_dir(run_id)
    store.reserve_last_words(run_id)
    try:
        state = None
        if resume:
            try:
                state = resume_state(folder)
                store.truncate_metrics(run_id, state[1]["step"])
            except CheckpointError as e:
                if (folder / "checkpoint.safetensors").exists():
                    print(f"resume: the checkpoint cannot be used ({e}); training starts over", flush=True)
                store.truncate_metrics(run_id, -1)  # no usable checkpoint: start over
                state = None
        dataset = load_dataset(run.data)
        init = None
        if run.train.init_from and state is None:  # transfer learning: start from the parent's weights
            from dlcore.transfer import parent_tensors
            init = parent_tensors(run.train.init_from, store)
        trainer = Trainer(run.model, dataset, run.train, state=state, init=init)
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

        def snapshot(t, row=None):
            # the inspection pages' epoch slider; a snapshot that cannot be written never fails the run
            try:
                path = save_snapshot(folder, t.raw_model.state_dict(), t.epoch, t.step, row, model_config=t.config)
                if path is None and row is None:
                    print("no per-epoch snapshots: one would take over a quarter of DLE_MAX_SNAPSHOTS_MB", flush=True)
            except Exception as e:  # noqa: BLE001 - a full disk, a read-only folder, ...: log it and train on
                print(f"snapshot of epoch {t.epoch} not written: {type(e).__name__}: {e}", flush=True)

        def on_epoch(t, row):
            store.log(run_id, "epoch", row["step"], row, epoch=row["epoch"])
            checkpoint(t)
            last["ckpt"] = time.time()
            snapshot(t, row)

        trainer.add_callback("on_step_end", on_step)
        trainer.add_callback("on_epoch_end", on_epoch)
        for event, fn in callbacks or []:
            trainer.add_callback(event, fn)
        try:
            drop_snapshots_after(folder, trainer.epoch)  # a resume retrains the epochs after its checkpoint
        except OSError as e:
            print(f"old snapshots not removed: {e}", flush=True)
        if state is None:
            snapshot(trainer)  # epoch 0: the weights before training
        summary = trainer.fit()
        checkpoint(trainer)
        status = "completed" if summary["completed"] else "cancelled"
        why = ("stopped by the system (SIGTERM); resume continues from here" if _TERM["requested"] else
               "cancelled by the user; resume continues from here")
        # finish: only while this process still holds the run (a compare-and-set in the store)
        store.finish(run_id, status, finished=time.time(), progress=1.0 if status == "completed" else
                     trainer.step / max(1, trainer.total_steps), summary=summary,
                     error=None if status == "completed" else why)
        return status
    except BaseException as e:  # every failure ends as a readable reason in the store, never a silent death
        from dlcore.errors import describe_failure
        from dlcore.runs.store import StoreError

        try:
            (folder / "error.log").write_text(traceback.format_exc())
        except OSError:
            pass  # a full disk must not hide the reason, which goes to the store below
        reason = describe_failure(e, run.train) if isinstance(e, Exception) else \
            f"the training process was interrupted ({type(e).__name__}); resume continues from the last checkpoint"
        try:
            store.finish(run_id, "failed", finished=time.time(), error=reason)
        except StoreError:  # the store cannot take it (a full disk): whoever notices this process gone reads it
            store.write_last_words(run_id, reason)
            raise SystemExit(1) from None
        if not isinstance(e, Exception):
            raise
        return "failed"


def _on_sigterm(signum, frame) -> None:
    if _TERM["requested"]:  # a second SIGTERM: stop now
        raise SystemExit(128 + signum)
    _TERM["requested"] = True


# ---------------------------------------------------------------- the warm worker
def _preload() -> None:
    """Everything a run imports, once, without running a tensor op or touching CUDA (fork stays safe).

    ``torch._dynamo`` is what the optimizer's first ``step()`` would import (about a second).
    """
    from dlcore.preload import preload_imports

    preload_imports()
    # the quick start's data (mnist5k and mnist-rows share one CSV, 16 MB as arrays): parsed once here with
    # numpy and pandas only (no tensor op), every child gets it through fork's shared pages (−0.2–0.5 s a run)
    try:
        from dlcore.data import builtin

        getattr(builtin, "_mnist_arrays", lambda: None)()
    except Exception:  # noqa: BLE001 - the run loads it itself and reports any problem
        pass


def _peer_uid(conn) -> int | None:
    """The user id of the process at the other end of a Unix socket (Linux), else None."""
    import socket
    import struct

    try:
        return struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))[1]
    except (AttributeError, OSError):
        return None


def _read_requests(listener) -> list[str]:
    """Run ids sent by waiting clients (one per line; 'ping' keeps the worker warm), from our own user only."""
    ids = []
    while True:
        try:
            conn, _ = listener.accept()
        except (BlockingIOError, InterruptedError):
            return ids
        with conn:
            if _peer_uid(conn) not in (None, os.getuid()):
                continue
            conn.settimeout(2.0)
            data = b""
            try:
                while not data.endswith(b"\n") and len(data) < 4096:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    data += chunk
            except OSError:
                pass
            ids += [x for x in data.decode(errors="replace").split() if x != "ping"]


_NOT_CLAIMED = 75  # exit status of a child that lost the race for its slot (EX_TEMPFAIL): it tries again


def _alive_children(children: dict[int, str], pending: list[str]) -> None:
    """Forget children that have ended (reaped here, or already by ``pid_alive`` in the store's reaping);
    a run whose child lost the race for the slot goes back to the queue."""
    for pid in list(children):
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done, status = pid, 0
        if done == pid:
            run_id = children.pop(pid)
            if os.WIFEXITED(status) and os.WEXITSTATUS(status) == _NOT_CLAIMED and run_id not in pending:
                pending.append(run_id)


def _fork_run(store, run_id: str, cap: int, listener) -> int:
    """Fork the process that claims the run's slot and trains it; returns its pid.

    The child claims the slot itself, so the pid recorded with 'running' is always the process that
    trains (nobody can see 'running' with the warm worker's pid, and a kill of that pid kills the run).
    """
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:  # the child: its own session, signals, log and threads, then the run
        listener.close()
        os.setsid()
        signal.signal(signal.SIGTERM, _on_sigterm)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        _TERM["requested"] = False
        log = os.open(store.run_dir(run_id) / "worker.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        os.close(null)
        if not store.claim_slot(run_id, cap):
            code = _NOT_CLAIMED  # another worker's run took the slot first: the warm worker retries
            return
        from dlcore.config import configure_threads

        configure_threads("train", cap)
        resume = (store.run_dir(run_id) / "checkpoint.safetensors").exists()
        status = run_job(run_id, store, resume=resume, claimed=True)
        code = 0 if status in ("completed", "cancelled") else 1
    except BaseException as e:  # noqa: BLE001 - run_job records every failure once it runs; this is before
        traceback.print_exc()
        try:
            store.finish(run_id, "failed", finished=time.time(),
                         error=f"the training process could not start the run ({type(e).__name__}: {e}); "
                               "resume starts it again")
        except Exception:  # noqa: BLE001 - the store itself is broken: the dead pid tells the reason
            pass
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _dispatch(store, pending: list[str], cap: int, listener, children: dict[int, str]) -> None:
    """Fork a process for each queued run of this worker that may start now (the oldest first, in the
    store's order, not the order their messages came in); record cancellations; drop runs that left."""
    me = os.getpid()
    store.reap_dead()  # a killed run must not hold its slot
    queued = store.list(status="queued")[::-1]  # oldest first
    by_id = {r.id: r for r in queued}
    for run_id in list(pending):
        run = by_id.get(run_id)
        if run is None or run.pid != me:
            pending.remove(run_id)  # deleted, ended, or taken over by another worker (a resume elsewhere)
        elif run.cancel_requested or _TERM["requested"]:
            why = "stopped by the system while queued" if _TERM["requested"] else "cancelled while queued"
            store.transition(run_id, "cancelled", ("queued",), pid=me, finished=time.time(), error=why)
            pending.remove(run_id)
    # first come, first served over the whole machine: only the (cap - running) oldest queued runs may
    # start (RunStore.claim_slot checks it again, atomically, in the child)
    free = cap - len(store.list(status="running"))
    for run in queued[:max(free, 0)]:
        if run.id in pending:
            pending.remove(run.id)
            children[_fork_run(store, run.id, cap, listener)] = run.id


def _queued_here(store) -> list[str]:
    """Queued runs recorded with this worker's pid, oldest first (a request whose message was not read)."""
    me = os.getpid()
    return [r.id for r in reversed(store.list(status="queued")) if r.pid == me]


def _try_exit(store, lock_path: Path, listener) -> bool:
    """Stop listening when idle, unless a client is handing a run over right now: clients hold the same
    lock while they find this worker and record its pid, so once the socket is closed under the lock no
    run can be recorded for us any more. Returns True when the worker may exit."""
    import fcntl

    with open(lock_path, "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False
        if _queued_here(store):
            return False
        listener.close()
        return True


def serve(root: str, address: str, idle_s: float | None = None) -> int:
    """The warm worker's loop (see the module docstring). Returns its exit status."""
    import selectors
    import socket

    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind("\0" + address)  # abstract namespace (Linux): gone with the process
    except OSError:
        return 0  # another warm worker serves this store
    if os.fork():  # detach: the process jobs started exits now (nobody waits on us, no zombie, no warning)
        os._exit(0)
    listener.listen(128)  # after the fork: clients read the listening process's pid (SO_PEERCRED)
    listener.setblocking(False)
    signal.signal(signal.SIGTERM, _on_sigterm)
    _preload()
    from dlcore.config import warm_worker_idle_s
    from dlcore.runs.store import RunStore

    store = RunStore(root)
    idle_s = warm_worker_idle_s() if idle_s is None else idle_s
    threads = len(os.listdir("/proc/self/task")) if os.path.isdir("/proc/self/task") else 1
    if threads > 1:  # a library started a thread on import: fork copies only ours (see jobs._worker_env)
        print(f"warm worker: {threads} threads after the imports; forking is safe only if their libraries "
              "handle fork (OpenBLAS and jemalloc do)", flush=True)
    lock_path = store.root / "warm-worker.lock"
    print(f"warm worker {os.getpid()} ready for {store.root} (idle exit after {idle_s:.0f} s)", flush=True)
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ)
    pending: list[str] = []
    children: dict[int, str] = {}
    last_busy = time.monotonic()
    while True:
        try:
            done = _serve_once(store, sel, listener, pending, children, lock_path, idle_s, last_busy)
        except Exception:  # noqa: BLE001 - a hiccup (a locked database, a fork refused) must not strand the queue
            traceback.print_exc()
            time.sleep(1.0)
            continue
        if done is True:
            return 0
        last_busy = done


def _serve_once(store, sel, listener, pending: list[str], children: dict[int, str], lock_path: Path,
                idle_s: float, last_busy: float) -> float | bool:
    """One turn of the warm worker's loop: read requests, start what may start, maybe leave. Returns True
    to exit, else the time it was last busy."""
    from dlcore.config import LIMITS

    if sel.select(_POLL_S if pending else min(2.0, idle_s)):
        pending += [r for r in _read_requests(listener) if r not in pending]
        last_busy = time.monotonic()
    _alive_children(children, pending)
    if pending or children:
        last_busy = time.monotonic()
    if pending or _TERM["requested"]:
        _dispatch(store, pending, LIMITS.concurrent_runs, listener, children)
    if _TERM["requested"]:
        print(f"warm worker {os.getpid()}: SIGTERM; {len(children)} run(s) go on in their own processes", flush=True)
        return True
    if not (store.root / "store.db").exists():
        return True  # the store is gone
    if not pending and not children and time.monotonic() - last_busy > idle_s:
        if _try_exit(store, lock_path, listener):
            print(f"warm worker {os.getpid()}: idle for {idle_s:.0f} s, exiting", flush=True)
            return True
        pending += [r for r in _queued_here(store) if r not in pending]
        last_busy = time.monotonic()
    return last_busy


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Train queued runs of the run store (started by dlcore.start_run).")
    p.add_argument("run_id", nargs="?", help="the one run to train (without --serve)")
    p.add_argument("--root", default=None, help="the data folder holding store.db (default: DLE_DATA_DIR)")
    p.add_argument("--resume", action="store_true", help="continue from the run's checkpoint")
    p.add_argument("--max-running", type=int, default=None,
                   help="runs allowed at once (default: LIMITS.concurrent_runs, read from DLE_MAX_CONCURRENT_RUNS)")
    p.add_argument("--serve", action="store_true", help="be the warm worker of the store (see the module docstring)")
    p.add_argument("--address", default=None, help="the name of the warm worker's abstract Unix socket (with --serve)")
    args = p.parse_args(argv)
    if args.serve:
        if not args.root or not args.address:
            p.error("--serve needs --root and --address")
        return serve(args.root, args.address)
    if not args.run_id:
        p.error("a run id is required (or --serve)")
    signal.signal(signal.SIGTERM, _on_sigterm)
    # imported here, after the sys.path fix above; neither imports torch
    from dlcore.config import LIMITS, configure_threads
    from dlcore.runs.store import RunStore

    store = RunStore(args.root)
    cap = LIMITS.concurrent_runs if args.max_running is None else args.max_running
    if not store.wait_for_slot(args.run_id, cap, stopping=_stopping):
        return 0
    configure_threads("train", cap)  # the environment from jobs set passive waiting before torch loads
    status = run_job(args.run_id, store, resume=args.resume, claimed=True)
    return 0 if status in ("completed", "cancelled") else 1


if __name__ == "__main__":
    sys.exit(main())
