"""Background training jobs: each run trains in its own process, reports into the run store, and can be
cancelled, noticed dead, and resumed from its last checkpoint.

The caller (the app, the CLI) never trains in its own thread: ``start_run`` writes a queued row and
spawns ``python -m dlcore.train.worker RUN_ID`` in a new session, so a Streamlit rerun, a closed tab or a
restarted server does not stop it. Workers schedule themselves: at most ``LIMITS.concurrent_runs`` run at
once; the others wait in the queue.

Example:
    >>> run_id = start_run(DataSpec(name="digits"), get_preset("cnn-tiny"), TrainSpec(epochs=1))
    >>> wait(run_id).status
    'completed'
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from dlcore.models import ModelConfig
from dlcore.runs.store import ACTIVE, Run, RunStore
from dlcore.specs import DataSpec, TrainSpec

_REPO = Path(__file__).resolve().parents[2]


def _pid_alive(pid: int | None, run_id: str) -> bool:
    """True while the worker process for this run exists (reaps our own zombie children)."""
    if not pid:
        return False
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
        return state not in ("Z", "X") and run_id in cmdline
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


def _spawn(store: RunStore, run_id: str, resume: bool) -> None:
    log = open(store.run_dir(run_id) / "worker.log", "ab")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_REPO), env.get("PYTHONPATH", "")) if p)
    cmd = [sys.executable, "-m", "dlcore.train.worker", run_id, "--root", str(store.root)]
    if resume:
        cmd.append("--resume")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True, env=env, cwd=str(_REPO))
    log.close()
    store.update(run_id, pid=proc.pid)


def start_run(data: DataSpec, model: ModelConfig, train: TrainSpec, name: str | None = None,
              store: RunStore | None = None, owner: str = "") -> str:
    """Queue a run and start its worker process; returns the run id at once.

    The specs are validated here, so a bad field raises SpecError, a model that cannot read the data
    raises SpecError, and one too big for the device raises ResourceError, before anything is written.
    """
    from dlcore.data import dataset_info
    from dlcore.models import for_data
    from dlcore.resources import ResourceError, check_fit

    store = store or RunStore()
    data, train, model = data.replace(), train.replace(), model.replace()  # re-validate
    info = dataset_info(data)
    for_data(model, info)
    report = check_fit(model, info, train)
    if not report.fits:
        raise ResourceError(f"{report.message}. Try: {'; '.join(report.suggestions)}.")
    params = report.params
    run_id = store.create(data, model, train, name=name, params=params, owner=owner)
    _spawn(store, run_id, resume=False)
    return run_id


def cancel_run(run_id: str, store: RunStore | None = None) -> None:
    """Ask a run to stop; it saves a checkpoint and ends as 'cancelled' (resumable)."""
    store = store or RunStore()
    run = store.get(run_id)
    if run.status not in ACTIVE:
        return
    store.update(run_id, cancel_requested=1)
    if not _pid_alive(run.pid, run_id):
        store.update(run_id, status="cancelled", finished=time.time(), error="cancelled before it started")


def resume_run(run_id: str, store: RunStore | None = None) -> None:
    """Continue a failed or cancelled run from its last checkpoint (or from the start if it has none)."""
    store = store or RunStore()
    run = refresh(store.get(run_id), store)
    if run.status in ACTIVE:
        raise ValueError(f"run {run_id} is already {run.status}")
    if run.status == "completed":
        raise ValueError(f"run {run_id} has already completed")
    store.update(run_id, status="queued", error=None, cancel_requested=0, finished=None, pid=None)
    _spawn(store, run_id, resume=True)


def refresh(run: Run, store: RunStore) -> Run:
    """Mark a run failed if its process has died without saying so; returns the up-to-date run."""
    if run.status in ACTIVE and run.pid and not _pid_alive(run.pid, run.id):
        time.sleep(0.2)  # the worker may be writing its final status right now
        run = store.get(run.id)
        if run.status in ACTIVE:
            step = int(run.progress * 100)
            store.update(run.id, status="failed", finished=time.time(),
                         error=f"the training process (pid {run.pid}) ended unexpectedly — killed, out of memory, or "
                               f"crashed — at {step}% of training. Resume continues from the last checkpoint.")
            run = store.get(run.id)
    return run


def list_runs(store: RunStore | None = None) -> list[Run]:
    """All runs, newest first, with dead processes noticed."""
    store = store or RunStore()
    return [refresh(r, store) for r in store.list()]


def get_run(run_id: str, store: RunStore | None = None) -> Run:
    store = store or RunStore()
    return refresh(store.get(run_id), store)


def queue_position(run_id: str, store: RunStore | None = None) -> int:
    """1-based position among queued runs (0 when not queued)."""
    store = store or RunStore()
    queued = sorted((r for r in store.list(("queued",))), key=lambda r: r.created)
    for i, r in enumerate(queued, 1):
        if r.id == run_id:
            return i
    return 0


def wait(run_id: str, timeout: float = 600, store: RunStore | None = None, poll: float = 0.2) -> Run:
    """Block until a run leaves queued/running (for scripts and tests)."""
    store = store or RunStore()
    deadline = time.time() + timeout
    while True:
        run = get_run(run_id, store)
        if run.status not in ACTIVE:
            return run
        if time.time() > deadline:
            raise TimeoutError(f"run {run_id} still {run.status} after {timeout:.0f} s")
        time.sleep(poll)
