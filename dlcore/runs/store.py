"""The run store: SQLite (WAL) for runs, their specs and metrics; a folder per run for checkpoints.

Every call opens its own short-lived connection, so the store is safe to use from Streamlit's threads
and from several job processes at once. Nothing here is ever unpickled.

The store imports no torch: the data and training specs are plain dataclasses, and a run's model spec
is decoded into its config class (which lives next to its torch model) on first use of ``Run.model``.
A queued worker waits for its slot through :meth:`RunStore.wait_for_slot` at the cost of the standard
library alone.

Example:
    >>> store = RunStore()
    >>> run_id = store.create(DataSpec(), get_preset("seed-cnn"), TrainSpec())
    >>> store.get(run_id).status
    'queued'
"""
from __future__ import annotations

import functools
import json
import os
import shutil
import sqlite3
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from dlcore.config import data_dir
from dlcore.specs import DataSpec, TrainSpec

if TYPE_CHECKING:
    from dlcore.models import ModelConfig

STATUSES = ("queued", "running", "completed", "failed", "cancelled")
ACTIVE = ("queued", "running")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, status TEXT NOT NULL, error TEXT,
    data_spec TEXT NOT NULL, model_spec TEXT NOT NULL, train_spec TEXT NOT NULL,
    created REAL NOT NULL, started REAL, finished REAL, heartbeat REAL, pid INTEGER,
    params INTEGER, device TEXT, progress REAL DEFAULT 0, summary TEXT DEFAULT '{}',
    cancel_requested INTEGER DEFAULT 0, owner TEXT DEFAULT ''
);
CREATE TABLE IF NOT EXISTS metrics (
    id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, kind TEXT NOT NULL,
    step INTEGER NOT NULL, epoch REAL, time REAL NOT NULL, payload TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS metrics_run ON metrics(run_id, kind, id);
"""


class RunNotFound(KeyError):
    """No run with this id in the store."""

    def __str__(self) -> str:
        return f"no run with id {self.args[0]!r}"


@dataclass
class Run:
    """One row of the runs table, with specs decoded (the model spec on first use of :attr:`model`)."""
    id: str
    name: str
    status: str
    error: str | None
    data: DataSpec
    model_spec: dict  # {"family": ..., "config": {...}} as stored (``dlcore.models.model_to_dict``)
    train: TrainSpec
    created: float
    started: float | None
    finished: float | None
    heartbeat: float | None
    pid: int | None
    params: int | None
    device: str | None
    progress: float
    summary: dict = field(default_factory=dict)
    cancel_requested: bool = False
    owner: str = ""

    @functools.cached_property
    def model(self) -> ModelConfig:
        """The run's model config, validated (imports the model families, hence torch, on first use).

        Raises:
            SpecError: the stored spec is not a valid model config.
        """
        from dlcore.models import model_from_dict

        return model_from_dict(self.model_spec)

    @property
    def family(self) -> str:
        return str(self.model_spec.get("family", ""))

    @property
    def duration(self) -> float | None:
        if self.started is None:
            return None
        return (self.finished or time.time()) - self.started


class RunStore:
    """Runs, specs and metrics under ``root`` (default: the data folder)."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else data_dir()
        self.root.mkdir(parents=True, exist_ok=True)
        self.db_path = self.root / "store.db"
        with self._connect() as con:
            con.executescript(_SCHEMA)

    @contextmanager
    def _connect(self):
        con = sqlite3.connect(self.db_path, timeout=30, isolation_level=None)
        try:
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA busy_timeout=30000")
            con.row_factory = sqlite3.Row
            yield con
        finally:
            con.close()

    # ---------------------------------------------------------------- runs
    def create(self, data: DataSpec, model: ModelConfig, train: TrainSpec, name: str | None = None,
               params: int | None = None, owner: str = "") -> str:
        """Insert a queued run and return its id (a short, sortable, unique string)."""
        from dlcore.models import model_to_dict  # loaded already: the caller holds a model config

        run_id = time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
        spec = model_to_dict(model)
        name = (name or f"{spec['family']} on {data.name}").strip()[:120]
        with self._connect() as con:
            con.execute("INSERT INTO runs (id, name, status, data_spec, model_spec, train_spec, created, params, owner) "
                        "VALUES (?, ?, 'queued', ?, ?, ?, ?, ?, ?)",
                        (run_id, name, data.to_json(), json.dumps(spec), train.to_json(), time.time(), params, owner))
        self.run_dir(run_id).mkdir(parents=True, exist_ok=True)
        return run_id

    def _row(self, row: sqlite3.Row) -> Run:
        return Run(id=row["id"], name=row["name"], status=row["status"], error=row["error"],
                   data=DataSpec.from_json(row["data_spec"]), model_spec=_json_object(row["model_spec"]),
                   train=TrainSpec.from_json(row["train_spec"]), created=row["created"], started=row["started"],
                   finished=row["finished"], heartbeat=row["heartbeat"], pid=row["pid"], params=row["params"],
                   device=row["device"], progress=row["progress"] or 0.0, summary=json.loads(row["summary"] or "{}"),
                   cancel_requested=bool(row["cancel_requested"]), owner=row["owner"] or "")

    def get(self, run_id: str) -> Run:
        with self._connect() as con:
            row = con.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise RunNotFound(run_id)
        return self._row(row)

    def list(self, status: tuple[str, ...] | None = None) -> list[Run]:
        """All runs, newest first (optionally only those with one of the given statuses)."""
        with self._connect() as con:
            rows = con.execute("SELECT * FROM runs ORDER BY created DESC").fetchall()
        runs = [self._row(r) for r in rows]
        return [r for r in runs if status is None or r.status in status]

    def update(self, run_id: str, **fields) -> None:
        allowed = {"name", "status", "error", "started", "finished", "heartbeat", "pid", "params", "device",
                   "progress", "summary", "cancel_requested"}
        bad = set(fields) - allowed
        if bad:
            raise ValueError(f"cannot update {', '.join(sorted(bad))}")
        if "summary" in fields:
            fields["summary"] = json.dumps(fields["summary"])
        if "status" in fields and fields["status"] not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}")
        sets = ", ".join(f"{k} = ?" for k in fields)
        with self._connect() as con:
            cur = con.execute(f"UPDATE runs SET {sets} WHERE id = ?", (*fields.values(), run_id))
        if cur.rowcount == 0:
            raise RunNotFound(run_id)

    def rename(self, run_id: str, name: str) -> None:
        name = (name or "").strip()
        if not name:
            raise ValueError("a run name cannot be empty")
        self.update(run_id, name=name[:120])

    def delete(self, run_id: str) -> None:
        """Remove a run, its metrics and its checkpoint folder. A running run must be cancelled first."""
        run = self.get(run_id)
        if run.status in ACTIVE:
            raise ValueError(f"run {run_id} is {run.status}; cancel it before deleting")
        with self._connect() as con:
            con.execute("BEGIN")
            con.execute("DELETE FROM metrics WHERE run_id = ?", (run_id,))
            con.execute("DELETE FROM runs WHERE id = ?", (run_id,))
            con.execute("COMMIT")
        shutil.rmtree(self.run_dir(run_id), ignore_errors=True)

    def run_dir(self, run_id: str) -> Path:
        if not run_id or "/" in run_id or "\\" in run_id or run_id.startswith("."):
            raise RunNotFound(run_id)
        return self.root / "runs" / run_id

    # ---------------------------------------------------------------- metrics
    def log(self, run_id: str, kind: str, step: int, payload: dict, epoch: float | None = None) -> None:
        """Append one metrics row ('step' rows: loss/lr/throughput; 'epoch' rows: train/val metrics)."""
        with self._connect() as con:
            con.execute("INSERT INTO metrics (run_id, kind, step, epoch, time, payload) VALUES (?, ?, ?, ?, ?, ?)",
                        (run_id, kind, step, epoch, time.time(), json.dumps(payload)))

    def metrics(self, run_id: str, kind: str = "step", after_id: int = 0) -> list[dict]:
        """Metric rows of a run as flat dicts (id, step, epoch, time, and the payload's keys)."""
        with self._connect() as con:
            rows = con.execute("SELECT id, step, epoch, time, payload FROM metrics WHERE run_id = ? AND kind = ? "
                               "AND id > ? ORDER BY id", (run_id, kind, after_id)).fetchall()
        return [{"id": r["id"], "step": r["step"], "epoch": r["epoch"], "time": r["time"], **json.loads(r["payload"])}
                for r in rows]

    def truncate_metrics(self, run_id: str, after_step: int) -> None:
        """Drop metric rows past a step (a resumed run replays them from its checkpoint)."""
        with self._connect() as con:
            con.execute("DELETE FROM metrics WHERE run_id = ? AND step > ?", (run_id, after_step))

    def integrity_ok(self) -> bool:
        with self._connect() as con:
            return con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    # ---------------------------------------------------------------- the queue
    def reap_dead(self) -> None:
        """Mark active runs whose process is gone as failed, so a killed run neither holds a slot nor blocks
        the head of the queue forever (nobody may be watching it to notice)."""
        with self._connect() as con:
            rows = con.execute("SELECT id, pid, progress, status FROM runs WHERE status IN ('running', 'queued') "
                               "AND pid IS NOT NULL").fetchall()
            for run_id, pid, progress, status in rows:
                if not pid_alive(pid, run_id):
                    con.execute("UPDATE runs SET status = 'failed', finished = ?, error = ? WHERE id = ? AND "
                                "status = ? AND pid = ?", (time.time(), dead_reason(pid, progress, status), run_id,
                                                           status, pid))

    def claim_slot(self, run_id: str, cap: int) -> bool:
        """Atomically move a queued run to running, held by this process, when fewer than ``cap`` run.

        Dead runs are reaped first. Queued runs start first-come first-served: only the ``cap - running``
        oldest may claim.
        """
        self.reap_dead()
        with self._connect() as con:
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

    def wait_for_slot(self, run_id: str, cap: int, poll: float = 0.5,
                      stopping: Callable[[], bool] = lambda: False) -> bool:
        """Block until this process holds a slot for the run (True), or the run was cancelled, deleted or
        stopped while queued (False; a cancelled run is recorded as such).

        Args:
            cap: runs allowed at once on this machine (``LIMITS.concurrent_runs``).
            poll: seconds between tries.
            stopping: True when this process was asked to stop (the worker's SIGTERM flag).
        """
        while True:
            with self._connect() as con:
                row = con.execute("SELECT status, cancel_requested FROM runs WHERE id = ?", (run_id,)).fetchone()
                if row is None:
                    return False  # deleted while queued
                stop = stopping()
                if row["cancel_requested"] or row["status"] != "queued" or stop:
                    why = "stopped by the system while queued" if stop else "cancelled while queued"
                    con.execute("UPDATE runs SET status = 'cancelled', finished = ?, error = ? WHERE id = ? AND "
                                "status IN ('queued', 'running')", (time.time(), why, run_id))
                    return False
            if self.claim_slot(run_id, cap):
                return True
            time.sleep(poll)


def _json_object(text: str) -> dict:
    value = json.loads(text or "{}")
    return value if isinstance(value, dict) else {}


# ---------------------------------------------------------------- processes behind runs
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
