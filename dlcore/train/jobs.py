"""Background training jobs: each run trains in its own process (or processes), reports into the run
store, and can be cancelled, noticed dead, and resumed from its last checkpoint.

The caller (the app, the CLI) never trains in its own thread: ``start_run`` checks the run
(``prepare_run``), writes a queued row and hands it to the store's **warm worker** — a process that has
imported torch and the trainer once and forks a process per run (``dlcore/train/worker.py --serve``;
started here on first use, in its own session, so a Streamlit rerun, a closed tab or a restarted server
stops nothing). Without one (no Unix sockets, ``DLE_WARM_WORKER=0``, or it cannot start) the run gets a
process of its own, ``python dlcore/train/worker.py RUN_ID``; for ``nproc > 1``,
``torchrun -m dlcore.train.distributed RUN_ID``. Runs schedule themselves through the store: at most
``LIMITS.concurrent_runs`` run at once; the others wait in the queue.

The standard library's ``multiprocessing`` forkserver was the first candidate and was not used: its
server inherits the caller's whole environment (secrets included) when it starts and cannot be given
another, dies with the process that started it, and its children cannot outlive a restart cleanly or be
found again by a new server. The warm worker is ~150 lines on ``os.fork`` and a Unix socket instead.

Example:
    >>> run_id = start_run(DataSpec(name="digits"), get_preset("cnn-tiny"), TrainSpec(epochs=1))
    >>> wait(run_id).status
    'completed'
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import torch

from dlcore.access import Viewer, check
from dlcore.config import LIMITS, thread_env, warm_worker_enabled
from dlcore.errors import TrainingError
from dlcore.models import ModelConfig
from dlcore.runs.store import ACTIVE, Run, RunStateError, RunStore, dead_reason, pid_alive
from dlcore.specs import DataSpec, TrainSpec
from dlcore.train.distributed import torchrun_command
from dlcore.train.prepare import prepare_run

_REPO = Path(__file__).resolve().parents[2]
_WORKER = Path(__file__).resolve().with_name("worker.py")  # started by path: see worker.py's docstring
# names of environment variables a training process has no use for and must not inherit (or print)
_SECRET_ENV = re.compile(r"SECRET|TOKEN|PASSW|CREDENTIAL|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY|AUTH|COOKIE|SESSION",
                         re.IGNORECASE)


def _worker_env(nproc: int = 1) -> dict[str, str]:
    """The environment of a worker: ours minus anything that looks like a secret, plus the repo on
    PYTHONPATH and the thread settings of a training process (``dlcore.config.thread_env``)."""
    env = {k: v for k, v in os.environ.items() if not _SECRET_ENV.search(k)}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_REPO), env.get("PYTHONPATH", "")) if p)
    env.update(thread_env("train", nproc=nproc))
    # pyarrow (imported by pandas) starts a jemalloc thread; the warm worker forks, so it must have none
    env.setdefault("JE_ARROW_MALLOC_CONF", "background_thread:false")
    return env


def _spawn(store: RunStore, run_id: str, resume: bool, nproc: int = 1) -> None:
    """Start the run: on the warm worker when there is one (or one can be started), else in a process of
    its own session, logging to its ``worker.log``: the one-run worker, or torchrun for more processes.
    A failure to start fails the run with the reason (it is never left queued)."""
    if nproc == 1 and _hand_to_warm_worker(store, run_id):
        return
    env = _worker_env(nproc)
    args = [run_id, "--root", str(store.root)] + (["--resume"] if resume else [])
    if nproc == 1:
        cmd = [sys.executable, str(_WORKER), *args, "--max-running", str(LIMITS.concurrent_runs)]
    else:
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


# ---------------------------------------------------------------- the warm worker (see worker.py)
# environment variables that change what a worker does: a worker started with other values is another one.
# Not the whole environment: libraries set variables of their own when imported (torch: KMP_*, TORCHINDUCTOR_*)
_ENV_KEY = re.compile(r"^(DLE_\w+|CUDA_VISIBLE_DEVICES|OMP_NUM_THREADS|OMP_WAIT_POLICY|PYTHONPATH)$")
_WARM_START_S = 10.0  # how long a new warm worker may take to bind its socket (it binds before any import)
_local_lock = threading.Lock()  # Streamlit sessions are threads: one of them starts the warm worker
_started: list[subprocess.Popen] = []  # launchers that did not exit in time (polled so none stays a zombie)


def _warm_address(root: Path, env: dict[str, str]) -> str | None:
    """The name of the warm worker's abstract Unix socket for this store and environment (Linux), else None."""
    if not sys.platform.startswith("linux"):
        return None  # SO_PEERCRED and abstract sockets are Linux's; elsewhere each run has its process
    key = json.dumps([str(Path(root).resolve()), sys.executable,
                      sorted((k, v) for k, v in env.items() if _ENV_KEY.match(k))])
    return "dle-warm-" + hashlib.sha256(key.encode()).hexdigest()[:24]


@contextmanager
def _warm_lock(store: RunStore):
    """Held while a client finds the warm worker and records its pid (the worker exits only under it)."""
    import fcntl

    with _local_lock, open(store.root / "warm-worker.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _connect(address: str) -> socket.socket | None:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect("\0" + address)  # the abstract namespace: nothing on disk, gone with the process
        return s
    except OSError:
        s.close()
        return None


def _peer(s: socket.socket) -> tuple[int, int]:
    """(pid, uid) of the process listening at the other end."""
    import struct

    pid, uid, _ = struct.unpack("3i", s.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))
    return pid, uid


def _start_warm_worker(store: RunStore, env: dict[str, str], address: str) -> socket.socket | None:
    """Start a warm worker for the store and connect to it once it listens (None if it cannot start)."""
    for proc in list(_started):
        if proc.poll() is not None:
            _started.remove(proc)
    cmd = [sys.executable, str(_WORKER), "--serve", "--root", str(store.root), "--address", address]
    try:
        with open(store.root / "warm-worker.log", "ab") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True, env=env, cwd=str(_REPO))
    except OSError:
        return None  # the caller falls back to a process per run, which reports the failure
    deadline = time.monotonic() + _WARM_START_S
    try:  # it binds the socket, forks the warm worker and exits (or exits at once: another one serves)
        proc.wait(_WARM_START_S)
    except subprocess.TimeoutExpired:
        _started.append(proc)  # reaped later
        return None
    while time.monotonic() < deadline:
        s = _connect(address)
        if s is not None:
            return s
        time.sleep(0.01)
    return None


def _hand_to_warm_worker(store: RunStore, run_id: str) -> bool:
    """Record the warm worker's pid on a queued run and wake it; False when there is no warm worker."""
    if not warm_worker_enabled():
        return False
    env = _worker_env()
    address = _warm_address(store.root, env)
    if address is None:
        return False
    with _warm_lock(store):
        s = _connect(address) or _start_warm_worker(store, env, address)
        if s is None:
            return False
        with s:
            try:
                pid, uid = _peer(s)
                if uid != os.getuid():
                    return False  # someone else's socket under our name: not ours to trust
                store.update(run_id, pid=pid)
                s.sendall(f"{run_id}\n".encode())
            except OSError:
                store.update(run_id, pid=None)
                return False
    return True


def start_warm_worker(store: RunStore | None = None) -> int | None:
    """Make sure the store's warm worker is running (start it if not) and keep it from idling out; returns
    its pid, or None where there is none (no Unix sockets, ``DLE_WARM_WORKER=0``).

    The app calls it when it starts, so the first click on Train does not wait for torch to import.
    Cheap enough to call on every rerun (a connect to a local socket).
    """
    if not warm_worker_enabled():
        return None
    store = store or RunStore()
    env = _worker_env()
    address = _warm_address(store.root, env)
    if address is None:
        return None
    with _warm_lock(store):
        s = _connect(address) or _start_warm_worker(store, env, address)
        if s is None:
            return None
        with s:
            try:
                pid, _ = _peer(s)
                s.sendall(b"ping\n")
            except OSError:
                return None
    return pid


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
        owner: the identity the run belongs to (``dlcore.access``; "" = class-wide, the CLI's default).
        nproc: processes training it data-parallel (torchrun); ``train.batch_size`` is the global batch.

    Raises:
        SpecError, ResourceError: see above. TrainingError: nproc does not fit the batch or this machine's
        GPUs, or the process could not be started (the run is then recorded as failed).
    """
    prepared = prepare_run(data, model, train, nproc=nproc, store=store)
    _check_local_gpus(prepared.train, nproc)
    store = store or RunStore()
    run_id = store.create(prepared.data, prepared.model, prepared.train, name=name or prepared.default_name,
                          params=prepared.fit.params, owner=owner, parent=prepared.train.init_from)
    _spawn(store, run_id, resume=False, nproc=nproc)
    return run_id


def _checked(run_id: str, store: RunStore, viewer: Viewer | None, action: str) -> Run:
    """The run, when ``viewer`` may do ``action`` to it (AccessDenied otherwise; no viewer: no check)."""
    run = store.get(run_id)
    check(run, viewer, action)
    return run


def cancel_run(run_id: str, store: RunStore | None = None, *, viewer: Viewer | None = None) -> None:
    """Ask a run to stop; it saves a checkpoint and ends as 'cancelled' (resumable).

    Raises:
        AccessDenied: ``viewer`` may not cancel it (``dlcore.access``; None: no check).
    """
    store = store or RunStore()
    if viewer is not None:
        _checked(run_id, store, viewer, "cancel")
    store.request_cancel(run_id)  # atomic: see RunStore.request_cancel


def delete_run(run_id: str, store: RunStore | None = None, *, viewer: Viewer | None = None) -> None:
    """Remove a finished run with its metrics and checkpoints.

    Raises:
        RunNotFound: no such run. RunStateError: it is queued or running. AccessDenied: ``viewer`` may
        not delete it.
    """
    store = store or RunStore()
    if viewer is not None:
        _checked(run_id, store, viewer, "delete")
    store.delete(run_id)


def rename_run(run_id: str, name: str, store: RunStore | None = None, *, viewer: Viewer | None = None) -> None:
    """Give a run a new name (ValueError when it is empty; AccessDenied when ``viewer`` may not)."""
    store = store or RunStore()
    if viewer is not None:
        _checked(run_id, store, viewer, "rename")
    store.rename(run_id, name)


def share_run(run_id: str, shared: bool = True, store: RunStore | None = None, *,
              viewer: Viewer | None = None) -> None:
    """Share a run with the class (everyone may open it, read-only) or take it back; its owner's or a
    teacher's to change (AccessDenied otherwise)."""
    store = store or RunStore()
    if viewer is not None:
        _checked(run_id, store, viewer, "share")
    store.set_shared(run_id, shared)


def hide_run(run_id: str, hidden: bool = True, store: RunStore | None = None, *,
             viewer: Viewer | None = None) -> None:
    """Hide a run from everyone but teachers, or show it again; a teacher's to change (AccessDenied
    otherwise)."""
    store = store or RunStore()
    if viewer is not None:
        _checked(run_id, store, viewer, "hide")
    store.set_hidden(run_id, hidden)


def resume_run(run_id: str, store: RunStore | None = None, nproc: int = 1, *,
               viewer: Viewer | None = None) -> None:
    """Continue a failed or cancelled run from its last checkpoint (or from the start if it has none).

    The run passes the same checks as a new one (``prepare_run``: limits may have changed, an uploaded
    dataset may be gone) before it is queued again.

    Args:
        nproc: processes to continue on (torchrun for more than one); the checkpoint does not depend on it.
        viewer: who asks (AccessDenied unless they may resume it); None: no check.
    """
    store = store or RunStore()
    run = refresh(_checked(run_id, store, viewer, "resume"), store)
    if run.status not in ("failed", "cancelled"):
        raise RunStateError(f"run {run_id} has already completed" if run.status == "completed" else
                            f"run {run_id} is already {run.status}")
    _check_local_gpus(prepare_run(run.data, run.model, run.train, nproc=nproc, store=store).train, nproc)
    store.requeue(run_id)  # compare-and-set: of two Resume presses at once, one queues it, one gets RunStateError
    _spawn(store, run_id, resume=True, nproc=nproc)


def refresh(run: Run, store: RunStore) -> Run:
    """Mark a run failed if its process has died without saying so; returns the up-to-date run."""
    if run.status in ACTIVE and run.pid and not pid_alive(run.pid, run.id):
        time.sleep(0.2)  # the worker may be writing its final status right now
        run = store.get(run.id)
        if run.status in ACTIVE and not pid_alive(run.pid, run.id):  # unchanged since: a new worker is not failed
            store.transition(run.id, "failed", (run.status,), pid=run.pid, finished=time.time(),
                             error=dead_reason(run.pid, run.progress, run.status, store.last_words(run.id)))
            run = store.get(run.id)
    return run


def list_runs(store: RunStore | None = None, owner: str | None = None,
              status: tuple[str, ...] | str | None = None, limit: int | None = None, *,
              viewer: Viewer | None = None) -> list[Run]:
    """Runs, newest first, with dead processes noticed; filtered by the store's query (specs decoded once
    per distinct spec), so the sidebar can call it on every rerun.

    Args:
        owner: only the runs of this owner (a session or user id given to ``start_run``); None: everyone's.
        status: only runs with this status or one of these (e.g. ``("queued", "running")``).
        limit: at most this many, the newest.
        viewer: only the runs this ``dlcore.access.Viewer`` may see (filtered in SQL); None: all.

    Example:
        >>> [r.name for r in list_runs(status=("queued", "running"))]
        ['cnn on mnist5k']
    """
    store = store or RunStore()
    runs = [refresh(r, store) for r in store.list(status=status, owner=owner, limit=limit, viewer=viewer)]
    if status is not None:  # a run found dead just now is no longer active
        wanted = (status,) if isinstance(status, str) else tuple(status)
        runs = [r for r in runs if r.status in wanted]
    return runs


def get_run(run_id: str, store: RunStore | None = None, *, viewer: Viewer | None = None) -> Run:
    """One run, with a dead process noticed.

    Raises:
        RunNotFound: no such run. AccessDenied: ``viewer`` may not open it (None: no check).
    """
    store = store or RunStore()
    return refresh(_checked(run_id, store, viewer, "view"), store)


def queue_position(run_id: str, store: RunStore | None = None) -> int:
    """1-based position among queued runs (0 when not queued)."""
    store = store or RunStore()
    queued = sorted(store.list(status="queued"), key=lambda r: r.created)
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
