"""Background training jobs: each run trains in its own process, reports into the run store, and can be
cancelled, noticed dead, and resumed from its last checkpoint.

The caller (the app, the CLI) never trains in its own thread: ``start_run`` writes a queued row and
spawns ``python dlcore/train/worker.py RUN_ID`` in a new session, so a Streamlit rerun, a closed tab or a
restarted server does not stop it. Workers schedule themselves: at most ``LIMITS.concurrent_runs`` run at
once; the others wait in the queue.

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

from dlcore.models import ModelConfig
from dlcore.runs.store import ACTIVE, Run, RunStore
from dlcore.specs import DataSpec, TrainSpec
from dlcore.train.trainer import TrainingError
from dlcore.train.worker import dead_reason, pid_alive

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


def _spawn(store: RunStore, run_id: str, resume: bool) -> None:
    """Start the worker process in its own session; a failure to start fails the run with the reason."""
    from dlcore.config import LIMITS

    cmd = [sys.executable, str(_WORKER), run_id, "--root", str(store.root), "--max-running", str(LIMITS.concurrent_runs)]
    if resume:
        cmd.append("--resume")
    try:
        with open(store.run_dir(run_id) / "worker.log", "ab") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True, env=_worker_env(), cwd=str(_REPO))
    except OSError as e:  # no processes or file handles left, disk full: say so instead of queueing forever
        store.update(run_id, status="failed", finished=time.time(),
                     error=f"the training process could not be started ({e.strerror or e}); try again in a minute")
        raise TrainingError(f"the training process could not be started ({e.strerror or e})") from e
    store.update(run_id, pid=proc.pid)


def _check_seq_len(model: ModelConfig, info) -> None:
    """Refuse sequences longer than LIMITS.seq_len (attention memory grows with its square)."""
    from dlcore.config import LIMITS
    from dlcore.specs import SpecError

    length = info.input_shape[0] if info.input_kind in ("sequence", "tokens") else 0
    length = max(length, getattr(model, "seq_len", 0) if getattr(model, "family", "") == "transformer" else 0)
    limit = LIMITS.seq_len
    if length > limit:
        field = {"seq2seq": "seq_len", "forecasting": "window", "char-lm": "window"}.get(info.task, "data")
        fix = f"lower {field}" if field != "data" else "use shorter sequences or a larger patch size"
        raise SpecError(field, f"the sequence length is {length}; this server allows at most {limit} "
                               f"(DLE_MAX_SEQ_LEN): {fix}")


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
    _check_seq_len(for_data(model, info), info)
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
    if not pid_alive(run.pid, run_id):
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
