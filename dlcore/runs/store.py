"""The run store: SQLite (WAL) for runs, their specs and metrics; a folder per run for checkpoints.

Every call opens its own short-lived connection, so the store is safe to use from Streamlit's threads
and from several job processes at once. Nothing here is ever unpickled.

Example:
    >>> store = RunStore()
    >>> run_id = store.create(DataSpec(), get_preset("seed-cnn"), TrainSpec())
    >>> store.get(run_id).status
    'queued'
"""
from __future__ import annotations

import json
import shutil
import sqlite3
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from dlcore.config import data_dir
from dlcore.models import ModelConfig, model_from_dict, model_to_dict
from dlcore.specs import DataSpec, TrainSpec

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
    """One row of the runs table, with specs decoded."""
    id: str
    name: str
    status: str
    error: str | None
    data: DataSpec
    model: ModelConfig
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

    @property
    def family(self) -> str:
        return type(self.model).family

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
        run_id = time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
        name = (name or f"{model_to_dict(model)['family']} on {data.name}").strip()[:120]
        with self._connect() as con:
            con.execute("INSERT INTO runs (id, name, status, data_spec, model_spec, train_spec, created, params, owner) "
                        "VALUES (?, ?, 'queued', ?, ?, ?, ?, ?, ?)",
                        (run_id, name, data.to_json(), json.dumps(model_to_dict(model)), train.to_json(), time.time(),
                         params, owner))
        self.run_dir(run_id).mkdir(parents=True, exist_ok=True)
        return run_id

    def _row(self, row: sqlite3.Row) -> Run:
        return Run(id=row["id"], name=row["name"], status=row["status"], error=row["error"],
                   data=DataSpec.from_json(row["data_spec"]), model=model_from_dict(json.loads(row["model_spec"])),
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
