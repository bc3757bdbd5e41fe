"""Background training jobs: each run trains in its own process (or processes), reports into the run
store, and can be cancelled, noticed dead, and resumed from its last checkpoint.

The caller (the app, the CLI) never trains in its own thread: ``start_run`` checks the run
(``prepare_run``), writes a queued row and spawns ``python dlcore/train/worker.py RUN_ID`` — or, for
``nproc > 1``, ``torchrun -m dlcore.train.distributed RUN_ID`` — in a new session, so a Streamlit rerun, a
closed tab or a restarted server does not stop it. Workers schedule themselves: at most
``LIMITS.concurrent_runs`` run at once; the others wait in the queue.

Example:
    >>> run_id = start_run(DataSpec(name="digits"), get_preset("cnn-tiny"), TrainSpec(epochs=1))
    >>> wait(run_id).status
    'completed'
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import torch

from dlcore.config import LIMITS
from dlcore.errors import TrainingError
from dlcore.models import ModelConfig
from dlcore.runs.store import ACTIVE, Run, RunStore, dead_reason, pid_alive
from dlcore.specs import DataSpec, TrainSpec
from dlcore.train.distributed import torchrun_command
from dlcore.train.prepare import prepare_run

_REPO = Path(__file__).resolve().parents[2]
_WORKER = Path(__file__).resolve().with_name("worker.py")  # started by path: see worker.py's docstring
# names of environment variables a training process has no use for and must not inherit (or print)
_SECRET_ENV = re.compile(r"SECRET|TOKEN|PASSW|CREDENTIAL|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY|AUTH|COOKIE|SESSION",
                         re.IGNORECASE)


def _worker_env() -> dict[str, str]:
    """The environment of a worker: ours minus anything that looks like a secret, plus the repo on PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if not _SECRET_ENV.search(k)}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_REPO), env.get("PYTHONPATH", "")) if p)
    return env


def _spawn(store: RunStore, run_id: str, resume: bool, nproc: int = 1) -> None:
    """Start the run's process in its own session, logging to its ``worker.log``: the worker for one
    process, torchrun for more. A failure to start fails the run with the reason (it is never left queued)."""
    env = _worker_env()
    args = [run_id, "--root", str(store.root)] + (["--resume"] if resume else [])
    if nproc == 1:
        cmd = [sys.executable, str(_WORKER), *args, "--max-running", str(LIMITS.concurrent_runs)]
    else:
        env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
        cmd = torchrun_command(nproc, ["-m", "dlcore.train.distributed", *args])
    try:
        with open(store.run_dir(run_id) / "worker.log", "ab") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True, env=env, cwd=str(_REPO))
    except OSError as e:  # no processes or file handles left, disk full: say so instead of queueing forever
        store.update(run_id, status="failed", finished=time.time(),
                     error=f"the training process could not be started ({e.strerror or e}); try again in a minute")
        raise TrainingError(f"the training process could not be started ({e.strerror or e})") from e
    store.update(run_id, pid=proc.pid)


def _check_local_gpus(train: TrainSpec, nproc: int) -> None:
    """Processes started on this machine: one GPU each when training on CUDA."""
    if nproc > 1 and torch.cuda.is_available() and train.device in ("auto", "cuda") \
            and nproc > torch.cuda.device_count():
        raise TrainingError(f"{nproc} processes asked for but this machine has {torch.cuda.device_count()} GPU(s)")


def start_run(data: DataSpec, model: ModelConfig, train: TrainSpec, name: str | None = None,
              store: RunStore | None = None, owner: str = "", nproc: int = 1) -> str:
    """Queue a run and start its process(es); returns the run id at once.

    The run is checked first (``prepare_run``), so a bad field, a model that cannot read the data or
    sequences past ``DLE_MAX_SEQ_LEN`` raise SpecError, and one too big for the device raises
    ResourceError, before anything is written.

    Args:
        name: the run's name (default: 'family on dataset', with '× nproc' for a distributed run).
        store: the run store (default: the data folder's).
        owner: a session or user id, to list one's own runs (``list_runs(owner=...)``).
        nproc: processes training it data-parallel (torchrun); ``train.batch_size`` is the global batch.

    Raises:
        SpecError, ResourceError: see above. TrainingError: nproc does not fit the batch or this machine's
        GPUs, or the process could not be started (the run is then recorded as failed).
    """
    prepared = prepare_run(data, model, train, nproc=nproc)
    _check_local_gpus(prepared.train, nproc)
    store = store or RunStore()
    run_id = store.create(prepared.data, prepared.model, prepared.train, name=name or prepared.default_name,
                          params=prepared.fit.params, owner=owner)
    _spawn(store, run_id, resume=False, nproc=nproc)
    return run_id


def cancel_run(run_id: str, store: RunStore | None = None) -> None:
    """Ask a run to stop; it saves a checkpoint and ends as 'cancelled' (resumable)."""
    store = store or RunStore()
    run = store.get(run_id)
    if run.status not in ACTIVE:
        return
    store.update(run_id, cancel_requested=1)
    if not pid_alive(run.pid, run_id):
        store.update(run_id, status="cancelled", finished=time.time(), error="cancelled before it started")


def resume_run(run_id: str, store: RunStore | None = None, nproc: int = 1) -> None:
    """Continue a failed or cancelled run from its last checkpoint (or from the start if it has none).

    The run passes the same checks as a new one (``prepare_run``: limits may have changed, an uploaded
    dataset may be gone) before it is queued again.

    Args:
        nproc: processes to continue on (torchrun for more than one); the checkpoint does not depend on it.
    """
    store = store or RunStore()
    run = refresh(store.get(run_id), store)
    if run.status in ACTIVE:
        raise ValueError(f"run {run_id} is already {run.status}")
    if run.status == "completed":
        raise ValueError(f"run {run_id} has already completed")
    _check_local_gpus(prepare_run(run.data, run.model, run.train, nproc=nproc).train, nproc)
    store.update(run_id, status="queued", error=None, cancel_requested=0, finished=None, pid=None)
    _spawn(store, run_id, resume=True, nproc=nproc)


def refresh(run: Run, store: RunStore) -> Run:
    """Mark a run failed if its process has died without saying so; returns the up-to-date run."""
    if run.status in ACTIVE and run.pid and not pid_alive(run.pid, run.id):
        time.sleep(0.2)  # the worker may be writing its final status right now
        run = store.get(run.id)
        if run.status in ACTIVE and not pid_alive(run.pid, run.id):
            store.update(run.id, status="failed", finished=time.time(),
                         error=dead_reason(run.pid, run.progress, run.status))
            run = store.get(run.id)
    return run


def list_runs(store: RunStore | None = None, owner: str | None = None) -> list[Run]:
    """All runs, newest first, with dead processes noticed.

    Args:
        owner: only the runs of this owner (a session or user id given to ``start_run``); None: everyone's.
    """
    store = store or RunStore()
    return [refresh(r, store) for r in store.list() if owner is None or r.owner == owner]


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
